package integration

import (
	"encoding/json"
	"strings"
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

// TestPlanSteerToggle: an edit that turns steering on for a socket hupd
// keeps is refused as a changed reuseport is: hupd plan exits 2 with one
// line naming where the address is configured, and saved, the edit is not
// applied (hupd reload fails, nothing changes). Steering a new address is
// planned as a socket to open.
func TestPlanSteerToggle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, conf := wtStartConf(t, dir, wtTOML(nil, wtHTTP), "--watch-config=false")
	pid1 := w.ChildPID(1)
	steered := wtTOML(nil, wtHTTP+"steer = true\n")
	const says = ": listen tcp://127.0.0.1:0: steer: socketact: option fixed once the socket is bound: keep it, or give the socket a new address\n"
	if r := oneShot(t, dir, nil, "plan", "--control", w.ctl, "-c", writeFile(t, t.TempDir(), "steer.toml", steered)); r.code != 2 || r.stdout != "" ||
		r.stderr != "hupd: "+conf+":4"+says {
		t.Fatalf("plan of steer on a kept socket: exit %d, stdout %q, stderr %q; want exit 2 and %q", r.code, r.stdout, r.stderr, conf+":4"+says)
	}
	added := wtTOML(nil, wtHTTP, wtListen("api", "tcp://127.0.0.1:0")+"steer = true\n")
	r := oneShot(t, dir, nil, "plan", "--control", w.ctl, "-c", writeFile(t, t.TempDir(), "added.toml", added), "--json")
	var p supervisor.Plan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 || len(p.Open) != 1 || p.Open[0].Name != "api" || len(p.Keep) != 1 {
		t.Fatalf("plan of a new steered socket: exit %d, %v, stdout %q, stderr %q; want api opened, http kept", r.code, err, r.stdout, r.stderr)
	}

	wtWrite(t, conf, steered)
	if r := oneShot(t, dir, nil, "reload", "--control", w.ctl); r.code != 1 || !strings.Contains(r.stderr, "hupd.toml not applied, nothing changed: "+conf+":4"+strings.TrimSuffix(says, "\n")) {
		t.Fatalf("reload of the saved edit: exit %d, stderr %q", r.code, r.stderr)
	}
	rcOnly(w, pid1)
}
