package supervisor

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
	"golang.org/x/sys/unix"
)

// requestReload starts a reload, or queues it behind the one in progress
// (coalescing), or behind a generation that is still starting.
func (s *Supervisor) requestReload(reply chan<- ReloadResult, a Action, cause string) {
	p := s.plan(a, cause)
	if s.stopping {
		if reply != nil {
			reply <- failed(p.strategy, "hupd is stopping")
		}
		return
	}
	var waiters []chan<- ReloadResult
	if reply != nil {
		waiters = append(waiters, reply)
	}
	if s.tx != nil || s.queuedAny || s.heldBack(p.strategy) {
		s.queued = append(s.queued, waiters...)
		if !s.queuedAny {
			s.log.Info(logev.ReloadQueued, KeyStrat, string(p.strategy), KeyCause, cause)
			s.queuedPlan = p
		} else {
			s.queuedPlan = merge(s.queuedPlan, p)
		}
		s.queuedAny = true
		return
	}
	s.startTx(waiters, p)
}

// plan resolves a against the configuration.
func (s *Supervisor) plan(a Action, cause string) plan {
	p := plan{strategy: a.Strategy, causes: []string{cause}}
	if p.strategy == "" {
		p.strategy = s.opts.Reload
	}
	if p.strategy == StrategySignal {
		sig := a.Signal
		if sig == 0 {
			sig = s.opts.ReloadSignal
		}
		p.signals = []syscall.Signal{sig}
	}
	return p
}

// merge coalesces two queued reloads into one that covers both: the
// strategy that ranks higher wins (see rank); signals add up.
func merge(a, b plan) plan {
	out := plan{strategy: a.strategy, causes: append(slices.Clone(a.causes), b.causes...)}
	if rank(b.strategy) > rank(a.strategy) {
		out.strategy = b.strategy
	}
	if out.strategy == StrategySignal {
		out.signals = slices.Clone(a.signals)
		for _, sig := range b.signals {
			if !slices.Contains(out.signals, sig) {
				out.signals = append(out.signals, sig)
			}
		}
	}
	return out
}

// heldBack reports whether a reload by strategy st must wait: for a
// generation that is still starting (a swap or restart), or for a drain
// slot (see drainFull).
func (s *Supervisor) heldBack(st Strategy) bool {
	if st == StrategySignal {
		return false
	}
	if cur := s.current(); cur != nil && cur.set.scaling != nil {
		return true // until the scale is answered (its instances' readiness bounds it)
	}
	if cur := s.current(); cur != nil && cur.set.multi() && cur.set.ready {
		// An instance restarted alone is starting, not the generation.
		return s.drainFull()
	}
	return starting(s.current()) || s.drainFull()
}

// drainFull reports whether a swap or restart must wait for a draining
// generation to exit first: at most MaxDraining drain at once, and a
// reload waits for a slot (each is killed at the stop timeout at the
// latest) rather than cutting the oldest one's requests short.
func (s *Supervisor) drainFull() bool {
	var sets []*genSet // generations, not instances
	n := 0
	for _, g := range s.gens {
		if s.partlyServing(g) {
			continue // a serving generation's stopped instances
		}
		if g.state == StateDraining && (g.set == nil || !slices.Contains(sets, g.set)) {
			sets = append(sets, g.set)
			n++
		}
	}
	return n >= s.opts.MaxDraining
}

// maybeStartQueued starts the queued reload once nothing holds it back.
func (s *Supervisor) maybeStartQueued() {
	if !s.queuedAny || s.stopping || s.tx != nil || s.heldBack(s.queuedPlan.strategy) {
		return
	}
	s.startQueued()
}

// starting reports whether g is starting and still within its readiness
// timeout: a reload waits for such a generation, not for one that is out
// of time (it would wait forever).
func starting(g *generation) bool {
	return g != nil && g.state == StateStarting && time.Now().Before(g.readyBy)
}

func (s *Supervisor) startQueued() {
	waiters, p := s.queued, s.queuedPlan
	s.queued, s.queuedAny, s.queuedPlan = nil, false, plan{}
	s.startTx(waiters, p)
}

