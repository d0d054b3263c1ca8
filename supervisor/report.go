package supervisor

import "time"

// The reports the supervisor makes (Status, ReloadResult and what they
// hold). Their JSON encoding is what hupd's clients read (hupd status
// --json, hupd reload --json).

// ReloadResult reports one reload.
type ReloadResult struct {
	OK       bool      `json:"ok"`
	Strategy Strategy  `json:"strategy"`
	Cause    string    `json:"cause,omitempty"`  // what asked for it
	Reason   string    `json:"reason,omitempty"` // why it failed
	OldGen   int       `json:"old_gen,omitempty"`
	OldPID   int       `json:"old_pid,omitempty"`
	NewGen   int       `json:"new_gen,omitempty"`
	NewPID   int       `json:"new_pid,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// ReadyAfter is how long the new generation took to become ready.
	ReadyAfter Duration `json:"ready_after,omitempty"`
	// hupd's own share of a swap: from the trigger reaching hupd's loop to
	// the new child's exec (including the check command, if any), and from
	// the READY=1 datagram's arrival to the old generation's stop signal.
	ExecAfter    Duration `json:"exec_after,omitempty"`
	HandoverTook Duration `json:"handover_took,omitempty"`
	// Output holds the new generation's last output lines when it failed.
	Output []string `json:"output,omitempty"`
	// TimedOut: the caller stopped waiting (its timeout) before the outcome
	// was known; the reload goes on (hupd status shows how it ended).
	TimedOut bool `json:"timed_out,omitempty"`
}

// Status is a snapshot of the supervisor.
type Status struct {
	Name        string             `json:"name"`
	PID         int                `json:"pid"` // hupd's
	Version     string             `json:"version,omitempty"`
	Strategy    Strategy           `json:"strategy"`
	Listeners   []ListenerStatus   `json:"listeners"`
	Generations []GenerationStatus `json:"generations"`
	LastReload  *ReloadResult      `json:"last_reload,omitempty"`
	Reloads     int                `json:"reloads"`
	Restarts    int                `json:"restarts"`
	// StartLimit is the start limit in force ("5/10s"; "off": none), and
	// StartFailures the failed starts counted in its current window: hupd
	// gives up when they reach the limit's burst while nothing serves.
	StartLimit    string `json:"start_limit,omitempty"`
	StartFailures int    `json:"start_failures"`
	// Upgrades counts the in-place upgrades of hupd this process has
	// been through (hupd upgrade, SIGUSR2).
	Upgrades int `json:"upgrades,omitempty"`
	// RolledBack: the last upgrade's new binary could not take over and
	// this one, the previous, took its state back.
	RolledBack bool `json:"rolled_back,omitempty"`
	// ConfigHash is the content hash the serving generation started
	// with (or reloaded in place); Hash is the content's hash now.
	ConfigHash string `json:"config_hash,omitempty"`
	Note
	Stopping bool `json:"stopping,omitempty"`
	// Containment is how generations are kept together and stopped.
	Containment *Containment `json:"containment,omitempty"`
	// Ready is how a new generation is judged ready (Readiness.String) and
	// ReadyTimeout how long it has.
	Ready        string   `json:"ready,omitempty"`
	ReadyTimeout Duration `json:"ready_timeout,omitempty"`
	// Instances is how many instances a generation runs (Options.Instances,
	// or what Scale set since); Rolling how many a swap replaces at a time
	// (0: all at once).
	Instances int `json:"instances"`
	Rolling   int `json:"rolling,omitempty"`
}

// Containment says how hupd keeps each generation's processes together.
type Containment struct {
	// Mode is ContainCgroup (a cgroup per generation, under Cgroup) or
	// ContainProcessGroup (the fallback, for Reason).
	Mode   string `json:"mode"`
	Cgroup string `json:"cgroup,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// WatchStatus describes one group of watched paths.
type WatchStatus struct {
	Paths  []string `json:"paths"`
	Action string   `json:"action"`
	// Hash of the group's content; Changes counts the changes seen.
	Hash       string    `json:"hash"`
	Changes    int       `json:"changes"`
	LastChange time.Time `json:"last_change,omitzero"`
	Poll       Duration  `json:"poll_interval,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// ListenerStatus describes one socket hupd holds.
type ListenerStatus struct {
	FD        int    `json:"fd"` // in the child
	Name      string `json:"name"`
	Address   string `json:"address"`
	Inherited bool   `json:"inherited,omitempty"`
	// Pending (adopt mode): no program has bound the address yet.
	Pending bool `json:"pending,omitempty"`
}

// GenerationStatus describes one generation of the child.
type GenerationStatus struct {
	Gen        int       `json:"gen"`
	PID        int       `json:"pid"`
	State      State     `json:"state"`
	Started    time.Time `json:"started"`
	Uptime     Duration  `json:"uptime"`
	ReadyAfter Duration  `json:"ready_after,omitempty"`
	StatusText string    `json:"status_text,omitempty"` // the child's STATUS=
	ConfigHash string    `json:"config_hash,omitempty"`
	// SettleLeft is what is left of a settling generation's window.
	SettleLeft Duration `json:"settle_left,omitempty"`
	// What its processes use, sampled for this status (contain.Stats):
	// memory now and its peak in bytes, CPU seconds (user and system),
	// processes alive. Cgroup is its cgroup, if it has one.
	Processes       int     `json:"processes"`
	MemoryBytes     uint64  `json:"memory_bytes"`
	MemoryPeakBytes uint64  `json:"memory_peak_bytes"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	Cgroup          string  `json:"cgroup,omitempty"`
	// Instances are its processes when the program runs as several
	// instances (Options.Instances > 1), by index; the fields above then
	// add up theirs (PID is instance 0's, or the lowest one's alive).
	Instances []InstanceStatus `json:"instances,omitempty"`
}

// InstanceStatus describes one instance of a generation (Options.Instances).
type InstanceStatus struct {
	Index      int       `json:"index"` // its HUPD_INSTANCE
	PID        int       `json:"pid"`   // 0 while it waits to be restarted
	State      State     `json:"state"`
	Started    time.Time `json:"started,omitzero"`
	Uptime     Duration  `json:"uptime"`
	ReadyAfter Duration  `json:"ready_after,omitempty"`
	// Restarts counts its restarts after it exited on its own (the
	// restart policy restarts an instance alone); LastExit is how it
	// exited last ("" if it never did).
	Restarts   int    `json:"restarts"`
	LastExit   string `json:"last_exit,omitempty"`
	StatusText string `json:"status_text,omitempty"`
	// What its processes use (as GenerationStatus).
	Processes       int     `json:"processes"`
	MemoryBytes     uint64  `json:"memory_bytes"`
	MemoryPeakBytes uint64  `json:"memory_peak_bytes"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	Cgroup          string  `json:"cgroup,omitempty"`
}

// ScaleResult reports a change of the number of instances (Scale).
type ScaleResult struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"` // why it failed
	// From and To are the number of instances before and asked for; Gen
	// the generation scaled (0: none runs; the next one starts To).
	From     int       `json:"from"`
	To       int       `json:"to"`
	Gen      int       `json:"gen,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Added and Removed are the PIDs of the instances started (and
	// ready) and of those told to stop.
	Added   []int `json:"added,omitempty"`
	Removed []int `json:"removed,omitempty"`
	// TimedOut: as ReloadResult.TimedOut.
	TimedOut bool `json:"timed_out,omitempty"`
}

// State is where a generation is in its life.
type State string

// Generation states.
const (
	StateStarting State = "starting"
	StateReady    State = "ready"
	StateDraining State = "draining"
	// StateSettling: an old generation kept running after a swap for
	// Options.Settle, ready to serve again on a rollback.
	StateSettling State = "settling"
	StateExited   State = "exited"
	// Instances only (InstanceStatus): an instance that exited and whose
	// restart is due after its backoff, and one the restart policy does
	// not restart any more (the start limit, or a clean exit under
	// on-failure).
	StateRestarting State = "restarting"
	StateFailed     State = "failed"
)

// Duration is a time.Duration that reads and writes JSON as "1.5s".
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}
