package supervisor

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
)

// Scale sets how many instances the serving generation runs (see
// Options.Instances) and every later one starts with, without a reload: up
// by starting instances of the serving generation with its settings, down
// by stopping the highest-numbered ones. It answers once the new instances
// are ready (or one failed: those it started are stopped, and the number
// stays as it was) or the old ones are told to stop, or when ctx ends.
func (s *Supervisor) Scale(ctx context.Context, n int) ScaleResult {
	now := time.Now()
	if err := ValidInstances(n); err != nil {
		return ScaleResult{To: n, Reason: err.Error(), Started: now, Finished: now}
	}
	reply := make(chan ScaleResult, 1)
	select {
	case s.reqs <- request{scale: &scaleRequest{n: n, reply: reply}}:
	case <-s.quit:
		return ScaleResult{To: n, Reason: "hupd is not running", Started: now, Finished: now}
	case <-ctx.Done():
		return ScaleResult{To: n, Reason: "the caller gave up before the scale started: nothing was changed", Started: now, Finished: now}
	}
	ctx, cancel := WaitContext(ctx)
	defer cancel()
	select {
	case r := <-reply:
		return r
	case <-s.quit:
		return ScaleResult{To: n, Reason: "hupd stopped during the scale", Started: now, Finished: time.Now()}
	case <-ctx.Done():
		return ScaleResult{To: n, Reason: "timed out waiting for the scale; it goes on", Started: now, Finished: time.Now(), TimedOut: true}
	}
}

// scaleRequest asks Run for n instances.
type scaleRequest struct {
	n     int
	reply chan<- ScaleResult
}

// genSet is what the instances of one generation share: its number, how
// many instances it runs, the options it started with (an instance
// restarted alone, or started by Scale, starts as its siblings did), its
// sockets, and each instance's restart record. Run's goroutine only.
type genSet struct {
	num       int
	n         int // instances it runs (Scale changes it)
	opts      Options
	hash      string                // content hash it started with
	listeners []*socketact.Listener // chosen by its first instance (socketsFor)
	// By instance index: restarts after an exit, crashes in a row (the
	// backoff), how it exited last, and the timer of a restart due.
	restarts map[int]int
	failures map[int]int
	lastExit map[int]string
	pending  map[int]pendingRestart
	// gaveUp: instances not restarted any more (the start limit was
	// reached while others served); Scale or the next reload starts them.
	gaveUp map[int]bool
	// windows: each instance's failed starts, for the start limit.
	windows map[int]*startWindow
	// scaling waits for the instances Scale started.
	scaling *scaleOp
	// starts counts each instance's starts (its notify socket's name).
	starts map[int]int
	// later: adopt mode, the instances to start once instance 0 is ready
	// (see spawnGen); 0: none wait.
	later int
	seq   int // arms of pending timers
	// several: it ran several instances once (scaled down to one since,
	// it stays a generation of instances).
	several bool
	ready   bool // every instance was ready once (Hooks.Ready told)
}

// pendingRestart is an instance's restart due: its timer and which arming.
type pendingRestart struct {
	t   *time.Timer
	seq int
}

func newGenSet(num int, o Options) *genSet {
	return &genSet{num: num, n: max(o.Instances, 1), opts: o,
		restarts: map[int]int{}, failures: map[int]int{}, lastExit: map[int]string{}, pending: map[int]pendingRestart{}, gaveUp: map[int]bool{}, windows: map[int]*startWindow{}, starts: map[int]int{}}
}

// multi reports whether the generation runs (or was started as) several
// instances: its instances are then restarted alone and reported one by
// one. A generation of one instance behaves as before instances existed:
// a crash starts a new generation.
func (set *genSet) multi() bool {
	return set != nil && (set.n > 1 || set.opts.Instances > 1 || set.several)
}

// instances returns the live instances of set (not exited), by index.
func (s *Supervisor) instances(set *genSet) []*generation {
	if set == nil {
		return nil
	}
	var out []*generation
	for _, g := range s.gens {
		if g.set == set && !g.exited() {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b *generation) int { return a.inst - b.inst })
	return out
}

// siblings returns the live instances of g's generation (g alone, when
// it has no genSet: unit tests make such generations).
func (s *Supervisor) siblings(g *generation) []*generation {
	if g.set == nil {
		if g.exited() {
			return nil
		}
		return []*generation{g}
	}
	return s.instances(g.set)
}

