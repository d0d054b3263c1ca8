package main

import (
	"context"
	"strings"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// TestReloadExitStatus: hupd reload exits 0 when the reload is done, 1
// when it failed, 3 when the wait ended first (the reload goes on); a
// reload that ends before any progress line came prints none.
func TestReloadExitStatus(t *testing.T) {
	controlDir(t)
	f := &fakeHupd{name: "web", pid: 11}
	serveFake(t, control.DefaultPath("web"), f)
	f.reload = func(context.Context) supervisor.ReloadResult {
		return supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySignal, NewGen: 2, NewPID: 20}
	}
	if code, out, errOut := runApp(t, "reload"); code != 0 || !strings.HasPrefix(out, "reload ok (signal): gen 2 pid 20") || errOut != "" {
		t.Errorf("done: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	f.reload = func(context.Context) supervisor.ReloadResult {
		return supervisor.ReloadResult{Strategy: supervisor.StrategySwap, Reason: "new generation exited with status 3"}
	}
	if code, _, errOut := runApp(t, "reload", "--name", "web"); code != 1 || errOut != "hupd: reload failed: new generation exited with status 3\n" {
		t.Errorf("failed: exit %d, stderr %q", code, errOut)
	}
	f.reload = func(ctx context.Context) supervisor.ReloadResult {
		ctx, cancel := supervisor.WaitContext(ctx) // the request's timeout, from now
		defer cancel()
		<-ctx.Done()
		return supervisor.ReloadResult{Strategy: supervisor.StrategySwap, Reason: "timed out waiting for the reload; it goes on", TimedOut: true}
	}
	code, out, errOut := runApp(t, "reload", "--timeout", "1ms", "--json")
	if code != exitWaitEnded || errOut != "hupd: gave up waiting after 1ms; the reload goes on (hupd status shows how it ends)\n" || !strings.Contains(out, `"timed_out":true`) {
		t.Errorf("timed out: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
