package run

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/sdnotify"
	"github.com/hupd/hupd/supervisor"
)

// systemd speaks for the service (Type=notify, Type=notify-reload) on the
// service manager's notify socket: READY=1 once the first generation is
// ready; RELOADING=1 with MONOTONIC_USEC= when a reload begins and READY=1
// when it ends, so that "systemctl reload" waits for the outcome;
// STATUS= with what serves and how the last reload went; STOPPING=1; and
// EXTEND_TIMEOUT_USEC= with the time hupd allows itself for a start,
// reload or stop. Its hooks run on the supervisor's goroutine. The
// children's own notify messages go to hupd's per-generation sockets,
// never here.
type systemd struct {
	n    *sdnotify.Notifier
	log  *slog.Logger
	opts supervisor.Options // for the time budgets

	ready   bool // READY=1 sent
	reload  bool // RELOADING=1 sent, READY=1 not yet
	stopped bool // STOPPING=1 sent
	gen     int  // serving generation, 0 if none
	pid     int
	last    string // how the last reload went
}

// budgetMargin is added to hupd's own timeouts in EXTEND_TIMEOUT_USEC:
// hupd, not the service manager, should be the one to give up.
const budgetMargin = 5 * time.Second

// reloadBudget is how long a reload with strategy st may take by hupd's
// own timeouts in o, plus budgetMargin: the new generation's start (its
// ready timeout; a check has as long again), and the old one's stop for a
// restart. A rolling swap (o.Rolling of o.Instances at a time) takes
// ceil(Instances/Rolling) steps, each a start and a stop, and a failure
// in the last one starts the old instances already stopped again: one
// more start.
func reloadBudget(o supervisor.Options, st supervisor.Strategy) time.Duration {
	budget := o.Ready.Timeout + budgetMargin // the new generation's start
	if len(o.Check) > 0 {
		budget += o.Ready.Timeout // the check has as long
	}
	switch {
	case st == supervisor.StrategyRestart:
		budget += o.StopTimeout
	case st == supervisor.StrategySwap && o.Rolling > 0 && o.Instances > o.Rolling:
		steps := (o.Instances + o.Rolling - 1) / o.Rolling
		budget += time.Duration(steps-1)*o.Ready.Timeout + time.Duration(steps)*o.StopTimeout + o.Ready.Timeout
	}
	return budget
}

func (sd *systemd) send(lines ...string) {
	if err := sd.n.Send(lines...); err != nil {
		sd.log.Warn(logev.NotifyFailed, "error", err)
	}
}

func (sd *systemd) status() string {
	s := "no generation serving"
	if sd.gen > 0 {
		s = fmt.Sprintf("serving generation %d (pid %d)", sd.gen, sd.pid)
	}
	if sd.last != "" {
		s += "; " + sd.last
	}
	return sdnotify.Status(s)
}

func (sd *systemd) hooks() supervisor.Hooks {
	o := sd.opts
	return supervisor.Hooks{
		Started: func(gen, pid int) {
			if !sd.ready && !sd.stopped {
				// Until the first one is ready, the start is what takes time.
				sd.send(sdnotify.Status(fmt.Sprintf("starting generation %d (pid %d)", gen, pid)), sdnotify.ExtendTimeout(o.Ready.Timeout+budgetMargin))
			}
		},
		Ready: func(gen, pid int, after time.Duration) {
			if sd.reload || sd.stopped {
				return // the reload's end says it
			}
			sd.gen, sd.pid = gen, pid
			if !sd.ready {
				sd.ready = true
				sd.send("READY=1", sd.status())
				return
			}
			sd.send(sd.status()) // restarted after a crash
		},
		Reloading: func(st supervisor.Strategy, cause string) {
			if !sd.ready || sd.stopped {
				return
			}
			sd.reload = true
			sd.send("RELOADING=1", sdnotify.MonotonicUsec(), sdnotify.Status(fmt.Sprintf("reloading (%s: %s)", st, cause)), sdnotify.ExtendTimeout(reloadBudget(o, st)))
		},
		Reloaded: func(r supervisor.ReloadResult) {
			if r.OK {
				sd.gen, sd.pid = r.NewGen, r.NewPID
			}
			sd.last = lastReload(r)
			if sd.stopped {
				return
			}
			if sd.reload || !sd.ready && r.OK {
				// notify-reload ends the reload at READY=1 whatever the
				// outcome; STATUS= tells a failure.
				sd.reload, sd.ready = false, true
				sd.send("READY=1", sd.status())
				return
			}
			sd.send(sd.status())
		},
		Stopping: func() {
			if sd.stopped {
				return
			}
			sd.stopped = true
			sd.send("STOPPING=1", sdnotify.Status("stopping"), sdnotify.ExtendTimeout(o.StopTimeout+budgetMargin))
		},
	}
}

// lastReload is STATUS='s note on how reload r went.
func lastReload(r supervisor.ReloadResult) string {
	if r.OK {
		return fmt.Sprintf("last reload ok (%s, %s)", r.Strategy, r.Finished.Sub(r.Started).Round(time.Millisecond))
	}
	return fmt.Sprintf("last reload failed (%s): %s", r.Strategy, r.Reason)
}

// resumed takes what the state an upgrade handed over (up) says of what
// the previous image said: READY=1 was said, the generation that serves
// (Upgrade.Serving) and how the last reload went (Upgrade.Last), so that
// the next STATUS= names them as that image's did.
func (sd *systemd) resumed(up *supervisor.Upgrade) {
	sd.ready = true
	sd.gen, sd.pid = up.Serving()
	if up.Last != nil {
		sd.last = lastReload(*up.Last)
	}
}

// watchdog sends WATCHDOG=1 at half the service manager's interval for
// as long as answers returns true (it blocks while what it asks is stuck:
// a stuck supervisor stops the pings and the service manager acts), from
// when running is closed (a supervisor's Status blocks until it runs)
// until done is closed.
func (sd *systemd) watchdog(answers func() bool, running, done <-chan struct{}) {
	select {
	case <-running:
	case <-done:
		return // hupd failed before it ran
	}
	t := time.NewTicker(sd.n.Watchdog() / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if !answers() {
				continue
			}
			select {
			case <-done:
				return
			default:
			}
			sd.send("WATCHDOG=1")
		}
	}
}

// notifySystemd returns the systemd observer when hupd runs under a
// service manager that listens ($NOTIFY_SOCKET), else nil.
func notifySystemd(opts supervisor.Options, log *slog.Logger) *systemd {
	n := notifier(log)
	if n == nil {
		return nil
	}
	return &systemd{n: n, log: log, opts: budgeted(opts)}
}

// notifier is the service manager's notify socket ($NOTIFY_SOCKET), or
// nil when there is none (or, said in one line, it is unusable).
func notifier(log *slog.Logger) *sdnotify.Notifier {
	n, err := sdnotify.FromEnv()
	if err != nil {
		log.Warn(logev.NotNotifying, "error", err)
		return nil
	}
	if n != nil {
		log.Debug(logev.Notifying, "socket", os.Getenv("NOTIFY_SOCKET"), "watchdog", n.Watchdog())
	}
	return n
}

// budgeted is o with the timeouts the time budgets count (reloadBudget)
// set to their defaults where o leaves them to the supervisor.
func budgeted(o supervisor.Options) supervisor.Options {
	if o.Ready.Timeout <= 0 {
		o.Ready.Timeout = supervisor.DefaultReadyTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = supervisor.DefaultStopTimeout
	}
	return o
}
