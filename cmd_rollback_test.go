package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// TestRollbackExitStatus: hupd rollback exits 0 with a line naming the
// generation that serves again, 1 with the reason on one line when the
// rollback failed, prints the result as JSON with --json, and exits
// exitNotRunning when no hupd answers.
func TestRollbackExitStatus(t *testing.T) {
	controlDir(t)
	if code, _, errOut := runApp(t, "rollback", "--name", "web"); code != exitNotRunning || !strings.Contains(errOut, "not running") {
		t.Errorf("not running: exit %d, stderr %q", code, errOut)
	}
	f := &fakeHupd{name: "web", pid: 11}
	serveFake(t, control.DefaultPath("web"), f)
	start := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	f.rollback = func(context.Context) supervisor.ReloadResult {
		return supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategyRollback, OldGen: 2, OldPID: 200, NewGen: 1, NewPID: 100,
			Started: start, Finished: start.Add(3 * time.Millisecond)}
	}
	if code, out, errOut := runApp(t, "rollback"); code != 0 || out != "rollback ok: gen 1 pid 100 serves again (gen 2 pid 200 stops), took 3ms\n" || errOut != "" {
		t.Errorf("done: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ := runApp(t, "rollback", "--json"); code != 0 || !strings.HasPrefix(out, `{"ok":true,"strategy":"rollback","old_gen":2,"old_pid":200,"new_gen":1,"new_pid":100,`) {
		t.Errorf("--json: exit %d, stdout %q", code, out)
	}
	f.rollback = nil
	if code, out, errOut := runApp(t, "rollback", "--name", "web"); code != 1 || out != "" || errOut != "hupd: rollback failed: no generation is settling: nothing to roll back to\n" {
		t.Errorf("failed: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	f.rollback = func(context.Context) supervisor.ReloadResult {
		return supervisor.ReloadResult{Strategy: supervisor.StrategyRollback, Reason: "a reload\nis in progress\x1b[2J"}
	}
	if code, _, errOut := runApp(t, "rollback", "--json"); code != 1 || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "\x1b") {
		t.Errorf("a reason with control characters: exit %d, stderr %q; want one escaped line", code, errOut)
	}
}
