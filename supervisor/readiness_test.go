package supervisor

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

// TestExtendTimeoutMovesTheReadinessDeadline: EXTEND_TIMEOUT_USEC keeps a
// new generation from failing at the configured readiness timeout; it is
// ready later, and the swap completes.
func TestExtendTimeoutMovesTheReadinessDeadline(t *testing.T) {
	const timeout = time.Second
	h := newSupervisorUnderTest(t, []string{"ready", "extend"}, func(o *Options) { o.Ready.Timeout = timeout }).run()
	h.ready(1)
	reload := h.reloadAsync(ActionReload, "test")
	pid2 := h.started(2)
	h.logged(logev.ReadyTimeoutExtended, 2, 1)
	// The configured timeout has passed, and its timer found the
	// deadline moved.
	h.logged(logev.ReadyDeadlineMoved, 2, 1)
	h.kill(pid2, unix.SIGUSR2) // READY=1
	res := h.result(reload)
	if !res.OK || res.NewGen != 2 || time.Duration(res.ReadyAfter) <= timeout {
		t.Fatalf("reload: %+v (ready after %s, the timeout is %s)", res, time.Duration(res.ReadyAfter), timeout)
	}
}

// TestReloadQueuedBehindAStartingGenerationRunsAtItsTimeout: a reload
// asked for while the first generation is starting waits for it, and runs
// once it has failed its readiness timeout.
func TestReloadQueuedBehindAStartingGenerationRunsAtItsTimeout(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"silent", "ready"}, func(o *Options) { o.Ready.Timeout = time.Second }).run()
	h.started(1)
	reload := h.reloadAsync(ActionReload, "test")
	h.logged(logev.ReloadQueued, 0, 1)
	res := h.result(reload)
	if !res.OK || res.NewGen != 2 {
		t.Fatalf("reload: %+v", res)
	}
	if e := h.logged(logev.NotReady, 1, 1); !strings.Contains(e.attrs[KeyReason].(string), "not ready within 1s") {
		t.Fatalf("generation 1: %v", e)
	}
	if h.events.order(isMsg(logev.NotReady, 1)) > h.events.order(isMsg("hook started", 2)) {
		t.Fatal("generation 2 started before generation 1 ran out of time")
	}
}

// TestAutoReadinessJudgesASilentChildByBeingAlive: a child that never
// speaks sd_notify is ready after the delay, with a log line saying why.
func TestAutoReadinessJudgesASilentChildByBeingAlive(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"silent"}, func(o *Options) {
		o.Ready = Readiness{Kind: ReadyAuto, Delay: 10 * time.Millisecond, Timeout: waitLimit}
	}).run()
	h.ready(1)
	h.logged(logev.ReadyByAlive, 1, 1)
}

// TestAutoReadinessWaitsForReadyOnceAChildSpeaksNotify: after a
// generation has spoken sd_notify, the next ones are ready at READY=1,
// not at the delay.
func TestAutoReadinessWaitsForReadyOnceAChildSpeaksNotify(t *testing.T) {
	// Generation 1 with a delay that never comes: it is ready at its
	// READY=1, which tells hupd that the program speaks sd_notify.
	h := newSupervisorUnderTest(t, []string{"ready", "extend"}, func(o *Options) {
		o.Ready = Readiness{Kind: ReadyAuto, Delay: time.Hour, Timeout: waitLimit}
	}).run()
	if h.ready(1); h.logged(logev.ChildReady, 1, 1).attrs[KeyReady] != "READY=1" {
		t.Fatal("generation 1 not ready by READY=1")
	}
	// The next generations get a delay that passes at once (a readiness
	// change applies to the generations to come).
	next := h.opts
	next.Ready.Delay = time.Millisecond
	if res, err := h.applyNow(Update{Options: next, Listen: specsOf(h.sockets)}); err != nil || res.Respawn {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	reload := h.reloadAsync(ActionReload, "test")
	pid2 := h.started(2)
	h.logged(logev.ReadyTimeoutExtended, 2, 1)
	h.kill(pid2, unix.SIGUSR2)
	if res := h.result(reload); !res.OK {
		t.Fatalf("reload: %+v", res)
	}
	if e := h.logged(logev.ChildReady, 2, 1); e.attrs[KeyReady] != "READY=1" {
		t.Fatalf("generation 2: %v", e)
	}
}

// TestExecReadinessProbe: a probe command that exits 0 makes the
// generation ready; it runs as a helper.
func TestExecReadinessProbe(t *testing.T) {
	bin := testBinary(t)
	h := newSupervisorUnderTest(t, []string{"silent"}, func(o *Options) {
		o.Ready = Readiness{Kind: ReadyExec, Command: []string{bin, "check:0"}, Interval: time.Millisecond, Timeout: waitLimit}
	}).run()
	h.ready(1)
	if e := h.logged(logev.ChildReady, 1, 1); e.attrs[KeyReady] != "probe succeeded" {
		t.Fatalf("ready: %v", e)
	}
	if n := len(h.spawner.recorded("helper")); n != 1 {
		t.Fatalf("%d probes run", n)
	}
}

// TestWatchdogKillsASilentGeneration: a generation that asked for a
// watchdog and does not ping it is killed, and the restart policy applies.
func TestWatchdogKillsASilentGeneration(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"watchdog", "ready"}, nil).run()
	h.ready(1)
	h.logged(logev.WatchdogTimeout, 1, 1)
	if e := h.exited(1); e.attrs[KeyStatus] != "killed by signal KILL" {
		t.Fatalf("generation 1: %v", e)
	}
	h.ready(2)
}

// TestExecReadinessProbePID: the probe's environment names the process it
// judges (HUPD_PID), so that it can tell the new generation from the one
// serving on the same sockets.
func TestExecReadinessProbePID(t *testing.T) {
	bin := testBinary(t)
	h := newSupervisorUnderTest(t, []string{"silent"}, func(o *Options) {
		o.Ready = Readiness{Kind: ReadyExec, Command: []string{bin, "check:0"}, Interval: time.Millisecond, Timeout: waitLimit}
	}).run()
	pid := h.ready(1)
	probes := h.spawner.recorded("helper")
	if len(probes) != 1 || envValue(probes[0].env, EnvPID) != strconv.Itoa(pid) {
		t.Fatalf("probe's %s=%q, want the generation's pid %d", EnvPID, envValue(probes[0].env, EnvPID), pid)
	}
}
