package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
)

// Upgrading hupd in place: `hupd upgrade` (and SIGUSR2) re-executes hupd's
// binary in its own process, keeping the sockets, the generations, their
// notify sockets, output pipes and seccomp notify fds.

var (
	upgradeBinsOnce sync.Once
	upgradeV2       string // hupd built with version "2.0-upgrade-test"
	upgradeFailing  string // hupd that refuses to take over (and rolls back)
	upgradeBinsErr  error
)

// upgradeBins builds the two other hupd binaries the upgrade tests run,
// once.
func upgradeBins(t *testing.T) (v2, failing string) {
	t.Helper()
	upgradeBinsOnce.Do(func() {
		dir := filepath.Dir(hupdBin)
		upgradeV2, upgradeFailing = filepath.Join(dir, "hupd-v2"), filepath.Join(dir, "hupd-failing")
		for _, b := range [][2]string{
			{upgradeV2, "-X main.version=2.0-upgrade-test"},
			{upgradeFailing, "-X main.version=failing -X github.com/hupd/hupd/internal/run.failTakeOver=this-binary-refuses-to-take-over"},
		} {
			cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-ldflags", b[1], "-o", b[0], "..")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				upgradeBinsErr = &buildError{b[0], err, string(out)}
				return
			}
		}
	})
	if upgradeBinsErr != nil {
		t.Fatal(upgradeBinsErr)
	}
	return upgradeV2, upgradeFailing
}

type buildError struct {
	bin string
	err error
	out string
}

func (e *buildError) Error() string { return "building " + e.bin + ": " + e.err.Error() + "\n" + e.out }

// hupdCtl runs the hupd client with h's environment (its private runtime
// directory) and returns its stdout+stderr and exit code.
func hupdCtl(t *testing.T, h *Hupd, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(hupdBin, args...)
	cmd.Env = h.Cmd.Env
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("hupd %v: %v", args, err)
	}
	return string(out), code
}

func statusOf(t *testing.T, h *Hupd) map[string]any {
	t.Helper()
	out, code := hupdCtl(t, h, "status", "--json")
	if code != 0 {
		t.Fatalf("hupd status: %d %s", code, out)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status %q: %v", out, err)
	}
	return st
}

// genPIDs lists the PIDs of the generations in a status.
func genPIDs(st map[string]any) []int {
	var pids []int
	gens, _ := st["generations"].([]any)
	for _, g := range gens {
		if m, ok := g.(map[string]any); ok {
			p, _ := m["pid"].(float64)
			pids = append(pids, int(p))
		}
	}
	return pids
}

// leftovers lists what of an upgrade must not stay open in hupd: the state
// memfd and the previous binary.
func leftovers(t *testing.T, pid int) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, e := range ents {
		target, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + e.Name())
		if err != nil {
			continue
		}
		// The runtime directory's lock is held for hupd's whole life. (A
		// generation's cgroup, hupd-NAME-PID/gen-N, is held open by design:
		// processes are cloned into it.)
		lock := strings.HasSuffix(target, ".d/lock")
		if strings.Contains(target, "hupd-upgrade") || strings.Contains(target, "/hupd") && !strings.Contains(target, ".sock") && !lock &&
			!strings.HasPrefix(target, "/sys/fs/cgroup/") {
			bad = append(bad, e.Name()+" -> "+target)
		}
	}
	return bad
}

