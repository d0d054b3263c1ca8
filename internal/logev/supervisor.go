package logev

// Events of package supervisor: generations, reloads, upgrades.
const (
	// A child program was started as a new generation.
	ChildStarted = "child started"
	// A generation became ready (READY=1, a probe, or alive long enough).
	ChildReady = "child ready"
	// A generation's main process exited.
	ChildExited = "child exited"
	// A line a generation wrote to its stdout or stderr, as a record (JSON
	// logs; in text logs the line is copied as it is).
	ChildOutput = "child output"
	// A generation said STOPPING=1.
	ChildStopping = "child stopping"
	// A generation sent ERRNO= over sd_notify.
	ChildReportedError = "child reported an error"
	// A generation failed before it became ready.
	StartFailed = "start failed"
	// A generation sent EXTEND_TIMEOUT_USEC=.
	ReadyTimeoutExtended = "readiness timeout extended"
	// The configured readiness timeout passed, but EXTEND_TIMEOUT_USEC had
	// moved the deadline: the generation may still become ready (debug).
	ReadyDeadlineMoved = "readiness timeout passed: the deadline was extended"
	// A generation is slow to become ready (logged once, before the timeout).
	NotReadyYet = "generation not ready yet"
	// A generation did not become ready in time.
	NotReady = "generation not ready"
	// A generation without sd_notify is judged ready by staying alive.
	ReadyByAlive = "no sd_notify from the child: judging it ready by being alive"
	// A readiness probe command could not be started.
	ProbeStartFailed = "readiness probe failed to start"
	// A notify datagram from a process outside the generation was dropped.
	NotifyOutsider = "notify from a process outside the generation ignored"
	// A generation's watchdog expired: it is killed.
	WatchdogTimeout = "watchdog timeout: killing generation"

	// A generation was asked to leave (its stop signal sent).
	Draining = "draining"
	// More generations than max_draining are draining: the oldest is killed.
	TooManyDraining = "too many generations draining: killing the oldest"
	// A draining generation outlived its stop timeout: its group is killed.
	StopTimeout = "stop timeout: killing process group"
	// Killing a generation's process group failed.
	KillGroupFailed = "cannot kill the process group"
	// A signal to a generation was sent.
	SignalSent = "signal sent"
	// A signal to a generation could not be sent.
	SignalFailed = "signal failed"
	// hupd is stopping its generations.
	Stopping = "stopping"
	// The child exited and the restart policy says not to restart it.
	NotRestarting = "not restarting"
	// The child is restarted after a crash (with backoff).
	RestartingChild = "restarting child"
	// OwnBindHint: a generation exited before it was ready saying that an
	// address was in use while hupd holds sockets: the program most
	// likely binds the port hupd holds itself (logged once per hupd).
	OwnBindHint = "the program binds its own port, which hupd holds: hand it the socket or use --legacy redirect"
	// Too many failed starts within the start limit's interval, and no
	// generation serves: hupd stops and exits with the last status.
	StartLimitReached = "start limit reached: giving up"
	// RestartCancelledByReload: a reload during a crash restart's backoff
	// starts the next generation in the restart's place (debug).
	RestartCancelledByReload = "pending restart cancelled: the reload starts the next generation"
	// The serving generation exited while a new one was starting.
	ServingExitedDuringReload = "serving generation exited during the reload: the new generation takes over"

	// A reload was asked for while one runs: it follows that one.
	ReloadQueued = "reload queued behind the one in progress"
	// A reload started.
	ReloadStarted = "reload started"
	// An in-place reload sent its signal to the serving generation.
	ReloadSignalSent = "reload signal sent"
	// A reload finished: the new generation serves.
	ReloadDone = "reload done"
	// A reload failed: the previous generation goes on serving.
	ReloadFailed = "reload failed"
	// The configured check command of a reload started.
	CheckStarted = "check started"
	// A check was killed by a signal hupd does not send (one meant for
	// the whole service): it runs again.
	CheckStraySignal = "check killed by a signal meant for the service: running it again"
	// A reload's new generation was killed by a signal hupd does not send
	// (one meant for the whole service) before it was ready: the reload
	// starts another.
	ReloadStartStraySignal = "new generation killed by a signal meant for the service before it was ready: starting another"

	// MAINPID= named a process that is not a member of the generation.
	MainPIDRefused = "main pid refused"
	// MAINPID= named a new main process.
	MainPIDChanged = "main pid changed"
	// The main process named by MAINPID= exited before the one started.
	MainPIDBack = "main process named by MAINPID exited: the process started is the main process again"
	// A followed main process that is not hupd's child exited.
	MainExitUnknown = "main process exited: its status is unknown (not hupd's child)"
	// The process started exited: the one named by MAINPID= goes on.
	MainExitFollow = "main process exited: following MAINPID"
	// A forking program's first process exited, leaving its daemon.
	ForkingFollowDaemon = "first process exited: following the daemon it left"
	// A main process exited while daemonizing again, leaving a new one.
	ForkingFollowDaemonizing = "main process exited while daemonizing: following the process it left"
	// A forking start failed: what it left is killed.
	ForkingKillLeftover = "forking: killing a process the failed start left"

	// The standby shim could not get its pipes.
	StandbyNoPipes = "standby shim: no pipes"
	// The standby shim could not be started.
	StandbyStartFailed = "standby shim failed to start"
	// A standby shim waits, ready for the next generation.
	StandbyReady = "standby shim ready"
	// The standby shim could not be used: the generation starts cold.
	StandbyUnusable = "standby shim unusable: starting cold"
	// The standby shim exited before it was used.
	StandbyExited = "standby shim exited"
	// A standby shim hupd no longer needed exited.
	StandbyDiscardedExited = "discarded standby shim exited"

	// A generation's bind() of a held address got hupd's socket.
	BindRedirected = "bind redirected"
	// A generation's listen() on a held socket was answered by hupd.
	ListenAnswered = "listen answered"
	// A socket a generation bound itself was adopted (adopt mode).
	SocketAdopted = "socket adopted"
	// A held socket could not be offered to bind redirection.
	BindSocketLeftOut = "bind redirection: socket left out"
	// A configured socket option could not be set on a held socket.
	SocketOptionNotApplied = "socket option not applied"
	// A held socket no longer in the configuration was closed.
	SocketClosed = "socket closed: no longer configured"

	// No cgroup could be made for a generation.
	NoCgroup = "no cgroup for the generation: process group only"
	// A generation could not be registered with the sentinel.
	SentinelRegisterFailed = "sentinel: cannot register the generation: it would outlive hupd's death"
	// A generation could not be unregistered from the sentinel.
	SentinelUnregisterFailed = "sentinel: cannot unregister the generation"
	// A start removed what a dead hupd of the same name left.
	RuntimeCleanedUp = "cleaned up after a dead hupd"

	// hupd execs its new binary for an upgrade.
	UpgradeExec = "upgrading: exec"
	// An upgrade failed before the exec: hupd goes on.
	UpgradeFailed = "upgrade failed: hupd goes on as it was"
	// The upgraded hupd took over a generation.
	GenerationTakenOver = "generation taken over"
	// The upgraded hupd could not take over a generation's cgroup.
	UpgradeCgroupNotTaken = "generation's cgroup not taken over: process group only"
	// A followed main process was gone or refused after an upgrade.
	UpgradeFollowedGone = "followed main process gone or refused after the upgrade: the generation ends"
)

