package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

func init() {
	// rt-fake-server PATH: listens on the unix socket PATH and answers
	// every request line with a successful reload of generation 99, as an
	// impostor of hupd would. Prints "listening" once it accepts.
	childModes["rt-fake-server"] = func(args []string) {
		os.Remove(args[0])
		ln, err := net.Listen("unix", args[0])
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(1)
		}
		fmt.Println("listening")
		now := time.Now()
		rep, _ := json.Marshal(control.Reply{V: control.ProtocolVersion, OK: true, Reload: &supervisor.ReloadResult{
			OK: true, Strategy: supervisor.StrategySwap, OldGen: 98, OldPID: 1, NewGen: 99, NewPID: 2, Started: now, Finished: now}})
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(1)
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if _, err := br.ReadString('\n'); err != nil {
						return
					}
					c.Write(append(rep, '\n'))
				}
			}()
		}
	}
}

// rtHupd returns a "hupd run" command named name serving hello, with env
// added to the test's environment.
func rtHupd(name string, env ...string) *exec.Cmd {
	cmd := exec.Command(hupdBin, withJSONLog([]string{"run", "--name", name, "--listen", "http=tcp://127.0.0.1:0", "--", helloBin})...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// rtNoNotifyTemp fails t if tmp holds a hupd-notify-* directory.
func rtNoNotifyTemp(t *testing.T, tmp string) {
	t.Helper()
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "hupd-notify-") {
			t.Errorf("%s was created in TMPDIR: runtime files belong in the runtime directory", filepath.Join(tmp, e.Name()))
		}
	}
}

// TestRuntimeKill9Cleanup: hupd keeps its runtime files (the notify
// sockets) in NAME.d beside its control socket, never in TMPDIR. After
// kill -9 of hupd, its control socket and runtime files are left; the next
// hupd of the same name starts cleanly, removes them, and says so in one
// log line naming the dead hupd's PID. A clean exit leaves nothing.
func TestRuntimeKill9Cleanup(t *testing.T) {
	t.Parallel()
	tmp, xdg := t.TempDir(), t.TempDir()
	env := []string{"TMPDIR=" + tmp, "XDG_RUNTIME_DIR=" + xdg}
	sock := filepath.Join(xdg, "hupd", "rt.sock")
	rtDir := filepath.Join(xdg, "hupd", "rt.d")
	notify := filepath.Join(rtDir, "notify")

	h1 := StartHupdCmd(t, rtHupd("rt", env...))
	h1.WaitEvent(logev.ChildReady, 1, nil)
	child := h1.ChildPID(1)
	if fi, err := os.Lstat(filepath.Join(notify, "gen-1.sock")); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("generation 1's notify socket in %s: %v, %v", notify, fi, err)
	}
	rtNoNotifyTemp(t, tmp)
	h1.Signal(syscall.SIGKILL)
	h1.Wait()
	waitGone(t, child)
	for _, p := range []string{sock, notify} {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("after kill -9: %v; want the dead hupd's %s left behind", err, p)
		}
	}

	h2 := StartHupdCmd(t, rtHupd("rt", env...))
	e := h2.WaitEvent(logev.RuntimeCleanedUp, 1, nil)
	if e.Int("pid") != h1.Cmd.Process.Pid || e.Str("path") != rtDir {
		t.Errorf("cleanup logged %v: want pid %d, path %s", e, h1.Cmd.Process.Pid, rtDir)
	}
	for _, p := range []string{sock, notify} {
		if !strings.Contains(" "+e.Str("removed")+" ", " "+p+" ") {
			t.Errorf("cleanup removed %q: want %s among them", e.Str("removed"), p)
		}
	}
	h2.WaitEvent(logev.ChildReady, 1, nil)
	if out, code := hupdCtl(t, h2, "status"); code != 0 || !strings.Contains(out, "(pid "+strconv.Itoa(h2.Cmd.Process.Pid)+")") {
		t.Fatalf("hupd status after the restart: exit %d: %s", code, out)
	}
	if got := h2.Events(logev.RuntimeCleanedUp); len(got) != 1 {
		t.Errorf("%d cleanup lines, want 1", len(got))
	}
	if code := h2.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
	for _, p := range []string{sock, rtDir} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("after a clean exit %s is still there (%v)", p, err)
		}
	}
	rtNoNotifyTemp(t, tmp)
}

