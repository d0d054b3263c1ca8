package integration

// What the container image (the repository's Dockerfile, examples/docker)
// and the Kubernetes example (examples/kubernetes) rely on, with the same
// binaries in the namespaces a container runtime would give them: no
// container engine runs here, so unshare makes a PID namespace (hupd is
// its PID 1), a private mount namespace with a fresh /run, and a network
// namespace of its own where a fixed port (8080, 80, 9901) is free and
// nothing is bound on the host. The tests read the Dockerfile and the
// manifest, so that an example that changes is tested as it is.
//
// Already covered elsewhere and not repeated: orphans of a test-binary
// child reaped by hupd as PID 1 and the namespace torn down when hupd is
// SIGKILLed (TestProcessPID1ReapsAndTearsDown), TERM as PID 1
// (TestProcessPID1StopsOnTerm), exit codes outside a namespace
// (TestProcessExitCodes), uid, gid and groups of a cold-started child
// (TestProcessPrivilegeDrop), and a client of another uid refused by the
// control socket (TestControlSocket, "other user refused").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

func init() {
	// cont-entry [--lo] [--uid N] -- PROG ARG...: what a container
	// runtime does before it execs the entrypoint as PID 1: a fresh /run
	// (hupd as root puts its control socket in /run/hupd), no
	// XDG_RUNTIME_DIR, the loopback interface up in a new network
	// namespace (--lo), and the image's or pod's user (--uid: uid and gid
	// N, no supplementary groups, no capabilities left, no_new_privs as
	// with allowPrivilegeEscalation: false). Then exec PROG, which keeps
	// this PID.
	childModes["cont-entry"] = func(args []string) {
		fail := func(err error) {
			fmt.Fprintln(os.Stderr, "cont-entry:", err)
			os.Exit(3)
		}
		lo, uid := false, -1
		for len(args) > 0 && args[0] != "--" {
			switch {
			case args[0] == "--lo":
				lo = true
			case args[0] == "--uid" && len(args) > 1:
				uid, _ = strconv.Atoi(args[1])
				args = args[1:]
			default:
				fail(fmt.Errorf("unknown option %q", args[0]))
			}
			args = args[1:]
		}
		if len(args) < 2 {
			fail(fmt.Errorf("usage: cont-entry [--lo] [--uid N] -- PROG ARG..., got %q", args))
		}
		if lo {
			if err := contLoopbackUp(); err != nil {
				fail(err)
			}
		}
		// unshare made the mount namespace private: this hides the
		// host's /run from hupd without touching it.
		if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			fail(fmt.Errorf("mount /run: %w", err))
		}
		if uid >= 0 {
			// Go applies these to every thread of the process.
			for _, err := range []error{syscall.Setgroups(nil), syscall.Setgid(uid), syscall.Setuid(uid),
				unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)} {
				if err != nil {
					fail(fmt.Errorf("becoming uid %d: %w", uid, err))
				}
			}
		}
		os.Unsetenv("XDG_RUNTIME_DIR")
		os.Unsetenv(envChild)
		fail(unix.Exec(args[1], args[1:], os.Environ()))
	}
	// cont-control PROG ARG...: connect to $HUPD_CONTROL as this process
	// (hupd's child, with its credentials), print "control denied" (EACCES),
	// "control connected" or "control error: …", then exec PROG.
	childModes["cont-control"] = func(args []string) {
		path := os.Getenv("HUPD_CONTROL")
		c, err := net.Dial("unix", path)
		switch {
		case err == nil:
			c.Close()
			fmt.Println("control connected")
		case errors.Is(err, syscall.EACCES):
			fmt.Println("control denied")
		default:
			fmt.Printf("control error: %s: %v\n", path, err)
		}
		os.Unsetenv(envChild)
		err = unix.Exec(args[0], args, os.Environ())
		fmt.Fprintln(os.Stderr, "cont-control:", err)
		os.Exit(3)
	}
}

