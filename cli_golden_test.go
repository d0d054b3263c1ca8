package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// transcript is what a golden file of TestCLIGolden holds: each hupd run
// (its arguments, exit status, stdout and stderr, byte for byte), with
// the test's temporary directories written as the names in subst.
type transcript struct {
	b     strings.Builder
	subst []string // old, new pairs for strings.NewReplacer
}

// run runs hupd with args in this process and adds it to the transcript.
func (tr *transcript) run(t *testing.T, args ...string) {
	t.Helper()
	code, stdout, stderr := runApp(t, args...)
	r := strings.NewReplacer(tr.subst...)
	fmt.Fprintf(&tr.b, "$ hupd %s\nexit %d\n-- stdout --\n%s-- stderr --\n%s\n", r.Replace(strings.Join(args, " ")), code, r.Replace(stdout), r.Replace(stderr))
}

// note adds a line that says what the next runs show.
func (tr *transcript) note(s string) { fmt.Fprintf(&tr.b, "# %s\n", s) }

// cliEnv is an empty default control directory (its parent written as
// $XDG_RUNTIME_DIR in the transcript) and, with name, a fake hupd of that
// name answering on its default socket there.
func cliEnv(t *testing.T, name string) (*fakeHupd, *transcript) {
	t.Helper()
	dir := controlDir(t)
	tr := &transcript{subst: []string{filepath.Dir(dir), "$XDG_RUNTIME_DIR"}}
	if name == "" {
		return nil, tr
	}
	f := &fakeHupd{name: name, pid: 4100}
	serveFake(t, control.DefaultPath(name), f)
	return f, tr
}

// escapeTerminal shows what hupd writes to a terminal: carriage returns
// and escape sequences as Go escapes, one write per line.
func escapeTerminal(writes []string) string {
	r := strings.NewReplacer("\r", `\r`, "\x1b", `\x1b`, "\n", `\n`)
	var b strings.Builder
	for _, w := range writes {
		b.WriteString(r.Replace(w) + "\n")
	}
	return b.String()
}

// writes records each write to it.
type writes []string

func (w *writes) Write(p []byte) (int, error) { *w = append(*w, string(p)); return len(p), nil }