// TestRuntimeSecondInstanceRefused: a second hupd of the same name, while
// the first runs, fails at once with one line naming the first one's PID,
// before it opens a socket or starts a child; the first one is untouched.
// The first one's lock survives its in-place upgrade.
func TestRuntimeSecondInstanceRefused(t *testing.T) {
	t.Parallel()
	xdg := t.TempDir()
	sock := filepath.Join(xdg, "hupd", "twin.sock")
	h1 := StartHupdCmd(t, rtHupd("twin", "XDG_RUNTIME_DIR="+xdg))
	h1.WaitEvent(logev.ChildReady, 1, nil)
	child := h1.ChildPID(1)
	var before syscall.Stat_t
	if err := syscall.Lstat(sock, &before); err != nil {
		t.Fatal(err)
	}

	second := func(when string) {
		t.Helper()
		h2 := StartHupdCmd(t, rtHupd("twin", "XDG_RUNTIME_DIR="+xdg))
		if code := h2.Wait(); code != 1 {
			t.Fatalf("%s: second hupd exited %d, want 1", when, code)
		}
		want := fmt.Sprintf("hupd: hupd twin already running (pid %d)", h1.Cmd.Process.Pid)
		if msg := strings.TrimSpace(h2.Stderr()); !strings.HasPrefix(msg, want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: second hupd said %q, want one line starting %q", when, msg, want)
		}
		// Its log is JSON: so is its error, a record with its name.
		if raw := h2.RawStderr(); len(raw) != 0 {
			t.Errorf("%s: lines of the second hupd's stderr that are not JSON: %q", when, raw)
		}
		if evs := h2.Events(logev.Fatal); len(evs) != 1 || evs[0].Str(supervisor.KeyName) != "twin" || evs[0].Str("level") != "ERROR" {
			t.Errorf("%s: the second hupd's error records: %v, want one ERROR record named twin", when, evs)
		}
		for _, m := range []string{logev.Listening, logev.ChildStarted, logev.ControlSocket} {
			if n := len(h2.Events(m)); n != 0 {
				t.Errorf("%s: the refused hupd logged %q %d times: it half-started", when, m, n)
			}
		}
		var after syscall.Stat_t
		if err := syscall.Lstat(sock, &after); err != nil || after.Ino != before.Ino {
			t.Fatalf("%s: the first hupd's control socket was replaced or removed (%v)", when, err)
		}
		st := statusOf(t, h1)
		if pids := genPIDs(st); len(pids) != 1 || pids[0] != child {
			t.Fatalf("%s: the first hupd serves %v, want its child %d", when, pids, child)
		}
	}
	second("first start")
	if out, code := hupdCtl(t, h1, "upgrade"); code != 0 {
		t.Fatalf("hupd upgrade: exit %d: %s", code, out)
	}
	h1.WaitEvent(logev.Upgraded, 1, nil)
	if err := syscall.Lstat(sock, &before); err != nil {
		t.Fatal(err)
	}
	second("after an upgrade")
	if code := h1.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// rtLetNobodyIn makes dir and its parent (t.TempDir's, 0700) traversable.
func rtLetNobodyIn(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRuntimeUntrustedControlDir: the default control directory must be
// hupd's own: one owned by another user, a symbolic link, or one its group
// or others may write is refused with one line that names it and says to
// remove it or set XDG_RUNTIME_DIR or --control; nothing is started. Run
// as a non-root user without XDG_RUNTIME_DIR, hupd makes $TMPDIR/hupd-UID
// itself, 0700, and refuses one root made.
func TestRuntimeUntrustedControlDir(t *testing.T) {
	procNeedRoot(t)
	t.Parallel()
	const suffix = ": remove it, or set XDG_RUNTIME_DIR or --control"
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string) // makes dir, the control directory
		why     string
	}{
		{"foreign", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o700)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "is owned by uid 65534, not 0"},
		{"symlink", func(t *testing.T, dir string) {
			if err := os.Symlink(t.TempDir(), dir); err != nil { // root's own, 0700: only the link is wrong
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"world-writable", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o700)
			os.Chmod(dir, 0o777)
		}, "is writable by group or others (mode 0777)"},
		{"group-writable", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o700)
			os.Chmod(dir, 0o770)
		}, "is writable by group or others (mode 0770)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xdg := t.TempDir()
			dir := filepath.Join(xdg, "hupd")
			tc.prepare(t, dir)
			h := StartHupdCmd(t, rtHupd("u", "XDG_RUNTIME_DIR="+xdg))
			if code := h.Wait(); code != 1 {
				t.Fatalf("hupd exited %d, want 1", code)
			}
			want := "hupd: control directory " + dir + " " + tc.why + suffix
			if msg := strings.TrimSpace(h.Stderr()); msg != want {
				t.Errorf("hupd said %q, want %q", msg, want)
			}
			if n := len(h.Events(logev.ChildStarted)) + len(h.Events(logev.Listening)); n != 0 {
				t.Errorf("hupd half-started (%d events)", n)
			}
			if _, err := os.Lstat(filepath.Join(dir, "u.d")); err == nil {
				t.Errorf("hupd made its runtime directory in %s", dir)
			}
		})
	}

	asNobody := func(t *testing.T, tmp string) *Hupd {
		cmd := rtHupd("n", "TMPDIR="+tmp, "XDG_RUNTIME_DIR=")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		return StartHupdCmd(t, cmd)
	}
	t.Run("non-root made by root", func(t *testing.T) {
		tmp := t.TempDir()
		rtLetNobodyIn(t, tmp)
		os.Chmod(tmp, 0o777|os.ModeSticky)
		dir := filepath.Join(tmp, "hupd-65534")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		h := asNobody(t, tmp)
		if code := h.Wait(); code != 1 {
			t.Fatalf("hupd exited %d, want 1", code)
		}
		if want := "hupd: control directory " + dir + " is owned by uid 0, not 65534" + suffix; strings.TrimSpace(h.Stderr()) != want {
			t.Errorf("hupd said %q, want %q", h.Stderr(), want)
		}
	})
	t.Run("non-root makes its own", func(t *testing.T) {
		// Short: a notify socket's path must fit sockaddr_un.
		tmp, err := os.MkdirTemp("", "hupd-rt-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(tmp) })
		os.Chmod(tmp, 0o777|os.ModeSticky)
		h := asNobody(t, tmp)
		h.WaitEvent(logev.ChildReady, 1, nil)
		dir := filepath.Join(tmp, "hupd-65534")
		fi, err := os.Lstat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || fi.Mode().Perm() != 0o700 || st.Uid != 65534 {
			t.Errorf("%s: %v owned by uid %d, want a 0700 directory of uid 65534", dir, fi.Mode(), st.Uid)
		}
		if _, err := os.Lstat(filepath.Join(dir, "n.d", "notify", "gen-1.sock")); err != nil {
			t.Error(err)
		}
		rtNoNotifyTemp(t, tmp)
		if code := h.Stop(); code != 0 {
			t.Fatalf("hupd exited %d", code)
		}
	})
}

