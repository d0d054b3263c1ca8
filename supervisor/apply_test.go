package supervisor

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// specsOf is what ls were configured as: an Update that lists them keeps
// them.
func specsOf(ls []*socketact.Listener) []socketact.Spec {
	specs := make([]socketact.Spec, len(ls))
	for i, l := range ls {
		specs[i] = l.Spec
	}
	return specs
}

// newTestSpec is a unix socket in t's temporary directory: an address
// that no held socket has, so the supervisor opens it when an Update lists
// it.
func newTestSpec(t *testing.T) socketact.Spec {
	t.Helper()
	spec, err := socketact.ParseListenFlag("unix://" + filepath.Join(t.TempDir(), "new.sock"))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// applyNow applies u and returns its result.
func (h *supervisorUnderTest) applyNow(u Update) (ApplyResult, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return h.sup.Apply(ctx, u)
}

// TestApplyNewSocketsAndEnvironmentSwaps: a configuration that changes
// the child's environment and sockets starts a new generation with them;
// a socket it dropped stays open while the old generation uses it, and is
// closed once that one is gone.
func TestApplyNewSocketsAndEnvironmentSwaps(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil).run()
	h.ready(1)
	old := h.sockets[0]
	oldAddr := strings.TrimPrefix(old.Bound.String(), "tcp://")
	next := h.opts
	next.Env = append(slices.Clone(next.Env), "HUPD_TEST_APPLIED=1")
	done := make(chan ReloadResult, 1)
	res, err := h.applyNow(Update{Options: next, Listen: []socketact.Spec{newTestSpec(t)}, Note: Note{Hash: "h2"}, Cause: "config changed", Done: done})
	if err != nil || !res.Respawn || res.Strategy != StrategySwap || res.Retired != 1 || len(res.Opened) != 1 {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	added := res.Opened[0]
	r := h.result(done)
	if !r.OK || r.NewGen != 2 || r.Cause != "config changed" {
		t.Fatalf("reload: %+v", r)
	}
	if st := h.sup.Status(); len(st.Listeners) != 1 || st.Listeners[0].Address != added.Bound.String() || st.ConfigHash != "h2" {
		t.Fatalf("status: %+v", st)
	}
	// The standby made for the old sockets was discarded: generation 2
	// started from the new configuration.
	gens := h.spawner.recorded("generation")
	last := gens[len(gens)-1]
	if envValue(last.env, "HUPD_TEST_APPLIED") != "1" || last.sockets != 1 {
		t.Fatalf("generation 2 started with %+v", last)
	}
	h.exited(1)
	// Closed once generation 1, its last user, has exited.
	if c, err := net.DialTimeout("tcp", oldAddr, waitLimit); err == nil {
		c.Close()
		t.Fatal("the dropped socket still accepts connections")
	} else if !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("dial the dropped socket: %v", err)
	}
}

// TestApplyWithoutAChangeToTheCommand: a change that does not alter how a
// generation starts (the stop timeout) starts none; the running one takes
// the new configuration's hash.
func TestApplyWithoutAChangeToTheCommand(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil).run()
	h.ready(1)
	next := h.opts
	next.StopTimeout = time.Minute
	res, err := h.applyNow(Update{Options: next, Listen: specsOf(h.sockets), Note: Note{Hash: "h2"}})
	if err != nil || res.Respawn || res.Retired != 0 {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	if st := h.sup.Status(); st.ConfigHash != "h2" || len(st.Generations) != 1 {
		t.Fatalf("status: %+v", st)
	}
}

// TestApplyRefusals: invalid options, and a hupd that is stopping.
func TestApplyRefusals(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ignore-term"}, nil).run()
	h.ready(1)
	bad := h.opts
	bad.Reload = "sideways"
	if _, err := h.applyNow(Update{Options: bad, Listen: specsOf(h.sockets)}); err == nil {
		t.Fatal("invalid options applied")
	}
	h.signal(unix.SIGTERM)
	h.logged("hook stopping", 0, 1)
	if _, err := h.applyNow(Update{Options: h.opts, Listen: specsOf(h.sockets)}); !errors.Is(err, ErrStopping) {
		t.Fatalf("apply while stopping: %v", err)
	}
	h.signal(unix.SIGINT)
}

// TestApplyKeptHostNeedsNoLookup: a configuration that keeps a socket
// configured by a host name applies without looking the name up (a name
// server that fails must not refuse an edit that binds nothing new).
func TestApplyKeptHostNeedsNoLookup(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil)
	// Configured by a name that resolved when it was opened, and no
	// longer does.
	h.sockets[0].Spec.Address.Host = "hupd-gone.invalid"
	h.run()
	h.ready(1)
	next := h.opts
	next.StopTimeout = time.Minute
	if res, err := h.applyNow(Update{Options: next, Listen: specsOf(h.sockets)}); err != nil || len(res.Opened) != 0 {
		t.Fatalf("apply that keeps every socket: %+v, %v", res, err)
	}
}
