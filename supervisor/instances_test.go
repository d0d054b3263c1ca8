package supervisor

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"golang.org/x/sys/unix"
)

// Instances (Options.Instances): each test runs the test binary as the
// program (runTestChild), several instances per generation. A mode key
// "N-I" is instance I of generation N (childModeFor).

// isInst matches the records with message msg of instance inst of
// generation gen.
func isInst(msg string, gen, inst int) func(recordedEvent) bool {
	return func(e recordedEvent) bool {
		_, has := e.attrs[KeyInst]
		return e.msg == msg && e.int(KeyGen) == gen && has && e.int(KeyInst) == inst
	}
}

// instancesOf returns generation gen's instances as Status lists them.
func (h *supervisorUnderTest) instancesOf(gen int) []InstanceStatus {
	h.t.Helper()
	for _, g := range h.sup.Status().Generations {
		if g.Gen == gen {
			return g.Instances
		}
	}
	return nil
}

// readyInstances waits until generation gen is ready (every instance) and
// returns its instances' PIDs by index.
func (h *supervisorUnderTest) readyInstances(gen, n int) []int {
	h.t.Helper()
	h.ready(gen)
	pids := make([]int, n)
	for i := range n {
		pids[i] = h.events.waitN(h.t, 1, "instance ready", isInst(logev.ChildReady, gen, i))[0].int(KeyPID)
	}
	return pids
}

func instancesOpts(n, rolling int) func(*Options) {
	return func(o *Options) { o.Instances, o.Rolling = n, rolling }
}

// TestInstancesStartAndSwap: three instances start, each its own process
// with its own index; the generation is ready once all are; a swap starts
// three new ones and stops no old one before every new one is ready.
func TestInstancesStartAndSwap(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, instancesOpts(3, 0)).run()
	pids := h.readyInstances(1, 3)
	if len(slices.Compact(slices.Sorted(slices.Values(pids)))) != 3 {
		t.Fatalf("instance PIDs %v: want 3 distinct", pids)
	}
	ins := h.instancesOf(1)
	if len(ins) != 3 {
		t.Fatalf("status lists %d instances, want 3: %+v", len(ins), ins)
	}
	for i, in := range ins {
		if in.Index != i || in.PID != pids[i] || in.State != StateReady {
			t.Errorf("instance %d: %+v, want index %d pid %d ready", i, in, i, pids[i])
		}
	}
	if st := h.sup.Status(); st.Instances != 3 || len(st.Generations) != 1 || st.Generations[0].State != StateReady {
		t.Fatalf("status: instances %d, generations %+v", st.Instances, st.Generations)
	}
	r := h.reload(Action{})
	if !r.OK || r.NewGen != 2 {
		t.Fatalf("swap: %+v", r)
	}
	h.readyInstances(2, 3)
	for i := range 3 {
		h.events.waitN(t, 1, "old instance exit", isInst(logev.ChildExited, 1, i))
	}
	lastReady := -1
	for i := range 3 {
		lastReady = max(lastReady, h.events.order(isInst(logev.ChildReady, 2, i)))
	}
	for i := range 3 {
		if d := h.events.order(isInst(logev.Draining, 1, i)); d < lastReady {
			t.Errorf("old instance %d told to stop (event %d) before the last new instance was ready (event %d)", i, d, lastReady)
		}
	}
}

// TestInstancesRolling: with rolling 1, each new instance is ready before
// the old one of its index stops, and the next new one starts only then.
func TestInstancesRolling(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, instancesOpts(3, 1)).run()
	h.readyInstances(1, 3)
	if r := h.reload(Action{}); !r.OK || r.NewGen != 2 {
		t.Fatalf("rolling swap: %+v", r)
	}
	h.readyInstances(2, 3)
	for i := range 3 {
		h.events.waitN(t, 1, "old instance exit", isInst(logev.ChildExited, 1, i))
	}
	for i := range 3 {
		ready := h.events.order(isInst(logev.ChildReady, 2, i))
		drained := h.events.order(isInst(logev.Draining, 1, i))
		if drained < ready {
			t.Errorf("old instance %d told to stop (event %d) before new instance %d was ready (event %d)", i, drained, i, ready)
		}
		if i+1 < 3 {
			if next := h.events.order(isInst(logev.ChildStarted, 2, i+1)); next < drained {
				t.Errorf("new instance %d started (event %d) before old instance %d was told to stop (event %d)", i+1, next, i, drained)
			}
		}
	}
}