// contLoopbackUp sets the lo interface up (`ip link set lo up`, without
// depending on iproute2).
func contLoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS lo: %w", err)
	}
	return nil
}

// contNeed skips a test that needs root and namespaces where they are
// missing, and fails it in CI (CI set), which runs as root.
func contNeed(t *testing.T, netns bool) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf(format+" (CI is set: it must be there)", args...)
		}
		t.Skipf(format, args...)
	}
	if os.Geteuid() != 0 {
		missing("needs root to create namespaces and run a child as another user")
	}
	needTool(t, "unshare")
	args := []string{"--pid", "--fork", "--mount-proc", "true"}
	if netns {
		args = append([]string{"--net"}, args...)
	}
	if out, err := exec.Command("unshare", args...).CombinedOutput(); err != nil {
		missing("cannot create namespaces (unshare %s: %v: %s)", strings.Join(args, " "), err, out)
	}
}

// contOpts say what contStart adds to the PID and mount namespaces.
type contOpts struct {
	netns bool     // a network namespace of its own, with lo up
	uid   int      // run hupd as this uid and gid (0: root)
	env   []string // added to hupd's environment
}

// contStart starts hupd (args after "hupd") as PID 1 of new PID and mount
// namespaces, as a container would. It returns hupd's host PID and its PID
// namespace.
func contStart(t *testing.T, o contOpts, args ...string) (h *Hupd, pid int, pidns string) {
	t.Helper()
	contNeed(t, o.netns)
	flags := []string{"--pid", "--fork", "--mount-proc"}
	var entry []string
	if o.netns {
		flags = append(flags, "--net")
		entry = append(entry, "--lo")
	}
	if o.uid != 0 {
		entry = append(entry, "--uid", strconv.Itoa(o.uid))
	}
	entry = append(append(entry, "--", hupdBin), withJSONLog(args)...)
	cmd := exec.Command("unshare", append(flags, childCmd("cont-entry", entry...)...)...)
	cmd.Env = append(os.Environ(), o.env...)
	h = StartHupdCmd(t, cmd)
	h.WaitEvent(logev.ChildStarted, 1, nil) // the exec chain has reached hupd
	var kids []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", h.Cmd.Process.Pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			p, _ := strconv.Atoi(s)
			kids = append(kids, p)
		}
	}
	if len(kids) != 1 {
		t.Fatalf("unshare %d has children %v, want just hupd", h.Cmd.Process.Pid, kids)
	}
	pid = kids[0]
	if ns := procNSpid(t, pid); len(ns) != 2 || ns[1] != 1 {
		t.Fatalf("hupd (host pid %d) NSpid %v: want PID 1 in a namespace of its own", pid, ns)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || exe != hupdBin {
		t.Fatalf("PID 1 of the namespace runs %q (%v), want %s", exe, err, hupdBin)
	}
	pidns, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	return h, pid, pidns
}

// contProc is a process of a PID namespace seen from the host.
type contProc struct {
	host, ns int // PIDs: the host's and the namespace's
	state    byte
}

// contMembers lists every process of PID namespace pidns, zombies too.
func contMembers(t *testing.T, pidns string) []contProc {
	t.Helper()
	var ps []contProc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || l != pidns {
			continue
		}
		st, ok := procStat(pid)
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if !ok || err != nil {
			continue // gone meanwhile
		}
		p := contProc{host: pid, state: st.state}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				f := strings.Fields(v)
				p.ns, _ = strconv.Atoi(f[len(f)-1])
			}
		}
		ps = append(ps, p)
	}
	return ps
}

