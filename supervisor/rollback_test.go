package supervisor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// keepsServing fails t unless generation gen is the only one and ready.
func keepsServing(t *testing.T, h *supervisorUnderTest, gen int) {
	t.Helper()
	if got := h.generations(); len(got) != 1 || got[gen] != StateReady {
		t.Fatalf("generations: %v, want only %d, ready", got, gen)
	}
}

// TestRollbackWhenTheNewGenerationCrashes: a new generation that exits
// before it is ready fails the reload with its last output, and the old
// one serves on; the next reload starts afresh.
func TestRollbackWhenTheNewGenerationCrashes(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready", "exit:5", "ready"}, nil).run()
	h.ready(1)
	res := h.reload(ActionReload)
	if res.OK || res.NewGen != 2 || !strings.Contains(res.Reason, "generation 2 exited before it was ready: exit status 5") ||
		!strings.Contains(res.Reason, "child exiting 5") || len(res.Output) == 0 {
		t.Fatalf("reload: %+v", res)
	}
	keepsServing(t, h, 1)
	if res := h.reload(ActionReload); !res.OK || res.NewGen != 3 {
		t.Fatalf("next reload: %+v", res)
	}
}

// TestRollbackWhenTheNewGenerationIsNotReadyInTime: the new generation is
// stopped as an old one is (stop signal), and the old one serves on.
func TestRollbackWhenTheNewGenerationIsNotReadyInTime(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready", "silent"}, func(o *Options) { o.Ready.Timeout = time.Second }).run()
	h.ready(1)
	res := h.reload(ActionReload)
	if res.OK || !strings.Contains(res.Reason, "generation 2 not ready within 1s") {
		t.Fatalf("reload: %+v", res)
	}
	if e := h.exited(2); e.attrs["state"] != string(StateDraining) {
		t.Fatalf("generation 2: %v", e)
	}
	keepsServing(t, h, 1)
}

// TestRollbackWhenTheCheckFails: a check command that exits non-zero
// fails the reload with its output before any generation starts; one that
// exits 0 lets it through. The check runs as a helper, without sockets.
func TestRollbackWhenTheCheckFails(t *testing.T) {
	bin := testBinary(t)
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Check = []string{bin, "check:4"} }).run()
	h.ready(1)
	res := h.reload(ActionReload)
	if res.OK || !strings.Contains(res.Reason, "check failed: ") || !strings.Contains(res.Reason, "exit status 4 | check says 4") || res.NewGen != 0 {
		t.Fatalf("reload: %+v", res)
	}
	keepsServing(t, h, 1)
	helpers := h.spawner.recorded("helper")
	if len(helpers) != 1 || helpers[0].sockets != 0 || strings.Join(helpers[0].args, " ") != bin+" check:4" {
		t.Fatalf("helpers started: %+v", helpers)
	}
	if len(h.events.matching(isMsg("hook started", 2))) != 0 {
		t.Fatal("a generation started although the check failed")
	}
}

// TestCheckThatPasses lets the reload through.
func TestCheckThatPasses(t *testing.T) {
	bin := testBinary(t)
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Check = []string{bin, "check:0"} }).run()
	h.ready(1)
	if res := h.reload(ActionReload); !res.OK || res.NewGen != 2 {
		t.Fatalf("reload: %+v", res)
	}
	if n := len(h.spawner.recorded("helper")); n != 1 {
		t.Fatalf("%d helpers started, want the check", n)
	}
}

// TestCheckThatCannotStart fails the reload with the reason.
func TestCheckThatCannotStart(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Check = []string{"/nonexistent/hupd-check"} }).run()
	h.ready(1)
	if res := h.reload(ActionReload); res.OK || !strings.Contains(res.Reason, "check failed: ") {
		t.Fatalf("reload: %+v", res)
	}
	keepsServing(t, h, 1)
}

// TestRollbackWhenTheNewGenerationCannotStart: a start that fails before
// any process exists, or whose shim cannot exec the program, fails the
// reload and touches nothing the old generation serves.
func TestRollbackWhenTheNewGenerationCannotStart(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil)
	h.spawner.noStandby() // every start goes through the script
	h.spawner.script(startReal, startFails, startExecFail, startReal)
	h.run()
	h.ready(1)
	res := h.reload(ActionReload)
	if res.OK || !strings.Contains(res.Reason, "start failed: "+errScriptedStart.Error()) {
		t.Fatalf("reload: %+v", res)
	}
	res = h.reload(ActionReload)
	if res.OK || !strings.Contains(res.Reason, "start failed: ") || !strings.Contains(res.Reason, "hupd-scripted-exec-failure") {
		t.Fatalf("reload: %+v", res)
	}
	keepsServing(t, h, 1)
	if res := h.reload(ActionReload); !res.OK || res.NewGen != 2 {
		t.Fatalf("reload after the failures: %+v (a failed start uses no generation number)", res)
	}
	gens := h.spawner.recorded("generation")
	if len(gens) != 4 {
		t.Fatalf("%d generation starts, want 4", len(gens))
	}
	var ee *socketact.ExecError
	if !errors.Is(gens[1].err, errScriptedStart) || !errors.As(gens[2].err, &ee) || ee.Code != socketact.ExitNotFound || gens[3].err != nil {
		t.Fatalf("starts: %+v", gens)
	}
}

