package supervisor

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

// TestSwapHandsOverToTheNewGeneration: a swap starts generation 2 with the
// held socket, and only once it is ready drains generation 1, whose exit
// (stop signal, exit 0) leaves generation 2 serving.
func TestSwapHandsOverToTheNewGeneration(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil).run()
	pid1 := h.ready(1)
	res := h.reload(ActionReload)
	if !res.OK || res.OldGen != 1 || res.OldPID != pid1 || res.NewGen != 2 || res.Strategy != StrategySwap {
		t.Fatalf("reload: %+v", res)
	}
	if e := h.exited(1); e.attrs["state"] != string(StateDraining) || e.attrs[KeyStatus] != "exit status 0" {
		t.Fatalf("generation 1 exit: %v", e)
	}
	if got := h.generations(); len(got) != 1 || got[2] != StateReady {
		t.Fatalf("generations after the swap: %v", got)
	}
	gens := h.spawner.recorded("generation")
	if len(gens) == 0 {
		t.Fatal("no generation started through the spawner")
	}
	first := gens[0]
	if first.sockets != 1 || envValue(first.env, "LISTEN_FDS") != "1" ||
		!strings.HasSuffix(envValue(first.env, "NOTIFY_SOCKET"), "gen-1.sock") || first.pid != pid1 {
		t.Fatalf("generation 1 started with %+v", first)
	}
	h.signal(unix.SIGTERM)
	if o := h.wait(); o.code != 0 || o.err != nil {
		t.Fatalf("Run: %+v", o)
	}
}

// TestReloadsArrivingDuringASwapCoalesce: two reloads asked for while a
// swap waits for its new generation run as one more swap once it is over,
// and both callers get that swap's result.
func TestReloadsArrivingDuringASwapCoalesce(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready", "extend", "ready"}, nil).run()
	h.ready(1)
	first := h.reloadAsync(ActionReload, "first")
	pid2 := h.started(2)
	h.logged(logev.ReadyTimeoutExtended, 2, 1) // it handles USR2 now
	second := h.reloadAsync(ActionReload, "second")
	h.logged(logev.ReloadQueued, 0, 1)
	third := h.reloadAsync(Action{Strategy: StrategySwap}, "third")
	h.kill(pid2, unix.SIGUSR2) // generation 2 says READY=1
	r1 := h.result(first)
	if !r1.OK || r1.NewGen != 2 || r1.Cause != "first" {
		t.Fatalf("first reload: %+v", r1)
	}
	r2, r3 := h.result(second), h.result(third)
	if !r2.OK || r2.NewGen != 3 || r2.OldGen != 2 || r2.Cause != "second; third" || r3.NewPID != r2.NewPID || r3.Cause != r2.Cause || !r3.OK {
		t.Fatalf("coalesced reloads: %+v and %+v", r2, r3)
	}
	if st := h.sup.Status(); st.Reloads != 2 || st.LastReload == nil || st.LastReload.NewGen != 3 {
		t.Fatalf("status after three requests: %d reloads, last %+v", st.Reloads, st.LastReload)
	}
}

// TestSignalReloadWaitsForReadyAfterReloading: with the signal strategy,
// a child that answers RELOADING=1 is done reloading at its READY=1; the
// first time within the acknowledgement window, later at once.
func TestSignalReloadWaitsForReadyAfterReloading(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"reloader"}, func(o *Options) { o.Reload = StrategySignal }).run()
	pid := h.ready(1)
	for i := range 2 {
		res := h.reload(ActionReload)
		if !res.OK || res.Strategy != StrategySignal || res.NewGen != 1 || res.NewPID != pid {
			t.Fatalf("reload %d: %+v", i+1, res)
		}
	}
	if n := len(h.events.matching(isMsg(logev.ReloadSignalSent, 1))); n != 2 {
		t.Fatalf("%d reload signals sent, want 2", n)
	}
	if len(h.spawner.recorded("generation")) != 1 {
		t.Fatal("a signal reload started a generation")
	}
}

// TestSignalReloadFailsWithoutReadyAfterReloading: RELOADING=1 and then
// nothing fails the reload at the readiness timeout; the child keeps
// serving.
func TestSignalReloadFailsWithoutReadyAfterReloading(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"stuck-reload"}, func(o *Options) {
		o.Reload, o.Ready.Timeout = StrategySignal, time.Second
	}).run()
	h.ready(1)
	res := h.reload(ActionReload)
	if res.OK || !strings.Contains(res.Reason, "RELOADING=1 without READY=1") {
		t.Fatalf("reload: %+v", res)
	}
	if got := h.generations(); got[1] != StateReady {
		t.Fatalf("generations: %v", got)
	}
}