// TestInstancesRollingFailure: the third new instance of a rolling swap
// fails: the reload fails, the new instances stop, and the two old ones
// it had stopped start again with the old settings, so that three
// instances of the old generation serve.
func TestInstancesRollingFailure(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(3, 1)(o)
		o.Env[0] = childModesEnv + "=1=ready,2-2=exit:3,*=ready"
	}).run()
	old := h.readyInstances(1, 3)
	r := h.reload(Action{})
	if r.OK || !strings.HasSuffix(r.Reason, "; the rolling swap had stopped instances 0, 1 of generation 1: 0, 1 started again") {
		t.Fatalf("rolling swap with a failing instance: %+v", r)
	}
	// Instances 0 and 1 of generation 1 start again (their second start).
	for i := range 2 {
		h.events.waitN(t, 2, "old instance started again", isInst(logev.ChildStarted, 1, i))
		h.events.waitN(t, 2, "old instance ready again", isInst(logev.ChildReady, 1, i))
	}
	for i := range 2 {
		h.events.waitN(t, 1, "new instance exit", isInst(logev.ChildExited, 2, i))
	}
	var ins []InstanceStatus
	h.onRun(func(s *Supervisor) {
		st, _, _ := s.status()
		if len(st.Generations) != 1 || st.Generations[0].Gen != 1 {
			t.Errorf("generations after the failed rolling swap: %+v", st.Generations)
			return
		}
		ins = st.Generations[0].Instances
	})
	if len(ins) != 3 {
		t.Fatalf("instances: %+v", ins)
	}
	for i, in := range ins {
		if in.State != StateReady {
			t.Errorf("instance %d: %+v, want ready", i, in)
		}
	}
	if ins[2].PID != old[2] {
		t.Errorf("instance 2 (never stopped) pid %d, was %d", ins[2].PID, old[2])
	}
}

// TestInstanceCrashRestartsAlone: an instance that crashes is restarted
// alone, in its generation; the others keep their PIDs, and it is no
// reload.
func TestInstanceCrashRestartsAlone(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, instancesOpts(3, 0)).run()
	pids := h.readyInstances(1, 3)
	h.kill(pids[1], unix.SIGKILL)
	h.events.waitN(t, 1, "restart scheduled", isInst(logev.RestartingInstance, 1, 1))
	again := h.events.waitN(t, 2, "instance 1 ready again", isInst(logev.ChildReady, 1, 1))[1].int(KeyPID)
	if again == pids[1] {
		t.Fatalf("instance 1 has its old pid %d", again)
	}
	ins := h.instancesOf(1)
	if len(ins) != 3 || ins[0].PID != pids[0] || ins[2].PID != pids[2] || ins[1].PID != again {
		t.Fatalf("instances %+v, want pids %d %d %d", ins, pids[0], again, pids[2])
	}
	if ins[1].Restarts != 1 || ins[1].LastExit == "" || ins[0].Restarts != 0 {
		t.Errorf("restarts: %+v", ins)
	}
	if st := h.sup.Status(); st.Reloads != 0 || st.Restarts != 1 || len(st.Generations) != 1 {
		t.Errorf("reloads %d, restarts %d, generations %d", st.Reloads, st.Restarts, len(st.Generations))
	}
}

