package supervisor

import (
	"errors"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// Log keys.
const (
	KeyGen     = "gen"
	KeyPID     = "pid"
	KeyStatus  = "status"
	KeySignal  = "signal"
	KeyDelay   = "delay"
	KeyAfter   = "after"
	KeyRan     = "ran"
	KeyError   = "error"
	KeyTimeout = "timeout"
	KeyRestart = "restart"
)

// Supervisor runs one program as successive generations.
type Supervisor struct {
	opts      Options
	log       *slog.Logger
	reaper    *signals.Reaper
	listeners []*socketact.Listener
}

// New returns a supervisor for opts that hands ls to every generation and
// starts children through r. log may be nil.
func New(opts Options, ls []*socketact.Listener, r *signals.Reaper, log *slog.Logger) (*Supervisor, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{opts: opts.withDefaults(), log: log, reaper: r, listeners: ls}, nil
}

// Run starts the first generation and supervises until hupd should exit:
// after a stop signal once the child is gone, or when the child exits and the
// restart policy says not to start it again. It returns the exit code hupd
// should exit with (the child's, 128+n if it died of signal n). An error
// means the first generation could not be started; it is a
// *socketact.ExecError when the shim could not exec the command.
func (s *Supervisor) Run(sigs <-chan os.Signal) (int, error) {
	sp := startSpawner(s.reaper)
	defer sp.stop()

	gen := 1
	cur, err := s.spawn(sp, gen)
	if err != nil {
		return ExitCode(err), err
	}
	var (
		stopping  bool
		failures  int
		last      signals.Exit
		restartT  = stoppedTimer()
		killT     = stoppedTimer()
		restartCh <-chan time.Time
		killCh    <-chan time.Time
	)
	for {
		var exited <-chan signals.Exit
		if cur != nil {
			exited = cur.exited
		}
		select {
		case sig := <-sigs:
			ss, ok := sig.(syscall.Signal)
			if !ok || ss == unix.SIGPIPE {
				continue
			}
			switch {
			case isStop(ss) && !stopping:
				stopping = true
				restartT.Stop()
				restartCh = nil
				if cur == nil {
					s.log.Info("stopping", KeySignal, signals.Name(ss))
					return last.Code(), nil
				}
				s.log.Info("stopping", KeySignal, signals.Name(ss), KeyGen, cur.gen, KeyPID, cur.pid,
					"stop_signal", signals.Name(s.opts.StopSignal), KeyTimeout, s.opts.StopTimeout)
				s.send(cur, s.opts.StopSignal)
				killT.Reset(s.opts.StopTimeout)
				killCh = killT.C
			case ss == signals.Reload && !stopping:
				s.reload(cur)
			default:
				if cur != nil {
					s.send(cur, ss)
				}
			}
		case e := <-exited:
			last = e
			ran := time.Since(cur.started)
			cur.killGroup() // what is left of its process group goes with it
			cur.proc.Release()
			s.log.Info("child exited", KeyGen, cur.gen, KeyPID, cur.pid, KeyStatus, e.String(), KeyRan, ran.Round(time.Millisecond))
			cur = nil
			if stopping {
				killT.Stop()
				return e.Code(), nil
			}
			if !s.shouldRestart(e) {
				s.log.Info("not restarting", KeyRestart, string(s.opts.Restart), KeyStatus, e.String())
				return e.Code(), nil
			}
			var d time.Duration
			d, failures = s.opts.Backoff.Next(failures, ran)
			s.log.Warn("restarting child", KeyGen, gen+1, KeyDelay, d, "attempt", failures)
			restartT.Reset(d)
			restartCh = restartT.C
		case <-restartCh:
			restartCh = nil
			gen++
			cur, err = s.spawn(sp, gen)
			if err != nil {
				var d time.Duration
				d, failures = s.opts.Backoff.Next(failures, 0)
				last = signals.Exit{Status: syscall.WaitStatus(ExitCode(err) << 8)}
				s.log.Error("start failed", KeyGen, gen, KeyError, err, KeyDelay, d)
				restartT.Reset(d)
				restartCh = restartT.C
			}
		case <-killCh:
			killCh = nil
			if cur != nil {
				s.log.Warn("stop timeout: killing process group", KeyGen, cur.gen, KeyPID, cur.pid, KeyTimeout, s.opts.StopTimeout)
				cur.killGroup()
			}
		}
	}
}

func (s *Supervisor) shouldRestart(e signals.Exit) bool {
	switch s.opts.Restart {
	case RestartAlways:
		return true
	case RestartNever:
		return false
	}
	return !e.Success()
}

// reload carries out a reload with the signal strategy.
func (s *Supervisor) reload(cur *child) {
	if cur == nil {
		s.log.Warn("reload ignored: no child running")
		return
	}
	s.log.Info("reload", KeyGen, cur.gen, KeyPID, cur.pid, KeySignal, signals.Name(s.opts.ReloadSignal))
	s.send(cur, s.opts.ReloadSignal)
}

func (s *Supervisor) send(c *child, sig syscall.Signal) {
	if err := c.signal(sig); err != nil {
		s.log.Warn("signal failed", KeyGen, c.gen, KeyPID, c.pid, KeySignal, signals.Name(sig), KeyError, err)
		return
	}
	s.log.Debug("signal sent", KeyGen, c.gen, KeyPID, c.pid, KeySignal, signals.Name(sig))
}

// spawn starts generation gen and returns once it has exec'd the command.
func (s *Supervisor) spawn(sp *spawner, gen int) (*child, error) {
	files, names := listenerFiles(s.listeners)
	o := s.opts
	cmd := &socketact.Command{
		Shim: o.Shim, Path: o.Path, Args: o.Args, Dir: o.Dir,
		Env: socketact.ChildEnv(os.Environ(), o.Env, names),
		UID: o.UID, GID: o.GID, Groups: o.Groups,
		Sockets: files, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr,
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL},
	}
	t0 := time.Now()
	res := sp.start(cmd)
	if res.err != nil {
		if res.proc != nil {
			res.proc.Release() // the failed shim exits on its own; the reaper collects it
		}
		return nil, res.err
	}
	c := &child{gen: gen, pid: res.pid, proc: res.proc, started: time.Now(), exited: res.exited}
	s.log.Info("child started", KeyGen, gen, KeyPID, c.pid, KeyAfter, c.started.Sub(t0).Round(time.Microsecond))
	return c, nil
}

func isStop(sig syscall.Signal) bool {
	for _, s := range signals.Stop {
		if s == sig {
			return true
		}
	}
	return false
}

// ExitCode maps a start error to a shell's exit code.
func ExitCode(err error) int {
	var ee *socketact.ExecError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return nf.Code
	}
	return 1
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
