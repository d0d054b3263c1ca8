package supervisor

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// planNow plans u.
func (h *supervisorUnderTest) planNow(u Update) (Plan, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return h.sup.Plan(ctx, u)
}

// TestPlanThenApplyAgree: a plan names the settings that start a new
// generation, the socket it would open and the one it would close (after
// the generation using it drains), opens nothing itself, and the apply of
// the same update does exactly that.
func TestPlanThenApplyAgree(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil).run()
	h.ready(1)
	next := h.opts
	next.Env = append(slices.Clone(next.Env), "HUPD_TEST_APPLIED=1")
	next.StopTimeout = time.Minute
	next.Settle = time.Minute
	spec := newTestSpec(t)
	u := Update{Options: next, Listen: []socketact.Spec{spec}, Note: Note{Hash: "h2"}, Cause: "config changed"}
	p, err := h.planNow(u)
	if err != nil {
		t.Fatal(err)
	}
	if !p.NewGeneration || p.Strategy != StrategySwap || !slices.Equal(p.Differ, []string{"env", "sockets"}) ||
		!slices.Equal(p.Live, []string{"stop", "settle"}) {
		t.Fatalf("plan: %+v", p)
	}
	if len(p.Open) != 1 || p.Open[0].Address != spec.Address.String() || len(p.Keep) != 0 ||
		len(p.Close) != 1 || p.Close[0].Address != h.sockets[0].Bound.String() || !p.Close[0].Draining {
		t.Fatalf("plan's sockets: %+v", p)
	}
	if st := h.sup.Status(); len(st.Listeners) != 1 || st.Listeners[0].Address != h.sockets[0].Bound.String() || len(st.Generations) != 1 {
		t.Fatalf("planning changed something: %+v", st)
	}
	done := make(chan ReloadResult, 1)
	u.Done = done
	res, err := h.applyNow(u)
	if err != nil || res.Respawn != p.NewGeneration || res.Strategy != p.Strategy || !slices.Equal(res.Differ, p.Differ) ||
		len(res.Opened) != len(p.Open) || res.Opened[0].Spec.Address != spec.Address || res.Retired != len(p.Close) {
		t.Fatalf("apply %+v, %v disagrees with plan %+v", res, err, p)
	}
	if r := h.result(done); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v", r)
	}
	// Planned again, the configuration in force changes nothing.
	if p, err := h.planNow(u); err != nil || !p.Nothing() || len(p.Keep) != 1 {
		t.Fatalf("plan of the configuration in force: %+v, %v", p, err)
	}
}

// TestPlanKeptSocketNewOptions: a kept socket with a new backlog is
// reported kept with that option changed, and no new generation.
func TestPlanKeptSocketNewOptions(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil).run()
	h.ready(1)
	specs := specsOf(h.sockets)
	specs[0].Backlog = 7
	p, err := h.planNow(Update{Options: h.opts, Listen: specs})
	if err != nil || p.NewGeneration || len(p.Differ) != 0 || len(p.Open)+len(p.Close) != 0 ||
		len(p.Keep) != 1 || !slices.Equal(p.Keep[0].Changed, []string{"backlog"}) || p.Nothing() {
		t.Fatalf("plan: %+v, %v", p, err)
	}
	res, err := h.applyNow(Update{Options: h.opts, Listen: specs})
	if err != nil || res.Respawn || len(res.Opened) != 0 || res.Retired != 0 {
		t.Fatalf("apply: %+v, %v", res, err)
	}
}

// TestPlanRefusesWhatApplyRefuses: a kept socket that cannot take its new
// spec (reuseport is fixed once bound) is refused by both, with the same
// error.
func TestPlanRefusesWhatApplyRefuses(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil).run()
	h.ready(1)
	specs := specsOf(h.sockets)
	specs[0].ReusePort = !specs[0].ReusePort
	_, perr := h.planNow(Update{Options: h.opts, Listen: specs})
	_, aerr := h.applyNow(Update{Options: h.opts, Listen: specs})
	if !errors.Is(perr, socketact.ErrNeedsNewSocket) || perr.Error() != aerr.Error() {
		t.Fatalf("plan: %v, apply: %v", perr, aerr)
	}
}

// TestSocketsPlan: for a program that holds sockets but runs no
// generation, a spec of a held socket keeps it (with its changed options),
// a new address opens, and a held socket no spec takes closes at once.
func TestSocketsPlan(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil)
	held := h.sockets
	specs := specsOf(held)
	specs[0].Backlog = 7
	open := newTestSpec(t)
	p, err := SocketsPlan(held, []socketact.Spec{specs[0], open}, nil)
	if err != nil || p.NewGeneration || len(p.Keep) != 1 || p.Keep[0].Address != held[0].Bound.String() ||
		!slices.Equal(p.Keep[0].Changed, []string{"backlog"}) || len(p.Open) != 1 || p.Open[0].Address != open.Address.String() || len(p.Close) != 0 {
		t.Fatalf("keep and open: %+v, %v", p, err)
	}
	p, err = SocketsPlan(held, []socketact.Spec{open}, nil)
	if err != nil || len(p.Keep) != 0 || len(p.Open) != 1 || len(p.Close) != len(held) || p.Close[0].Address != held[0].Bound.String() || p.Close[0].Draining {
		t.Fatalf("open and close: %+v, %v", p, err)
	}
}

// TestPlanStopListsHeldSockets: PlanStop (a program removed from a hupd of
// several) lists every socket the supervisor holds: the one in force, and
// the one an edit dropped that a draining generation still uses (Plan
// leaves it out: it is closing already), each draining while a generation
// uses it; once that generation has exited, only the one in force.
func TestPlanStopListsHeldSockets(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ignore-term", "ready"}, nil).run()
	pid1 := h.ready(1)
	old, spec := h.sockets[0].Bound.String(), newTestSpec(t)
	done := make(chan ReloadResult, 1)
	if _, err := h.applyNow(Update{Options: h.opts, Listen: []socketact.Spec{spec}, Done: done}); err != nil {
		t.Fatal(err)
	}
	if r := h.result(done); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v", r)
	}
	h.logged(logev.Draining, 1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	p, err := h.sup.PlanStop(ctx)
	if err != nil || len(p.Close) != 2 || p.Close[0].Address != spec.Address.String() || p.Close[1].Address != old ||
		!p.Close[0].Draining || !p.Close[1].Draining || p.NewGeneration || len(p.Open)+len(p.Keep) != 0 {
		t.Fatalf("stop plan with generation 1 draining on %s: %+v, %v", old, p, err)
	}
	h.kill(pid1, unix.SIGKILL)
	h.logged(logev.ChildExited, 1, 1)
	if p, err := h.sup.PlanStop(ctx); err != nil || len(p.Close) != 1 || p.Close[0].Address != spec.Address.String() {
		t.Fatalf("stop plan once generation 1 exited: %+v, %v", p, err)
	}
}