func (s *Supervisor) startTx(waiters []chan<- ReloadResult, p plan) {
	s.reloads++
	tx := &reloadTx{strategy: p.strategy, signals: p.signals, cause: strings.Join(slices.Compact(p.causes), "; "),
		started: time.Now(), waiters: waiters, old: s.current(), hash: s.hash}
	if tx.old != nil {
		tx.oldSet = tx.old.set
		if live := s.serving(); tx.old.set.multi() && len(live) > 0 {
			tx.old = live[0] // its lowest instance stands for it (results, logs)
		}
	}
	if tx.strategy == StrategySwap && s.opts.Rolling > 0 && max(s.opts.Instances, 1) > 1 {
		tx.rolling = s.opts.Rolling
	}
	s.tx = tx
	attrs := []any{KeyStrat, string(tx.strategy), KeyCause, tx.cause}
	if tx.old != nil {
		attrs = append(attrs, KeyOldGen, tx.old.num, KeyOldPID, tx.old.pid)
	}
	s.log.Info(logev.ReloadStarted, attrs...)
	if h := s.hooks.Reloading; h != nil {
		h(tx.strategy, tx.cause)
	}
	if len(s.opts.Check) > 0 {
		tx.checking = true
		s.runCheck(tx)
		return
	}
	s.proceed()
}

// proceed carries out the strategy once the check (if any) has passed.
func (s *Supervisor) proceed() {
	tx := s.tx
	switch tx.strategy {
	case StrategySwap:
		s.startNew()
	case StrategyRestart:
		s.cancelRestarts(tx.oldSet) // all of it is replaced
		if tx.old != nil && len(s.siblings(tx.old)) > 0 {
			tx.waitOld = true
			for _, g := range s.siblings(tx.old) {
				s.drain(g)
			}
			return
		}
		s.startNew()
	case StrategySignal:
		// Every instance of the serving generation gets the signal.
		targets := s.serving()
		if len(targets) == 0 {
			s.finishTx(false, "no child running")
			return
		}
		for _, g := range targets {
			for _, sig := range tx.signals {
				if err := g.signal(sig); err != nil {
					s.finishTx(false, fmt.Sprintf("sending %s to pid %d: %v", signals.Name(sig), g.pid, err))
					return
				}
			}
		}
		tx.signalled = true
		tx.awaitReady = map[*generation]bool{}
		for _, g := range targets {
			s.log.Info(logev.ReloadSignalSent, g.ids(KeySignal, signalNames(tx.signals))...)
			switch {
			case g.speaksReload:
				// It answered RELOADING=1 before: wait for READY=1 after it.
				tx.awaitReady[g] = true
			case g.speaksNotify:
				// It speaks sd_notify: give it a moment to say RELOADING=1.
				tx.awaitAck++
			}
		}
		if len(tx.awaitReady) > 0 {
			tx.reloading = true
			tx.relT = s.reloadTimeout(tx, targets[0])
		}
		if tx.awaitAck > 0 {
			tx.ackT = time.AfterFunc(reloadAckWindow, func() { s.post(event{kind: evAckTimeout, tx: tx}) })
		}
		if len(tx.awaitReady) == 0 && tx.awaitAck == 0 {
			s.finishTx(true, "")
		}
	}
}

// reloadAckWindow is how long the signal strategy waits for RELOADING=1
// from a child that speaks sd_notify but has not yet shown that it speaks
// the reload protocol; without it, the reload is done once the signal is
// delivered.
const reloadAckWindow = time.Second

func (s *Supervisor) startNew() {
	if s.restartT != nil {
		// A reload during a crash's backoff: its generation is the
		// restart (finishTx schedules another if it fails).
		s.restartT.Stop()
		s.restartT = nil
		// (If it fired already, its event is stale: evRestart ignores it.)
		s.log.Debug(logev.RestartCancelledByReload, KeyGen, s.nextGen+1)
	}
	// Instances waiting for their restart: those of a generation that no
	// longer serves (or of the one a restart replaces, or of any when none
	// serves) never start again; the serving one's go on until the new
	// generation is ready.
	for _, set := range s.sets {
		if set != s.tx.oldSet || s.tx.strategy == StrategyRestart {
			s.cancelRestarts(set)
		}
	}
	count := max(s.opts.Instances, 1)
	if s.tx.rolling > 0 {
		count = min(s.tx.rolling, count)
		s.tx.rollNext = count
	}
	g, err := s.spawnGen(count)
	if err != nil {
		s.failedReloadStart(ExitCode(err))
		s.finishTx(false, "start failed: "+err.Error())
		return
	}
	s.tx.new = g
}

