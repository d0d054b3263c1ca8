package integration

// A real systemd for the tests in systemd_real_test.go: Debian's systemd
// booted in systemd-nspawn. The host's PID 1 is not systemd (no machined,
// no system bus), so nspawn runs with --register=no --keep-unit, from a
// cgroup of its own in both the name=systemd and the cgroup2 hierarchies
// (else it puts its payload cgroups at the hierarchies' roots). Commands run
// inside with nsenter into all of the container's namespaces.
//
// The tree (debootstrap --variant=minbase of a Debian suite) is built once
// into nspawnCacheDir/SUITE and reused by every later run once it is
// complete (a marker written last). Each boot is --volatile=overlay: what
// the tests write (units, binaries, configuration) goes to a tmpfs over the
// tree and is gone with the container, so the tree stays as debootstrap made
// it and concurrent test binaries may boot it at once. One container per
// suite per test binary run, booted on first use and shut down by
// stopContainers at the end of TestMain (or, should the test binary die, by
// nspawn's parent-death signal; a later run also reaps what a killed one
// left).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nspawnCacheDir holds the container trees between runs, outside the
// repository; HUPD_NSPAWN_CACHE overrides it.
const nspawnCacheDir = "/var/cache/hupd-nspawn"

// nspawnTreeComplete is the marker debootstrap's tree gets last.
const nspawnTreeComplete = ".hupd-tree-complete"

// nspawnPackages are what debootstrap adds to minbase: systemd as init,
// dbus (systemctl's bus), and curl and python3 for poking at it by hand.
const nspawnPackages = "systemd,systemd-sysv,dbus,curl,python3"

// nspawnCgroupPrefix names the cgroups this harness makes for nspawn at the
// hierarchies' roots; the test binary's PID follows.
const nspawnCgroupPrefix = "hupd-nspawn-"

// nspawnHierarchies are where nspawn is moved before it starts: the
// name=systemd hierarchy and the cgroup2 one of a hybrid host.
var nspawnHierarchies = []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"}

// A nspawnSuite is a Debian release whose systemd the tests boot.
type nspawnSuite struct {
	Name    string // debootstrap's suite: bookworm
	Systemd int    // its systemd's major version
}

var (
	suiteBookworm = nspawnSuite{"bookworm", 252}
	suiteTrixie   = nspawnSuite{"trixie", 257}
)

// nspawnContainer is a booted container.
type nspawnContainer struct {
	Suite  nspawnSuite
	Leader int // the host PID of the container's PID 1 (systemd)
	cmd    *exec.Cmd
	done   chan struct{}
	cgroup string // below each of nspawnHierarchies
	log    *bytes.Buffer
}

var nspawnBoots = struct {
	sync.Mutex
	m map[string]*nspawnBoot
}{m: map[string]*nspawnBoot{}}

type nspawnBoot struct {
	once sync.Once
	c    *nspawnContainer
	skip string // why the container cannot run here (not under CI)
	err  error
}

// bootedContainer returns the container of suite, booting it on first use;
// it skips t (fails it under CI) where nspawn cannot run.
func bootedContainer(t *testing.T, suite nspawnSuite) *nspawnContainer {
	t.Helper()
	nspawnBoots.Lock()
	b := nspawnBoots.m[suite.Name]
	if b == nil {
		b = &nspawnBoot{}
		nspawnBoots.m[suite.Name] = b
	}
	nspawnBoots.Unlock()
	b.once.Do(func() { b.c, b.skip, b.err = bootContainer(suite) })
	if b.skip != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s (CI is set: the real systemd tests must run)", b.skip)
		}
		t.Skip(b.skip)
	}
	if b.err != nil {
		t.Fatalf("booting Debian %s's systemd: %v", suite.Name, b.err)
	}
	return b.c
}

// stopContainers shuts down every container booted in this run; TestMain
// calls it after the tests.
func stopContainers() {
	nspawnBoots.Lock()
	defer nspawnBoots.Unlock()
	for _, b := range nspawnBoots.m {
		if b.c != nil {
			if err := b.c.stop(); err != nil {
				fmt.Fprintf(os.Stderr, "stopping the %s container: %v\n", b.c.Suite.Name, err)
			}
		}
	}
}

