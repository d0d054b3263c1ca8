package integration

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// TestPlanThenApply: hupd plan -c on an edit (not yet saved) says what
// applying it would do: a new generation because the args and sockets
// differ, the socket it opens, the one it keeps, the one it closes once
// generation 1 drains, what applies live and what waits for a restart.
// Saved and reloaded, the edit does exactly that; planned again, it
// changes nothing. A bad edit exits 2 with one line.
func TestPlanThenApply(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
	w, conf := wtStartConf(t, dir, wtTOML([]string{"-tag", "v1", sent}, wtHTTP, wtListen("old", "unix://"+filepath.Join(dir, "old.sock")), wtWatch("", wtDebounce, sent)), "--watch-config=false")
	pid1 := w.ChildPID(1)
	httpAddr, oldAddr := w.Listening("http"), w.Listening("old")
	edit := `name = "plan-renamed"` + "\n" + wtTOML([]string{"-tag", "v2", sent}, wtHTTP, wtListen("admin", "tcp://127.0.0.1:0"), wtWatch("", wtDebounce, sent),
		"[process]\nstop_timeout = \"17s\"\n")
	editFile := writeFile(t, t.TempDir(), "edit.toml", edit)

	res := oneShot(t, dir, nil, "plan", "--control", w.ctl, "-c", editFile, "--json")
	var p supervisor.Plan
	if err := json.Unmarshal([]byte(res.stdout), &p); res.code != 0 || err != nil {
		t.Fatalf("plan --json: exit %d, %v; stdout %q, stderr %q", res.code, err, res.stdout, res.stderr)
	}
	if !p.NewGeneration || p.Strategy != supervisor.StrategySwap || !slices.Equal(p.Differ, []string{"args", "sockets"}) {
		t.Fatalf("plan %+v: want a swap because args and sockets differ", p)
	}
	if len(p.Open) != 1 || p.Open[0].Name != "admin" || len(p.Keep) != 1 || p.Keep[0].Address != httpAddr ||
		len(p.Close) != 1 || p.Close[0].Address != oldAddr || !p.Close[0].Draining {
		t.Fatalf("plan's sockets %+v: want admin opened, http (%s) kept, old (%s) closed after draining", p, httpAddr, oldAddr)
	}
	if !slices.Equal(p.Live, []string{"stop"}) ||
		!slices.ContainsFunc(p.Restart, func(s supervisor.PlanSetting) bool { return s.Setting == "name" && s.Configured == "plan-renamed" }) {
		t.Fatalf("plan %+v: want stop live, name after a restart", p)
	}
	text := oneShot(t, dir, nil, "plan", "--control", w.ctl, "-c", editFile)
	if text.code != 0 || !strings.Contains(text.stdout, "new generation: yes (swap), because these differ: args, sockets\n") ||
		!strings.Contains(text.stdout, "  close  old "+oldAddr+" (once the generations using it have drained)\n") {
		t.Fatalf("plan: exit %d, stdout:\n%s\nstderr: %s", text.code, text.stdout, text.stderr)
	}
	// Planning changed nothing.
	rcOnly(w, pid1)
	if n := len(w.Events(logev.Listening)); n != 2 {
		t.Fatalf("%d sockets opened, want the 2 of the start", n)
	}

	// Applied, the edit does what the plan said.
	wtWrite(t, conf, edit)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	rep, err := control.Call(ctx, w.ctl, control.Request{Cmd: control.CmdReload})
	if err != nil || rep.Reload == nil || !rep.Reload.OK {
		t.Fatalf("reload: %+v, %v", rep, err)
	}
	if e := rcApplied(w, 1, p.NewGeneration, len(p.Open), len(p.Close)); !slices.Equal(wtStrings(e, "differ"), p.Differ) {
		t.Fatalf("%v: want differ %q as planned", e, p.Differ)
	}
	if e := w.WaitEvent(logev.SettingNeedsRestart, 1, nil); e.Str("setting") != "name" {
		t.Fatalf("%v: want name", e)
	}
	if got := HostPort(w.Listening("admin")); got == "" || w.Listening("http") != httpAddr {
		t.Fatalf("admin %q, http %q (was %q)", got, w.Listening("http"), httpAddr)
	}

	// The configuration in force (hupd.toml as on disk): no new generation,
	// the sockets kept, and the new name still waits for a restart (a
	// later edit compared it with the name in force, and swapped to give
	// generations a control socket hupd does not have).
	if again := oneShot(t, dir, nil, "plan", "--control", w.ctl); again.code != 0 ||
		!strings.HasPrefix(again.stdout, "new generation: no (the running one goes on)\nsockets:\n  keep   http "+httpAddr+"\n  keep   admin ") ||
		!regexp.MustCompile(`\nneeds a hupd restart: name \(now [^,]+, configured plan-renamed\)\n`).MatchString(again.stdout) {
		t.Fatalf("plan of what runs: exit %d, stdout %q, stderr %q", again.code, again.stdout, again.stderr)
	}

	// A bad edit: exit 2, one line naming where, and nothing changes.
	bad := writeFile(t, t.TempDir(), "bad.toml", wtTOML([]string{sent}, wtHTTP, "[reload]\nstrategy = \"sideways\"\n"))
	if r := oneShot(t, dir, nil, "plan", "--control", w.ctl, "-c", bad); r.code != 2 || r.stdout != "" ||
		strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, filepath.Base(conf)+":") || !strings.Contains(r.stderr, "sideways") {
		t.Fatalf("bad plan: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := oneShot(t, dir, nil, "plan", "--control", w.ctl, "-c", writeFile(t, t.TempDir(), "x.toml", "command = [")); r.code != 2 ||
		strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "x.toml:1") {
		t.Fatalf("plan of a file that does not parse: exit %d, stderr %q", r.code, r.stderr)
	}
	w.sentinel(sent, 1)
	w.stop()
}
