package logev

// Events of internal/run's fleet: a hupd that runs several programs
// ([[program]] tables), each under a supervisor of its own.
const (
	// A program's supervisor starts its first generation.
	ProgramStarting = "program starting"
	// A program waits for the programs it starts after to be ready.
	ProgramWaiting = "program waiting for the programs it starts after"
	// A program will never start: a program it starts after ended before
	// it was ready.
	ProgramNotStarted = "program not started: a program it starts after ended"
	// A program's first generation could not be started.
	ProgramStartFailed = "program failed to start"
	// A program ended for good (its supervisor returned).
	ProgramEnded = "program ended"
	// hupd stops every program, in reverse start order.
	StoppingPrograms = "stopping every program in reverse start order"
	// One program is asked to stop (the programs after it have ended).
	ProgramStopping = "program stopping"
	// An upgrade's new image took a running program over.
	ProgramTakenOver = "program taken over from the previous image"
	// An upgrade's new image keeps a program that had ended ended.
	ProgramStaysEnded = "program had ended before the upgrade: it stays ended"
	// An upgrade's new image read a hupd.toml edited after the previous
	// image's last check, the state from an older binary not carrying the
	// version in force: every running program reloads with it.
	ConfigEditedDuringUpgrade = "hupd.toml edited during the upgrade: reloading every program with it"
	// An upgrade's new image took over what ran in the previous one,
	// resolved from the hupd.toml in force that the state carries, and
	// finds the file on disk changed since: it applies it as an edit.
	ConfigChangedDuringUpgrade = "hupd.toml changed during the upgrade: applying it as an edit"
)

// Events of hupd.toml's edits with several programs.
const (
	// hupd.toml was applied: the programs it added, removed and changed.
	ProgramsReconfigured = "hupd.toml applied to the programs"
	// A program that hupd.toml no longer has is asked to stop.
	ProgramRemoving = "program removed from hupd.toml: stopping it"
	// A removed program's supervisor returned: it is gone.
	ProgramRemoved = "removed program ended"
	// A removed program was released (its cgroup closed, off the
	// fleet's loop): nothing of it is kept, and a program of its name
	// may be added again.
	ProgramReleased = "removed program released"
)