// drainSet stops every instance of set.
func (s *Supervisor) drainSet(set *genSet) {
	if set == nil {
		return
	}
	if set.scaling != nil {
		s.endScale(set, false, fmt.Sprintf("generation %d stopped", set.num))
	}
	s.cancelRestarts(set)
	for _, g := range s.instances(set) {
		s.drain(g)
	}
}

// cancelRestarts stops set's pending instance restarts.
func (s *Supervisor) cancelRestarts(set *genSet) {
	if set == nil {
		return
	}
	for i, p := range set.pending {
		p.t.Stop()
		delete(set.pending, i)
	}
}

// restartsPending counts the instance restarts due, of every generation.
func (s *Supervisor) restartsPending() int {
	n := 0
	for _, set := range s.sets {
		n += len(set.pending)
	}
	return n
}

// addSet records a generation that starts.
func (s *Supervisor) addSet(set *genSet) {
	if !slices.Contains(s.sets, set) {
		s.sets = append(s.sets, set)
	}
}

// pruneSets forgets the generations with no live instance and no restart
// due.
func (s *Supervisor) pruneSets() {
	s.sets = slices.DeleteFunc(s.sets, func(set *genSet) bool {
		return len(set.pending) == 0 && !slices.ContainsFunc(s.gens, func(g *generation) bool { return g.set == set })
	})
}

// stopInstances cancels every instance restart due and every scale in
// progress: hupd stops.
func (s *Supervisor) stopInstances() {
	for _, set := range s.sets {
		s.cancelRestarts(set)
		if op := set.scaling; op != nil {
			s.endScale(set, false, "hupd is stopping")
		}
	}
}

// txNew reports whether g is an instance of the generation the reload in
// progress is starting.
func (s *Supervisor) txNew(g *generation) bool {
	return s.tx != nil && s.tx.new != nil && (s.tx.new == g || g.set != nil && s.tx.new.set == g.set)
}

// serving returns the live instances of the serving generation that are
// not told to stop: those a signal for the program goes to.
func (s *Supervisor) serving() []*generation {
	cur := s.current()
	if cur == nil {
		return nil
	}
	var out []*generation
	for _, g := range s.siblings(cur) {
		if g.state != StateDraining && g.state != StateSettling {
			out = append(out, g)
		}
	}
	return out
}

// allReady reports whether every instance set runs is ready: n of them,
// ready, none starting.
func (s *Supervisor) allReady(set *genSet, n int) bool {
	ready := 0
	for _, g := range s.instances(set) {
		switch {
		case g.state == StateStarting:
			return false
		case g.state == StateReady && g.inst < n:
			ready++
		}
	}
	return ready >= n
}

// instanceExited handles the exit of an instance of the serving
// generation that hupd did not ask to stop: it is restarted alone, by the
// restart policy with its own backoff, while the others serve. When the
// policy says not to restart it, the generation goes on without it; when
// none is left, hupd exits as when a single program exits.
func (s *Supervisor) instanceExited(g *generation, e signals.Exit, prev State, ran time.Duration) {
	set := g.set
	if g.inst >= set.n {
		return // scaled down meanwhile
	}
	if !s.shouldRestart(e) {
		s.log.Info(logev.InstanceNotRestarted, KeyGen, g.num, KeyInst, g.inst, KeyRestart, string(s.opts.Restart), KeyStatus, e.String())
		if !s.othersServe(set) && len(set.pending) == 0 {
			g.out.settle(exitSettle)
			s.lastExit = e
			s.exitWith(s.exitCode(e))
		}
		return
	}
	if prev != StateStarting {
		s.instanceFailed(g, e.Code()) // counted as a restart of the program is
	}
	s.lastExit = e
	s.scheduleInstRestart(set, g.inst, ran, e.String())
}

