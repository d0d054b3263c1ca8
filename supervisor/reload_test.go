package supervisor

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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
	h.logged("readiness timeout extended", 2, 1) // it handles USR2 now
	second := h.reloadAsync(ActionReload, "second")
	h.logged("reload queued behind the one in progress", 0, 1)
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