// TestInstancesScale: scaling up starts instances of the serving
// generation and answers once they are ready; scaling down stops the
// highest-numbered ones; the others keep their PIDs.
func TestInstancesScale(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, instancesOpts(2, 0)).run()
	pids := h.readyInstances(1, 2)
	ctx := context.Background()
	r := h.sup.Scale(ctx, 4)
	if !r.OK || r.From != 2 || r.To != 4 || r.Gen != 1 || len(r.Added) != 2 {
		t.Fatalf("scale up: %+v", r)
	}
	ins := h.instancesOf(1)
	if len(ins) != 4 || ins[0].PID != pids[0] || ins[1].PID != pids[1] {
		t.Fatalf("after scale up: %+v", ins)
	}
	for _, in := range ins {
		if in.State != StateReady {
			t.Errorf("instance %+v not ready after scale up answered", in)
		}
	}
	r = h.sup.Scale(ctx, 1)
	if !r.OK || r.From != 4 || r.To != 1 || len(r.Removed) != 3 {
		t.Fatalf("scale down: %+v", r)
	}
	for i := 1; i < 4; i++ {
		h.events.waitN(t, 1, "scaled-down instance exit", isInst(logev.ChildExited, 1, i))
	}
	st := h.sup.Status()
	if st.Instances != 1 || len(st.Generations) != 1 || len(st.Generations[0].Instances) != 1 || st.Generations[0].Instances[0].PID != pids[0] {
		t.Fatalf("after scale down: instances %d, %+v", st.Instances, st.Generations)
	}
	// The next generation starts with what scale set.
	if r := h.reload(Action{}); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	h.ready(2)
	if r := h.sup.Scale(ctx, 0); r.OK || r.Reason == "" {
		t.Errorf("scale 0: %+v", r)
	}
}

// TestInstancesScaleFailure: an instance a scale started fails: the scale
// fails, what it started stops, and the number stays as it was.
func TestInstancesScaleFailure(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=1-3=exit:4,*=ready"
	}).run()
	h.readyInstances(1, 2)
	r := h.sup.Scale(context.Background(), 4)
	if r.OK {
		t.Fatalf("scale with a failing instance: %+v", r)
	}
	h.events.waitN(t, 1, "instance 2 exit", isInst(logev.ChildExited, 1, 2))
	st := h.sup.Status()
	if st.Instances != 2 {
		t.Errorf("configured instances %d after a failed scale, want 2", st.Instances)
	}
}

// TestInstancesSignalRelay: the signal strategy relays the reload signal
// to every instance and waits for each one's READY=1 after RELOADING=1.
func TestInstancesSignalRelay(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"reloader"}, func(o *Options) {
		instancesOpts(3, 0)(o)
		o.Reload = StrategySignal
	}).run()
	h.readyInstances(1, 3)
	// Once: then each is known to speak the reload protocol.
	if r := h.reload(Action{}); !r.OK {
		t.Fatalf("first signal reload: %+v", r)
	}
	if r := h.reload(Action{}); !r.OK {
		t.Fatalf("second signal reload: %+v", r)
	}
	for i := range 3 {
		h.events.waitN(t, 2, "signal sent", isInst(logev.ReloadSignalSent, 1, i))
	}
}

// TestInstancesStopAll: TERM stops every instance and hupd exits 0.
func TestInstancesStopAll(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, instancesOpts(3, 0)).run()
	h.readyInstances(1, 3)
	h.signal(unix.SIGTERM)
	if o := h.wait(); o.code != 0 || o.err != nil {
		t.Fatalf("stop: %+v", o)
	}
	for i := range 3 {
		h.events.waitN(t, 1, "instance exit", isInst(logev.ChildExited, 1, i))
	}
}

// TestInstanceRestartDoesNotHoldReload: an instance restarted alone that
// never gets ready does not hold a reload back (a generation that is
// starting does): the reload replaces the whole generation.
func TestInstanceRestartDoesNotHoldReload(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=1-1.2=silent,*=ready"
	}).run()
	pids := h.readyInstances(1, 2)
	h.kill(pids[1], unix.SIGKILL)
	h.events.waitN(t, 2, "instance 1 started again", isInst(logev.ChildStarted, 1, 1))
	if r := h.reload(Action{}); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload beside an instance that is starting: %+v", r)
	}
	h.events.waitN(t, 2, "instance 1 exits", isInst(logev.ChildExited, 1, 1))
}

// slowBackoff keeps an instance's restart pending for the whole test.
var slowBackoff = Backoff{Min: 10 * time.Minute, Max: 10 * time.Minute}