// scheduleInstRestart arms the restart of instance inst after a failure
// (why), with its backoff. When the start limit is reached it gives up on
// the instance if others serve, or on the program if none does.
func (s *Supervisor) scheduleInstRestart(set *genSet, inst int, ran time.Duration, why string) {
	if l := s.opts.StartLimit; !l.Off() && set.window(inst).count(l, time.Now()) >= l.Burst {
		if !s.othersServe(set) && len(set.pending) == 0 {
			s.giveUp(why)
			return
		}
		set.gaveUp[inst] = true
		s.log.Error(logev.InstanceGaveUp, KeyGen, set.num, KeyInst, inst, KeyLimit, s.opts.StartLimit.String(), KeyReason, why,
			KeyHint, "the other instances serve; hupd scale or the next reload starts it again")
		return
	}
	s.addSet(set)
	var d time.Duration
	d, set.failures[inst] = s.opts.Backoff.Next(set.failures[inst], ran)
	s.log.Warn(logev.RestartingInstance, KeyGen, set.num, KeyInst, inst, KeyDelay, d, "attempt", set.failures[inst], KeyReason, why)
	set.seq++
	seq := set.seq
	set.pending[inst] = pendingRestart{seq: seq, t: time.AfterFunc(d, func() { s.post(event{kind: evInstRestart, set: set, inst: inst, seq: seq}) })}
}

// instanceFailed counts a failed start of instance g (its exit before it
// was ready, or its crash) for the start limit: in the program's window
// (status, metrics, the code hupd gives up with) and in the instance's own,
// which decides whether it is restarted again.
func (s *Supervisor) instanceFailed(g *generation, code int) {
	s.failedStart(code)
	g.set.window(g.inst).add(s.opts.StartLimit, time.Now(), code)
}

// forget drops what set recorded of instance i's failures (a scale
// starts it afresh, or removes it).
func (set *genSet) forget(i int) {
	delete(set.gaveUp, i)
	delete(set.windows, i)
	delete(set.failures, i)
}

// othersServe reports whether an instance of set still serves: live and
// not told to stop.
func (s *Supervisor) othersServe(set *genSet) bool {
	return slices.ContainsFunc(s.instances(set), func(g *generation) bool { return g.state != StateDraining })
}

// partlyServing reports whether g is an instance of a generation that
// still has an instance serving (one not told to stop): such a
// generation is not a draining one for the drain cap.
func (s *Supervisor) partlyServing(g *generation) bool {
	return g.set.multi() && s.othersServe(g.set)
}

// window is instance inst's start-limit window.
func (set *genSet) window(inst int) *startWindow {
	w := set.windows[inst]
	if w == nil {
		w = &startWindow{}
		set.windows[inst] = w
	}
	return w
}

// onInstRestart restarts instance inst of set when its restart is due.
func (s *Supervisor) onInstRestart(set *genSet, inst, seq int) {
	p, ok := set.pending[inst]
	if !ok || p.seq != seq || s.stopping {
		return // cancelled, or replaced after it fired
	}
	delete(set.pending, inst)
	if cur := s.current(); inst >= set.n || cur != nil && cur.set != set && cur.num > set.num {
		// Scaled down, or a newer generation serves (a reload's new
		// generation does not until it is ready: meanwhile this one
		// serves, and fully).
		s.pruneSets()
		return
	}
	s.restarts++
	set.restarts[inst]++
	if _, err := s.spawnInst(set, inst); err != nil {
		s.failedStart(ExitCode(err))
		set.window(inst).add(s.opts.StartLimit, time.Now(), ExitCode(err))
		s.scheduleInstRestart(set, inst, 0, err.Error())
	}
	s.pruneSets()
}

// instanceReady is onReadyAt for an instance of a generation of several:
// the generation is ready once all its instances are; a swap completes
// then (or, rolling, goes on with the next instances), a scale answers.
func (s *Supervisor) instanceReady(g *generation, at time.Time) {
	set := g.set
	if g.watchdogDur > 0 {
		s.armWatchdog(g)
	}
	if n := set.later; n > 0 && g.inst == 0 {
		set.later = 0
		for i := 1; i < n; i++ {
			if _, err := s.spawnInst(set, i); err != nil {
				why := fmt.Sprintf("instance %d of generation %d failed to start: %v", i, set.num, err)
				if s.txNew(g) {
					s.failedReloadStart(ExitCode(err))
					s.finishTx(false, why)
					return
				}
				s.failedStart(ExitCode(err))
				s.scheduleInstRestart(set, i, 0, err.Error())
			}
		}
		return
	}
	if tx := s.tx; tx != nil && s.txNew(g) {
		n := set.n
		if tx.rolling > 0 {
			n = tx.rollNext
		}
		if !s.allReady(set, n) {
			return
		}
		if tx.rolling > 0 {
			s.rollOn(tx, at)
			return
		}
		s.readyHook(set)
		s.swapDone(g, at)
		return
	}
	if op := set.scaling; op != nil && op.waiting[g] {
		delete(op.waiting, g)
		op.added = append(op.added, g.pid)
		if len(op.waiting) == 0 {
			s.endScale(set, true, "")
		}
	}
	if s.allReady(set, set.n) {
		s.readyHook(set)
		if cur := s.current(); cur != nil && cur.set == set {
			s.steerTo(g)
		}
	}
	s.maybeStartQueued()
}