// finishTx ends the reload in progress, answers its waiters and starts a
// queued one. A failed reload stops its new generation (see drain) and
// touches nothing the old one serves.
func (s *Supervisor) finishTx(ok bool, reason string) {
	tx := s.tx
	if tx == nil {
		return
	}
	s.tx = nil
	s.scheduleTrim()
	if tx.ackT != nil {
		tx.ackT.Stop()
	}
	if tx.relT != nil {
		tx.relT.Stop()
	}
	res := ReloadResult{OK: ok, Strategy: tx.strategy, Cause: tx.cause, Reason: reason, Started: tx.started, Finished: time.Now()}
	if tx.old != nil {
		res.OldGen, res.OldPID = tx.old.num, tx.old.pid
	}
	if g := tx.new; g != nil {
		if f := tx.failed; f != nil && !ok {
			g = f // the instance that failed explains it
		}
		res.NewGen, res.NewPID = g.num, g.pid
		res.ExecAfter = Duration(g.started.Sub(tx.started))
		if !g.readyAt.IsZero() {
			res.ReadyAfter = Duration(g.readyAt.Sub(g.started))
			res.HandoverTook = Duration(tx.handover)
		}
		if !ok {
			res.Output = g.out.tail()
			// Not ready is not idle: it may have accepted connections
			// from the shared sockets already. Stop it as an old
			// generation is stopped (stop signal, SIGKILL at the stop
			// timeout); draining, it is never taken for the current
			// generation, whose exit would call for a restart. Every
			// instance of it goes.
			s.cancelRestarts(g.set)
			for _, x := range s.siblings(g) {
				s.drain(x)
			}
			// A rolling swap stopped some old instances already: they
			// start again, with the settings they had.
			res.Reason += s.unroll(tx)
		}
	}
	if tx.strategy == StrategySignal && tx.old != nil {
		res.NewGen, res.NewPID = tx.old.num, tx.old.pid
		if ok {
			// It has read the content in place (every instance).
			tx.old.configHash = tx.hash
			for _, g := range s.instances(tx.oldSet) {
				g.configHash = tx.hash
			}
			if tx.oldSet != nil {
				tx.oldSet.hash = tx.hash
			}
		}
	}
	s.last = &res
	took := res.Finished.Sub(res.Started).Round(time.Microsecond)
	if ok {
		s.log.Info(logev.ReloadDone, KeyStrat, string(tx.strategy), KeyOldPID, res.OldPID, KeyPID, res.NewPID, KeyTook, took, KeyReady, time.Duration(res.ReadyAfter).Round(time.Microsecond))
	} else {
		s.log.Error(logev.ReloadFailed, KeyStrat, string(tx.strategy), KeyOldPID, res.OldPID, KeyPID, res.NewPID, KeyReason, res.Reason, KeyTook, took)
	}
	if h := s.hooks.Reloaded; h != nil {
		h(res)
	}
	for _, w := range tx.waiters {
		w <- res
	}
	if tx.strategy != StrategySignal && !ok && s.current() == nil && !s.stopping && s.restartT == nil && s.restartsPending() == 0 {
		// The old generation is gone (stopped by a restart, or crashed
		// during the reload) and the new one failed: the restart policy
		// takes over as after a crash.
		s.scheduleRestart(0, reason)
	}
	s.maybeStartQueued()
}

// failTx fails the reload in progress and every queued request.
func (s *Supervisor) failTx(reason string) {
	s.finishTx(false, reason)
	for _, w := range s.queued {
		w <- failed(s.queuedPlan.strategy, reason)
	}
	s.queued, s.queuedAny, s.queuedPlan = nil, false, plan{}
}

// signalNames lists sigs for logs: "HUP", "HUP+USR1".
func signalNames(sigs []syscall.Signal) string {
	names := make([]string, len(sigs))
	for i, sig := range sigs {
		names[i] = signals.Name(sig)
	}
	return strings.Join(names, "+")
}