// TestInstancesRestartStrategyDuringBackoff: the restart strategy while an
// instance waits for its restart: the pending restart is cancelled (the
// whole generation is replaced), and the reload completes.
func TestInstancesRestartStrategyDuringBackoff(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Backoff = slowBackoff
	}).run()
	pids := h.readyInstances(1, 2)
	h.kill(pids[1], unix.SIGKILL)
	h.events.waitN(t, 1, "restart scheduled", isInst(logev.RestartingInstance, 1, 1))
	if r := h.reload(Action{Strategy: StrategyRestart}); !r.OK || r.NewGen != 2 {
		t.Fatalf("restart during an instance's backoff: %+v", r)
	}
	h.readyInstances(2, 2)
	h.onRun(func(s *Supervisor) {
		if n := s.restartsPending(); n != 0 {
			t.Errorf("%d instance restarts still due after the restart", n)
		}
	})
}

// TestInstancesSwapWhileAllPending: a swap while every instance waits for
// its restart: the replaced generation's restarts are cancelled, and the
// new generation serves.
func TestInstancesSwapWhileAllPending(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Backoff = slowBackoff
	}).run()
	pids := h.readyInstances(1, 2)
	for i, pid := range pids {
		h.kill(pid, unix.SIGKILL)
		h.events.waitN(t, 1, "restart scheduled", isInst(logev.RestartingInstance, 1, i))
	}
	h.onRun(func(s *Supervisor) {
		if err := s.steady(); err == nil {
			t.Errorf("an upgrade is allowed while every instance waits for its restart")
		}
		if st, _, _ := s.status(); len(st.Generations) != 1 || st.Generations[0].State != StateRestarting {
			t.Errorf("status while every instance waits: %+v", st.Generations)
		}
	})
	if r := h.reload(Action{}); !r.OK || r.NewGen != 2 {
		t.Fatalf("swap: %+v", r)
	}
	h.readyInstances(2, 2)
	h.onRun(func(s *Supervisor) {
		if n := s.restartsPending(); n != 0 {
			t.Errorf("%d restarts of the replaced generation still due", n)
		}
		if c := s.current(); c == nil || c.num != 2 {
			t.Errorf("current generation %v, want 2", c)
		}
	})
}

// TestInstancesSentinelPerStart: an instance started while the one it
// replaces still drains (scale down, then up) keeps its own sentinel
// registration when the old one exits.
func TestInstancesSentinelPerStart(t *testing.T) {
	rs := &recordingSentinel{registered: map[int]int{}, pidfdOK: map[int]bool{}}
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=1-1=ignore-term,*=ready"
		o.StopTimeout = 2 * time.Second
		o.Sentinel = rs
	}).run()
	h.readyInstances(1, 2)
	down := h.sup.Scale(context.Background(), 1)
	if !down.OK || len(down.Removed) != 1 {
		t.Fatalf("scale down: %+v", down)
	}
	up := h.sup.Scale(context.Background(), 2)
	if !up.OK || len(up.Added) != 1 {
		t.Fatalf("scale up: %+v", up)
	}
	h.kill(down.Removed[0], unix.SIGKILL) // the old instance 1 ends
	h.events.waitN(t, 1, "old instance 1 exit", isInst(logev.ChildExited, 1, 1))
	var key int
	h.onRun(func(s *Supervisor) {
		for _, g := range s.gens {
			if g.inst == 1 {
				key = g.guardKey()
			}
		}
	})
	rs.mu.Lock()
	_, ok := rs.registered[key]
	rs.mu.Unlock()
	if key == 0 || !ok {
		t.Fatalf("the new instance 1 (key %d) is not registered with the sentinel any more", key)
	}
}

// TestInstancesSignalReloadBesideDraining: an instance a scale down stops
// exits during a signal reload: the reload does not fail for it.
func TestInstancesSignalReloadBesideDraining(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"reloader"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=1-1=ignore-term,*=reloader"
		o.Reload = StrategySignal
	}).run()
	h.readyInstances(1, 2)
	down := h.sup.Scale(context.Background(), 1)
	if !down.OK {
		t.Fatalf("scale down: %+v", down)
	}
	ch := h.reloadAsync(Action{}, "test")
	h.kill(down.Removed[0], unix.SIGKILL)
	h.events.waitN(t, 1, "old instance 1 exit", isInst(logev.ChildExited, 1, 1))
	if r := h.result(ch); !r.OK {
		t.Fatalf("signal reload beside a draining instance: %+v", r)
	}
}