// readyHook tells Hooks.Ready, once, that set's generation is ready.
func (s *Supervisor) readyHook(set *genSet) {
	if set.ready {
		return
	}
	set.ready = true
	first := s.instances(set)[0]
	if h := s.hooks.Ready; h != nil {
		h(set.num, first.pid, first.readyAt.Sub(first.started))
	}
}

// swapDone completes a swap once every instance of its new generation
// (g's) is ready: new connections go to it, and the old generations stop
// (or the one the swap replaced settles).
func (s *Supervisor) swapDone(g *generation, at time.Time) {
	tx := s.tx
	if err := s.steerTo(g); err != nil {
		if live := s.instances(tx.oldSet); len(live) > 0 {
			s.steerTo(live[0])
		} else if o := tx.old; o != nil && !o.exited() {
			s.steerTo(o)
		}
		s.finishTx(false, fmt.Sprintf("generation %d is ready, but new connections cannot be steered to it: %v", g.num, err))
		return
	}
	for _, set := range s.sets {
		if set != g.set {
			s.cancelRestarts(set)
		}
	}
	for _, o := range slices.Clone(s.gens) {
		switch {
		case o.set == g.set || o.state == StateDraining:
		case o.set == tx.oldSet && o.state == StateReady && s.opts.Settle > 0 && tx.strategy == StrategySwap:
			s.keepWarm(o)
		default:
			s.drain(o)
		}
	}
	tx.handover = time.Since(at)
	s.finishTx(true, "")
}

// rollOn goes on with a rolling swap once the new instances started so far
// are ready: as many old instances stop, then the next ones start; once
// every new instance is ready, the rest of the old generation stops.
func (s *Supervisor) rollOn(tx *reloadTx, at time.Time) {
	set := tx.new.set
	from := len(tx.rolled)
	for i := from; i < tx.rollNext; i++ {
		tx.rolled = append(tx.rolled, i)
		if tx.oldSet == nil {
			continue
		}
		for _, o := range s.instances(tx.oldSet) {
			if o.inst == i && o.state != StateDraining {
				s.drain(o)
			}
		}
		if p, ok := tx.oldSet.pending[i]; ok {
			p.t.Stop()
			delete(tx.oldSet.pending, i)
		}
	}
	if tx.rollNext >= set.n {
		s.readyHook(set)
		s.swapDone(tx.new, at)
		return
	}
	next := min(tx.rollNext+tx.rolling, set.n)
	for i := tx.rollNext; i < next; i++ {
		if _, err := s.spawnInst(set, i); err != nil {
			s.failedReloadStart(ExitCode(err))
			s.finishTx(false, fmt.Sprintf("rolling swap: instance %d of generation %d failed to start: %v", i, set.num, err))
			return
		}
		tx.rollNext = i + 1
	}
	s.log.Info(logev.RollingOn, KeyGen, set.num, "ready", from, "started", tx.rollNext)
}

// unroll starts again, with the settings they had, the old instances a
// failed rolling swap had stopped.
// It returns what it did, for the reload's result ("" if nothing).
func (s *Supervisor) unroll(tx *reloadTx) string {
	if len(tx.rolled) == 0 || tx.oldSet == nil || s.stopping {
		return ""
	}
	old := tx.oldSet
	s.addSet(old)
	var started, later []string
	for _, i := range tx.rolled {
		if i >= old.n {
			continue
		}
		if _, err := s.spawnInst(old, i); err != nil {
			s.log.Error(logev.RollbackStartFailed, KeyGen, old.num, KeyInst, i, KeyError, err)
			s.scheduleInstRestart(old, i, 0, err.Error())
			later = append(later, strconv.Itoa(i))
			continue
		}
		started = append(started, strconv.Itoa(i))
	}
	s.log.Warn(logev.RollingUndone, KeyGen, old.num, "restarted", len(tx.rolled))
	what := fmt.Sprintf("; the rolling swap had stopped instances %s of generation %d", strings.Join(append(slices.Clone(started), later...), ", "), old.num)
	if len(started) > 0 {
		what += ": " + strings.Join(started, ", ") + " started again"
	}
	if len(later) > 0 {
		what += "; " + strings.Join(later, ", ") + " could not start (restarting with backoff)"
	}
	return what
}