// TestControlClientRefusesStranger: the client believes only a control
// socket served by root or its own user (SO_PEERCRED), and only talks
// through a directory an attacker cannot control. An impostor running as
// nobody, on a socket in a sticky world-writable directory (as /tmp),
// answers "reload ok … gen 99": hupd reload must refuse with one line and
// a non-zero exit, printing nothing as if hupd had answered.
func TestControlClientRefusesStranger(t *testing.T) {
	procNeedRoot(t)
	t.Parallel()
	dir := t.TempDir()
	rtLetNobodyIn(t, dir)
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "fake.sock")
	fake := exec.Command(childCmd("rt-fake-server", sock)[0], childCmd("rt-fake-server", sock)[1:]...)
	fake.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := fake.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Process.Kill(); fake.Wait() })
	if line := newLineReader(out).Next(t); line != "listening" {
		t.Fatalf("fake server: %q", line)
	}

	run := func(env []string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(hupdBin, args...)
		cmd.Env = append(os.Environ(), env...)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}
	for _, args := range [][]string{{"reload", "--control", sock}, {"status", "--control", sock}} {
		stdout, stderr, code := run(nil, args...)
		want := fmt.Sprintf("hupd: control socket %s is served by uid 65534 (pid %d), not by root or uid 0: not a hupd of yours", sock, fake.Process.Pid)
		if code != 1 || stdout != "" || strings.TrimSpace(stderr) != want {
			t.Errorf("hupd %v: exit %d, stdout %q, stderr %q; want exit 1, no output, %q", args, code, stdout, stderr, want)
		}
	}

	// A directory the impostor owns is refused before connecting.
	own := filepath.Join(dir, "nobodys")
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(own, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(nil, "status", "--control", filepath.Join(own, "x.sock"))
	if want := "hupd: control directory " + own + " is owned by uid 65534, not root: choose another --control"; code != 1 || stdout != "" || strings.TrimSpace(stderr) != want {
		t.Errorf("status in nobody's directory: exit %d, stdout %q, stderr %q; want exit 1, %q", code, stdout, stderr, want)
	}
	// A default directory that is a symbolic link is refused too.
	xdg := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(xdg, "hupd")); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = run([]string{"XDG_RUNTIME_DIR=" + xdg}, "reload", "--name", "fake")
	if want := "is a symbolic link: remove it, or set XDG_RUNTIME_DIR or --control"; code != 1 || stdout != "" || !strings.HasSuffix(strings.TrimSpace(stderr), want) {
		t.Errorf("reload through a linked default directory: exit %d, stdout %q, stderr %q; want exit 1, ending %q", code, stdout, stderr, want)
	}
}

