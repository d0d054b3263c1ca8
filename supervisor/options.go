package supervisor

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// Strategy is how a reload is carried out.
type Strategy string

// Reload strategies.
const (
	StrategySignal  Strategy = "signal"  // relay ReloadSignal to the child
	StrategySwap    Strategy = "swap"    // blue/green: start new, wait ready, stop old
	StrategyRestart Strategy = "restart" // stop old, then start new
	// StrategyRollback is no reload strategy but what Rollback reports:
	// the settling generation serves again, the newer one stops.
	StrategyRollback Strategy = "rollback"
)

// Strategies lists every strategy, for messages.
var Strategies = []Strategy{StrategySignal, StrategySwap, StrategyRestart}

// RestartPolicy says when a child that exited on its own is started again.
type RestartPolicy string

// Restart policies.
const (
	RestartAlways    RestartPolicy = "always"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartNever     RestartPolicy = "never"
)

// RestartPolicies lists every policy, for messages.
var RestartPolicies = []RestartPolicy{RestartAlways, RestartOnFailure, RestartNever}

// EnvControl names the control socket in the child's environment.
const EnvControl = "HUPD_CONTROL"

// Output says how a generation's output reaches hupd's.
type Output string

// Output modes.
const (
	OutputPipe    Output = "pipe"
	OutputInherit Output = "inherit"
)

// Defaults for the zero values of Options.
const (
	DefaultStopTimeout   = 30 * time.Second
	DefaultStopSignal    = unix.SIGTERM
	DefaultReloadSignal  = unix.SIGHUP
	DefaultRestartPolicy = RestartOnFailure
	DefaultMaxDraining   = 2
	DefaultSteerWait     = 5 * time.Second
	DefaultSteerGrace    = time.Second
	// MaxInstances bounds Options.Instances and Scale.
	MaxInstances = 1024
)

// The environment of an instance (Options.Instances): its index, from 0,
// and how many instances its generation was started with. {instance} in
// Args is replaced with the index.
const (
	EnvInstance  = "HUPD_INSTANCE"
	EnvInstances = "HUPD_INSTANCES"
	ArgInstance  = "{instance}"
)

// EnvPID is, in the environment of a readiness probe (ReadyExec), the PID
// of the process it judges: the generation's (or instance's) main
// process as started, so that a probe can tell the new process from the
// one it replaces (both share the sockets: an answer on them proves
// nothing about which one serves).
const EnvPID = "HUPD_PID"