// scaleOp is a Scale waiting for the instances it started.
type scaleOp struct {
	reply   chan<- ScaleResult
	res     ScaleResult
	from    int // the generation's instances before (set.n)
	fromAll int // Options.Instances before
	waiting map[*generation]bool
	started []*generation // every instance it started
	added   []int
}

// scale is Scale on Run's goroutine.
func (s *Supervisor) scale(r *scaleRequest) {
	now := time.Now()
	res := ScaleResult{From: max(s.opts.Instances, 1), To: r.n, Started: now}
	fail := func(why string) {
		res.Reason, res.Finished = why, time.Now()
		r.reply <- res
	}
	cur := s.current()
	switch {
	case s.stopping:
		fail("hupd is stopping")
		return
	case s.tx != nil:
		fail("a reload is in progress: scale once it has ended")
		return
	case cur != nil && cur.set.scaling != nil:
		fail("a scale is in progress")
		return
	case s.opts.Forking && r.n > 1:
		fail(fmt.Sprintf("instances %d: a forking program runs as one instance", r.n))
		return
	case s.opts.Rolling > r.n:
		fail(fmt.Sprintf("instances %d: fewer than rolling (%d)", r.n, s.opts.Rolling))
		return
	}
	fromAll := s.opts.Instances
	s.opts.Instances = r.n // every later generation
	if cur == nil {
		res.OK, res.Finished = true, time.Now()
		s.log.Info(logev.Scaled, "from", res.From, "to", r.n, KeyReason, "no generation runs: the next one starts with that many")
		r.reply <- res
		return
	}
	set := cur.set
	res.Gen, res.From = set.num, set.n
	op := &scaleOp{reply: r.reply, res: res, from: set.n, fromAll: fromAll, waiting: map[*generation]bool{}}
	set.scaling = op
	if r.n < set.n {
		set.several = true
		set.n, set.opts.Instances = r.n, r.n
		for _, g := range s.instances(set) {
			if g.inst >= r.n && g.state != StateDraining {
				op.res.Removed = append(op.res.Removed, g.pid)
				s.drain(g)
			}
		}
		for i, p := range set.pending {
			if i >= r.n {
				p.t.Stop()
				delete(set.pending, i)
			}
		}
		for i := r.n; i < op.from; i++ {
			set.forget(i)
		}
		s.endScale(set, true, "")
		s.maybeStartQueued()
		return
	}
	set.n = r.n
	set.opts.Instances = r.n
	live := map[int]bool{}
	for _, g := range s.instances(set) {
		if g.state != StateDraining {
			live[g.inst] = true
		}
	}
	for i := range r.n {
		if live[i] {
			continue
		}
		if _, ok := set.pending[i]; ok && i < op.from {
			continue // its restart is due: the restart policy starts it
		}
		set.forget(i) // a fresh start: its window and backoff too
		g, err := s.spawnInst(set, i)
		if err != nil {
			s.endScale(set, false, fmt.Sprintf("instance %d failed to start: %v", i, err))
			s.maybeStartQueued()
			return
		}
		op.waiting[g] = true
		op.started = append(op.started, g)
	}
	if len(op.waiting) == 0 {
		s.endScale(set, true, "")
		s.maybeStartQueued()
	}
}

// scaleWhenFree scales the serving generation to n now, or once the
// reload or scale in progress has ended (an edit of instances in
// hupd.toml while one runs); every later generation starts n at once.
func (s *Supervisor) scaleWhenFree(n int) {
	s.opts.Instances = n
	if cur := s.current(); s.tx != nil || cur != nil && cur.set.scaling != nil {
		s.wantInstances = n
		return
	}
	s.scale(&scaleRequest{n: n, reply: make(chan ScaleResult, 1)})
}

