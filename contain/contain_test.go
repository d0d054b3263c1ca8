package contain

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseProcCgroup(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"0::/\n", "/", false},
		{"9:name=systemd:/\n4:memory:/x\n0::/system.slice/hupd.service\n", "/system.slice/hupd.service", false},
		{"12:pids:/user.slice\n1:name=systemd:/user.slice\n", "", true},
		{"0::/../../sibling\n", "", true},
		{"", "", true},
	} {
		got, err := parseProcCgroup([]byte(tc.in))
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("parseProcCgroup(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if _, err := parseProcCgroup([]byte("1:cpu:/\n")); !errors.Is(err, ErrNoUnified) {
		t.Errorf("v1 only: %v, want ErrNoUnified", err)
	}
}

func TestParseStat(t *testing.T) {
	line := "4242 (a (weird) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 7 3 11 13 20 0 1 0 123 1000000 250 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{pid: 4242, ppid: 1, pgrp: 4240, utime: 7, stime: 3, cutime: 11, cstime: 13, rssPages: 250}
	if st != want {
		t.Errorf("parseStat = %+v, want %+v", st, want)
	}
	if _, err := parseStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("short stat: no error")
	}
	z, _ := parseStat([]byte(strings.Replace(line, ") S ", ") Z ", 1)))
	if !z.zombie {
		t.Error("state Z not a zombie")
	}
}

func TestParseKeyedAndNames(t *testing.T) {
	if v, ok := parseKeyed([]byte("usage_usec 1234\nuser_usec 1000\n"), "usage_usec"); !ok || v != 1234 {
		t.Errorf("usage_usec = %d %v", v, ok)
	}
	if v, ok := parseKeyed([]byte("populated 0\nfrozen 0\n"), "populated"); !ok || v != 0 {
		t.Errorf("populated = %d %v", v, ok)
	}
	if pid, ok := staleName("hupd-web-123", "web"); !ok || pid != 123 {
		t.Errorf("staleName = %d %v", pid, ok)
	}
	if pid, ok := staleName("hupd-web-1.3", "web"); !ok || pid != 1 {
		t.Errorf("staleName(.3) = %d %v", pid, ok)
	}
	for _, n := range []string{"hupd-web2-123", "hupd-web-", "hupd-web-x1", "gen-1", "hupd-web-0", "hupd-web-1.x"} {
		if _, ok := staleName(n, "web"); ok {
			t.Errorf("staleName(%q) matched web", n)
		}
	}
	if got := safeName("my app/v2"); got != "my_app_v2" {
		t.Errorf("safeName = %q", got)
	}
}

// fakeHost lays out a fake cgroup2 mount in a temporary directory: the
// interface files are plain files, "populated 0" everywhere.
type fakeHost struct {
	mount string
	ops   sysOps
	dead  map[int]bool
	deny  error // returned by mkdir when set
}

