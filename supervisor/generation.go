package supervisor

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/legacy"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// generation is one start of the child. Only the Run goroutine touches it,
// except out, which has its own lock.
//
// With several instances (Options.Instances) each instance is one
// generation value, all of them sharing num and set.
type generation struct {
	num   int
	inst  int     // its instance's index (HUPD_INSTANCE)
	start int     // which start of that instance it is: 1, 2, … (guardKey)
	set   *genSet // what its generation's instances share
	pid   int     // the main process: the one started, or the MAINPID= it handed over to
	pgid  int     // the process group: the PID of the process started
	// grp holds every process of the generation: its cgroup, or its
	// process group in the fallback (package contain).
	grp     *contain.Group
	mainPID int // MAINPID= from the child, 0 if none: signals go there
	// mainFD is a pidfd of mainPID (nil if none) while it is not followed:
	// signals to it cannot reach a reused PID.
	mainFD *os.File
	goneFD *os.File // a duplicate of mainFD, waited on by watchGone
	// procFD is a pidfd of pid once a MAINPID is followed (proc is nil
	// then): signals go through it and watchMain waits on it.
	procFD *os.File
	// The roots of member's process tree, read by the notify reader: the
	// main process watched (the one started, then the MAINPID followed)
	// and the MAINPID announced but not followed (0 if none).
	origin, mainRoot atomic.Int64
	// Taken over from an upgrade, until resumeMain looks at them: the
	// MAINPID= handed over and the reaper's channel for g.pid.
	resumeMain int
	mainStart  uint64 // from the upgrade state: see vettedMain
	resumeExit <-chan signals.Exit
	proc       *os.Process
	// Forking mode (forking.go): forking while the first process runs,
	// whose exit 0 hands over to the daemon it leaves; foundAt, when the
	// daemon was found; failure, why the start failed although the first
	// process exited 0; readyPending, the readiness reached before the
	// daemon was found (counted once it is).
	forking      bool
	forks        bool   // started in forking mode; fixed (member reads it)
	pidfile      string // Options.Pidfile when it started
	foundAt      time.Time
	failure      string
	readyPending string
	state        State // StateExited once its main process has exited (onExit)
	started      time.Time
	readyAt      time.Time
	readyBy      time.Time // readiness deadline (EXTEND_TIMEOUT_USEC moves it)

	notify       *socketact.NotifySocket
	ref          *procRef          // the process being waited for
	exitParked   chan signals.Exit // its exit, until the notify reader posts it
	speaksNotify bool              // sent any valid datagram
	speaksReload bool              // sent RELOADING=1 at some point
	statusText   string
	configHash   string
	out          *output
	outR, errR   *os.File       // the read ends out copies; nil when inherited
	trap         *os.File       // legacy mode: the seccomp notify fd
	trapSrv      *legacy.Server // answers trap
	drainBy      time.Time      // draining: when its group is killed
	// emptyBy: draining, waiting for its steered sockets' queues to empty
	// before its stop signal, until then at the latest (zero: not waiting).
	emptyBy time.Time
	// emptyLogged: that it waits for a queue was logged (once); pollT
	// polls the queues meanwhile.
	emptyLogged bool
	pollT       *time.Timer
	// groupT: told to stop, its steering groups are checked (watchGroups).
	groupT *time.Timer
	// Settling (settle.go): when its window ends, and the timer that ends it.
	settleEnd time.Time
	settleT   *time.Timer
	// What it was started with: the sockets (a socket a new configuration
	// dropped is closed once no generation uses it) and how it is stopped.
	listeners   []*socketact.Listener
	stopSignal  syscall.Signal
	stopTimeout time.Duration
	ready       Readiness // how its readiness is judged (armReadiness)
	uid         int       // the user it runs as; -1: hupd's

	timers      []*time.Timer // readiness and drain timers, stopped at exit
	stopProbe   context.CancelFunc
	watchdog    *time.Timer
	watchdogSeq int // which arming of watchdog is current
	watchdogDur time.Duration
}

// exited reports whether g's main process has exited (state StateExited,
// set by onExit; Status never lists such a generation, which onExit
// removes at once).
func (g *generation) exited() bool { return g.state == StateExited }

// signal sends sig to the generation's main process: the MAINPID= it
// announced, through its pidfd, or the process started or followed (also
// when the announced one has exited). After the process is reaped its
// pidfd (behind proc, mainFD or procFD) makes this fail with ESRCH, never a
// signal to a reused PID.
func (g *generation) signal(sig syscall.Signal) error {
	if g.mainFD != nil && g.mainPID != g.pid {
		if err := signalMain(g.mainFD, sig); !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	switch {
	case g.proc != nil:
		err := g.proc.Signal(sig)
		if err == os.ErrProcessDone {
			return nil
		}
		return err
	case g.procFD != nil:
		return signalMain(g.procFD, sig)
	}
	return os.NewSyscallError("kill", unix.ESRCH)
}

// killGroup sends SIGKILL to every process of the generation: its process
// group and, in cgroup mode, its whole cgroup (cgroup.kill). Only call it
// while the leader has not been reaped, or right after: a group id stays
// reserved while any member lives.
func (g *generation) killGroup() error {
	if g.grp != nil {
		return g.grp.Kill()
	}
	pgid := g.pgid
	if pgid == 0 {
		pgid = g.pid
	}
	if pgid <= 1 {
		return nil // kill(0) or kill(-1) would hit hupd's own group or everything
	}
	if err := unix.Kill(-pgid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		return os.NewSyscallError("kill", err)
	}
	return nil
}

// after arms a timer that posts ev for this generation.
func (s *Supervisor) after(g *generation, d time.Duration, kind evKind) *time.Timer {
	t := time.AfterFunc(d, func() { s.post(event{kind: kind, gen: g}) })
	g.timers = append(g.timers, t)
	return t
}

// settle stops everything that watches g: timers, the probe, the watchdog.
func (g *generation) settle() {
	for _, t := range g.timers {
		t.Stop()
	}
	g.timers = nil
	if g.stopProbe != nil {
		g.stopProbe()
		g.stopProbe = nil
	}
	if g.watchdog != nil {
		g.watchdog.Stop()
	}
}

func (g *generation) statusOf(now time.Time) GenerationStatus {
	st := GenerationStatus{Gen: g.num, PID: g.pid, State: g.state, Started: g.started,
		Uptime: Duration(now.Sub(g.started).Round(time.Millisecond)), StatusText: g.statusText, ConfigHash: g.configHash}
	if !g.readyAt.IsZero() {
		st.ReadyAfter = Duration(g.readyAt.Sub(g.started))
	}
	if g.mainPID != 0 {
		st.PID = g.mainPID
	}
	if g.state == StateSettling {
		st.SettleLeft = Duration(max(g.settleEnd.Sub(now), 0).Round(time.Millisecond))
	}
	return st
}

// ids are g's log keys (its generation, its instance when the program runs
// as several, its PID) followed by more.
func (g *generation) ids(more ...any) []any {
	if g.set.multi() {
		return append([]any{KeyGen, g.num, KeyInst, g.inst, KeyPID, g.pid}, more...)
	}
	return append([]any{KeyGen, g.num, KeyPID, g.pid}, more...)
}
