package supervisor

import (
	"fmt"
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

// Defaults for the zero values of Options.
const (
	DefaultStopTimeout   = 30 * time.Second
	DefaultStopSignal    = unix.SIGTERM
	DefaultReloadSignal  = unix.SIGHUP
	DefaultRestartPolicy = RestartOnFailure
)

// Options configure a Supervisor. Zero values take the defaults above.
type Options struct {
	Name string // for logs; defaults to the command's base name

	Path string   // resolved executable (see LookPath)
	Args []string // argv, Args[0] included
	Env  []string // KEY=VALUE added to hupd's environment for the child
	Dir  string   // working directory; "" keeps hupd's
	// UID, GID and Groups to run the child as; -1 (or nil) keeps hupd's.
	UID, GID int
	Groups   []int

	Reload       Strategy
	ReloadSignal syscall.Signal
	StopSignal   syscall.Signal
	StopTimeout  time.Duration
	Restart      RestartPolicy
	Backoff      Backoff

	Stdin, Stdout, Stderr *os.File
	// Shim is the binary that acts as the exec shim; "" is os.Executable.
	Shim string
}

// withDefaults fills zero values.
func (o Options) withDefaults() Options {
	if o.Reload == "" {
		o.Reload = StrategySignal
	}
	if o.ReloadSignal == 0 {
		o.ReloadSignal = DefaultReloadSignal
	}
	if o.StopSignal == 0 {
		o.StopSignal = DefaultStopSignal
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.Restart == "" {
		o.Restart = DefaultRestartPolicy
	}
	o.Backoff = o.Backoff.withDefaults()
	if o.Name == "" && len(o.Args) > 0 {
		o.Name = o.Args[0]
	}
	return o
}

// ErrNotImplemented is returned for a reload strategy this build lacks.
var ErrNotImplemented = fmt.Errorf("supervisor: not implemented")

// Validate reports options the supervisor cannot honour.
func (o Options) Validate() error {
	switch o.Reload {
	case "", StrategySignal:
	case StrategySwap, StrategyRestart:
		return fmt.Errorf("reload strategy %q: %w yet (only %q is)", o.Reload, ErrNotImplemented, StrategySignal)
	default:
		return fmt.Errorf("unknown reload strategy %q: valid strategies are %v", o.Reload, Strategies)
	}
	if o.Path == "" || len(o.Args) == 0 {
		return fmt.Errorf("supervisor: no command")
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