// linkedHupd links hupd's binary into a directory of its own and returns
// the link, for a test to rename a new version over (renameOver). Links,
// not copies: a file this process had open for writing could reach a
// child forked meanwhile and make the exec fail (ETXTBSY).
func linkedHupd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hupd")
	if err := os.Link(hupdBin, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// renameOver renames a link of src over bin, as a package upgrade puts a
// new version in place.
func renameOver(t *testing.T, src, bin string) {
	t.Helper()
	staged := filepath.Join(filepath.Dir(bin), ".hupd.new")
	if err := os.Link(src, staged); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(staged, bin); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeUnderLoad replaces hupd's binary on disk with a new version
// (a rename, as a package upgrade does) and runs `hupd upgrade` while a
// client makes a new connection per request; then the upgraded hupd swaps
// the child. No request fails; hupd's PID and the serving child's PID are
// unchanged by the upgrade; the new image reports the new version and has
// nothing of the hand-over left open; the child's output still reaches
// hupd's stdout; a second upgrade, by SIGUSR2, works too.
func TestUpgradeUnderLoad(t *testing.T) {
	t.Parallel()
	v2, _ := upgradeBins(t)
	bin := linkedHupd(t)
	h := StartHupdCmd(t, exec.Command(bin, withJSONLog([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--", helloBin})...))
	addr := HostPort(h.Listening("http"))
	h.WaitEvent(logev.ChildReady, 1, nil)
	child := h.ChildPID(1)
	before := statusOf(t, h)

	l := startLoad(t, "tcp", addr, func(body string) bool { return strings.HasPrefix(body, "pid ") }, false)
	renameOver(t, v2, bin) // the new version arrives on disk
	out, code := hupdCtl(t, h, "upgrade")
	want := "upgrade ok: hupd pid " + strconv.Itoa(h.Cmd.Process.Pid) + " now runs 2.0-upgrade-test (was "
	if code != 0 || !strings.HasPrefix(out, want) || !strings.Contains(out, "1 generation(s) kept") {
		t.Fatalf("hupd upgrade: exit %d: %q, want it to start %q", code, out, want)
	}
	if e := h.WaitEvent(logev.Upgraded, 1, nil); e.Int("generations") != 1 || e.Int("upgrades") != 1 {
		t.Fatalf("%v", e)
	}
	after := statusOf(t, h)
	if after["pid"] != before["pid"] || after["version"] != "2.0-upgrade-test" || after["upgrades"] != float64(1) {
		t.Fatalf("after the upgrade: pid %v version %v upgrades %v; before pid %v", after["pid"], after["version"], after["upgrades"], before["pid"])
	}
	if pids := genPIDs(after); len(pids) != 1 || pids[0] != child {
		t.Fatalf("generations %v after the upgrade, want the same child %d", pids, child)
	}
	if bad := leftovers(t, h.Cmd.Process.Pid); len(bad) > 0 {
		t.Errorf("left open by the upgrade: %v", bad)
	}

	// The upgraded hupd swaps: its new child and the old one's exit.
	if out, code := hupdCtl(t, h, "reload"); code != 0 || !strings.HasPrefix(out, "reload ok (swap)") {
		t.Fatalf("reload after the upgrade: %d %s", code, out)
	}
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	// hello logs to stderr; its drain line is copied by the new image
	// from the pipe the old one created.
	if !h.waitStderr("hello: pid " + strconv.Itoa(child) + " drained") {
		t.Fatalf("generation 1's last output never reached hupd's stderr:\n%s", h.Stderr())
	}

	h.Signal(syscall.SIGUSR2)
	h.WaitEvent(logev.Upgraded, 2, nil)
	// Logged before the new image's control socket listens: wait for it.
	h.WaitEvent(logev.ControlSocket, 3, nil)
	if out, code := hupdCtl(t, h, "reload"); code != 0 || !strings.HasPrefix(out, "reload ok (swap)") {
		t.Fatalf("reload after the second upgrade: %d %s", code, out)
	}
	n, _, bodies := l.finish("two upgrades and two swaps")
	t.Logf("%d requests across two upgrades and two swaps, answered by %d processes", n, len(bodies))
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// TestUpgradeRefused: a binary that is not executable, or not a hupd that
// speaks the upgrade protocol, is never exec'd: `hupd upgrade` fails with
// the reason and hupd serves on, unchanged.
func TestUpgradeRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	truth, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	h := StartHupd(t, "run", "--listen", "http=tcp://127.0.0.1:0", "--", helloBin)
	h.WaitEvent(logev.ChildReady, 1, nil)
	child := h.ChildPID(1)
	for _, tc := range []struct{ bin, says string }{
		{plain, "permission denied"},
		{truth, `speaks "", this hupd "hupd-upgrade 1": not compatible`},
	} {
		out, code := hupdCtl(t, h, "upgrade", "--binary", tc.bin)
		if code != 1 || !strings.Contains(out, "upgrade failed, hupd goes on as it was: ") || !strings.Contains(out, tc.says) || !strings.Contains(out, tc.bin) {
			t.Errorf("upgrade to %s: exit %d %q; want 1 and %q", tc.bin, code, out, tc.says)
		}
	}
	st := statusOf(t, h)
	if pids := genPIDs(st); len(pids) != 1 || pids[0] != child || st["upgrades"] != nil {
		t.Fatalf("after refused upgrades: generations %v upgrades %v", pids, st["upgrades"])
	}
	if body := fetch(t, "tcp", HostPort(h.Listening("http")), "/"); !strings.HasPrefix(body, "pid "+strconv.Itoa(child)) {
		t.Fatalf("body %q", body)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// TestUpgradeRollback: a new binary that passes the checks but cannot
// take the state over hands it back to the previous binary (kept open
// across the exec, so it does not matter what is on disk): no request
// fails, the child is unchanged, `hupd upgrade` says it failed, and the
// previous hupd goes on, swaps included.
func TestUpgradeRollback(t *testing.T) {
	t.Parallel()
	_, failing := upgradeBins(t)
	h := StartHupd(t, "run", "--listen", "http=tcp://127.0.0.1:0", "--", helloBin)
	addr := HostPort(h.Listening("http"))
	h.WaitEvent(logev.ChildReady, 1, nil)
	child := h.ChildPID(1)
	l := startLoad(t, "tcp", addr, func(body string) bool { return strings.HasPrefix(body, "pid ") }, false)
	out, code := hupdCtl(t, h, "upgrade", "--binary", failing)
	if code != 1 || !strings.Contains(out, "the new binary could not take over; the previous one took its state back") {
		t.Fatalf("upgrade to a failing binary: exit %d %q", code, out)
	}
	if e := h.WaitEvent(logev.UpgradeTakeOverFailed, 1, nil); !strings.Contains(e.Str("error"), "this-binary-refuses-to-take-over") {
		t.Fatalf("%v", e)
	}
	st := statusOf(t, h)
	if pids := genPIDs(st); len(pids) != 1 || pids[0] != child || st["rolled_back"] != true || st["version"] == "failing" {
		t.Fatalf("after the rollback: generations %v (want [%d]) rolled_back %v version %v", pids, child, st["rolled_back"], st["version"])
	}
	if out, code := hupdCtl(t, h, "reload"); code != 0 || !strings.HasPrefix(out, "reload ok (swap)") {
		t.Fatalf("reload after the rollback: %d %s", code, out)
	}
	l.finish("a failed upgrade and a swap")
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// TestUpgradeLegacy: in bind-redirection mode the seccomp notify fd of the
// serving generation survives the upgrade, and the upgraded hupd
// redirects the next generation's bind: a swap after the upgrade under a
// client making a new connection per request loses nothing.
func TestUpgradeLegacy(t *testing.T) {
	t.Parallel()
	h := StartHupd(t, "run", "--legacy", "redirect", "--listen", "http=tcp://:0", "--", goserverBin, "-addr", ":{port:http}")
	port := h.Listening("http")[strings.LastIndex(h.Listening("http"), ":")+1:]
	h.WaitEvent(logev.ChildReady, 1, nil)
	l := startLoad(t, "tcp", "127.0.0.1:"+port, func(body string) bool { return strings.HasPrefix(body, "goserver pid ") }, false)
	if out, code := hupdCtl(t, h, "upgrade"); code != 0 {
		t.Fatalf("upgrade: %d %s", code, out)
	}
	if out, code := hupdCtl(t, h, "reload"); code != 0 || !strings.HasPrefix(out, "reload ok (swap)") {
		t.Fatalf("reload after the upgrade: %d %s", code, out)
	}
	// Logged by the legacy server's goroutine: the reload's reply can come
	// before the test has read that line.
	h.WaitEvent(logev.BindRedirected, 2, nil)
	if n := len(h.Events(logev.BindRedirected)); n != 2 {
		t.Fatalf("%d binds redirected, want 2 (generation 2's by the upgraded hupd)", n)
	}
	// goserver made the shared socket non-blocking; the new image must not
	// have put it in its runtime's epoll (it would wake at every
	// connection).
	if polled := polledListeners(t, h.Cmd.Process.Pid); len(polled) > 0 {
		t.Errorf("the upgraded hupd polls its listening sockets: fds %v", polled)
	}
	l.finish("an upgrade and a swap")
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// TestUpgradeUnderSignals: signals keep arriving while hupd upgrades
// (USR1, whose default action would end a process that has not taken it
// in yet, every 200 µs): an upgrade that finds one pending refuses (try
// again), and one that arrives in the exec window is ignored, never
// fatal. hupd survives three upgrades, keeps forwarding, and stops
// cleanly.
func TestUpgradeUnderSignals(t *testing.T) {
	t.Parallel()
	h := StartHupd(t, append([]string{"run", "--ready", "delay:1ms", "--"}, childCmd("signals")...)...)
	procReady(t, h)
	h.WaitEvent(logev.ChildReady, 1, nil)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		// A steady stream, paced so that some upgrades find no signal
		// pending when they check (they refuse otherwise: try again).
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				syscall.Kill(h.Cmd.Process.Pid, syscall.SIGUSR1)
			}
		}
	}()
	for i, tries := 1, 0; i <= 3; tries++ {
		out, code := hupdCtl(t, h, "upgrade")
		switch {
		case code == 0:
			i++
		case strings.Contains(out, "a signal arrived meanwhile: try again") && tries < 200:
		default:
			close(stop)
			<-done
			t.Fatalf("upgrade %d (try %d): %d %s", i, tries, code, out)
		}
	}
	close(stop)
	<-done
	h.WaitEvent(logev.Upgraded, 3, nil)
	h.Signal(syscall.SIGWINCH)
	h.Stdout.NextWith(t, "got WINCH") // still forwarding, after however many USR1
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// TestUpgradeWhileGenerationsExit swaps and upgrades right after, again
// and again, so that old generations exit around (sometimes during) the
// exec: every generation's exit is seen and logged by one image or the
// other, none is lost (no process of an exited generation is left, none
// is still listed), and the last one serves.
func TestUpgradeWhileGenerationsExit(t *testing.T) {
	t.Parallel()
	h := StartHupd(t, "run", "--listen", "http=tcp://127.0.0.1:0", "--", helloBin)
	h.WaitEvent(logev.ChildReady, 1, nil)
	const rounds = 15
	upgraded := 0
	for i := 1; i <= rounds; i++ {
		if out, code := hupdCtl(t, h, "reload"); code != 0 {
			t.Fatalf("reload %d: %s", i, out)
		}
		// The old generation is draining (hello exits within a few ms):
		// upgrade now. It may be refused when an exit was just collected.
		out, code := hupdCtl(t, h, "upgrade")
		switch {
		case code == 0:
			upgraded++
		case strings.Contains(out, "exited just now") || strings.Contains(out, "try again"):
		default:
			t.Fatalf("upgrade %d: %d %s", i, code, out)
		}
	}
	if upgraded == 0 {
		t.Fatal("no upgrade went through")
	}
	// Every generation but the last exits, and is logged once.
	for gen := 1; gen <= rounds; gen++ {
		h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == gen })
		pid := h.ChildPID(gen)
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); !strings.Contains(string(b), "State:\tZ") {
				t.Errorf("generation %d (pid %d) logged as exited but still runs", gen, pid)
			}
		}
	}
	st := statusOf(t, h)
	if pids := genPIDs(st); len(pids) != 1 || pids[0] != h.ChildPID(rounds+1) {
		t.Fatalf("generations %v, want only generation %d (pid %d)", pids, rounds+1, h.ChildPID(rounds+1))
	}
	t.Logf("%d upgrades went through in %d rounds", upgraded, rounds)
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// polledListeners lists the fds of process pid that are listening TCP
// sockets registered in one of its epoll instances.
func polledListeners(t *testing.T, pid int) []string {
	t.Helper()
	listening := map[string]bool{} // socket inodes in state LISTEN
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if fs := strings.Fields(line); len(fs) > 9 && fs[3] == "0A" {
				listening[fs[9]] = true
			}
		}
	}
	dir := "/proc/" + strconv.Itoa(pid)
	ents, err := os.ReadDir(dir + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var polled []string
	for _, e := range ents {
		if l, _ := os.Readlink(dir + "/fd/" + e.Name()); l != "anon_inode:[eventpoll]" {
			continue
		}
		info, _ := os.ReadFile(dir + "/fdinfo/" + e.Name())
		for _, line := range strings.Split(string(info), "\n") {
			fs := strings.Fields(line)
			if len(fs) < 2 || fs[0] != "tfd:" {
				continue
			}
			l, _ := os.Readlink(dir + "/fd/" + fs[1])
			if ino, ok := strings.CutPrefix(l, "socket:["); ok && listening[strings.TrimSuffix(ino, "]")] {
				polled = append(polled, fs[1])
			}
		}
	}
	return polled
}

// TestUpgradeRefusesUnappliedConfig: the new image reads hupd.toml, so an
// upgrade is refused while the file on disk is not the version in force
// (here edited with --watch-config=false and not reloaded); once it is
// applied, the upgrade goes through.
func TestUpgradeRefusesUnappliedConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hupd.toml")
	write := func(timeout string) {
		body := "command = [\"" + helloBin + "\"]\n[[listen]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:0\"\n[process]\nstop_timeout = \"" + timeout + "\"\n"
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10s")
	h := StartHupd(t, "run", "-c", cfg, "--watch-config=false")
	h.WaitEvent(logev.ChildReady, 1, nil)
	write("11s")
	out, code := hupdCtl(t, h, "upgrade")
	if code != 1 || !strings.Contains(out, "is not the version in force") {
		t.Fatalf("upgrade with hupd.toml edited: exit %d %q", code, out)
	}
	if out, code := hupdCtl(t, h, "reload"); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	if out, code := hupdCtl(t, h, "upgrade"); code != 0 {
		t.Fatalf("upgrade once applied: %d %s", code, out)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// TestUpgradeKeepsName: the new image runs under the name and control
// socket hupd ran under, even where its command line now gives another
// name. Here hupd runs "-c hupd.toml" in shop/, a symbolic link to v1/
// (named after its directory: "shop"); a deployment points shop at v2/
// (the same file) before the upgrade, so that the new image's working
// directory is v1/ by its real name. The client sees the upgrade succeed
// at the same socket, and the status there names "shop".
func TestUpgradeKeepsName(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	body := "command = [\"" + helloBin + "\"]\n[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n"
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(base, v), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, v, "hupd.toml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shop := filepath.Join(base, "shop")
	if err := os.Symlink("v1", shop); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hupdBin, withJSONLog([]string{"run", "-c", "hupd.toml", "--watch-config=false"})...)
	cmd.Dir = shop
	cmd.Env = append(os.Environ(), "PWD="+shop) // the working directory by the link's name, as a shell sets it
	h := StartHupdCmd(t, cmd)
	h.WaitEvent(logev.ChildReady, 1, nil)
	if err := os.Symlink("v2", shop+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(shop+".new", shop); err != nil {
		t.Fatal(err)
	}
	if out, code := hupdCtl(t, h, "upgrade", "--name", "shop", "--timeout", "20s"); code != 0 || !strings.HasPrefix(out, "upgrade ok") {
		t.Fatalf("upgrade after shop/ was pointed elsewhere: exit %d %q", code, out)
	}
	out, code := hupdCtl(t, h, "status", "--name", "shop", "--json")
	if code != 0 {
		t.Fatalf("status after the upgrade: exit %d %q", code, out)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status %q: %v", out, err)
	}
	if st["name"] != "shop" || st["upgrades"] != 1.0 {
		t.Fatalf("status after the upgrade: name %v upgrades %v, want shop and 1", st["name"], st["upgrades"])
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}