// nspawnCanRun says why nspawn cannot run here, or "".
func nspawnCanRun() string {
	for _, tool := range []string{"systemd-nspawn", "debootstrap", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not installed (apt-get install systemd-container debootstrap)"
		}
	}
	if os.Geteuid() != 0 {
		return "systemd-nspawn needs root"
	}
	for _, h := range nspawnHierarchies {
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			return "no " + h + " hierarchy to give systemd-nspawn a cgroup of its own in (the harness knows a hybrid cgroup host only)"
		}
	}
	return ""
}

func bootContainer(suite nspawnSuite) (*nspawnContainer, string, error) {
	if why := nspawnCanRun(); why != "" {
		return nil, why, nil
	}
	reapStaleContainers()
	root, err := nspawnTree(suite)
	if err != nil {
		return nil, "", err
	}
	c := &nspawnContainer{Suite: suite, done: make(chan struct{}), log: &bytes.Buffer{},
		cgroup: nspawnCgroupPrefix + strconv.Itoa(os.Getpid()) + "-" + suite.Name}
	for _, h := range nspawnHierarchies {
		if err := os.Mkdir(filepath.Join(h, c.cgroup), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, "", err
		}
	}

	// nspawn says X_NSPAWN_LEADER_PID= once the container's PID 1 runs,
	// and READY=1 once that systemd has finished booting (--notify-ready).
	dir, err := os.MkdirTemp("", "hupd-nspawn-notify-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	notifyPath := filepath.Join(dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		return nil, "", err
	}
	defer notify.Close()

	// A shell moves itself into the new cgroups, then becomes nspawn.
	var moves string
	for _, h := range nspawnHierarchies {
		moves += "echo $$ > " + filepath.Join(h, c.cgroup, "cgroup.procs") + " && "
	}
	c.cmd = exec.Command("sh", "-c", moves+`exec "$@"`, "sh",
		"systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--private-network",
		"--volatile=overlay", "--notify-ready=yes", "--console=pipe",
		"--machine="+c.cgroup, "--directory="+root, "--boot")
	c.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET=" + notifyPath}
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	// TERM is nspawn's cue to shut the container down cleanly. The
	// parent-death signal comes when the thread that started nspawn ends,
	// so that thread is kept for the goroutine that waits for nspawn.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, "", err
	}

	fail := func(err error) (*nspawnContainer, string, error) {
		c.stop()
		return nil, "", fmt.Errorf("%w\nnspawn's output:\n%s", err, c.log)
	}
	notify.SetReadDeadline(time.Now().Add(deadline))
	buf := make([]byte, 4096)
	for ready := false; !ready; {
		n, err := notify.Read(buf)
		if err != nil {
			return fail(fmt.Errorf("waiting for the container to boot: %w", err))
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if v, ok := strings.CutPrefix(line, "X_NSPAWN_LEADER_PID="); ok {
				c.Leader, _ = strconv.Atoi(v)
			}
			ready = ready || line == "READY=1"
		}
	}
	if c.Leader <= 0 {
		return fail(errors.New("nspawn said READY=1 but never X_NSPAWN_LEADER_PID="))
	}
	// Booted: every unit up ("running"), or some failed ("degraded").
	if out, err := c.Exec(context.Background(), "systemctl", "is-system-running", "--wait"); err != nil || strings.TrimSpace(out) != "running" {
		failed, _ := c.Exec(context.Background(), "systemctl", "--failed", "--no-pager")
		return fail(fmt.Errorf("systemctl is-system-running: %q (%v)\n%s", out, err, failed))
	}
	return c, "", nil
}

// stop shuts the container down (nspawn turns TERM into a clean shutdown),
// kills it if that takes too long, and removes its cgroups.
func (c *nspawnContainer) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(deadline):
		killCgroupTree(c.cgroup)
		<-c.done
	}
	return removeCgroupTree(c.cgroup)
}

// reapStaleContainers kills what a test binary that died without
// stopContainers left in the hierarchies, and removes its cgroups.
func reapStaleContainers() {
	ents, _ := os.ReadDir(nspawnHierarchies[1])
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), nspawnCgroupPrefix)
		if !ok {
			continue
		}
		pid, _ := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if pid <= 0 || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		killCgroupTree(e.Name())
		removeCgroupTree(e.Name())
	}
}

