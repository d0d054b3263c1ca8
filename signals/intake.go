package signals

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Stop signals ask hupd to stop gracefully; Reload asks for a reload.
var (
	Stop   = []syscall.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGQUIT}
	Reload = unix.SIGHUP
	// Upgrade asks hupd to re-execute its binary in place; it is not
	// forwarded to the child.
	Upgrade = unix.SIGUSR2
)

// neverForwarded are signals hupd does not pass to a child: KILL and STOP
// cannot be caught; CHLD is for the reaper; URG belongs to the Go runtime
// (goroutine preemption); PIPE is about hupd's own writes; PROF is the
// runtime's profiler; the synchronous faults are about hupd's own code; TTIN
// and TTOU are about hupd's own terminal I/O.
var neverForwarded = map[syscall.Signal]bool{
	unix.SIGKILL: true, unix.SIGSTOP: true, unix.SIGCHLD: true, unix.SIGURG: true,
	unix.SIGPIPE: true, unix.SIGPROF: true, unix.SIGILL: true, unix.SIGTRAP: true,
	unix.SIGABRT: true, unix.SIGBUS: true, unix.SIGFPE: true, unix.SIGSEGV: true,
	unix.SIGSYS: true, unix.SIGTTIN: true, unix.SIGTTOU: true,
}

// Forwardable reports whether hupd may pass sig on to a child.
func Forwardable(sig syscall.Signal) bool {
	return sig > 0 && sig <= rtmax && (sig < 32 || sig >= rtmin) && !neverForwarded[sig]
}

// Intake subscribes ch to every signal hupd handles: the stop signals, HUP,
// every forwardable signal, and PIPE (received and dropped, so that a closed
// stdout makes writes fail instead of killing hupd). ch must be buffered.
// As PID 1 this is also what gives those signals any effect at all.
func Intake(ch chan<- os.Signal) {
	intake = ch
	if early != nil {
		// Taken in since init: pass on what came and what comes.
		go func() {
			for sig := range early {
				ch <- sig
			}
		}()
		return
	}
	signal.Notify(ch, intakeSignals()...)
}

func intakeSignals() []os.Signal {
	var sigs []os.Signal
	for sig := syscall.Signal(1); sig <= rtmax; sig++ {
		if Forwardable(sig) || sig == unix.SIGPIPE {
			sigs = append(sigs, sig)
		}
	}
	return sigs
}

// EnvEarlyIntake, when set in the environment (an in-place upgrade sets
// it for the new image), makes this package take in hupd's signals from
// its init on: a TERM or HUP that arrives while the new image starts up
// must not kill it (and its children with it) before Intake is called.
const EnvEarlyIntake = "HUPD_UPGRADE_STATE"

var (
	early  chan os.Signal
	intake chan<- os.Signal // Intake's, for IgnoreForExec
)

func init() {
	if os.Getenv(EnvEarlyIntake) != "" {
		early = make(chan os.Signal, 64)
		signal.Notify(early, intakeSignals()...)
	}
}

// IgnoreForExec ignores hupd's signals, process-wide, for an exec of
// hupd's own binary (an in-place upgrade), and returns a func that takes
// them in again, for when the exec fails. A signal that arrives from here
// until the new image takes its signals in (from its init: see
// EnvEarlyIntake) is dropped: an ignored disposition survives execve,
// where a caught one would meet the default action — a TERM or HUP that
// ends the new image, and with it every child. (Go installs its own
// handler for TERM at start-up, ahead of any init, so a TERM in that
// instant still ends it.)
func IgnoreForExec() (restore func(), err error) {
	sigs := intakeSignals()
	target := intake
	if early != nil {
		target = early
	}
	signal.Ignore(sigs...)
	return func() {
		if target != nil {
			signal.Notify(target, sigs...)
		}
	}, nil
}
