package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// TestProgressText pins the line hupd reload updates on a terminal.
func TestProgressText(t *testing.T) {
	d := func(v time.Duration) supervisor.Duration { return supervisor.Duration(v) }
	for _, tc := range []struct {
		p    control.Progress
		want string
	}{
		{control.Progress{Elapsed: d(320 * time.Millisecond)}, "reload: waiting for the new generation to start, 300ms"},
		{control.Progress{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(1234 * time.Millisecond), Timeout: d(time.Minute)},
			"reload: gen 2 pid 4242 waiting for READY=1, 1.2s of 1m0s"},
		{control.Progress{Gen: 3, PID: 7, Ready: "auto", Elapsed: d(0), Timeout: d(90 * time.Second)}, "reload: gen 3 pid 7 waiting for READY=1, 0s of 1m30s"},
		{control.Progress{Gen: 3, PID: 7, Ready: "delay:2s", Elapsed: d(time.Second)}, "reload: gen 3 pid 7 waiting for its 2s delay, 1s"},
		{control.Progress{Gen: 3, PID: 7, Ready: "exec:curl -fsS http://x/\x1b[2J", Elapsed: d(time.Second), Timeout: d(time.Minute)},
			`reload: gen 3 pid 7 waiting for the probe "curl -fsS http://x/\x1b[2J", 1s of 1m0s`},
		{control.Progress{Gen: 3, PID: 7, Ready: "listen", Elapsed: d(time.Second), Timeout: d(time.Minute)}, "reload: gen 3 pid 7 waiting for listen() on every socket, 1s of 1m0s"},
		{control.Progress{Gen: 3, PID: 7, Elapsed: d(time.Second)}, "reload: gen 3 pid 7 waiting for readiness, 1s"},
	} {
		if got := progressText(tc.p); got != tc.want {
			t.Errorf("progressText(%+v)\n got %q\nwant %q", tc.p, got, tc.want)
		}
	}
}

// TestPlainProgress pins hupd reload's progress when stderr is not a
// terminal: a line when the new generation becomes known, then one each
// time the wait passes another 5s, whole lines without escape sequences.
func TestPlainProgress(t *testing.T) {
	d := func(v time.Duration) supervisor.Duration { return supervisor.Duration(v) }
	var b strings.Builder
	on := plainProgress(&b)
	for _, p := range []control.Progress{
		{Elapsed: d(250 * time.Millisecond)}, // queued: nothing yet
		{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(10 * time.Millisecond), Timeout: d(time.Minute)},
		{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(260 * time.Millisecond), Timeout: d(time.Minute)},
		{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(4990 * time.Millisecond), Timeout: d(time.Minute)},
		{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(5240 * time.Millisecond), Timeout: d(time.Minute)},
		{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(5490 * time.Millisecond), Timeout: d(time.Minute)},
		{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(10100 * time.Millisecond), Timeout: d(time.Minute)},
		{Gen: 3, PID: 4300, Ready: "exec:probe \x1b[2J", Elapsed: d(20 * time.Millisecond)},
		{Gen: 3, PID: 4300, Ready: "exec:probe \x1b[2J", Elapsed: d(5100 * time.Millisecond)},
	} {
		on(p)
	}
	// Nothing for the first second (a quick reload is silent), then the
	// generation once, then one line each 5 s.
	want := "reload: gen 2 pid 4242 started, waiting for READY=1 (timeout 1m0s)\n" +
		"reload: gen 2 pid 4242 waiting for READY=1, 5s of 1m0s\n" +
		"reload: gen 2 pid 4242 waiting for READY=1, 10s of 1m0s\n" +
		"reload: gen 3 pid 4300 started, waiting for the probe \"probe \\x1b[2J\"\n"
	if b.String() != want {
		t.Errorf("plain progress\n got %q\nwant %q", b.String(), want)
	}
}

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
