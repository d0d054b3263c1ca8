package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"golang.org/x/sys/unix"
)

// findConfig writes a hupd.toml at path that runs argv, judged ready by
// ready ("notify", "exec:…").
func findConfig(t *testing.T, path, ready string, argv ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	body := fmt.Sprintf("command = [%s]\n\n[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n\n[reload]\nstrategy = \"swap\"\nready = %q\n", strings.Join(quoted, ", "), ready)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// findClient runs a hupd client command with env (the shared runtime
// directory) and returns its exit status, stdout and stderr.
func findClient(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(hupdBin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if code < 0 {
		t.Fatalf("hupd %s: %v", strings.Join(args, " "), err)
	}
	return code, stdout.String(), stderr.String()
}

// TestFindByConfig: two hupd from two config files that run the same
// command get names of their own (the file's name; the directory's for a
// hupd.toml), so both run; status and reload -c FILE reach the right one;
// without a choice the client lists both and exits 2; a stopped one is
// "not running", exit 7, however it is looked for.
func TestFindByConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir(), "HUPD_CONTROL=")
	web, shop := filepath.Join(dir, "web.toml"), filepath.Join(dir, "shop", "hupd.toml")
	findConfig(t, web, "notify", helloBin)
	findConfig(t, shop, "notify", helloBin)
	start := func(cfg string) *Hupd {
		cmd := exec.Command(hupdBin, withJSONLog([]string{"run", "-c", cfg})...)
		cmd.Env = env
		h := StartHupdCmd(t, cmd)
		h.WaitEvent(logev.ChildReady, 1, nil)
		return h
	}
	hWeb, hShop := start(web), start(shop)

	for cfg, want := range map[string]string{web: fmt.Sprintf("hupd web (pid %d)", hWeb.Cmd.Process.Pid), shop: fmt.Sprintf("hupd shop (pid %d)", hShop.Cmd.Process.Pid)} {
		if code, out, errOut := findClient(t, env, "status", "-c", cfg); code != 0 || !strings.HasPrefix(out, want) {
			t.Errorf("status -c %s: exit %d, stdout %q, stderr %q; want %q", cfg, code, out, errOut, want)
		}
	}
	if code, out, errOut := findClient(t, env, "reload", "-c", shop); code != 0 || !strings.HasPrefix(out, "reload ok (swap): gen 1") || errOut != "" {
		t.Errorf("reload -c: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	hShop.WaitEvent(logev.ReloadDone, 1, nil)
	if n := len(hWeb.Events(logev.ReloadStarted)); n != 0 {
		t.Errorf("reload -c %s reloaded web too (%d reloads)", shop, n)
	}

	code, out, errOut := findClient(t, env, "status")
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if code != 2 || out != "" || len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.HasPrefix(lines[1], fmt.Sprintf("shop  %d ", hShop.Cmd.Process.Pid)) ||
		!strings.HasPrefix(lines[2], fmt.Sprintf("web   %d ", hWeb.Cmd.Process.Pid)) ||
		lines[3] != "hupd: usage: 2 hupd instances run: choose one with --name NAME, -c FILE or --control PATH" {
		t.Errorf("status with two running: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}

	if code := hWeb.Stop(); code != 0 {
		t.Fatalf("hupd web exited %d", code)
	}
	for _, args := range [][]string{{"status", "-c", web}, {"reload", "--name", "web"}, {"upgrade", "-c", web}} {
		if code, _, errOut := findClient(t, env, args...); code != 7 {
			t.Errorf("%q with web stopped: exit %d, stderr %q; want 7", args, code, errOut)
		}
	}
	// The one left is found without a choice.
	if code, out, _ := findClient(t, env, "status"); code != 0 || !strings.HasPrefix(out, "hupd shop") {
		t.Errorf("status with one running: exit %d, %q", code, out)
	}
}

// TestReloadTimeoutAndProgress: hupd reload --timeout that expires before
// the new generation is ready exits 3 and the reload goes on; a hupd reload
// whose stderr is a terminal shows the generation, PID and what it waits
// for on one updating line, and ends with the line cleared; both reloads
// complete.
func TestReloadTimeoutAndProgress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir(), "HUPD_CONTROL=")
	gate := filepath.Join(dir, "go")
	probe := filepath.Join(dir, "probe.sh")
	if err := os.WriteFile(probe, []byte("#!/bin/sh\nexec test -e "+gate+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "web.toml")
	findConfig(t, cfg, "exec:"+probe, childCmd("rd-silent")...) // never READY=1: the probe decides
	cmd := exec.Command(hupdBin, withJSONLog([]string{"run", "-c", cfg})...)
	cmd.Env = env
	h := StartHupdCmd(t, cmd)
	h.WaitEvent(logev.ChildReady, 1, nil)
	if err := os.Remove(gate); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := findClient(t, env, "reload", "-c", cfg, "--timeout", "1ms")
	if code != 3 || out != "" || errOut != "hupd: gave up waiting after 1ms; the reload goes on (hupd status shows how it ends)\n" {
		t.Fatalf("reload --timeout 1ms: exit %d, stdout %q, stderr %q; want 3", code, out, errOut)
	}
	started := h.WaitEvent(logev.ChildStarted, 1, func(e Event) bool { return e.Int("gen") == 2 })

	// A second reload joins the one in progress, its stderr a terminal.
	master, slave := openPty(t)
	rl := exec.Command(hupdBin, "reload", "-c", cfg)
	rl.Env = env
	var stdout bytes.Buffer
	rl.Stdout, rl.Stderr = &stdout, slave
	if err := rl.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var mu sync.Mutex
	var shown bytes.Buffer
	seen, eof := make(chan struct{}), make(chan struct{})
	want := fmt.Sprintf("\r\x1b[Kreload: gen 2 pid %d waiting for the probe %s, ", started.Int("pid"), probe)
	go func() {
		buf := make([]byte, 4096)
		once := sync.Once{}
		for {
			n, err := master.Read(buf)
			mu.Lock()
			shown.Write(buf[:n])
			if strings.Contains(shown.String(), want) {
				once.Do(func() { close(seen) })
			}
			mu.Unlock()
			if err != nil { // EIO once the reload, the last holder of the terminal, exits
				close(eof)
				return
			}
		}
	}()
	select {
	case <-seen:
	case <-time.After(30 * time.Second):
		mu.Lock()
		t.Fatalf("no progress line %q on the terminal; it shows %q", want, shown.String())
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rl.Wait(); err != nil {
		t.Fatalf("hupd reload: %v, stdout %q", err, stdout.String())
	}
	// It was queued behind the first one: gen 3 replaces gen 2.
	if !strings.HasPrefix(stdout.String(), "reload ok (swap): gen 2") {
		t.Errorf("reload stdout %q", stdout.String())
	}
	// Both end well (the one that timed out went on): waited for, as the
	// log may be read after the client's reply.
	h.WaitEvent(logev.ReloadDone, 2, nil)
	h.Sync()
	if n := len(h.Events(logev.ReloadFailed)); n != 0 {
		t.Errorf("%d reloads failed, want none", n)
	}
	<-eof
	mu.Lock()
	defer mu.Unlock()
	if s := shown.String(); !strings.HasSuffix(s, "\r\x1b[K") || strings.Contains(s, "\n") {
		t.Errorf("terminal got %q: want updates on one line, cleared at the end", s)
	}
}

// openPty opens a pseudo-terminal pair through /dev/ptmx.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// TestReloadPlainProgress: a hupd reload whose stderr is not a terminal (a
// pipe: a log, a CI job) writes plain lines, without \r or escape
// sequences: one once the new generation's PID is known, one after 5s of
// waiting; then its result.
func TestReloadPlainProgress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir(), "HUPD_CONTROL=")
	gate := filepath.Join(dir, "go")
	probe := filepath.Join(dir, "probe.sh")
	if err := os.WriteFile(probe, []byte("#!/bin/sh\nexec test -e "+gate+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "web.toml")
	findConfig(t, cfg, "exec:"+probe, childCmd("rd-silent")...)
	cmd := exec.Command(hupdBin, withJSONLog([]string{"run", "-c", cfg})...)
	cmd.Env = env
	h := StartHupdCmd(t, cmd)
	h.WaitEvent(logev.ChildReady, 1, nil)
	if err := os.Remove(gate); err != nil {
		t.Fatal(err)
	}

	rl := exec.Command(hupdBin, "reload", "-c", cfg)
	rl.Env = env
	var stdout bytes.Buffer
	rl.Stdout = &stdout
	stderr, err := rl.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.Start(); err != nil {
		t.Fatal(err)
	}
	lines := newLineReader(stderr)
	pid := h.WaitEvent(logev.ChildStarted, 1, func(e Event) bool { return e.Int("gen") == 2 }).Int("pid")
	for _, want := range []string{
		fmt.Sprintf("reload: gen 2 pid %d started, waiting for the probe %s (timeout 1m0s)", pid, probe),
		fmt.Sprintf("reload: gen 2 pid %d waiting for the probe %s, 5s of 1m0s", pid, probe),
	} {
		if got := lines.Next(t); got != want {
			t.Fatalf("hupd reload's stderr: %q, want %q", got, want)
		}
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	lines.wait()
	if err := rl.Wait(); err != nil {
		t.Fatalf("hupd reload: %v, stdout %q", err, stdout.String())
	}
	if !strings.HasPrefix(stdout.String(), "reload ok (swap): gen 1") {
		t.Errorf("reload stdout %q", stdout.String())
	}
	for _, l := range lines.RawLines() {
		if strings.ContainsAny(l, "\r\x1b") {
			t.Errorf("hupd reload's stderr has a control character: %q", l)
		}
	}
}