// Options configure a Supervisor. Zero values take the defaults above.
type Options struct {
	Name string // for logs; defaults to the command's base name

	// Instances is how many processes of the program each generation runs
	// on the same sockets (0 is 1): each is started through the shim with
	// its own LISTEN_PID, NOTIFY_SOCKET, cgroup and readiness, and
	// EnvInstance/EnvInstances. A generation is ready when all its
	// instances are; an instance that exits on its own is restarted alone
	// (the restart policy, with its own backoff).
	Instances int
	// Rolling, for a swap with several instances, replaces that many at
	// a time (start them, wait until they are ready, stop as many old
	// ones, repeat); 0 replaces all at once.
	Rolling int

	Path string   // resolved executable (see LookPath)
	Args []string // argv, Args[0] included
	Env  []string // KEY=VALUE added to hupd's environment for the child
	Dir  string   // working directory; "" keeps hupd's
	// UID, GID and Groups to run the child as; -1 (or nil) keeps hupd's.
	UID, GID int
	Groups   []int

	// Reload is the reload strategy; "" is StrategySwap when there are
	// sockets and StrategySignal without.
	Reload       Strategy
	ReloadSignal syscall.Signal
	Ready        Readiness
	// Check runs before every reload (argv, no shell); a non-zero exit
	// aborts the reload with its output as the reason.
	Check []string
	// MaxDraining bounds the old generations draining at once; beyond it
	// the oldest is killed (DefaultMaxDraining).
	MaxDraining int
	StopSignal  syscall.Signal
	StopTimeout time.Duration
	// Settle keeps the old generation of a swap running for that long
	// once the new one is ready (StateSettling): with steered sockets it
	// receives nothing new, and Rollback (or a crash of the new
	// generation) steers back to it without starting anything; without
	// steering both generations accept meanwhile. Zero: the old one is
	// stopped at once.
	Settle time.Duration
	// SteerWait bounds how long an old generation's steered sockets may
	// take to empty their queues (what reached them before the steering
	// moved on) before its stop signal (DefaultSteerWait).
	SteerWait time.Duration
	// SteerGrace is how long after the steering moved away from a socket
	// it may still receive connections: those whose handshake began before
	// (the accept queue does not show a handshake in progress). An old
	// generation is not told to stop before (DefaultSteerGrace: a distant
	// client's round trip, with room).
	SteerGrace time.Duration
	// Watchdog, when set, is passed to the child as WATCHDOG_USEC (with
	// WATCHDOG_PID) as systemd does; a ready generation that does not send
	// WATCHDOG=1 that often is killed and the restart policy applies. A
	// child may also set its own with WATCHDOG_USEC= on NOTIFY_SOCKET.
	Watchdog time.Duration
	Restart  RestartPolicy
	Backoff  Backoff
	// StartLimit: that many failed starts within its interval and hupd
	// gives up when nothing serves (see StartLimit); zero: no limit.
	StartLimit StartLimit
	// SuccessExitStatus: exit statuses that count as a success besides
	// exit 0 (see SuccessStatus).
	SuccessExitStatus SuccessStatus

	// Output is how a generation's stdout and stderr reach hupd's:
	// OutputPipe (default) copies them unchanged and keeps the last lines to
	// explain a failed start; OutputInherit hands hupd's own over.
	Output Output
	// OutputPrefix prefixes each copied line with "[gen N pid P] ".
	OutputPrefix bool
	// OutputProgram is the program's name when hupd runs several
	// ([[program]] tables): each copied line then starts with "[NAME] ",
	// or "[NAME gen N pid P] " with OutputPrefix, so that the lines of
	// several programs in one stream can be told apart. "" (one program)
	// labels nothing. Records (OutputRecords) carry the name already.
	OutputProgram string
	// OutputRecords, when set, makes each line a generation writes a log
	// record (logev.ChildOutput with its generation, PID, stream and text)
	// written by the handler it returns for hupd's stdout or stderr,
	// instead of a raw copy: hupd run sets it for JSON logs, so that every
	// line hupd writes is JSON. OutputPrefix does not apply then.
	OutputRecords func(w io.Writer) slog.Handler

	Stdin, Stdout, Stderr *os.File
	// Shim is the binary that acts as the exec shim; "" is os.Executable.
	Shim string
	// Control is the control socket's path, exported to the child as
	// $HUPD_CONTROL; "" exports nothing.
	Control string
	// Handoff lists the hand-over dialects (socketact.Handoffs) whose
	// variables the child gets besides LISTEN_FDS. Args may hold
	// {fd:NAME} and {port:NAME}, replaced at each start (see
	// socketact.ExpandArgs).
	Handoff []string
	// Self is hupd's own binary, which an upgrade runs by default.
	Self string
	// Legacy is LegacyRedirect or LegacyAdopt for a program that binds
	// its own ports: it gets no inherited sockets; its bind calls to a
	// held socket's address are given that socket (package legacy).
	Legacy string
	// Forking is for a program that daemonizes (systemd's Type=forking):
	// when a generation's first process exits 0, the process it left
	// behind becomes the generation's main process (see forking.go).
	Forking bool
	// Pidfile, absolute, names the file where a forking program writes
	// its daemon's PID; "" finds the daemon without one. Implies Forking.
	Pidfile string
	// Sentinel, when set, is told about every generation so that its
	// processes are ended when hupd dies (nil: none; see Sentinel).
	Sentinel Sentinel

	// Spawner starts every process of the supervisor and runs an
	// upgrade's exec (see Spawner); Run stops it when it returns. nil: a
	// spawner on Thread, made by Run. The interface is sealed (its methods
	// are unexported): only this package's tests set another one.
	Spawner Spawner
	// Thread runs a function on the OS thread that forks every child and
	// execs an in-place upgrade, and waits for it to return: a child's
	// parent-death signal follows the thread that forked it. hupd passes
	// mainthread.Do. nil: the default spawner locks an OS thread of its
	// own, which lives until Run returns.
	Thread func(func())
	// Version is hupd's version, for Status ("" when unknown).
	Version string
	// Argv is hupd's own command line (os.Args in hupd). An upgrade checks
	// its new binary with "BINARY check ARGV[2:]..." when ARGV[1] is
	// "run", and execs it with Argv. nil: the new binary is only asked
	// for its upgrade protocol, and exec'd with its path as its argv.
	Argv []string
}