func newFakeHost(t *testing.T, self string, procs string) *fakeHost {
	dir := t.TempDir()
	h := &fakeHost{mount: filepath.Join(dir, "cgroup"), dead: map[int]bool{}}
	own := filepath.Join(h.mount, self)
	must(t, os.MkdirAll(own, 0o755))
	must(t, os.WriteFile(filepath.Join(own, "cgroup.procs"), []byte(procs), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "self-cgroup"), []byte("1:name=systemd:/\n0::"+self+"\n"), 0o644))
	h.ops = sysOps{
		mounts:    []string{filepath.Join(dir, "none"), h.mount},
		selfCG:    filepath.Join(dir, "self-cgroup"),
		isCgroup2: func(d string) bool { return d == h.mount },
		alive:     func(pid int) bool { return !h.dead[pid] },
		probe:     func(string) error { return nil },
		held: func(dir string) bool {
			id, _ := staleName(filepath.Base(dir), strings.SplitN(filepath.Base(dir), "-", 3)[1])
			return !h.dead[id]
		},
		pid: 100,
		id:  100,
		mkdir: func(d string) error {
			if h.deny != nil {
				return &fs.PathError{Op: "mkdir", Path: d, Err: h.deny}
			}
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
			// The interface files cgroupfs makes with the directory.
			for _, f := range []string{"cgroup.procs", "cgroup.kill", "cgroup.subtree_control"} {
				if err := os.WriteFile(filepath.Join(d, f), nil, 0o644); err != nil {
					return err
				}
			}
			if err := os.WriteFile(filepath.Join(d, "cgroup.events"), []byte("populated 0\nfrozen 0\n"), 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(d, "cgroup.controllers"), []byte("cpu memory io\n"), 0o644)
		},
		rmdir:     os.RemoveAll,
		waitEmpty: func(string, time.Duration) bool { return true },
	}
	return h
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSetupLayoutChildOfShared(t *testing.T) {
	h := newFakeHost(t, "/user.slice/session-1.scope", "7\n100\n8\n")
	sess := filepath.Join(h.mount, "user.slice/session-1.scope")
	// A dead hupd of the same name, a live one, and one of another name.
	for _, n := range []string{"hupd-web-55", "hupd-web-56", "hupd-api-55"} {
		must(t, os.MkdirAll(filepath.Join(sess, n, "gen-3"), 0o755))
		must(t, os.WriteFile(filepath.Join(sess, n, "gen-3", "cgroup.procs"), []byte("900\n901\n"), 0o644))
	}
	h.dead[55] = true
	// The hupd-web-100 of a hupd in another PID namespace (same PID).
	must(t, os.MkdirAll(filepath.Join(sess, "hupd-web-100", "gen-1"), 0o755))
	m, cleaned := setup(Options{Name: "web"}, h.ops)
	if !m.Enabled() {
		t.Fatalf("not enabled: %s", m.Reason())
	}
	if want := filepath.Join(sess, "hupd-web-100.2"); m.Base() != want {
		t.Errorf("base = %s, want %s", m.Base(), want)
	}
	if got := read(t, filepath.Join(m.Base(), "supervisor", "cgroup.procs")); got != "0" {
		t.Errorf("hupd not moved: supervisor/cgroup.procs = %q", got)
	}
	// The controllers base is offered among memory, pids, cpu.
	if got := read(t, filepath.Join(m.Base(), "cgroup.subtree_control")); got != "+memory+cpu" {
		t.Errorf("subtree_control writes = %q, want +memory then +cpu", got)
	}
	if len(cleaned) != 1 || cleaned[0].Path != filepath.Join(sess, "hupd-web-55") || cleaned[0].Killed != 2 {
		t.Errorf("cleaned = %+v, want hupd-web-55 with 2 processes", cleaned)
	}
	for n, want := range map[string]bool{"hupd-web-55": false, "hupd-web-56": true, "hupd-api-55": true, "hupd-web-100/gen-1": true} {
		if _, err := os.Stat(filepath.Join(sess, n)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", n, err == nil, want)
		}
	}
	g, err := m.NewGroup(4)
	if err != nil {
		t.Fatal(err)
	}
	if g.Path() != filepath.Join(m.Base(), "gen-4") || g.FD() < 0 || g.ID() == 0 {
		t.Errorf("group: path %s fd %d id %d", g.Path(), g.FD(), g.ID())
	}
	if g.rel != "/user.slice/session-1.scope/hupd-web-100.2/gen-4" {
		t.Errorf("group rel = %s", g.rel)
	}
	m.Retire(g)
	must(t, m.Close())
	if got := read(t, filepath.Join(sess, "cgroup.procs")); !strings.HasSuffix(got, "\n0") {
		t.Errorf("hupd not moved back: %q", got)
	}
	if _, err := os.Stat(m.Base()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("base left behind: %v", err)
	}
}