// contNoZombie fails t if a process of pidns stays a zombie: one seen
// between its exit and hupd's wait for it (hupd reaps asynchronously) must
// be gone within the deadline. (No event says a zombie was reaped: its
// /proc entry is looked at again until it is gone.)
func contNoZombie(t *testing.T, pidns string) {
	t.Helper()
	for _, p := range contMembers(t, pidns) {
		if p.state != 'Z' {
			continue
		}
		give := time.Now().Add(deadline)
		for {
			st, ok := procStat(p.host)
			if !ok || st.state != 'Z' {
				break // reaped (or the PID is another process's now)
			}
			if time.Now().After(give) {
				t.Fatalf("zombie in the namespace for %v: host pid %d, namespace pid %d", deadline, p.host, p.ns)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// contHostPID returns the host PID of namespace PID nspid.
func contHostPID(t *testing.T, pidns string, nspid int) int {
	t.Helper()
	for _, p := range contMembers(t, pidns) {
		if p.ns == nspid {
			return p.host
		}
	}
	t.Fatalf("namespace pid %d not found from the host", nspid)
	return 0
}

// contStatus returns the fields of /proc/PID/status, each value with its
// whitespace collapsed to single spaces ("Uid" → "65534 65534 65534 65534").
func contStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

// contGet GETs url on a new connection, which it closes (no idle
// keep-alive connection makes a generation wait to drain), made from the
// network namespace of process netnsPID (0: the test's own), and returns
// the body of a 200 answer.
func contGet(t *testing.T, netnsPID int, url string) string {
	t.Helper()
	var d net.Dialer
	dial := d.DialContext
	if netnsPID != 0 {
		dial = contDialIn(fmt.Sprintf("/proc/%d/ns/net", netnsPID))
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: deadline}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s (network namespace of pid %d): %v", url, netnsPID, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: status %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// contDialIn returns a dial function that makes its sockets in the network
// namespace nsPath.
func contDialIn(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			// Never unlocked: the thread ends with this goroutine, and
			// its namespace with it. The socket keeps the namespace it
			// was made in.
			runtime.LockOSThread()
			f, err := os.Open(nsPath)
			if err != nil {
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, fmt.Errorf("setns %s: %w", nsPath, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// contServedBy fails t unless body is hello's answer from namespace pid.
func contServedBy(t *testing.T, body string, pid int) {
	t.Helper()
	if !strings.HasPrefix(body, fmt.Sprintf("pid %d\nname http\n", pid)) {
		t.Fatalf("answer %q: want hello with pid %d on socket http", body, pid)
	}
}

// contImage is what the final stage of the repository's Dockerfile sets.
type contImage struct {
	entrypoint, cmd []string
	uid             int
	stopSignal      syscall.Signal
}

// contReadDockerfile reads the final stage's ENTRYPOINT, CMD (exec form),
// USER and STOPSIGNAL from ../Dockerfile.
func contReadDockerfile(t *testing.T) contImage {
	t.Helper()
	st := dockerStage(t, "../Dockerfile")
	img := contImage{entrypoint: st.entrypoint, cmd: st.cmd, uid: st.uid, stopSignal: st.stopSignal}
	if !slices.Equal(img.entrypoint, []string{"/usr/local/bin/hupd"}) || len(img.cmd) == 0 || img.uid < 0 || img.stopSignal == 0 {
		t.Fatalf("Dockerfile's final stage: %+v: want ENTRYPOINT [\"/usr/local/bin/hupd\"], a CMD, a numeric USER and a STOPSIGNAL", img)
	}
	return img
}

// contReplace returns args with the one element old replaced by repl.
func contReplace(t *testing.T, args []string, old string, repl ...string) []string {
	t.Helper()
	i := slices.Index(args, old)
	if i < 0 || slices.Index(args[i+1:], old) >= 0 {
		t.Fatalf("%q holds %q not exactly once: the example changed, adjust the test", args, old)
	}
	return slices.Concat(args[:i], repl, args[i+1:])
}

// contTmpDir returns a new directory owned by uid, standing for a
// container's own /tmp (hupd is pointed at it with TMPDIR: a tmpfs on
// /tmp would hide the binaries under test).
func contTmpDir(t *testing.T, uid int) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{d, filepath.Dir(d)} { // t.TempDir is 0700: let uid in
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(d, uid, uid); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestContainerPID1Image: the image as the Dockerfile builds it (its
// ENTRYPOINT and CMD, its non-root USER, hello on :8080 with swap
// reloads), hupd as PID 1 of its own PID and network namespaces, driven
// as Docker drives a container. An entrypoint script's orphan is reaped
// (no zombie stays in the namespace); `docker kill -s HUP` (HUP to PID 1
// from outside) and `docker exec … hupd reload` (hupd's CLI run inside
// the namespaces as the image's user, finding the control socket by
// itself) swap the child; `docker stop` (STOPSIGNAL to PID 1) stops it
// gracefully and hupd exits 0, the code the runtime reports.
func TestContainerPID1Image(t *testing.T) {
	nsenter := needTool(t, "nsenter")
	img := contReadDockerfile(t)
	// sh as entrypoint script: a double-forked background job orphaned
	// at once (hupd must reap it), then exec the server.
	script := `(sh -c 'echo orphan $$' &); exec "$0"`
	args := contReplace(t, img.cmd, "/usr/local/bin/hello", "sh", "-c", script, helloBin)
	tmp := "TMPDIR=" + contTmpDir(t, img.uid)
	h, hupdPID, pidns := contStart(t, contOpts{netns: true, uid: img.uid, env: []string{tmp}}, args...)
	if st := contStatus(t, hupdPID); st["Uid"] != strings.Repeat(strconv.Itoa(img.uid)+" ", 3)+strconv.Itoa(img.uid) {
		t.Fatalf("hupd runs with Uid %q, want the image's user %d", st["Uid"], img.uid)
	}
	if a := h.Listening("http"); !strings.HasSuffix(a, ":8080") {
		t.Fatalf("listening on %s, want port 8080 as the image's CMD says", a)
	}
	url := "http://127.0.0.1:8080/"

	orphan, err := strconv.Atoi(strings.TrimPrefix(h.Stdout.NextWith(t, "orphan "), "orphan "))
	if err != nil {
		t.Fatal(err)
	}
	e := h.WaitEvent(logev.OrphanReaped, 1, func(e Event) bool { return e.Int("pid") == orphan })
	if e.Str("status") != "exit status 0" {
		t.Fatalf("reaped orphan %v: want exit status 0", e)
	}
	contNoZombie(t, pidns)
	gen1 := h.ChildPID(1)
	contServedBy(t, contGet(t, hupdPID, url), gen1)

	// docker kill -s HUP
	procKill(t, hupdPID, syscall.SIGHUP)
	gen2 := h.WaitEvent(logev.ReloadDone, 1, nil).Int("pid")
	if gen2 != h.ChildPID(2) {
		t.Fatalf("reload done with pid %d, gen 2 is %d", gen2, h.ChildPID(2))
	}
	// Until gen 1 has closed its listener it may still accept.
	if e := h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 }); e.Str("status") != "exit status 0" {
		t.Fatalf("gen 1 %v: want it drained, exit status 0", e)
	}
	contServedBy(t, contGet(t, hupdPID, url), gen2)

	// docker exec CONTAINER hupd reload: the image's user and
	// environment, no --name or --control.
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	id := strconv.Itoa(img.uid)
	cmd := exec.CommandContext(ctx, nsenter, "--target", strconv.Itoa(hupdPID), "--mount", "--pid", "--net",
		"--setuid", id, "--setgid", id, "--", hupdBin, "reload")
	cmd.Env = []string{"PATH=/usr/bin:/bin", tmp}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hupd reload inside the container: %v\n%s", err, out)
	}
	var old, gen3 int
	if _, err := fmt.Sscanf(string(out), "reload ok (swap): gen 2 pid %d -> gen 3 pid %d", &old, &gen3); err != nil || old != gen2 || gen3 != h.ChildPID(3) {
		t.Fatalf("hupd reload said %q (%v): want gen 2 pid %d -> gen 3 pid %d", out, err, gen2, h.ChildPID(3))
	}
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 2 })
	contServedBy(t, contGet(t, hupdPID, url), gen3)
	contNoZombie(t, pidns)

	// docker stop
	procKill(t, hupdPID, img.stopSignal)
	procWait(t, h, 0)
	if e := h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 3 }); e.Str("status") != "exit status 0" {
		t.Fatalf("gen 3 %v: want a graceful exit 0", e)
	}
	procNoEvent(t, h, logev.StopTimeout)
	if left := contMembers(t, pidns); len(left) != 0 {
		t.Fatalf("processes left in the namespace after hupd exited: %v", left)
	}
}

// TestContainerPID1ChildKilled: with --restart never, a child killed by a
// signal (the OOM killer's SIGKILL, say) ends hupd as PID 1 with 128+9,
// the code `docker run` and Kubernetes report.
func TestContainerPID1ChildKilled(t *testing.T) {
	h, _, pidns := contStart(t, contOpts{}, "run", "--restart", "never", "--listen", "http=tcp://127.0.0.1:0", "--", helloBin)
	child := h.ChildPID(1)
	h.WaitEvent(logev.ChildReady, 1, nil)
	procKill(t, contHostPID(t, pidns, child), syscall.SIGKILL)
	procWait(t, h, 128+int(syscall.SIGKILL))
	if e := h.WaitEvent(logev.ChildExited, 1, nil); e.Int("pid") != child || e.Str("status") != "killed by signal KILL" {
		t.Fatalf("child exited %v: want pid %d killed by signal KILL", e, child)
	}
	if n := len(h.Events(logev.ChildStarted)); n != 1 {
		t.Fatalf("%d children started, want 1 (--restart never)", n)
	}
}

// TestContainerPrivilegeDropPort80: the image run as root to serve port
// 80 with the child dropped to nobody, in a network namespace of its own.
// hupd (still root) binds 127.0.0.1:80; each generation, cold-started or
// taken from the standby shim, runs as nobody with nobody's groups only
// and no capability left, serves on that socket, and cannot reach hupd's
// control socket (the path it gets in $HUPD_CONTROL).
func TestContainerPrivilegeDropPort80(t *testing.T) {
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	gids, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	var groups []int
	for _, g := range append([]string{u.Gid}, gids...) {
		n, _ := strconv.Atoi(g)
		if !slices.Contains(groups, n) {
			groups = append(groups, n)
		}
	}
	slices.Sort(groups)

	h, hupdPID, pidns := contStart(t, contOpts{netns: true}, append([]string{"run", "--name", "hello",
		"--listen", "http=tcp://127.0.0.1:80", "--user", "nobody", "--"}, childCmd("cont-control", helloBin)...)...)
	if a := h.Listening("http"); a != "tcp://127.0.0.1:80" {
		t.Fatalf("listening on %s, want tcp://127.0.0.1:80", a)
	}
	if self := contNetns(t, os.Getpid()); self == contNetns(t, hupdPID) {
		t.Fatalf("hupd shares the test's network namespace %s", self)
	}
	if st := contStatus(t, hupdPID); st["Uid"] != "0 0 0 0" {
		t.Fatalf("hupd runs with Uid %q, want root", st["Uid"])
	}

	check := func(gen int) {
		t.Helper()
		pid := h.ChildPID(gen)
		if line := h.Stdout.NextWith(t, "control "); line != "control denied" {
			t.Fatalf("gen %d on the control socket: %q, want control denied (EACCES)", gen, line)
		}
		h.WaitEvent(logev.ChildReady, 1, func(e Event) bool { return e.Int("gen") == gen })
		contServedBy(t, contGet(t, hupdPID, "http://127.0.0.1:80/"), pid)
		st := contStatus(t, contHostPID(t, pidns, pid))
		want := map[string]string{
			"Uid":    strings.Repeat(u.Uid+" ", 3) + u.Uid,
			"Gid":    strings.Repeat(u.Gid+" ", 3) + u.Gid,
			"Groups": strings.Trim(fmt.Sprint(groups), "[]"),
			"CapInh": "0000000000000000",
			"CapPrm": "0000000000000000",
			"CapEff": "0000000000000000",
			"CapAmb": "0000000000000000",
		}
		for k, v := range want {
			if st[k] != v {
				t.Errorf("gen %d (pid %d): %s %q, want %q", gen, pid, k, st[k], v)
			}
		}
	}
	check(1)
	// The next generation comes from the standby shim, which waits as
	// root with the sockets and must drop privileges as a cold start does.
	h.WaitEvent(logev.StandbyReady, 1, nil)
	procKill(t, hupdPID, syscall.SIGHUP)
	h.WaitEvent(logev.ReloadDone, 1, nil)
	if e := h.WaitEvent(logev.ChildStarted, 1, func(e Event) bool { return e.Int("gen") == 2 }); e["standby"] != true {
		t.Fatalf("gen 2 started with standby=%v: want the standby shim's path tested", e["standby"])
	}
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 }) // it may accept until then
	check(2)

	procKill(t, hupdPID, syscall.SIGTERM)
	procWait(t, h, 0)
}

// contNetns returns the network namespace of pid.
func contNetns(t *testing.T, pid int) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// contConfigMapData returns the data of the first ConfigMap in a manifest
// written as examples/kubernetes writes it: "data:", then each key as
// "  KEY: |" followed by its lines indented by four spaces. (The module
// has no YAML parser; a manifest laid out otherwise fails the test.)
func contConfigMapData(t *testing.T, manifest string) map[string]string {
	t.Helper()
	data := map[string]string{}
	key, in := "", false
	for _, line := range strings.Split(manifest, "\n") {
		switch {
		case line == "data:":
			in = true
		case !in:
		case line == "---" || (line != "" && !strings.HasPrefix(line, " ")):
			return data
		case strings.HasPrefix(line, "    ") || line == "":
			if key != "" {
				data[key] += strings.TrimPrefix(line, "    ") + "\n"
			}
		case strings.HasPrefix(line, "  #"):
			key = ""
		case strings.HasSuffix(line, ": |"):
			key = strings.TrimSuffix(strings.TrimSpace(line), ": |")
		default:
			t.Fatalf("ConfigMap line %q: want \"  KEY: |\" and an indented block", line)
		}
	}
	return data
}

// contYAMLValue returns the value of the one line "KEY: VALUE" of a
// manifest, whatever its indentation.
func contYAMLValue(t *testing.T, manifest, key string) string {
	t.Helper()
	var vals []string
	for _, line := range strings.Split(manifest, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	if len(vals) != 1 {
		t.Fatalf("manifest has %d lines %q, want one: the example changed, adjust the test", len(vals), key+":")
	}
	return vals[0]
}

// contPublish updates a ConfigMap volume as the kubelet does: the files go
// to a new timestamped directory, a ..data_tmp symlink to it is renamed
// over ..data, the visible name is a symlink through ..data, and the
// previous directory is removed.
func contPublish(t *testing.T, dir, key, content string) {
	t.Helper()
	ts := time.Now().Format("..2006_01_02_15_04_05.000000000")
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	steps := []func() error{
		func() error { return os.Mkdir(filepath.Join(dir, ts), 0o755) },
		func() error { return os.WriteFile(filepath.Join(dir, ts, key), []byte(content), 0o644) },
		func() error { return os.Symlink(ts, filepath.Join(dir, "..data_tmp")) },
		func() error { return os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")) },
		func() error {
			if _, err := os.Lstat(filepath.Join(dir, key)); err == nil {
				return nil
			}
			return os.Symlink(filepath.Join("..data", key), filepath.Join(dir, key))
		},
		func() error {
			if old == "" {
				return nil
			}
			return os.RemoveAll(filepath.Join(dir, old))
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestContainerKubernetesPod: examples/kubernetes/hello.yaml as a pod
// would run it: hupd as PID 1 with the pod's user (65532, no privilege
// escalation) in its own network namespace, the ConfigMap's two keys in
// volumes laid out and updated as the kubelet does. The probes' endpoints
// answer; an update of hello.conf swaps hello once, and the new
// generation serves the new content; an update of hupd.toml that changes
// only a timeout is applied without a new generation; the pod's
// termination (TERM) ends hupd with 0. The termination grace period covers
// preStop, stop_timeout and hupd's last output.
func TestContainerKubernetesPod(t *testing.T) {
	b, err := os.ReadFile("../examples/kubernetes/hello.yaml")
	if err != nil {
		t.Fatal(err)
	}
	manifest := string(b)
	data := contConfigMapData(t, manifest)
	if data["hupd.toml"] == "" || data["hello.conf"] == "" {
		t.Fatalf("ConfigMap keys %v: want hupd.toml and hello.conf", slices.Sorted(maps.Keys(data)))
	}

	// Where the kubelet would mount the volumes, and the image's hello.
	root := contTmpDir(t, 0)
	hupdDir, helloDir := filepath.Join(root, "etc", "hupd"), filepath.Join(root, "etc", "hello")
	for _, d := range []string{hupdDir, helloDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := data["hupd.toml"]
	if strings.Count(conf, "/etc/hello/") != 2 {
		t.Fatalf("hupd.toml names /etc/hello/ %d times, want twice (hello's -config and [[watch]])", strings.Count(conf, "/etc/hello/"))
	}
	conf = strings.ReplaceAll(conf, "/etc/hello/", helloDir+"/")
	conf = replaceOnce(t, "hupd.toml", conf, `"/usr/local/bin/hello"`, strconv.Quote(helloBin))
	contPublish(t, hupdDir, "hupd.toml", conf)
	contPublish(t, helloDir, "hello.conf", data["hello.conf"])

	// The arithmetic of the termination grace period.
	var settings struct {
		Command []string
		Process struct {
			StopTimeout string `toml:"stop_timeout"`
		}
	}
	if _, err := toml.Decode(conf, &settings); err != nil {
		t.Fatal(err)
	}
	stop, err := time.ParseDuration(settings.Process.StopTimeout)
	if err != nil {
		t.Fatalf("stop_timeout %q: %v", settings.Process.StopTimeout, err)
	}
	if i := slices.Index(settings.Command, "-grace"); i < 0 || i+1 == len(settings.Command) {
		t.Fatalf("command %q: want hello's -grace", settings.Command)
	} else if grace, err := time.ParseDuration(settings.Command[i+1]); err != nil || grace >= stop {
		t.Fatalf("hello -grace %s (%v): want it shorter than stop_timeout %s", settings.Command[i+1], err, stop)
	}
	period, err1 := strconv.Atoi(contYAMLValue(t, manifest, "terminationGracePeriodSeconds"))
	preStop, err2 := strconv.Atoi(contYAMLValue(t, manifest, "seconds"))
	if err1 != nil || err2 != nil {
		t.Fatalf("terminationGracePeriodSeconds %v, preStop sleep %v", err1, err2)
	}
	if need := time.Duration(preStop)*time.Second + stop + 2*time.Second; time.Duration(period)*time.Second <= need {
		t.Fatalf("terminationGracePeriodSeconds %d: want more than preStop %ds + stop_timeout %s + 2s of hupd's last output", period, preStop, stop)
	}

	// The container's command line.
	var args []string
	if err := json.Unmarshal([]byte(contYAMLValue(t, manifest, "args")), &args); err != nil {
		t.Fatalf("args: %v", err)
	}
	args = contReplace(t, args, "/etc/hupd/hupd.toml", filepath.Join(hupdDir, "hupd.toml"))
	uid, err := strconv.Atoi(contYAMLValue(t, manifest, "runAsUser"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := "TMPDIR=" + contTmpDir(t, uid) // the emptyDir at /tmp
	h, hupdPID, _ := contStart(t, contOpts{netns: true, uid: uid, env: []string{tmp}}, args...)

	gen1 := h.ChildPID(1)
	h.WaitEvent(logev.ChildReady, 1, nil)
	for _, probe := range []string{"/livez", "/readyz"} {
		if body := contGet(t, hupdPID, "http://127.0.0.1:9901"+probe); strings.TrimSpace(body) != "ok" {
			t.Fatalf("%s: %q", probe, body)
		}
	}
	body := contGet(t, hupdPID, "http://127.0.0.1:8080/")
	contServedBy(t, body, gen1)
	if want := "config " + strings.TrimSpace(data["hello.conf"]); !strings.Contains(body, want) {
		t.Fatalf("answer %q: want %q", body, want)
	}

	// kubectl apply with a new hello.conf: the kubelet swaps ..data.
	contPublish(t, helloDir, "hello.conf", "greeting v2\n")
	h.WaitEvent(logev.ReloadDone, 1, nil)
	gen2 := h.ChildPID(2)
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 }) // it may accept until then
	body = contGet(t, hupdPID, "http://127.0.0.1:8080/")
	contServedBy(t, body, gen2)
	if !strings.Contains(body, "config greeting v2\n") {
		t.Fatalf("answer %q: want the new ConfigMap content", body)
	}

	// kubectl apply with a new stop_timeout: applied in place.
	contPublish(t, hupdDir, "hupd.toml", replaceOnce(t, "hupd.toml", conf, `stop_timeout = "25s"`, `stop_timeout = "20s"`))
	if e := h.WaitEvent(logev.ConfigApplied, 1, nil); e["new_generation"] != false {
		t.Fatalf("%v: want a timeout applied without a new generation", e)
	}
	if n := len(h.Events(logev.WatchedFilesChanged)); n != 1 {
		t.Fatalf("%d watched-file changes, want 1 (hello.conf)", n)
	}
	if n := len(h.Events(logev.ChildStarted)); n != 2 {
		t.Fatalf("%d generations started, want 2", n)
	}
	if body := contGet(t, hupdPID, "http://127.0.0.1:9901/readyz"); strings.TrimSpace(body) != "ok" {
		t.Fatalf("/readyz after the updates: %q", body)
	}

	procKill(t, hupdPID, syscall.SIGTERM) // the pod is deleted
	procWait(t, h, 0)
	procNoEvent(t, h, logev.StopTimeout)
}

// TestPrivilegeDropNeedsCapKill: a root hupd started without CAP_KILL (a
// container run with --cap-drop ALL) could never signal a child that runs
// as another user, so it could never stop it: it refuses to start, saying
// so, instead of hanging at the first stop.
func TestPrivilegeDropNeedsCapKill(t *testing.T) {
	t.Parallel()
	contNeed(t, false)
	setpriv := needTool(t, "/usr/bin/setpriv", "setpriv")
	for _, sub := range []string{"check", "run"} {
		cmd := exec.Command(setpriv, "--bounding-set=-kill", "--", hupdBin, sub, "--user", "nobody", "--listen", "tcp://127.0.0.1:0", "--", helloBin)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("hupd %s without CAP_KILL: %v, want exit 2: %s", sub, err, out)
		}
		if !strings.Contains(string(out), `process.user = "nobody": hupd lacks CAP_KILL`) {
			t.Errorf("hupd %s without CAP_KILL said %q", sub, out)
		}
	}
}
