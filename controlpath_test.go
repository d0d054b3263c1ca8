package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// fakeHupd answers the control protocol as a hupd called name would.
type fakeHupd struct {
	name   string
	pid    int
	reload func(context.Context) supervisor.ReloadResult
	// rollback answers rollback requests; nil refuses them as a hupd
	// with nothing settling does.
	rollback func(context.Context) supervisor.ReloadResult
	// status answers status requests; nil answers with the name, PID and
	// strategy alone.
	status func() supervisor.Status
	// scale answers scale requests; nil refuses them as a hupd with
	// nothing running does.
	scale func(ctx context.Context, n int) supervisor.ScaleResult
}

func (f *fakeHupd) Scale(ctx context.Context, n int) supervisor.ScaleResult {
	if f.scale != nil {
		return f.scale(ctx, n)
	}
	return supervisor.ScaleResult{To: n, Reason: "hupd is not running"}
}

func (f *fakeHupd) Rollback(ctx context.Context) supervisor.ReloadResult {
	if f.rollback != nil {
		return f.rollback(ctx)
	}
	return supervisor.ReloadResult{Strategy: supervisor.StrategyRollback, Reason: "no generation is settling: nothing to roll back to"}
}

func (f *fakeHupd) Reload(ctx context.Context) supervisor.ReloadResult {
	if f.reload != nil {
		return f.reload(ctx)
	}
	return supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap, NewGen: 2, NewPID: 20}
}
func (f *fakeHupd) Status() supervisor.Status {
	if f.status != nil {
		return f.status()
	}
	return supervisor.Status{Name: f.name, PID: f.pid, Strategy: supervisor.StrategySwap}
}
func (f *fakeHupd) Upgrade(context.Context, string) error { return context.Canceled }

// serveFake serves f on path until the test ends.
func serveFake(t *testing.T, path string, f *fakeHupd) {
	t.Helper()
	s, err := control.Listen(path, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
}

// controlDir points the default control directory at a new empty one.
func controlDir(t *testing.T) string {
	t.Helper()
	xdg, err := os.MkdirTemp("/tmp", "hupd-ctl-") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(xdg) })
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	t.Setenv(supervisor.EnvControl, "")
	return filepath.Join(xdg, "hupd")
}

// TestStatusFindsHupdByConfig: hupd status -c FILE talks to the hupd that
// FILE names (name, or the file's own name), not to another one running.
func TestStatusFindsHupdByConfig(t *testing.T) {
	controlDir(t)
	dir := t.TempDir()
	web := filepath.Join(dir, "web.toml")
	shop := filepath.Join(dir, "shop", "hupd.toml")
	named := filepath.Join(dir, "named.toml")
	os.MkdirAll(filepath.Dir(shop), 0o755)
	for p, body := range map[string]string{web: `command = ["python3"]`, shop: `command = ["python3"]`, named: "name = \"api\"\ncommand = [\"sh\"]"} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	serveFake(t, control.DefaultPath("web"), &fakeHupd{name: "web", pid: 11})
	serveFake(t, control.DefaultPath("shop"), &fakeHupd{name: "shop", pid: 12})
	serveFake(t, control.DefaultPath("api"), &fakeHupd{name: "api", pid: 13})
	for file, want := range map[string]string{web: "hupd web (pid 11)", shop: "hupd shop (pid 12)", named: "hupd api (pid 13)"} {
		code, out, errOut := runApp(t, "status", "-c", file)
		if code != 0 || !strings.HasPrefix(out, want) {
			t.Errorf("status -c %s: exit %d, stdout %q, stderr %q; want %q", file, code, out, errOut, want)
		}
	}
}

// TestSeveralHupdListed: with several hupd running and nothing to choose
// one, the client lists them (name, PID, socket) and exits 2 with one hint
// line; a stale socket next to one live hupd does not stand in the way.
func TestSeveralHupdListed(t *testing.T) {
	dir := controlDir(t)
	serveFake(t, control.DefaultPath("web"), &fakeHupd{name: "web", pid: 11})
	serveFake(t, control.DefaultPath("api"), &fakeHupd{name: "api", pid: 13})
	code, out, errOut := runApp(t, "status")
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 2 and nothing", code, out)
	}
	want := "NAME  PID  CONTROL\n" +
		"api   13   " + filepath.Join(dir, "api.sock") + "\n" +
		"web   11   " + filepath.Join(dir, "web.sock") + "\n" +
		"hupd: usage: 2 hupd instances run: choose one with --name NAME, -c FILE or --control PATH\n"
	if errOut != want {
		t.Errorf("stderr\n%s\nwant\n%s", errOut, want)
	}
}

// TestStaleSocketSkipped: one live hupd and a stale socket: the live one.
func TestStaleSocketSkipped(t *testing.T) {
	controlDir(t)
	serveFake(t, control.DefaultPath("web"), &fakeHupd{name: "web", pid: 11})
	stale := control.DefaultPath("gone")
	if err := os.WriteFile(stale, nil, 0o600); err != nil { // a path nobody listens on
		t.Fatal(err)
	}
	code, out, errOut := runApp(t, "status")
	if code != 0 || !strings.HasPrefix(out, "hupd web (pid 11)") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestNotRunningExitStatus: "not running" is exit 7 however the socket was
// looked for: --control, --name, -c, the empty default directory, one with
// only stale sockets.
func TestNotRunningExitStatus(t *testing.T) {
	dir := controlDir(t)
	cfg := filepath.Join(t.TempDir(), "web.toml")
	if err := os.WriteFile(cfg, []byte(`command = ["python3"]`), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(args ...string) {
		t.Helper()
		for _, cmd := range []string{"status", "reload", "upgrade"} {
			code, _, errOut := runApp(t, append([]string{cmd}, args...)...)
			if code != exitNotRunning || strings.Count(errOut, "\n") != 1 {
				t.Errorf("%s %q: exit %d, stderr %q; want %d and one line", cmd, args, code, errOut, exitNotRunning)
			}
		}
	}
	check() // no directory yet
	check("--control", filepath.Join(dir, "nope.sock"))
	check("--name", "nope")
	check("-c", cfg)
	os.MkdirAll(dir, 0o700)
	check()
	os.WriteFile(control.DefaultPath("a"), nil, 0o600)
	os.WriteFile(control.DefaultPath("b"), nil, 0o600)
	check()
}