func TestSetupLayoutDelegated(t *testing.T) {
	h := newFakeHost(t, "/system.slice/web.service", "100\n")
	svc := filepath.Join(h.mount, "system.slice/web.service")
	must(t, os.MkdirAll(filepath.Join(svc, "gen-9"), 0o755))
	m, cleaned := setup(Options{Name: "web"}, h.ops)
	if m.Base() != svc {
		t.Fatalf("base = %q (%s), want hupd's own cgroup %s", m.Base(), m.Reason(), svc)
	}
	if len(cleaned) != 1 || filepath.Base(cleaned[0].Path) != "gen-9" {
		t.Errorf("cleaned = %+v, want the stale gen-9", cleaned)
	}
	must(t, m.Close())
	if _, err := os.Stat(svc); err != nil {
		t.Errorf("hupd's own cgroup removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(svc, "supervisor")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("supervisor leaf left behind: %v", err)
	}
}

func TestSetupFallback(t *testing.T) {
	h := newFakeHost(t, "/", "1\n100\n")
	if m, _ := setup(Options{Name: "web", Mode: ModeOff}, h.ops); m.Enabled() || !strings.Contains(m.Reason(), "off") {
		t.Errorf("mode off: enabled %v, reason %q", m.Enabled(), m.Reason())
	}
	h.deny = syscall.EROFS
	m, _ := setup(Options{Name: "web"}, h.ops)
	if m.Enabled() || !strings.Contains(m.Reason(), "read-only file system") {
		t.Errorf("EROFS: enabled %v, reason %q", m.Enabled(), m.Reason())
	}
	h.deny = nil
	h.ops.isCgroup2 = func(string) bool { return false }
	if m, _ := setup(Options{Name: "web"}, h.ops); m.Enabled() || !strings.Contains(m.Reason(), "no cgroup2") {
		t.Errorf("no mount: enabled %v, reason %q", m.Enabled(), m.Reason())
	}
	g, err := m.NewGroup(1)
	if err != nil || g.Path() != "" || g.FD() != -1 {
		t.Errorf("fallback group: %+v %v", g, err)
	}
}

// TestFallbackGroup checks membership, stats and the kill of a process
// group group with real processes.
func TestFallbackGroup(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30 & sleep 30 & echo up; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	buf := make([]byte, 3)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	g := Off("test").groupFor(cmd.Process.Pid)
	st, err := g.Stats()
	must(t, err)
	if st.Processes != 3 || st.MemoryBytes == 0 || !st.Sampled {
		t.Errorf("stats = %+v, want 3 processes and some memory", st)
	}
	if in, err := g.Contains(cmd.Process.Pid); !in || err != nil {
		t.Errorf("leader not a member: %v %v", in, err)
	}
	if in, _ := g.Contains(os.Getpid()); in {
		t.Error("the test itself is a member")
	}
	must(t, g.Kill())
	cmd.Wait()
	if in, err := g.Contains(cmd.Process.Pid); in || !errors.Is(err, ErrGone) {
		t.Errorf("after kill: %v %v, want ErrGone", in, err)
	}
}

// groupFor is a fallback group led by pid.
func (m *Manager) groupFor(pid int) *Group {
	g, _ := m.NewGroup(1)
	g.SetLeader(pid)
	return g
}

// TestCgroupGroup runs real processes in a real cgroup: root with a
// writable cgroup2 mount only.
func TestCgroupGroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	// Not Setup: that would move the test process itself.
	ops := realOps()
	mount := cgroup2Mount(ops)
	if mount == "" {
		noCgroups(t, "no cgroup2 mount")
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	must(t, err)
	rel, err := parseProcCgroup(data)
	must(t, err)
	base := filepath.Join(mount, rel, "hupd-contain-test-"+time.Now().Format("150405.000000"))
	if err := os.Mkdir(base, 0o755); err != nil {
		noCgroups(t, fmt.Sprintf("cannot create a cgroup: %v", err))
	}
	m := &Manager{mount: mount, start: filepath.Join(mount, rel), base: base, owned: true, os: ops}
	t.Cleanup(func() { m.removeTree(base) })
	g, err := m.NewGroup(1)
	must(t, err)
	// A shell that starts a setsid daemon and exits: the daemon stays in
	// the cgroup. The daemon says its PID on a FIFO once it runs, then
	// blocks (opening a FIFO nobody writes).
	dir := t.TempDir()
	ready, never := filepath.Join(dir, "ready"), filepath.Join(dir, "never")
	must(t, syscall.Mkfifo(ready, 0o600))
	must(t, syscall.Mkfifo(never, 0o600))
	script := fmt.Sprintf("setsid sh -c 'echo $$ > %s; read x < %s' </dev/null >/dev/null 2>&1 &", ready, never)
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, UseCgroupFD: true, CgroupFD: g.FD()}
	must(t, cmd.Run())
	outb, err := os.ReadFile(ready) // blocks until the daemon writes
	must(t, err)
	daemon, err := strconv.Atoi(strings.TrimSpace(string(outb)))
	must(t, err)
	in, err := g.Contains(daemon)
	if !in || err != nil {
		t.Fatalf("setsid daemon %d not a member: %v", daemon, err)
	}
	if in, _ := g.Contains(os.Getpid()); in {
		t.Error("the test itself is a member")
	}
	var fst syscall.Stat_t
	must(t, syscall.Stat(g.Path(), &fst))
	if g.ID() != fst.Ino {
		t.Errorf("id %d, inode %d", g.ID(), fst.Ino)
	}
	st, err := g.Stats()
	must(t, err)
	if st.Processes != 1 || st.CPU <= 0 || st.MemoryBytes == 0 {
		t.Errorf("stats = %+v, want the daemon, some cpu and memory", st)
	}
	m.Retire(g)
	m.wg.Wait()
	if _, err := os.Stat(g.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s not removed: %v", g.Path(), err)
	}
	if !slices.Contains([]error{nil}, syscall.Kill(daemon, 0)) {
		return // gone (ESRCH)
	}
	// It may linger as a zombie of init for a moment: not alive is enough.
	b, _ := os.ReadFile("/proc/" + strings.TrimSpace(string(outb)) + "/stat")
	if len(b) > 0 && !strings.Contains(string(b), ") Z ") {
		t.Errorf("daemon %d survived the retire: %s", daemon, b)
	}
}

