package integration

import (
	"encoding/json"
	"testing"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// TestRollbackCLINothingSettles: `hupd rollback` against a running hupd
// with no generation settling (none ever did; then after a swap without
// --settle, whose old generation has exited) fails with exit status 1 and
// the reason on one line, prints the result with --json, and changes
// nothing: the serving generation serves on.
func TestRollbackCLINothingSettles(t *testing.T) {
	t.Parallel()
	s := swapStart(t, "", []string{"--ready", "notify"}, childCmd("swap-serve")...)
	s.ready(1)
	const says = "hupd: rollback failed: no generation is settling: nothing to roll back to\n"
	rollback := func(args ...string) oneShotResult {
		return oneShot(t, "", nil, append([]string{"rollback", "--control", s.ctl}, args...)...)
	}
	if r := rollback(); r.code != 1 || r.stdout != "" || r.stderr != says {
		t.Fatalf("hupd rollback with one generation: exit %d, stdout %q, stderr %q; want exit 1 and %q", r.code, r.stdout, r.stderr, says)
	}

	if r := s.reload(t); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v", r)
	}
	s.WaitEvent(logev.ChildExited, 1, swapGen(1))
	r := rollback("--json")
	var res supervisor.ReloadResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 1 || r.stderr != says {
		t.Fatalf("hupd rollback --json after a swap: exit %d, stdout %q (%v), stderr %q", r.code, r.stdout, err, r.stderr)
	}
	if res.OK || res.Strategy != supervisor.StrategyRollback || res.Reason == "" {
		t.Errorf("--json result %+v: want a failed rollback with its reason", res)
	}
	st := s.status(t)
	if len(st.Generations) != 1 || st.Generations[0].Gen != 2 || st.Generations[0].State != supervisor.StateReady {
		t.Errorf("after the refused rollback: generations %+v, want gen 2 ready alone", st.Generations)
	}
}