// Options.Legacy modes.
const (
	// LegacyRedirect is bind redirection: hupd binds every socket.
	LegacyRedirect = "redirect"
	// LegacyAdopt is bind redirection to sockets that the first program
	// to bind them made (socketact.Spec.Adopt).
	LegacyAdopt = "adopt"
)

// withDefaults fills zero values.
func (o Options) withDefaults(nsockets int) Options {
	if o.Reload == "" {
		o.Reload = DefaultStrategy(nsockets)
	}
	o.Ready = o.Ready.withDefaults()
	if o.MaxDraining <= 0 {
		o.MaxDraining = DefaultMaxDraining
	}
	if o.Output == "" {
		o.Output = OutputPipe
	}
	if o.ReloadSignal == 0 {
		o.ReloadSignal = DefaultReloadSignal
	}
	if o.Pidfile != "" {
		o.Forking = true
	}
	if o.StopSignal == 0 {
		o.StopSignal = DefaultStopSignal
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.SteerWait == 0 {
		o.SteerWait = DefaultSteerWait
	}
	if o.SteerGrace == 0 {
		o.SteerGrace = DefaultSteerGrace
	}
	if o.Restart == "" {
		o.Restart = DefaultRestartPolicy
	}
	if o.Instances == 0 {
		o.Instances = 1
	}
	o.Backoff = o.Backoff.withDefaults()
	if o.Name == "" && len(o.Args) > 0 {
		o.Name = o.Args[0]
	}
	return o
}

// DefaultStrategy is swap when hupd holds sockets for the child (a new
// generation can serve them while the old one drains) and signal without.
func DefaultStrategy(nsockets int) Strategy {
	if nsockets > 0 {
		return StrategySwap
	}
	return StrategySignal
}

// Validate reports options the supervisor cannot honour.
func (o Options) Validate() error {
	switch o.Reload {
	case "", StrategySignal, StrategySwap, StrategyRestart:
	default:
		return fmt.Errorf("unknown reload strategy %q: valid strategies are %v", o.Reload, Strategies)
	}
	switch o.Output {
	case "", OutputPipe, OutputInherit:
	default:
		return fmt.Errorf("unknown output %q: valid values are %s, %s", o.Output, OutputPipe, OutputInherit)
	}
	if o.Path == "" || len(o.Args) == 0 {
		return fmt.Errorf("supervisor: no command")
	}
	if err := ValidInstances(o.Instances); o.Instances != 0 && err != nil {
		return err
	}
	n := max(o.Instances, 1)
	if o.Rolling < 0 || o.Rolling > n {
		return fmt.Errorf("rolling %d: want 0 (all at once) to the number of instances (%d)", o.Rolling, n)
	}
	if n > 1 && (o.Forking || o.Pidfile != "") {
		return fmt.Errorf("instances %d: a forking program runs as one instance (its daemon is found by its pidfile or as the only orphan)", n)
	}
	if o.Rolling > 0 && o.Settle > 0 {
		return fmt.Errorf("rolling %d with settle %s: a rolling swap stops old instances as it goes, none is kept warm", o.Rolling, o.Settle)
	}
	return nil
}

// ValidInstances reports whether n instances can run: 1 to MaxInstances.
func ValidInstances(n int) error {
	if n < 1 || n > MaxInstances {
		return fmt.Errorf("instances %d: want 1 to %d", n, MaxInstances)
	}
	return nil
}

// listenerFiles returns the sockets and their LISTEN_FDNAMES names.
func listenerFiles(ls []*socketact.Listener) ([]*os.File, []string) {
	files := make([]*os.File, len(ls))
	names := make([]string, len(ls))
	for i, l := range ls {
		files[i], names[i] = l.File, l.Spec.FDName()
	}
	return files, names
}