// TestInstancesStatusDuringSwap: the old generation's instances that
// exited during a swap are not listed as failed, and one that is not
// restarted (on-failure, exit 0) is.
func TestInstancesStatusDuringSwap(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=1-1=ignore-term,*=ready"
		o.StopTimeout = 2 * time.Second
	}).run()
	h.readyInstances(1, 2)
	if r := h.reload(Action{}); !r.OK {
		t.Fatalf("swap: %+v", r)
	}
	h.events.waitN(t, 1, "old instance 0 exit", isInst(logev.ChildExited, 1, 0))
	for _, g := range h.sup.Status().Generations {
		for _, in := range g.Instances {
			if in.State == StateFailed || in.State == StateRestarting {
				t.Errorf("generation %d instance %d %s during a swap", g.Gen, in.Index, in.State)
			}
		}
	}
}

// TestInstancesNotRestartedListed: an instance that exits 0 under
// on-failure is not restarted and is listed as failed; one waiting for its
// restart as restarting.
func TestInstancesNotRestartedListed(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=1-1=exit:0,*=ready"
		o.Restart = RestartOnFailure
		o.Backoff = slowBackoff
	}).run()
	h.events.waitN(t, 1, "instance 1 not restarted", isInst(logev.InstanceNotRestarted, 1, 1))
	pid := h.events.waitN(t, 1, "instance 0 ready", isInst(logev.ChildReady, 1, 0))[0].int(KeyPID)
	h.kill(pid, unix.SIGKILL)
	h.events.waitN(t, 1, "restart scheduled", isInst(logev.RestartingInstance, 1, 0))
	ins := h.instancesOf(1)
	if len(ins) != 2 || ins[0].State != StateRestarting || ins[1].State != StateFailed || ins[1].LastExit == "" {
		t.Fatalf("instances: %+v, want 0 restarting and 1 failed", ins)
	}
}

// TestInstancesReloadWaitsForScale: a reload asked for while a scale
// starts instances waits for the scale's answer (here a failure: the new
// instance is never ready), then runs.
func TestInstancesReloadWaitsForScale(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=1-2=silent,*=ready"
		o.Ready.Timeout = 500 * time.Millisecond // the scale's failure
	}).run()
	h.readyInstances(1, 2)
	done := make(chan ScaleResult, 1)
	go func() { done <- h.sup.Scale(context.Background(), 3) }()
	h.events.waitN(t, 1, "instance 2 started", isInst(logev.ChildStarted, 1, 2))
	ch := h.reloadAsync(Action{}, "test")
	if sr := <-done; sr.OK || sr.TimedOut {
		t.Fatalf("scale with a never-ready instance: %+v", sr)
	}
	if r := h.result(ch); !r.OK || r.NewGen != 2 {
		t.Fatalf("the reload after the scale: %+v", r)
	}
	if st := h.sup.Status(); st.Instances != 2 {
		t.Errorf("configured instances %d after the failed scale, want 2", st.Instances)
	}
}

// TestInstancesReadyHookOnce: scaling a generation of one up does not tell
// Hooks.Ready again.
func TestInstancesReadyHookOnce(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil).run()
	h.ready(1)
	if r := h.sup.Scale(context.Background(), 2); !r.OK {
		t.Fatalf("scale up: %+v", r)
	}
	if n := len(h.events.matching(isMsg("hook ready", 1))); n != 1 {
		t.Fatalf("Hooks.Ready told %d times for generation 1", n)
	}
}