// TestCLIGolden pins what hupd's client commands print, as a user or a
// script reads it: each case's runs (exit status, stdout, stderr) against
// a fake hupd, in testdata/out/CASE.golden (go test -run
// 'TestCLIGolden/CASE' -update rewrites it).
func TestCLIGolden(t *testing.T) {
	start := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	d := func(v time.Duration) supervisor.Duration { return supervisor.Duration(v) }
	swapped := supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap, Cause: "hupd reload",
		OldGen: 1, OldPID: 4201, NewGen: 2, NewPID: 4202, Started: start, Finished: start.Add(1312 * time.Millisecond),
		ReadyAfter: d(1234 * time.Millisecond), ExecAfter: d(2 * time.Millisecond), HandoverTook: d(300 * time.Microsecond)}
	failed := supervisor.ReloadResult{Strategy: supervisor.StrategySwap, Cause: "hupd reload", OldGen: 1, OldPID: 4201, NewGen: 2, NewPID: 4202,
		Started: start, Finished: start.Add(80 * time.Millisecond),
		Reason: "gen 2 exited with status 1 before it was ready; gen 1 goes on serving",
		Output: []string{
			"Traceback (most recent call last):",
			"  File \"/srv/app/server.py\", line 12, in <module>",
			"OSError: [Errno 98] Address already in use",
			"evil \x1b]0;owned\x07",
		}}
	timedOut := func(ctx context.Context) supervisor.ReloadResult {
		ctx, cancel := supervisor.WaitContext(ctx) // the request's timeout, from now
		defer cancel()
		<-ctx.Done()
		return supervisor.ReloadResult{Strategy: supervisor.StrategySwap, Reason: "timed out waiting for the reload; it goes on", TimedOut: true, Started: start}
	}
	result := func(r supervisor.ReloadResult) func(context.Context) supervisor.ReloadResult {
		return func(context.Context) supervisor.ReloadResult { return r }
	}

	t.Run("reload-ok", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		tr.note("a swap: the new generation is ready, the old one stops")
		f.reload = result(swapped)
		tr.run(t, "reload")
		tr.note("--reload signal: the child reloads in place")
		f.reload = result(supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySignal, OldGen: 1, OldPID: 4201, NewGen: 1, NewPID: 4201,
			Started: start, Finished: start.Add(3 * time.Millisecond)})
		tr.run(t, "reload", "--name", "web")
		tr.note("--reload restart: the old generation stops, then the new one starts")
		f.reload = result(supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategyRestart, OldGen: 1, OldPID: 4201, NewGen: 2, NewPID: 4202,
			Started: start, Finished: start.Add(2500 * time.Millisecond), ReadyAfter: d(2100 * time.Millisecond)})
		tr.run(t, "reload", "--name", "web")
		golden(t, "out/reload-ok.golden", tr.b.String())
	})
	t.Run("reload-failed", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		tr.note("the new generation exited: the reason, then its last output lines (escaped)")
		f.reload = result(failed)
		tr.run(t, "reload")
		tr.note("a failure without output")
		f.reload = result(supervisor.ReloadResult{Strategy: supervisor.StrategySwap, Reason: "gen 3 not ready after 1m0s (READY=1); gen 2 goes on serving"})
		tr.run(t, "reload", "--quiet")
		golden(t, "out/reload-failed.golden", tr.b.String())
	})
	t.Run("reload-timeout", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		tr.note("--timeout expires before the outcome is known: exit 3, the reload goes on")
		f.reload = timedOut
		tr.run(t, "reload", "--timeout", "1ms")
		golden(t, "out/reload-timeout.golden", tr.b.String())
	})
	t.Run("reload-json", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		f.reload = result(swapped)
		tr.run(t, "reload", "--json")
		f.reload = result(failed)
		tr.run(t, "reload", "--json")
		f.reload = timedOut
		tr.run(t, "reload", "--json", "--timeout", "1ms")
		golden(t, "out/reload-json.golden", tr.b.String())
	})
	t.Run("reload-progress-plain", func(t *testing.T) {
		// stderr not a terminal: nothing within the first second (a quick
		// reload is silent), then the generation once, then a line each 5 s.
		var b bytes.Buffer
		on := plainProgress(&b)
		for _, p := range []control.Progress{
			{Elapsed: d(250 * time.Millisecond)}, // queued: nothing yet
			{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(10 * time.Millisecond), Timeout: d(time.Minute)},
			{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(260 * time.Millisecond), Timeout: d(time.Minute)},
			{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(1010 * time.Millisecond), Timeout: d(time.Minute)},
			{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(4990 * time.Millisecond), Timeout: d(time.Minute)},
			{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(5240 * time.Millisecond), Timeout: d(time.Minute)},
			{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(5490 * time.Millisecond), Timeout: d(time.Minute)},
			{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(10100 * time.Millisecond), Timeout: d(time.Minute)},
			{Gen: 3, PID: 4300, Ready: "exec:probe \x1b[2J", Elapsed: d(20 * time.Millisecond)},
			{Gen: 3, PID: 4300, Ready: "exec:probe \x1b[2J", Elapsed: d(1100 * time.Millisecond)},
			{Gen: 3, PID: 4300, Ready: "exec:probe \x1b[2J", Elapsed: d(5100 * time.Millisecond)},
			{Gen: 4, PID: 4400, Ready: "delay:2s", Elapsed: d(1500 * time.Millisecond)},
		} {
			on(p)
		}
		golden(t, "out/reload-progress-plain.golden", b.String())
	})
	t.Run("reload-progress-terminal", func(t *testing.T) {
		// stderr a terminal: one line rewritten in place, cleared once
		// the reply comes (each write on a line of the golden file).
		var w writes
		on := terminalProgress(&w)
		for _, p := range []control.Progress{
			{Elapsed: d(320 * time.Millisecond)},
			{Gen: 2, PID: 4242, Ready: "notify", Elapsed: d(1234 * time.Millisecond), Timeout: d(time.Minute)},
			{Gen: 3, PID: 7, Ready: "auto", Elapsed: d(0), Timeout: d(90 * time.Second)},
			{Gen: 3, PID: 7, Ready: "delay:2s", Elapsed: d(time.Second)},
			{Gen: 3, PID: 7, Ready: "exec:curl -fsS http://x/\x1b[2J", Elapsed: d(time.Second), Timeout: d(time.Minute)},
			{Gen: 3, PID: 7, Ready: "listen", Elapsed: d(time.Second), Timeout: d(time.Minute)},
			{Gen: 3, PID: 7, Elapsed: d(time.Second)},
		} {
			on(p)
		}
		w.Write([]byte(clearLine))
		golden(t, "out/reload-progress-terminal.golden", escapeTerminal(w))
	})

	t.Run("rollback-ok", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		f.rollback = result(supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategyRollback, OldGen: 2, OldPID: 4202, NewGen: 1, NewPID: 4201,
			Started: start, Finished: start.Add(3 * time.Millisecond)})
		tr.run(t, "rollback")
		golden(t, "out/rollback-ok.golden", tr.b.String())
	})
	t.Run("rollback-failed", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		tr.note("nothing settling (the fake answers as hupd does)")
		tr.run(t, "rollback")
		tr.note("a reason with control characters: one escaped line")
		f.rollback = result(supervisor.ReloadResult{Strategy: supervisor.StrategyRollback, Reason: "a reload\nis in progress\x1b[2J"})
		tr.run(t, "rollback", "--name", "web")
		golden(t, "out/rollback-failed.golden", tr.b.String())
	})
	t.Run("rollback-json", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		f.rollback = result(supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategyRollback, OldGen: 2, OldPID: 4202, NewGen: 1, NewPID: 4201,
			Started: start, Finished: start.Add(3 * time.Millisecond)})
		tr.run(t, "rollback", "--json")
		f.rollback = nil
		tr.run(t, "rollback", "--json")
		golden(t, "out/rollback-json.golden", tr.b.String())
	})

	scaled := func(from, to int, added, removed []int) supervisor.ScaleResult {
		return supervisor.ScaleResult{OK: true, From: from, To: to, Gen: 3, Started: start, Finished: start.Add(1450 * time.Millisecond), Added: added, Removed: removed}
	}
	scaleTo := func(r supervisor.ScaleResult) func(context.Context, int) supervisor.ScaleResult {
		return func(context.Context, int) supervisor.ScaleResult { return r }
	}
	t.Run("scale-ok", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		tr.note("up: the new instances are ready")
		f.scale = scaleTo(scaled(2, 4, []int{4303, 4304}, nil))
		tr.run(t, "scale", "4")
		tr.note("down: the highest-numbered instances are told to stop")
		f.scale = scaleTo(scaled(4, 1, nil, []int{4302, 4303, 4304}))
		tr.run(t, "scale", "--name", "web", "1")
		tr.note("up by one")
		f.scale = scaleTo(scaled(1, 2, []int{4302}, nil))
		tr.run(t, "scale", "2")
		tr.note("the number it runs already")
		f.scale = scaleTo(supervisor.ScaleResult{OK: true, From: 2, To: 2, Gen: 3, Started: start, Finished: start})
		tr.run(t, "scale", "2")
		tr.note("no generation runs (between a crash and its restart): the next one starts that many")
		f.scale = scaleTo(supervisor.ScaleResult{OK: true, From: 2, To: 3, Started: start, Finished: start})
		tr.run(t, "scale", "3")
		golden(t, "out/scale-ok.golden", tr.b.String())
	})
	t.Run("scale-failed", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		tr.note("a new instance failed: those started are stopped, the number stays")
		f.scale = scaleTo(supervisor.ScaleResult{From: 2, To: 4, Gen: 3, Started: start, Finished: start.Add(60 * time.Second),
			Reason: "instance 3 of gen 3 not ready after 1m0s (READY=1): the instances started are stopped, gen 3 runs 2 instances"})
		tr.run(t, "scale", "4")
		tr.note("a reason with control characters: one escaped line")
		f.scale = scaleTo(supervisor.ScaleResult{From: 2, To: 4, Reason: "a reload\nis in progress\x1b[2J"})
		tr.run(t, "scale", "4")
		golden(t, "out/scale-failed.golden", tr.b.String())
	})
	t.Run("scale-timeout", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		tr.note("--timeout expires before the outcome is known: exit 3, the scale goes on")
		f.scale = func(ctx context.Context, n int) supervisor.ScaleResult {
			ctx, cancel := supervisor.WaitContext(ctx) // the request's timeout, from now
			defer cancel()
			<-ctx.Done()
			return supervisor.ScaleResult{From: 2, To: n, Gen: 3, Reason: "timed out waiting for the scale; it goes on", TimedOut: true, Started: start}
		}
		tr.run(t, "scale", "--timeout", "1ms", "8")
		tr.run(t, "scale", "--timeout", "1ms", "--json", "8")
		golden(t, "out/scale-timeout.golden", tr.b.String())
	})
	t.Run("scale-json", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		f.scale = scaleTo(scaled(2, 4, []int{4303, 4304}, nil))
		tr.run(t, "scale", "--json", "4")
		f.scale = nil
		tr.run(t, "scale", "--json", "4")
		golden(t, "out/scale-json.golden", tr.b.String())
	})
	t.Run("scale-bad-input", func(t *testing.T) {
		f, tr := cliEnv(t, "web")
		asked := 0
		f.scale = func(context.Context, int) supervisor.ScaleResult { asked++; return supervisor.ScaleResult{} }
		tr.note("not a number of instances from 1 to 1024: a usage error, exit 2, nothing sent")
		for _, args := range [][]string{{"0"}, {"-1"}, {"--", "-1"}, {"1025"}, {"two"}, {"2.5"}, {" 3"}, {""}, {}, {"2", "3"}, {"4", "--json"}, {"--timeout", "5", "4"}} {
			tr.run(t, append([]string{"scale"}, args...)...)
		}
		if asked != 0 {
			t.Errorf("bad input sent %d scale requests", asked)
		}
		golden(t, "out/scale-bad-input.golden", tr.b.String())
	})

	cgroup := &supervisor.Containment{Mode: supervisor.ContainCgroup, Cgroup: "/sys/fs/cgroup/system.slice/web.service/hupd"}
	http := []supervisor.ListenerStatus{{FD: 3, Name: "http", Address: "tcp://127.0.0.1:8080"}}
	gen := func(g, pid int, state supervisor.State, uptime time.Duration) supervisor.GenerationStatus {
		return supervisor.GenerationStatus{Gen: g, PID: pid, State: state, Started: start, Uptime: d(uptime),
			ReadyAfter: d(412 * time.Millisecond), Processes: 1, MemoryBytes: 12900000, MemoryPeakBytes: 15 << 20, CPUSeconds: 1.25, ConfigHash: "3f9a2c1d"}
	}
	starting := func(g, pid int) supervisor.GenerationStatus {
		return supervisor.GenerationStatus{Gen: g, PID: pid, State: supervisor.StateStarting, Started: start, Uptime: d(2 * time.Second),
			Processes: 1, MemoryBytes: 900 << 10, MemoryPeakBytes: 900 << 10, CPUSeconds: 0.08, ConfigHash: "3f9a2c1d"}
	}
	instance := func(i, pid int, state supervisor.State, uptime time.Duration) supervisor.InstanceStatus {
		return supervisor.InstanceStatus{Index: i, PID: pid, State: state, Started: start, Uptime: d(uptime),
			ReadyAfter: d(412 * time.Millisecond), Processes: 1, MemoryBytes: 4300000, MemoryPeakBytes: 5 << 20, CPUSeconds: 0.42}
	}
	// withInstances is g running ins: what it uses is theirs, added up.
	withInstances := func(g supervisor.GenerationStatus, ins ...supervisor.InstanceStatus) supervisor.GenerationStatus {
		g.Instances = ins
		g.Processes, g.MemoryBytes, g.MemoryPeakBytes, g.CPUSeconds = 0, 0, 0, 0
		for _, in := range ins {
			g.Processes += in.Processes
			g.MemoryBytes += in.MemoryBytes
			g.MemoryPeakBytes += in.MemoryPeakBytes
			g.CPUSeconds += in.CPUSeconds
		}
		return g
	}
	for _, tc := range []struct {
		name string
		st   supervisor.Status
	}{
		{"status-ready", supervisor.Status{Strategy: supervisor.StrategySwap, Listeners: http, Containment: cgroup, StartLimit: "5/10s",
			Note:        supervisor.Note{Hash: "3f9a2c1d"},
			Generations: []supervisor.GenerationStatus{gen(1, 4201, supervisor.StateReady, 3*time.Hour+25*time.Minute)}}},
		{"status-swapping", supervisor.Status{Strategy: supervisor.StrategySwap, Listeners: http, Containment: cgroup, Reloads: 1,
			ConfigHash: "3f9a2c1d", Note: supervisor.Note{Hash: "7b1e04aa"},
			Generations: []supervisor.GenerationStatus{gen(1, 4201, supervisor.StateReady, time.Hour), starting(2, 4202)}}},
		{"status-settling", supervisor.Status{Strategy: supervisor.StrategySwap, Listeners: http, Containment: cgroup, Reloads: 2,
			Generations: []supervisor.GenerationStatus{
				func() supervisor.GenerationStatus {
					g := gen(1, 4201, supervisor.StateSettling, time.Hour)
					g.SettleLeft = d(24*time.Second + 600*time.Millisecond)
					return g
				}(),
				func() supervisor.GenerationStatus {
					g := gen(2, 4202, supervisor.StateSettling, 10*time.Minute)
					g.SettleLeft = d(1234 * time.Millisecond)
					return g
				}(),
				gen(3, 4203, supervisor.StateReady, 35*time.Second)}}},
		{"status-draining", supervisor.Status{Strategy: supervisor.StrategySwap, Listeners: http, Containment: cgroup, Reloads: 1,
			Generations: []supervisor.GenerationStatus{
				func() supervisor.GenerationStatus {
					g := gen(1, 4201, supervisor.StateDraining, time.Hour)
					g.Processes, g.StatusText = 3, "draining 12 connections"
					return g
				}(),
				gen(2, 4202, supervisor.StateReady, 4*time.Second)}}},
		{"status-start-failures", supervisor.Status{Strategy: supervisor.StrategySwap, Listeners: http, Containment: cgroup,
			Restarts: 3, StartLimit: "5/10s", StartFailures: 3,
			Generations: []supervisor.GenerationStatus{starting(4, 4230)}}},
		{"status-containment-fallback", supervisor.Status{Strategy: supervisor.StrategyRestart, Listeners: http,
			Containment: &supervisor.Containment{Mode: supervisor.ContainProcessGroup, Reason: "no writable cgroup v2 hierarchy at /sys/fs/cgroup"},
			Generations: []supervisor.GenerationStatus{gen(1, 4201, supervisor.StateReady, time.Minute)}}},
		{"status-instances", supervisor.Status{Strategy: supervisor.StrategySwap, Listeners: http, Containment: cgroup, Reloads: 1, Restarts: 2,
			Instances: 3, Note: supervisor.Note{Hash: "3f9a2c1d"},
			Generations: []supervisor.GenerationStatus{withInstances(gen(2, 4301, supervisor.StateReady, time.Hour),
				instance(0, 4301, supervisor.StateReady, time.Hour),
				instance(1, 4302, supervisor.StateReady, time.Hour),
				func() supervisor.InstanceStatus {
					in := supervisor.InstanceStatus{Index: 2, State: supervisor.StateExited, Restarts: 2, LastExit: "exit status 1", StatusText: "bind \x1b[2J"}
					return in
				}())}}},
		{"status-instances-swapping", supervisor.Status{Strategy: supervisor.StrategySwap, Listeners: http, Containment: cgroup, Reloads: 1,
			Instances: 2, Rolling: 1, ConfigHash: "3f9a2c1d", Note: supervisor.Note{Hash: "7b1e04aa"},
			Generations: []supervisor.GenerationStatus{
				withInstances(gen(1, 4201, supervisor.StateReady, time.Hour),
					instance(0, 4201, supervisor.StateReady, time.Hour),
					func() supervisor.InstanceStatus {
						in := instance(1, 4207, supervisor.StateReady, 20*time.Minute)
						in.Restarts, in.LastExit = 1, "killed by signal KILL"
						return in
					}()),
				withInstances(starting(2, 4301),
					instance(0, 4301, supervisor.StateReady, 2*time.Second),
					func() supervisor.InstanceStatus {
						in := instance(1, 4302, supervisor.StateStarting, 2*time.Second)
						in.StatusText = "loading"
						return in
					}())}}},
		{"status-listeners", supervisor.Status{Strategy: supervisor.StrategySwap, Containment: cgroup,
			Listeners: []supervisor.ListenerStatus{
				{FD: 3, Name: "http", Address: "tcp://0.0.0.0:80"},
				{FD: 4, Name: "https", Address: "tcp://[::]:443", Inherited: true},
				{FD: 5, Name: "admin", Address: "unix:///run/web/admin.sock"},
				{FD: 6, Name: "metrics", Address: "tcp://127.0.0.1:9100", Pending: true},
			},
			Generations: []supervisor.GenerationStatus{gen(1, 4201, supervisor.StateReady, time.Minute)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, tr := cliEnv(t, "web")
			f.status = func() supervisor.Status {
				st := tc.st
				st.Name, st.PID = f.name, f.pid
				return st
			}
			tr.run(t, "status")
			golden(t, "out/"+tc.name+".golden", tr.b.String())
		})
	}
	t.Run("status-last-reload", func(t *testing.T) {
		// The last reload and the watches say how long ago: from a
		// fixed now here (hupd status counts from its clock).
		now := start.Add(time.Hour)
		var b bytes.Buffer
		printStatus(&b, &supervisor.Status{Name: "web", PID: 4100, Strategy: supervisor.StrategySwap, Listeners: http, Containment: cgroup,
			Reloads: 4, Restarts: 1,
			ConfigHash: "3f9a2c1d", Note: supervisor.Note{Hash: "7b1e04aa", ConfigError: "hupd.toml:4: command: empty",
				Watches: []supervisor.WatchStatus{
					{Paths: []string{"/srv/app/config.yaml"}, Action: "reload", Hash: "c0ffee12", Changes: 3, LastChange: now.Add(-90 * time.Second)},
					{Paths: []string{"/srv/app/bin", "/srv/app/lib"}, Action: "reload", Hash: "0badf00d", Poll: d(2 * time.Second),
						Error: "open /srv/app/lib: permission denied"},
				}},
			Generations: []supervisor.GenerationStatus{gen(3, 4203, supervisor.StateReady, 20*time.Minute)},
			LastReload:  &failed,
		}, now)
		golden(t, "out/status-last-reload.golden", b.String())
	})

	t.Run("several-running", func(t *testing.T) {
		_, tr := cliEnv(t, "")
		serveFake(t, control.DefaultPath("web"), &fakeHupd{name: "web", pid: 4100})
		serveFake(t, control.DefaultPath("api"), &fakeHupd{name: "api", pid: 4300})
		if err := os.WriteFile(control.DefaultPath("gone"), nil, 0o600); err != nil { // a socket nobody listens on
			t.Fatal(err)
		}
		tr.note("nothing chooses one of them: the list (a stale socket's PID is -), exit 2")
		tr.run(t, "status")
		tr.run(t, "reload")
		golden(t, "out/several-running.golden", tr.b.String())
	})
	t.Run("not-running", func(t *testing.T) {
		_, tr := cliEnv(t, "")
		dir := control.DefaultPath("x")
		dir = filepath.Dir(dir)
		cfgDir := t.TempDir()
		tr.subst = append(tr.subst, cfgDir, "$CONFIG_DIR")
		cfg := filepath.Join(cfgDir, "shop.toml")
		if err := os.WriteFile(cfg, []byte(`command = ["python3"]`), 0o644); err != nil {
			t.Fatal(err)
		}
		tr.note("no control directory yet")
		tr.run(t, "status")
		tr.run(t, "status", "--name", "web")
		tr.run(t, "status", "-c", cfg)
		tr.run(t, "status", "--control", filepath.Join(dir, "web.sock"))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		tr.note("an empty control directory")
		tr.run(t, "status")
		tr.run(t, "reload", "--name", "web")
		tr.run(t, "rollback", "-c", cfg)
		tr.run(t, "logs", "--control", filepath.Join(dir, "web.sock"))
		for _, n := range []string{"web", "api"} {
			if err := os.WriteFile(control.DefaultPath(n), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		tr.note("stale sockets only")
		tr.run(t, "status")
		tr.run(t, "status", "--name", "web")
		tr.run(t, "upgrade", "--control", filepath.Join(dir, "web.sock"))
		golden(t, "out/not-running.golden", tr.b.String())
	})

	t.Run("did-you-mean", func(t *testing.T) {
		tr := &transcript{}
		tr.note("a mistyped command")
		for _, args := range [][]string{{"rnu"}, {"stauts", "--json"}, {"relaod"}, {"bogus"}} {
			tr.run(t, args...)
		}
		tr.note("a mistyped flag of hupd")
		tr.run(t, "--verison")
		tr.note("a mistyped flag of a command")
		for _, args := range [][]string{
			{"run", "--lisen", "tcp://:0"}, {"check", "--ready-timout", "1s"}, {"check", "--watchpoll", "1s"},
			{"check", "--conf", "x"}, {"reload", "--timout", "1s"}, {"status", "--jsn"}, {"demo", "--lisen", "x"},
			{"version", "--jsno"}, {"rollback", "--jsonn"}, {"logs", "--follw"},
		} {
			tr.run(t, args...)
		}
		tr.note("close to nothing: no guess")
		tr.run(t, "run", "-x")
		tr.run(t, "run", "--zzzzzz")
		golden(t, "out/did-you-mean.golden", tr.b.String())
	})

	t.Run("version", func(t *testing.T) {
		// The build info varies with the build: a fixed one, through
		// the function hupd version prints with.
		bi := &debug.BuildInfo{GoVersion: "go1.26.8", Path: "github.com/hupd/hupd", Main: debug.Module{Path: "github.com/hupd/hupd", Version: "(devel)"},
			Settings: []debug.BuildSetting{
				{Key: "GOARCH", Value: "amd64"}, {Key: "GOOS", Value: "linux"},
				{Key: "vcs", Value: "git"},
				{Key: "vcs.revision", Value: "9c6430a1b2c3d4e5f60718293a4b5c6d7e8f9012"},
				{Key: "vcs.time", Value: "2026-12-07T02:50:00Z"},
				{Key: "vcs.modified", Value: "true"},
			}}
		released := &debug.BuildInfo{GoVersion: "go1.26.8", Path: "github.com/hupd/hupd", Main: debug.Module{Path: "github.com/hupd/hupd", Version: "v1.4.0"},
			Settings: []debug.BuildSetting{{Key: "GOARCH", Value: "arm64"}, {Key: "GOOS", Value: "linux"}}}
		var b bytes.Buffer
		for _, c := range []struct {
			title string
			bi    *debug.BuildInfo
			json  bool
		}{
			{"a build from a checkout with uncommitted changes: hupd version", bi, false},
			{"the same: hupd version --json", bi, true},
			{"go install …@v1.4.0 (no VCS information): hupd version", released, false},
			{"the same: hupd version --json", released, true},
		} {
			fmt.Fprintf(&b, "# %s\n", c.title)
			if err := printVersion(&b, c.bi, c.json); err != nil {
				t.Fatal(err)
			}
		}
		golden(t, "out/version.golden", b.String())
	})
}
