package supervisor

import (
	"context"
	"slices"
	"testing"

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
	if r.OK {
		t.Fatalf("rolling swap with a failing instance: %+v", r)
	}
	t.Logf("reason: %s", r.Reason)
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