// BenchmarkNewGroup is the cgroup's share of a cold spawn on Run's
// goroutine: mkdir and open of gen-N, and its retirement (cgroup.kill;
// the wait and rmdir run in the background, waited for outside the timer).
func BenchmarkNewGroup(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("needs root to create cgroups")
	}
	ops := realOps()
	var mount string
	for _, d := range ops.mounts {
		if ops.isCgroup2(d) {
			mount = d
			break
		}
	}
	data, _ := os.ReadFile("/proc/self/cgroup")
	rel, err := parseProcCgroup(data)
	if mount == "" || err != nil {
		b.Skip("no cgroup2 mount")
	}
	base := filepath.Join(mount, rel, "hupd-contain-bench")
	if err := os.Mkdir(base, 0o755); err != nil {
		b.Skipf("cannot create a cgroup: %v", err)
	}
	m := &Manager{mount: mount, start: filepath.Join(mount, rel), base: base, owned: true, os: ops}
	defer m.removeTree(base)
	n := 0
	for b.Loop() {
		n++
		g, err := m.NewGroup(n)
		if err != nil {
			b.Fatal(err)
		}
		m.Retire(g)
	}
	m.wg.Wait()
}

// noCgroups skips t, or fails it when CI is set: CI runs as root with a
// writable cgroup2 mount, and a skipped cgroup test would pass for one that
// ran.
func noCgroups(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why + " (CI is set: the cgroup path must be tested)")
	}
	t.Skip(why)
}