// rtShortTemp is a temp directory with a short path that every user may
// traverse (a notify socket's path must fit sockaddr_un).
func rtShortTemp(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "hupd-rt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRuntimeNotifyOtherUser: a child dropped to nobody reaches its notify
// socket (READY=1 counts). When it can traverse to the runtime directory
// (root's control directory is 0711), the socket is there, chowned to
// nobody. When it cannot (a 0700 directory on the way, as a usual
// $XDG_RUNTIME_DIR), the sockets go to a hupd-notify-* directory in TMPDIR
// that the runtime directory names, and a start after kill -9 removes it.
func TestRuntimeNotifyOtherUser(t *testing.T) {
	procNeedRoot(t)
	t.Parallel()
	start := func(t *testing.T, env ...string) *Hupd {
		cmd := exec.Command(hupdBin, withJSONLog([]string{"run", "--name", "nu", "--user", "nobody", "--ready", "notify",
			"--listen", "http=tcp://127.0.0.1:0", "--", helloBin})...)
		cmd.Env = append(os.Environ(), env...)
		h := StartHupdCmd(t, cmd)
		if e := h.WaitEvent(logev.ChildReady, 1, nil); e.Str("ready") != "READY=1" {
			t.Fatalf("child ready by %q, want READY=1", e.Str("ready"))
		}
		return h
	}
	t.Run("runtime directory", func(t *testing.T) {
		xdg, tmp := rtShortTemp(t), rtShortTemp(t)
		h := start(t, "XDG_RUNTIME_DIR="+xdg, "TMPDIR="+tmp)
		ctl := filepath.Join(xdg, "hupd")
		for p, want := range map[string]os.FileMode{
			ctl:                                  os.ModeDir | 0o711,
			filepath.Join(ctl, "nu.d"):           os.ModeDir | 0o711,
			filepath.Join(ctl, "nu.d", "notify"): os.ModeDir | 0o711,
			filepath.Join(ctl, "nu.d", "notify", "gen-1.sock"): os.ModeSocket | 0o600,
			filepath.Join(ctl, "nu.sock"):                      os.ModeSocket | 0o600,
		} {
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (os.ModeType | os.ModePerm); got != want {
				t.Errorf("%s: mode %v, want %v", p, got, want)
			}
			if uid := fi.Sys().(*syscall.Stat_t).Uid; strings.HasSuffix(p, "gen-1.sock") != (uid == 65534) {
				t.Errorf("%s is owned by uid %d", p, uid)
			}
		}
		rtNoNotifyTemp(t, tmp)
		if code := h.Stop(); code != 0 {
			t.Fatalf("hupd exited %d", code)
		}
	})
	t.Run("elsewhere", func(t *testing.T) {
		xdg, tmp := t.TempDir(), rtShortTemp(t) // t.TempDir: 0700, nobody cannot pass
		env := []string{"XDG_RUNTIME_DIR=" + xdg, "TMPDIR=" + tmp}
		h1 := start(t, env...)
		child := h1.ChildPID(1)
		link := filepath.Join(xdg, "hupd", "nu.d", "notify-elsewhere")
		dir, err := os.Readlink(link)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(dir) != tmp || !strings.HasPrefix(filepath.Base(dir), "hupd-notify-") {
			t.Fatalf("%s names %s, want a hupd-notify-* directory in %s", link, dir, tmp)
		}
		if _, err := os.Lstat(filepath.Join(dir, "gen-1.sock")); err != nil {
			t.Fatal(err)
		}
		h1.Signal(syscall.SIGKILL)
		h1.Wait()
		waitGone(t, child)
		h2 := start(t, env...)
		e := h2.WaitEvent(logev.RuntimeCleanedUp, 1, nil)
		if !strings.Contains(" "+e.Str("removed")+" ", " "+dir+" ") {
			t.Errorf("cleanup removed %q, want %s among them", e.Str("removed"), dir)
		}
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", dir, err)
		}
		if code := h2.Stop(); code != 0 {
			t.Fatalf("hupd exited %d", code)
		}
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Errorf("left in TMPDIR after a clean exit: %v", ents)
		}
	})
}