// TestInstancesEditDuringSwap: an edit of instances alone while a swap's
// new generation starts scales that generation once the swap is done.
func TestInstancesEditDuringSwap(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		// Generation 2's first two instances are ready on USR2; those the
		// edit adds at once.
		o.Env[0] = childModesEnv + "=2=extend,2-2=ready,2-3=ready,*=ready"
	}).run()
	h.readyInstances(1, 2)
	ch := h.reloadAsync(Action{}, "test")
	// Each says EXTEND_TIMEOUT_USEC once it handles USR2.
	g2 := []int{h.events.waitN(t, 1, "gen 2 instance 0", isInst(logev.ReadyTimeoutExtended, 2, 0))[0].int(KeyPID),
		h.events.waitN(t, 1, "gen 2 instance 1", isInst(logev.ReadyTimeoutExtended, 2, 1))[0].int(KeyPID)}
	next := h.opts
	next.Instances = 4
	if res, err := h.applyNow(Update{Options: next, Listen: specsOf(h.sockets)}); err != nil || res.ScaleTo != 4 || res.Respawn {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	for _, pid := range g2 {
		h.kill(pid, unix.SIGUSR2) // ready now
	}
	if r := h.result(ch); !r.OK || r.NewGen != 2 {
		t.Fatalf("swap: %+v", r)
	}
	h.logged(logev.Scaled, 2, 1)
	if ins := h.instancesOf(2); len(ins) != 4 {
		t.Fatalf("generation 2 runs %d instances after the edit, want 4: %+v", len(ins), ins)
	}
}

// TestInstancesRollingFailureKeepsDrainCap: a failed rolling swap with
// max_draining 1 stops its new instances without killing the old one it
// had stopped, which still drains (the cap counts old generations).
func TestInstancesRollingFailureKeepsDrainCap(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 1)(o)
		o.Env[0] = childModesEnv + "=1-0=ignore-term,2-1=exit:3,*=ready"
		o.StopTimeout = 2 * time.Second
		o.MaxDraining = 1
	}).run()
	h.readyInstances(1, 2)
	if r := h.reload(Action{}); r.OK {
		t.Fatalf("rolling swap with a failing instance: %+v", r)
	}
	h.events.waitN(t, 2, "old instance 0 started again", isInst(logev.ChildReady, 1, 0))
	e := h.events.waitN(t, 1, "old instance 0 exit", func(e recordedEvent) bool {
		return isInst(logev.ChildExited, 1, 0)(e) && e.attrs["state"] == string(StateDraining)
	})[0]
	if n := len(h.events.matching(isMsg(logev.TooManyDraining, 0))); n != 0 {
		t.Fatalf("%d generations killed by the drain cap; old instance 0 exited %v", n, e.attrs)
	}
}

// TestInstanceStraySignalReplaced: an instance of a swap's new generation
// killed by a stray HUP before it was ready is started again alone, and
// the swap goes on.
func TestInstanceStraySignalReplaced(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=2-1=die-hup,2-1.2=ready,*=ready"
	}).run()
	h.readyInstances(1, 2)
	if r := h.reload(Action{}); !r.OK || r.NewGen != 2 {
		t.Fatalf("swap with an instance killed by a stray HUP: %+v", r)
	}
	h.logged(logev.ReloadStartStraySignal, 2, 1)
	if n := len(h.events.matching(isInst(logev.ChildStarted, 2, 0))); n != 1 {
		t.Errorf("instance 0 started %d times, want once", n)
	}
	h.events.waitN(t, 2, "instance 1 started again", isInst(logev.ChildStarted, 2, 1))
}

// TestInstancesPendingSurvivesSwap: an instance restart that comes due
// while a swap's new generation starts is made (the old generation serves
// until the new one is ready), so that a swap that then fails leaves the
// old generation whole.
func TestInstancesPendingSurvivesSwap(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=1=ready,*=silent"
		o.Ready.Timeout = time.Second // generation 2's failure
		o.Backoff = slowBackoff
	}).run()
	pids := h.readyInstances(1, 2)
	h.kill(pids[1], unix.SIGKILL)
	h.events.waitN(t, 1, "restart scheduled", isInst(logev.RestartingInstance, 1, 1))
	ch := h.reloadAsync(Action{}, "test")
	h.events.waitN(t, 1, "generation 2 started", isInst(logev.ChildStarted, 2, 1))
	h.onRun(func(s *Supervisor) { // the restart's timer fires now
		for _, set := range s.sets {
			if p, ok := set.pending[1]; ok && set.num == 1 {
				p.t.Stop()
				s.onInstRestart(set, 1, p.seq)
			}
		}
	})
	h.events.waitN(t, 2, "instance 1 started again", isInst(logev.ChildStarted, 1, 1))
	if r := h.result(ch); r.OK {
		t.Fatalf("swap to a generation never ready: %+v", r)
	}
	h.events.waitN(t, 2, "instance 1 ready again", isInst(logev.ChildReady, 1, 1))
}