// killCgroupTree sends SIGKILL to every process in cg and below it.
func killCgroupTree(cg string) {
	for _, h := range nspawnHierarchies {
		filepath.WalkDir(filepath.Join(h, cg), func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, _ := strconv.Atoi(f); pid > 0 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// removeCgroupTree removes cg and the cgroups below it, deepest first.
func removeCgroupTree(cg string) error {
	var errs []error
	for _, h := range nspawnHierarchies {
		var dirs []string
		filepath.WalkDir(filepath.Join(h, cg), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// nspawnTree returns the tree of suite, made by debootstrap if no complete
// one is cached. A lock serialises test binaries that would make it at once.
func nspawnTree(suite nspawnSuite) (string, error) {
	cache := nspawnCacheDir
	if d := os.Getenv("HUPD_NSPAWN_CACHE"); d != "" {
		cache = d
	}
	root := filepath.Join(cache, suite.Name)
	if _, err := os.Stat(filepath.Join(root, nspawnTreeComplete)); err == nil {
		return root, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, suite.Name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, nspawnTreeComplete)); err == nil {
		return root, nil // made by another test binary meanwhile
	}
	mirror, err := debianMirror()
	if err != nil {
		return "", err
	}
	// A tree without the marker is what an interrupted debootstrap left.
	if err := os.RemoveAll(root); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+nspawnPackages, suite.Name, root, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap %s from %s: %w\n%s", suite.Name, mirror, err, lastLines(string(out), 20))
	}
	if err := os.WriteFile(filepath.Join(root, nspawnTreeComplete), []byte(mirror+"\n"), 0o644); err != nil {
		return "", err
	}
	return root, nil
}

// debianMirror is the Debian archive apt already uses on this machine.
func debianMirror() (string, error) {
	out, err := exec.Command("apt-get", "indextargets", "--format", "$(REPO_URI)", "Created-By: Packages").Output()
	if err != nil {
		return "", fmt.Errorf("apt-get indextargets: %w", err)
	}
	for _, uri := range strings.Fields(string(out)) {
		if strings.HasSuffix(strings.TrimSuffix(uri, "/"), "/debian") {
			return uri, nil
		}
	}
	return "", fmt.Errorf("apt uses no Debian archive (a URI ending in /debian): %q", out)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Exec runs argv in the container and returns its standard output; the
// error holds its standard error and exit status.
func (c *nspawnContainer) Exec(ctx context.Context, argv ...string) (string, error) {
	return c.ExecIn(ctx, "", argv...)
}

// ExecIn is Exec with stdin as the command's standard input.
func (c *nspawnContainer) ExecIn(ctx context.Context, stdin string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(c.Leader), "-a", "--"}, argv...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
		"SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Run is Exec that fails t on an error.
func (c *nspawnContainer) Run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := c.Exec(context.Background(), argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// WriteFile writes a file into the container (its tmpfs overlay), making
// its directory.
func (c *nspawnContainer) WriteFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	host := filepath.Join("/proc", strconv.Itoa(c.Leader), "root", path)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(host, mode); err != nil {
		t.Fatal(err)
	}
}

// CopyFile copies a host file into the container.
func (c *nspawnContainer) CopyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteFile(t, dst, b, mode)
}

// RemoveFile removes a file in the container.
func (c *nspawnContainer) RemoveFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(filepath.Join("/proc", strconv.Itoa(c.Leader), "root", path)); err != nil {
		t.Fatal(err)
	}
}

// HTTPClient makes its connections in the container's network namespace
// (--private-network: only its loopback).
func (c *nspawnContainer) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: deadline,
		Transport: &http.Transport{
			DialContext:       c.DialContext,
			DisableKeepAlives: true,
		},
	}
}

// DialContext dials in the container's network namespace. The socket is
// made on a thread that enters the namespace and leaves it again, so that
// a client dialling in a loop does not cost a thread per connection.
func (c *nspawnContainer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer own.Close()
		ns, err := os.Open(filepath.Join("/proc", strconv.Itoa(c.Leader), "ns", "net"))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		ch <- result{conn, err}
		// Back to the thread's own namespace; a thread that cannot go
		// back stays locked and ends with this goroutine.
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	r := <-ch
	return r.c, r.err
}