// Events of traffic steering (supervisor/steer.go, settle.go).
const (
	// New connections of a steered socket now go to a generation's socket.
	Steered = "steered new connections"
	// The steering program could not be attached: the previous one stays.
	SteerFailed = "steering failed"
	// An old generation's steered socket still held connections when the
	// wait for its queue ended: its stop signal is sent anyway.
	SteerQueueLeft = "steered socket queue not empty at the stop signal"
	// An old generation's steered socket still holds connections once
	// the steering has moved on: its stop signal waits for them to be
	// accepted (logged once per generation).
	SteerQueueWait = "waiting for a steered socket's queue before the stop signal"
	// A program shut its listening socket down: it left the reuseport
	// group, which hupd mirrors.
	SteerSocketShut = "steered socket shut down by a program"
	// An old generation is kept running after a swap (settle).
	Settling = "settling"
	// The settling generation serves again: hupd rollback.
	RolledBack = "rolled back"
	// The new generation exited within the settle window: the settling
	// one serves again.
	SettleRollback = "serving generation exited while another settles: rolled back"

	// Instances (supervisor.Options.Instances): an instance of the
	// serving generation exited and is restarted alone after a delay.
	RestartingInstance = "restarting instance"
	// An instance exited and the restart policy does not restart it: the
	// others serve on.
	InstanceNotRestarted = "instance not restarted"
	// The start limit was reached by an instance while others serve: it
	// is not restarted any more.
	InstanceGaveUp = "start limit reached: instance not restarted"
	// A rolling swap's new instances are ready: as many old ones stop and
	// the next ones start.
	RollingOn = "rolling swap goes on"
	// A rolling swap failed: the old instances it had stopped start again.
	RollingUndone = "rolling swap failed: old instances started again"
	// An old instance could not be started again after a failed rolling
	// swap (its restart is scheduled).
	RollbackStartFailed = "restarting an old instance failed"
	// The number of instances changed (hupd scale, hupd.toml).
	Scaled = "scaled"
	// A scale failed: the instances it started are stopped.
	ScaleFailed = "scale failed"
)