// TestSignalReloadOfAChildWithoutNotify is done once the signal is
// delivered; a signal of the action's choosing goes instead of the
// configured one.
func TestSignalReloadOfAChildWithoutNotify(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"silent"}, func(o *Options) {
		o.Reload, o.Ready = StrategySignal, Readiness{Kind: ReadyDelay, Delay: time.Millisecond, Timeout: waitLimit}
	}).run()
	h.ready(1)
	if res := h.reload(Action{Strategy: StrategySignal, Signal: unix.SIGUSR2}); !res.OK {
		t.Fatalf("reload: %+v", res)
	}
	if e := h.logged(logev.ReloadSignalSent, 1, 1); e.attrs[KeySignal] != "USR2" {
		t.Fatalf("signal sent: %v", e)
	}
}

// TestSignalReloadWithoutAChild fails: there is nobody to signal.
func TestSignalReloadWithoutAChild(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready", "ready"}, func(o *Options) {
		o.Reload = StrategySignal
		o.Backoff = Backoff{Min: time.Hour, Max: time.Hour}
	}).run()
	pid := h.ready(1)
	h.kill(pid, unix.SIGUSR1) // crashes: the restart waits an hour
	h.logged(logev.RestartingChild, 0, 1)
	if res := h.reload(ActionReload); res.OK || res.Reason != "no child running" {
		t.Fatalf("reload: %+v", res)
	}
}

// TestReloadWaitsForADrainSlot: with MaxDraining 1 and a generation that
// ignores its stop signal still draining, the next swap waits for it to
// exit before it starts a generation.
func TestReloadWaitsForADrainSlot(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ignore-term", "ready"}, func(o *Options) { o.MaxDraining = 1 }).run()
	pid1 := h.ready(1)
	if res := h.reload(ActionReload); !res.OK || res.NewGen != 2 {
		t.Fatalf("first reload: %+v", res)
	}
	h.logged(logev.Draining, 1, 1)
	second := h.reloadAsync(ActionReload, "second")
	h.logged(logev.ReloadQueued, 0, 1)
	// Queued at once (above), and nothing but generation 1's exit frees
	// a slot.
	if h.events.order(isMsg("hook started", 3)) >= 0 {
		t.Fatal("generation 3 started while no drain slot was free")
	}
	h.kill(pid1, unix.SIGKILL)
	res := h.result(second)
	if !res.OK || res.NewGen != 3 {
		t.Fatalf("second reload: %+v", res)
	}
	exit1 := h.events.order(isMsg(logev.ChildExited, 1))
	start3 := h.events.order(isMsg("hook started", 3))
	if exit1 < 0 || start3 < exit1 {
		t.Fatalf("generation 3 started (event %d) before generation 1 left its drain slot (event %d)", start3, exit1)
	}
}

// TestMainPIDHandOver: a child that names another process with MAINPID=
// and exits hands the generation over to it: status shows it, hupd
// follows it, and the stop signal reaches it.
func TestMainPIDHandOver(t *testing.T) {
	becomeSubreaper(t) // its reaper tells the followed process's status
	h := newSupervisorUnderTest(t, []string{"mainpid"}, nil).run()
	started := h.ready(1)
	main := h.sup.Status().Generations[0].PID
	if main == started || main <= 0 {
		t.Fatalf("status pid %d after MAINPID= (started %d)", main, started)
	}
	h.kill(started, unix.SIGUSR2) // the one started leaves
	if e := h.logged(logev.MainExitFollow, 1, 1); e.int(KeyPID) != main || e.int(KeyOldPID) != started {
		t.Fatalf("followed: %v", e)
	}
	if g := h.sup.Status().Generations; len(g) != 1 || g[0].PID != main || g[0].State != StateReady {
		t.Fatalf("generations after the hand-over: %+v", g)
	}
	h.signal(unix.SIGTERM)
	if o := h.wait(); o.err != nil || o.code != 0 {
		t.Fatalf("Run: %+v", o)
	}
	if e := h.exited(1); e.int(KeyPID) != main || e.attrs[KeyStatus] != "exit status 0" {
		t.Fatalf("generation 1 ended with %v, want its followed main process %d", e, main)
	}
}