// TestServingGenerationCrashesDuringASwap: the generation being started
// takes over; no restart starts another beside it.
func TestServingGenerationCrashesDuringASwap(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready", "extend", "ready"}, nil).run()
	pid1 := h.ready(1)
	reload := h.reloadAsync(ActionReload, "test")
	pid2 := h.started(2)
	h.logged(logev.ReadyTimeoutExtended, 2, 1)
	h.kill(pid1, unix.SIGUSR1) // generation 1 crashes: exit 3
	h.logged(logev.ServingExitedDuringReload, 1, 1)
	h.kill(pid2, unix.SIGUSR2) // READY=1
	if res := h.result(reload); !res.OK || res.NewGen != 2 {
		t.Fatalf("reload: %+v", res)
	}
	keepsServing(t, h, 2)
	if len(h.events.matching(isMsg(logev.RestartingChild, 0))) != 0 {
		t.Fatal("a restart was scheduled beside the new generation")
	}
}

// TestServingAndNewGenerationBothFailDuringASwap: when the new generation
// fails too, the restart policy takes over as after a crash.
func TestServingAndNewGenerationBothFailDuringASwap(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready", "extend", "ready"}, nil).run()
	pid1 := h.ready(1)
	reload := h.reloadAsync(ActionReload, "test")
	pid2 := h.started(2)
	h.logged(logev.ReadyTimeoutExtended, 2, 1)
	h.kill(pid1, unix.SIGUSR1)
	h.logged(logev.ServingExitedDuringReload, 1, 1)
	h.kill(pid2, unix.SIGUSR1)
	if res := h.result(reload); res.OK || !strings.Contains(res.Reason, "exited before it was ready: exit status 3") {
		t.Fatalf("reload: %+v", res)
	}
	h.ready(3)
	if st := h.sup.Status(); st.Restarts != 1 {
		t.Fatalf("%d restarts, want 1", st.Restarts)
	}
}

// TestRestartStrategyStopsTheOldGenerationFirst: with the restart
// strategy, the old generation exits before the new one starts.
func TestRestartStrategyStopsTheOldGenerationFirst(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Reload = StrategyRestart }).run()
	h.ready(1)
	if res := h.reload(ActionReload); !res.OK || res.NewGen != 2 || res.OldGen != 1 {
		t.Fatalf("reload: %+v", res)
	}
	if exit1, start2 := h.events.order(isMsg(logev.ChildExited, 1)), h.events.order(isMsg("hook started", 2)); exit1 < 0 || start2 < exit1 {
		t.Fatalf("generation 2 started (event %d) before generation 1 exited (event %d)", start2, exit1)
	}
}

// TestStandbyShimThatDiesIsNotUsed: a standby shim that dies unused is
// dropped; the next generation starts cold and works.
func TestStandbyShimThatDiesIsNotUsed(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil)
	h.spawner.scriptStandby(standbyDies)
	h.run()
	h.ready(1)
	h.logged(logev.StandbyExited, 0, 1)
	if res := h.reload(ActionReload); !res.OK {
		t.Fatalf("reload: %+v", res)
	}
	if e := h.logged(logev.ChildStarted, 2, 1); e.attrs["standby"] != false {
		t.Fatalf("generation 2: %v, want a cold start", e)
	}
}

// TestStandbyShimIsUsedByTheNextGeneration: a warm start runs the
// program in the shim started ahead, with the generation's environment.
func TestStandbyShimIsUsedByTheNextGeneration(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil).run()
	h.ready(1)
	h.logged(logev.StandbyReady, 0, 1)
	standbys := h.spawner.recorded("standby")
	res := h.reload(ActionReload)
	if !res.OK || len(standbys) == 0 || res.NewPID != standbys[0].pid {
		t.Fatalf("reload: %+v; standbys started: %+v", res, standbys)
	}
	if e := h.logged(logev.ChildStarted, 2, 1); e.attrs["standby"] != true {
		t.Fatalf("generation 2: %v, want a warm start", e)
	}
}
