package logev

// Events of package internal/run: hupd's wiring (sockets, control,
// configuration, watching, systemd, sentinel, containment).
const (
	// A socket is held (at start, or added by a configuration edit).
	Listening = "listening"
	// A configured socket is left for the program to bind (adopt mode).
	SocketToAdopt = "socket to adopt: the program binds it"
	// An inherited socket matches no [[listen]]: closed and dropped from the fd store.
	InheritedClosed = "inherited socket matches no [[listen]]: closed, and removed from the fd store"
	// An inherited socket matches no --listen: held, unused.
	InheritedUnused = "inherited socket matches no --listen: holding it unused"
	// The control socket is listening.
	ControlSocket = "control socket"
	// The health endpoint is listening.
	HealthEndpoint = "health endpoint"

	// hupd could not become a child subreaper.
	SubreaperFailed = "cannot become a subreaper: orphans of the child will not be reaped by hupd"
	// An orphan hupd inherited was reaped.
	OrphanReaped = "reaped orphan"
	// hupd's own binary is unknown: upgrades need --binary.
	OwnBinaryUnknown = "cannot tell hupd's own binary: hupd upgrade needs --binary"
	// A new hupd binary took over the generations after an upgrade.
	Upgraded = "upgraded: generations taken over"
	// The new binary could not take over: the previous binary goes on.
	UpgradeTakeOverFailed = "upgrade: cannot take over; going back to the previous binary"

	// hupd run ends on an error (JSON logs; in text it is "hupd: ERROR").
	Fatal = "hupd exits on an error"

	// Generations get a cgroup each.
	ContainmentCgroup = "containment: a cgroup per generation"
	// Generations get a process group only.
	ContainmentGroups = "containment: process groups only"
	// A cgroup left by a dead hupd was removed.
	StaleCgroupRemoved = "stale cgroup of a dead hupd removed"
	// hupd's cgroups could not all be removed at exit.
	CgroupsLeftBehind = "cgroups left behind"

	// The sentinel was started.
	SentinelStarted = "sentinel started"
	// The sentinel of the previous binary was taken over after an upgrade.
	SentinelTakenOver = "sentinel taken over"
	// The sentinel exited and was started again.
	SentinelRestarted = "sentinel exited: started again"
	// The sentinel exited and could not be started again.
	SentinelLost = "sentinel exited: generations will outlive hupd's death"
	// The sentinel failed when hupd exited.
	SentinelFailedAtExit = "sentinel failed at exit"
	// No sentinel: hupd is PID 1.
	NoSentinelPID1 = "no sentinel: as PID 1, hupd's death ends every process of its PID namespace"
	// No sentinel could be started.
	NoSentinel = "no sentinel: generations will outlive hupd's death"

	// hupd talks to the service manager on NOTIFY_SOCKET.
	Notifying = "notifying the service manager"
	// NOTIFY_SOCKET is unusable: hupd does not notify.
	NotNotifying = "not notifying the service manager"
	// A notification to the service manager failed.
	NotifyFailed = "cannot notify the service manager"
	// Sockets go to the service manager's fd store.
	FDStoreKeeping = "keeping the sockets in the service manager's fd store"
	// fdstore = yes without a service manager.
	FDStoreNoManager = "fdstore = yes, but no service manager listens (no usable NOTIFY_SOCKET): the sockets are not stored"
	// Sockets were stored in or removed from the fd store.
	FDStoreUpdated = "fd store updated"
	// A socket could not be stored in the fd store.
	FDStoreStoreFailed = "cannot store a socket in the fd store: it does not outlive hupd"
	// A socket could not be removed from the fd store.
	FDStoreRemoveFailed = "cannot remove a socket from the fd store"
	// More sockets than FileDescriptorStoreMax=.
	FDStoreFull = "more sockets than the service manager's fd store keeps (FileDescriptorStoreMax=): these do not outlive hupd"

	// A group of watched files is being watched.
	Watching = "watching"
	// A watched file is a mount point of its own and never sees updates.
	WatchMountPoint = "watched file is a mount point of its own (a Kubernetes subPath or docker -v FILE mount): it never sees updates of its source; mount the directory instead"
	// Watched files changed: their action follows.
	WatchedFilesChanged = "watched files changed"
	// A watch failed or recovered from a problem.
	WatchProblem = "watch problem"
	// A reload was refused because hupd.toml is not valid.
	ReloadRefusedInvalid = "reload refused: hupd.toml is not valid"
	// An edited hupd.toml was applied.
	ConfigApplied = "configuration applied"
	// An edited hupd.toml was not applied.
	ConfigNotApplied = "configuration not applied: the running generation is untouched"
	// An edited setting needs a restart of hupd.
	SettingNeedsRestart = "setting takes effect when hupd restarts"
)