// scaleWanted carries out a scale that waited for a reload or another
// scale to end (scaleWhenFree).
func (s *Supervisor) scaleWanted() {
	n := s.wantInstances
	if n == 0 || s.stopping || s.tx != nil {
		return
	}
	cur := s.current()
	if cur != nil && cur.set.scaling != nil {
		return
	}
	s.wantInstances = 0
	s.opts.Instances = n
	if cur != nil && cur.set.n != n {
		s.scale(&scaleRequest{n: n, reply: make(chan ScaleResult, 1)})
	}
}

// scaleFailed ends the scale in progress with a failure when g, one of the
// instances it started, failed (why); it reports whether g was one.
func (s *Supervisor) scaleFailed(g *generation, why string) bool {
	if g.set == nil || g.set.scaling == nil || !g.set.scaling.waiting[g] {
		return false
	}
	s.endScale(g.set, false, why)
	s.maybeStartQueued() // a reload held back by the scale
	return true
}

// endScale answers the scale in progress on set. A failed one stops the
// instances it started and leaves the number as it was.
func (s *Supervisor) endScale(set *genSet, ok bool, why string) {
	op := set.scaling
	set.scaling = nil
	res := op.res
	res.OK, res.Reason, res.Finished = ok, why, time.Now()
	if ok {
		res.Added = op.added
		s.log.Info(logev.Scaled, KeyGen, set.num, "from", res.From, "to", res.To, KeyTook, res.Finished.Sub(res.Started).Round(time.Microsecond))
	} else {
		for _, g := range op.started {
			s.drain(g)
		}
		set.n, set.opts.Instances = op.from, max(op.from, 1)
		s.opts.Instances = op.fromAll
		s.log.Error(logev.ScaleFailed, KeyGen, set.num, "from", res.From, "to", res.To, KeyReason, why)
	}
	op.reply <- res
}

// setStatus describes set's generation: its instances by index (live ones,
// a new one beside one that drains, those whose restart is due, and those
// not restarted any more), the generation's state from theirs, and each
// listed instance's group to sample (nil for none).
func (s *Supervisor) setStatus(set *genSet, now time.Time) (GenerationStatus, []*contain.Group) {
	live := s.instances(set)
	var st GenerationStatus
	if len(live) > 0 {
		st = live[0].statusOf(now)
	} else {
		st = GenerationStatus{Gen: set.num, State: StateStarting}
	}
	// Each listed instance with its group (nil without a process).
	type row struct {
		in  InstanceStatus
		grp *contain.Group
	}
	var (
		rows   []row
		states = map[State]int{}
	)
	for _, g := range live {
		in := InstanceStatus{Index: g.inst, PID: g.pid, State: g.state, Started: g.started,
			Uptime: Duration(now.Sub(g.started).Round(time.Millisecond)), StatusText: g.statusText,
			Restarts: set.restarts[g.inst], LastExit: set.lastExit[g.inst]}
		if g.mainPID != 0 {
			in.PID = g.mainPID
		}
		if !g.readyAt.IsZero() {
			in.ReadyAfter = Duration(g.readyAt.Sub(g.started))
		}
		rows = append(rows, row{in, g.grp})
		states[g.state]++
	}
	cur := s.current()
	listMissing := cur != nil && cur.set == set || len(live) > 0 && s.txNew(live[0]) || len(live) == 0 && len(set.pending) > 0
	for i := range set.n {
		if !listMissing || slices.ContainsFunc(live, func(g *generation) bool { return g.inst == i }) {
			continue
		}
		state := StateStarting // not started yet (a rolling swap)
		if _, due := set.pending[i]; due {
			state = StateRestarting
		} else if set.gaveUp[i] || set.lastExit[i] != "" {
			state = StateFailed
		}
		rows = append(rows, row{in: InstanceStatus{Index: i, State: state, Restarts: set.restarts[i], LastExit: set.lastExit[i]}})
	}
	slices.SortStableFunc(rows, func(a, b row) int { return a.in.Index - b.in.Index })
	st.Instances = make([]InstanceStatus, len(rows))
	groups := make([]*contain.Group, len(rows))
	for i, r := range rows {
		st.Instances[i], groups[i] = r.in, r.grp
	}
	switch {
	case len(live) == 0:
		st.State = StateRestarting
	case states[StateDraining] == len(live):
		st.State = StateDraining
	case states[StateSettling] > 0:
		st.State = StateSettling
	case states[StateReady] > 0 && !s.txNew(live[0]):
		st.State = StateReady
	case states[StateStarting] > 0:
		st.State = StateStarting
	}
	return st, groups
}