// runCheck runs the check command in the background; its result arrives
// as evCheckDone.
//
// With several instances and {instance} in the check's arguments, it runs
// once for each instance (in order, as HUPD_INSTANCE says), the first
// failure failing the reload: each instance may have a configuration of
// its own.
func (s *Supervisor) runCheck(tx *reloadTx) {
	// The goroutine below must not read s.opts, which Run may replace.
	checks := []Options{s.opts}
	if n := max(s.opts.Instances, 1); n > 1 && slices.ContainsFunc(s.opts.Check, func(a string) bool { return strings.Contains(a, ArgInstance) }) {
		checks = checks[:0]
		for i := range n {
			o := instanceAux(s.opts, i)
			o.Check = slices.Clone(o.Check)
			for j, a := range o.Check {
				o.Check[j] = strings.ReplaceAll(a, ArgInstance, strconv.Itoa(i))
			}
			checks = append(checks, o)
		}
	}
	go func() {
		for _, o := range checks {
			ev := s.check(tx, o)
			if ev.err != nil || len(checks) == 1 {
				s.post(ev)
				return
			}
		}
		s.post(event{kind: evCheckDone, tx: tx})
	}()
}

// check runs the check command of o and waits for its verdict (on its
// caller's goroutine, not Run's).
func (s *Supervisor) check(tx *reloadTx, o Options) event {
	by := time.Now().Add(o.Ready.Timeout)
	c, err := s.startCheck(o)
	if err != nil {
		return event{kind: evCheckDone, tx: tx, err: err}
	}
	{
		ev := event{kind: evCheckDone, tx: tx}
		for retries := 0; ; retries++ {
			e, err := c.wait(o, by)
			// hupd ends a check only with SIGKILL. A check killed by a
			// signal meant for the whole service (systemctl kill -s HUP
			// reaches every process of the unit, this check too, which
			// the HUP's reload started while the sender was still going
			// through them) never ran to its verdict: run it again. A
			// helper ignores those signals once it runs (shim.EnvHelper);
			// this covers its start.
			if e.Status.Signaled() && isStraySignal(e.Status.Signal()) && retries < checkStrayRetries {
				s.log.Warn(logev.CheckStraySignal, KeyPID, e.PID, "signal", signals.Name(e.Status.Signal()))
				again, err2 := s.startCheck(o)
				if err2 == nil {
					c = again
					continue
				}
				err = err2
			}
			ev.err, ev.out = err, c.out
			break
		}
		return ev
	}
}

// checkStrayRetries bounds how often a check killed by a stray signal is
// run again.
const checkStrayRetries = 3

// isStraySignal: sig is one that tools send to a whole service (to reload,
// stop or dump it) and hupd never sends to a check.
func isStraySignal(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2:
		return true
	}
	return false
}

// runningCheck is a started check command.
type runningCheck struct {
	pid    int
	exited <-chan signals.Exit
	r      *os.File
	read   chan struct{}
	// Only the end is shown (tailText): a check that writes gigabytes
	// must not make hupd keep them.
	tail *tailBuffer
	out  string // set by wait
}

// startCheck starts the check command of o.
func (s *Supervisor) startCheck(o Options) (*runningCheck, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	pid, exited, err := s.startAux(o, o.Check, w)
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	s.log.Info(logev.CheckStarted, KeyPID, pid, "command", o.Check)
	c := &runningCheck{pid: pid, exited: exited, r: r, read: make(chan struct{}), tail: &tailBuffer{max: checkOutputMax}}
	go func() { io.Copy(c.tail, r); close(c.read) }()
	return c, nil
}

// wait waits for the check to end, at most as long as a new generation
// gets to be ready, and keeps its output in c.out. The error says why it
// failed; e is how it exited, if it did.
// It gives up at by: a check run again after a stray signal gets what is
// left of the first run's time, not a ready timeout of its own (a service
// manager gave the reload that long).
func (c *runningCheck) wait(o Options, by time.Time) (e signals.Exit, err error) {
	limit := time.NewTimer(time.Until(by))
	defer limit.Stop()
	select {
	case e = <-c.exited:
		if !e.Success() {
			err = fmt.Errorf("%s: %s", o.Check[0], e)
		}
	case <-limit.C:
		unix.Kill(-c.pid, unix.SIGKILL)
		<-c.exited
		err = fmt.Errorf("%s did not finish within %s", o.Check[0], o.Ready.Timeout)
	}
	// Its process group is gone, so the pipe closes; unless something
	// left the group and holds it: then take what was written so far.
	select {
	case <-c.read:
	case <-time.After(time.Second):
		c.r.Close()
		<-c.read
	}
	c.r.Close()
	c.out = string(c.tail.b)
	return e, err
}

// checkOutputMax bounds what is kept of a check command's output.
const checkOutputMax = 64 << 10

// tailBuffer keeps the last max bytes (at least) written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}