// TestInstancesGiveUpBesideDraining: at the start limit, an instance is
// given up on alone only while another serves; one that a scale down
// stopped, still draining, does not count: hupd gives up.
func TestInstancesGiveUpBesideDraining(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=1-1=ignore-term,*=ready"
		o.StopTimeout = 2 * time.Second
		o.StartLimit = StartLimit{Burst: 1, Interval: time.Hour}
	}).run()
	pids := h.readyInstances(1, 2)
	if r := h.sup.Scale(context.Background(), 1); !r.OK {
		t.Fatalf("scale down: %+v", r)
	}
	h.kill(pids[0], unix.SIGKILL)
	h.logged(logev.StartLimitReached, 0, 1)
	if o := h.wait(); o.code == 0 {
		t.Fatalf("hupd gave up with code %d", o.code)
	}
}

// TestInstancesScaleWaitedNoTwin: an edit of instances that waited for a
// signal reload is carried out after the instance exit that ended the
// reload has armed that instance's restart: never two of one index.
func TestInstancesScaleWaitedNoTwin(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"stuck-reload"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Reload = StrategySignal
		o.Backoff = slowBackoff
	}).run()
	pids := h.readyInstances(1, 2)
	// Once, so that both are known to speak the reload protocol.
	h.onRun(func(s *Supervisor) {
		for _, g := range s.gens {
			g.speaksReload = true
		}
	})
	ch := h.reloadAsync(Action{}, "test")
	h.events.waitN(t, 1, "signal sent", isInst(logev.ReloadSignalSent, 1, 1))
	next := h.opts
	next.Instances = 3
	if res, err := h.applyNow(Update{Options: next, Listen: specsOf(h.sockets)}); err != nil || res.ScaleTo != 3 {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	h.kill(pids[1], unix.SIGKILL)
	if r := h.result(ch); r.OK {
		t.Fatalf("signal reload whose instance died: %+v", r)
	}
	h.logged(logev.Scaled, 1, 1)
	h.onRun(func(s *Supervisor) {
		n := 0
		for _, g := range s.gens {
			if g.inst == 1 {
				n++
			}
		}
		for _, set := range s.sets {
			if _, ok := set.pending[1]; ok {
				n++
			}
		}
		if n != 1 {
			t.Errorf("instance 1: %d live or due, want 1", n)
		}
	})
}

// TestInstancesFailedReloadNamesInstance: a reload failed by one instance
// reports that instance's PID and output.
func TestInstancesFailedReloadNamesInstance(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=2-1=say:boom,*=ready"
	}).run()
	h.readyInstances(1, 2)
	r := h.reload(Action{})
	pid := h.events.waitN(t, 1, "instance 1 started", isInst(logev.ChildStarted, 2, 1))[0].int(KeyPID)
	if r.OK || r.NewPID != pid || !slices.Contains(r.Output, "boom") {
		t.Fatalf("result %+v, want failed with pid %d and its output", r, pid)
	}
}

// TestInstanceStrayReplacedIsNew: when the instance a stray signal killed
// was instance 0, its replacement stands for the new generation.
func TestInstanceStrayReplacedIsNew(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) {
		instancesOpts(2, 0)(o)
		o.Env[0] = childModesEnv + "=2=die-hup,2.2=ready,2-1=ready,*=ready"
	}).run()
	h.readyInstances(1, 2)
	r := h.reload(Action{})
	again := h.events.waitN(t, 2, "instance 0 started again", isInst(logev.ChildStarted, 2, 0))[1].int(KeyPID)
	if !r.OK || r.NewPID != again {
		t.Fatalf("result %+v, want ok with pid %d", r, again)
	}
}
