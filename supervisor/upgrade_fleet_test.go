package supervisor

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/logev"
)

// TestFleetUpgradeFreezesAndHandsOver: the upgrade of several programs'
// supervisors checks the new binary once, asking whether it takes several
// programs over; each supervisor frozen answers nothing until thawed;
// the one state handed over at the exec has hupd's own fields once and
// each program's generations in its part, every fd open across the exec;
// after the failed exec both thaw and reload.
func TestFleetUpgradeFreezesAndHandsOver(t *testing.T) {
	t.Setenv(upgradeHelperEnv, "compatible")
	a := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Argv = upgradeArgv }).run()
	b := newSupervisorUnderTest(t, []string{"ready"}, nil).run()
	pa, pb := a.ready(1), b.ready(1)
	bin := testBinary(t)
	guarded := false
	path, exe, err := a.sup.CheckFleetUpgrade(bin, func() error { guarded = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	helpers := a.spawner.recorded("helper")
	if len(helpers) != 2 || strings.Join(helpers[0].args, " ") != bin+" upgrade-protocol programs" ||
		strings.Join(helpers[1].args, " ") != bin+" check --listen tcp://127.0.0.1:0" || !guarded || path != bin {
		t.Fatalf("checks run: %+v (guarded %v)", helpers, guarded)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	fa, err := a.sup.FreezeForUpgrade(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fa.Thaw) // a failed test lets Run return
	fb, err := b.sup.FreezeForUpgrade(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fb.Thaw)
	answered := make(chan Status, 1)
	go func() { answered <- a.sup.Status() }()
	socks := []int{fdNum(a.sockets[0].File), fdNum(b.sockets[0].File)}
	var (
		state      *Upgrade
		openAtExec bool
	)
	a.spawner.beforeExec = func() {
		select {
		case <-answered:
			t.Error("a frozen supervisor answered a status request")
		default:
		}
		state, openAtExec = takeUpgradeAtExec(t, socks...)
		for _, fd := range socks { // as at the exec again, for the failed exec to undo
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
				t.Error(err)
			}
		}
	}
	frozen := []*Frozen{fa, fb}
	st := FleetUpgradeState(frozen, &contain.State{Reason: "test"}, &FleetState{NextID: 2,
		Programs: []ProgramState{{Name: "a", ID: 1, Ran: true, Part: fa.State}, {Name: "b", ID: 2, Ran: true, Part: fb.State}}})
	if err := ExecFleetUpgrade(st, path, exe, frozen); !errors.Is(err, errScriptedExec) {
		t.Fatalf("exec: %v, want the scripted exec failure", err)
	}
	if n := len(b.spawner.recorded("exec")); n != 0 {
		t.Fatalf("b's spawner asked to exec %d times: the first program's runs it", n)
	}
	if state == nil || state.Fleet == nil || len(state.Fleet.Programs) != 2 || !openAtExec || state.Exe <= 0 ||
		state.Upgrades != 1 || state.Cgroup == nil || state.Cgroup.Reason != "test" {
		t.Fatalf("state at the exec: %+v (fds open across it: %v)", state, openAtExec)
	}
	for i, pid := range []int{pa, pb} {
		part := state.Fleet.Programs[i].Part
		if part == nil || len(part.Gens) != 1 || part.Gens[0].PID != pid || part.Exe != 0 || part.Lock != 0 || part.Sentinel != nil ||
			part.Name != "" || part.Upgrades != 1 || len(part.Listeners) != 1 || part.Listeners[0].FD != socks[i] {
			t.Fatalf("program %d's part: %+v, want generation 1 (pid %d) on fd %d", i, part, pid, socks[i])
		}
	}
	if fds := state.fds(); !slices.Contains(fds, socks[0]) || !slices.Contains(fds, socks[1]) || slices.Contains(fds, 0) {
		t.Fatalf("fds of the state %v: want both programs' sockets %v and no 0", fds, socks)
	}
	fa.Thaw()
	fb.Thaw()
	fa.Thaw() // idempotent
	select {
	case st := <-answered:
		if len(st.Generations) != 1 {
			t.Fatalf("status after the thaw: %+v", st)
		}
	case <-ctx.Done():
		t.Fatal("no status after the thaw")
	}
	for _, h := range []*supervisorUnderTest{a, b} {
		if res := h.reload(ActionReload); !res.OK {
			t.Fatalf("reload after the failed upgrade: %+v", res)
		}
	}
}

// TestFleetUpgradeRefusals: a binary that answers the plain protocol only
// (an older hupd) is refused with one clear line; a supervisor with a
// reload in flight refuses to freeze, and goes on.
func TestFleetUpgradeRefusals(t *testing.T) {
	t.Setenv(upgradeHelperEnv, "older")
	bin := testBinary(t)
	h := newSupervisorUnderTest(t, []string{"ready", "extend"}, nil).run()
	h.ready(1)
	if _, _, err := h.sup.CheckFleetUpgrade(bin, nil); err == nil ||
		err.Error() != bin+` cannot take over several programs ([[program]]): it speaks "hupd-upgrade 1", not "hupd-upgrade 1 programs"` {
		t.Fatalf("check of an older binary: %v", err)
	}
	h.reloadAsync(ActionReload, "test")
	h.logged(logev.ReadyTimeoutExtended, 2, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if fz, err := h.sup.FreezeForUpgrade(ctx); fz != nil || err == nil || err.Error() != "a reload is in progress: try again when it is over" {
		t.Fatalf("freeze during a reload: %v, %v", fz, err)
	}
	if st := h.sup.Status(); len(st.Generations) != 2 {
		t.Fatalf("after the refused freeze: %+v", st)
	}
}