// TestChildLayout: each program of a hupd that runs several gets a cgroup
// of its own below base (prog-NAME), with base's controllers enabled for
// its generations, which go below it; a leftover of that name is replaced;
// the child's Close removes its directory and leaves base's layout, and
// base's Close removes a program directory left behind.
func TestChildLayout(t *testing.T) {
	h := newFakeHost(t, "/user.slice/session-1.scope", "7\n100\n")
	m, _ := setup(Options{Name: "multi"}, h.ops)
	if !m.Enabled() {
		t.Fatalf("not enabled: %s", m.Reason())
	}
	stale := filepath.Join(m.Base(), "prog-web", "gen-9")
	must(t, os.MkdirAll(stale, 0o755))
	web, err := m.Child("web")
	if err != nil {
		t.Fatal(err)
	}
	app, err := m.Child("app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover of prog-web kept: %v", err)
	}
	if got := read(t, filepath.Join(web.Base(), "cgroup.subtree_control")); got != "+memory+cpu" {
		t.Errorf("prog-web subtree_control writes = %q, want +memory then +cpu", got)
	}
	g, err := web.NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(m.Base(), "prog-web", "gen-1"); g.Path() != want {
		t.Errorf("web's gen 1 at %s, want %s", g.Path(), want)
	}
	if g.rel != "/user.slice/session-1.scope/hupd-multi-100/prog-web/gen-1" {
		t.Errorf("group rel = %s", g.rel)
	}
	must(t, web.Close())
	if _, err := os.Stat(web.Base()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("prog-web left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.Base(), "supervisor")); err != nil {
		t.Errorf("a child's Close touched base's supervisor leaf: %v", err)
	}
	if _, err := app.NewGroup(1); err != nil {
		t.Fatal(err)
	}
	must(t, m.Close()) // app's Close was not called: base's removes it
	if _, err := os.Stat(m.Base()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("base left behind: %v", err)
	}
	off := Off("no cgroups here")
	c, err := off.Child("web")
	if err != nil || c.Enabled() || c.Reason() != "no cgroups here" {
		t.Errorf("child of a fallback: enabled %v, reason %q, %v", c.Enabled(), c.Reason(), err)
	}
}

// TestChildRestored: a program's Manager taken over by an upgrade's new
// image (State, Restore) is still a child: its Close removes its
// prog-NAME and neither moves hupd back nor looks for a supervisor leaf
// of its own.
func TestChildRestored(t *testing.T) {
	h := newFakeHost(t, "/user.slice/session-1.scope", "7\n100\n")
	start := filepath.Join(h.mount, "user.slice/session-1.scope", "cgroup.procs")
	m, _ := setup(Options{Name: "multi"}, h.ops)
	if !m.Enabled() {
		t.Fatalf("not enabled: %s", m.Reason())
	}
	web, err := m.Child("web")
	if err != nil {
		t.Fatal(err)
	}
	r := Restore(web.State())
	r.os = h.ops
	if err := r.Close(); err != nil {
		t.Fatalf("restored child's Close: %v", err)
	}
	if _, err := os.Stat(web.Base()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("prog-web left behind: %v", err)
	}
	if got := read(t, start); got != "7\n100\n" {
		t.Errorf("start's cgroup.procs = %q: a program's Close moved hupd", got)
	}
	if _, err := os.Stat(filepath.Join(m.Base(), "supervisor")); err != nil {
		t.Errorf("a restored child's Close touched base's supervisor leaf: %v", err)
	}
}

// TestCloseMovesLeftovers: a process left in hupd's leaf (forked there
// for a program without cgroups) goes where hupd goes at Close, so that
// the leaf can be removed.
func TestCloseMovesLeftovers(t *testing.T) {
	h := newFakeHost(t, "/user.slice/session-1.scope", "7\n100\n")
	sess := filepath.Join(h.mount, "user.slice/session-1.scope")
	m, _ := setup(Options{Name: "web"}, h.ops)
	if !m.Enabled() {
		t.Fatalf("not enabled: %s", m.Reason())
	}
	leaf := filepath.Join(m.Base(), "supervisor", "cgroup.procs")
	must(t, os.WriteFile(leaf, []byte("4242\n"), 0o644))
	h.ops.rmdir = func(d string) error {
		if d == filepath.Dir(leaf) {
			// cgroupfs refuses to remove a populated cgroup; the fake's
			// cgroup.procs never empties: the move must have written it.
			if got := read(t, filepath.Join(sess, "cgroup.procs")); !strings.Contains(got, "04242") {
				return &fs.PathError{Op: "rmdir", Path: d, Err: syscall.EBUSY}
			}
		}
		return os.RemoveAll(d)
	}
	m.os = h.ops
	must(t, m.Close())
	if got := read(t, filepath.Join(sess, "cgroup.procs")); !strings.HasPrefix(got, "7\n100\n04242") {
		t.Errorf("start's cgroup.procs writes = %q, want hupd (0), then 4242", got)
	}
}
