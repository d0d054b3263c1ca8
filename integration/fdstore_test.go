package integration

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

func init() {
	// fdstore-exec: exec the argv it is given with LISTEN_PID set to its
	// own PID, which the exec keeps, when there are fds (at 3, 4, …): what
	// systemd does for the process it hands its fd store to.
	childModes["fdstore-exec"] = func(args []string) {
		env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, envChild+"=") })
		if os.Getenv("LISTEN_FDS") != "" {
			env = append(env, "LISTEN_PID="+strconv.Itoa(os.Getpid()))
		}
		err := unix.Exec(args[0], args, env)
		fmt.Fprintf(os.Stderr, "fdstore-exec %s: %v\n", args[0], err)
		os.Exit(98)
	}
}

// storeManager stands in for systemd with FileDescriptorStoreMax=max: it
// reads the notify socket as fakeManager does, and keeps an fd store as
// systemd.io/FILE_DESCRIPTOR_STORE and systemd's service.c have it: fds
// that come with FDSTORE=1 are kept under FDNAME= (a name systemd would
// not take makes it "stored"), not twice (the same socket is kept once),
// and not beyond max (the rest are closed); FDSTOREREMOVE=1 closes every
// fd of its FDNAME= and wins over FDSTORE=1 in the same message; fds sent
// without FDSTORE=1 are closed. It starts hupd again with the store the
// way systemd restarts a service: the fds at 3, 4, … newest first, their
// names in LISTEN_FDNAMES, LISTEN_PID the new process, $FDSTORE set.
type storeManager struct {
	*fakeManager
	max int

	mu    sync.Mutex
	cond  *sync.Cond
	store []stored
	full  int // fds closed because the store was full
}

type stored struct {
	name string
	f    *os.File
	id   [2]uint64 // dev, inode
}

func newStoreManager(t *testing.T, max int) *storeManager {
	t.Helper()
	m := &storeManager{fakeManager: &fakeManager{t: t, path: filepath.Join(t.TempDir(), "notify"), msgs: make(chan notifyMsg, 256)}, max: max}
	m.cond = sync.NewCond(&m.mu)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: m.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		c.Close()
		<-done
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, s := range m.store {
			s.f.Close()
		}
	})
	go func() {
		defer close(done)
		defer close(m.msgs)
		buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(253*4)+unix.CmsgSpace(unix.SizeofUcred))
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			msg := notifyMsg{lines: strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n"), at: time.Now()}
			var fds []int
			if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, cm := range cms {
					if cred, err := unix.ParseUnixCredentials(&cm); err == nil {
						msg.pid = int(cred.Pid)
					}
					if r, err := unix.ParseUnixRights(&cm); err == nil {
						fds = append(fds, r...)
					}
				}
			}
			msg.fds = len(fds)
			m.keep(msg, fds)
			m.msgs <- msg
		}
	}()
	return m
}

// validFDName is systemd's fdname_is_valid, without the empty name.
func validFDName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' || s[i] == ':' {
			return false
		}
	}
	return true
}

func (m *storeManager) keep(msg notifyMsg, fds []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.cond.Broadcast()
	name, named := msg.value("FDNAME")
	switch {
	case msg.has("FDSTOREREMOVE=1"):
		if named && validFDName(name) {
			m.store = slices.DeleteFunc(m.store, func(s stored) bool {
				if s.name == name {
					s.f.Close()
					return true
				}
				return false
			})
		}
	case msg.has("FDSTORE=1"):
		if !named || !validFDName(name) {
			name = "stored"
		}
		for _, fd := range fds {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				unix.Close(fd)
				continue
			}
			id := [2]uint64{st.Dev, st.Ino}
			switch {
			case len(m.store) >= m.max: // systemd checks this first
				m.full++
				unix.Close(fd)
			case slices.ContainsFunc(m.store, func(s stored) bool { return s.id == id }):
				unix.Close(fd)
			default:
				m.store = append(m.store, stored{name, os.NewFile(uintptr(fd), name), id})
			}
		}
		return
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// names returns the names in the store, in the order stored.
func (m *storeManager) names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, s := range m.store {
		out = append(out, s.name)
	}
	return out
}

// waitNames waits until the store holds exactly these names, in order.
func (m *storeManager) waitNames(want ...string) {
	m.t.Helper()
	if !waitCond(&m.mu, m.cond, func() bool {
		var got []string
		for _, s := range m.store {
			got = append(got, s.name)
		}
		return slices.Equal(got, want)
	}) {
		m.t.Fatalf("fd store holds %q, want %q", m.names(), want)
	}
}

// start runs hupd with args (after "hupd") as systemd starts the service:
// with its fd store, $FDSTORE and $NOTIFY_SOCKET. A stored fd that reports
// POLLHUP or POLLERR is dropped first, as systemd does when it sees it.
func (m *storeManager) start(args ...string) *Hupd {
	m.t.Helper()
	m.mu.Lock()
	m.store = slices.DeleteFunc(m.store, func(s stored) bool {
		p := []unix.PollFd{{Fd: int32(s.f.Fd())}}
		if n, _ := unix.Poll(p, 0); n > 0 && p[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
			s.f.Close()
			return true
		}
		return false
	})
	var files []*os.File
	var names []string
	for i := len(m.store) - 1; i >= 0; i-- { // systemd prepends each fd it stores
		// A copy: the store's own may be closed while hupd starts.
		fd, err := unix.FcntlInt(m.store[i].f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			m.mu.Unlock()
			m.t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), m.store[i].name)
		defer f.Close() // once hupd has started with it
		files = append(files, f)
		names = append(names, m.store[i].name)
	}
	m.mu.Unlock()
	argv := childCmd("fdstore-exec", append([]string{hupdBin}, withJSONLog(args)...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+m.path, "FDSTORE="+strconv.Itoa(m.max))
	if len(files) > 0 {
		cmd.Env = append(cmd.Env, "LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
		cmd.ExtraFiles = files
	}
	return StartHupdCmd(m.t, cmd)
}

// httpLoad makes requests to addr, each over a new connection, from
// workers until stop is called, and counts the outcomes.
type httpLoad struct {
	addr                string
	ok, refused, failed atomic.Int64
	stopped             chan struct{}
	wg                  sync.WaitGroup

	mu                    sync.Mutex
	cond                  *sync.Cond     // broadcast after each request
	pids                  map[string]int // "pid N" → answers
	firstErr, firstRefuse error
}

func startHTTPLoad(addr string, workers int) *httpLoad {
	l := &httpLoad{addr: addr, stopped: make(chan struct{}), pids: map[string]int{}}
	l.cond = sync.NewCond(&l.mu)
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stopped:
					return
				default:
				}
				body, err := getOnce(addr)
				l.mu.Lock()
				switch {
				case errors.Is(err, syscall.ECONNREFUSED):
					l.refused.Add(1)
					if l.firstRefuse == nil {
						l.firstRefuse = err
					}
				case err != nil:
					l.failed.Add(1)
					if l.firstErr == nil {
						l.firstErr = err
					}
				default:
					l.ok.Add(1)
					first, _, _ := strings.Cut(body, "\n")
					l.pids[first]++
				}
				l.cond.Broadcast()
				l.mu.Unlock()
			}
		})
	}
	return l
}

// wait blocks until ok (called with l.mu held) holds, failing t at the
// deadline or at a refused connection.
func (l *httpLoad) wait(t *testing.T, what string, ok func() bool) {
	t.Helper()
	if !waitCond(&l.mu, l.cond, func() bool { return ok() || l.firstRefuse != nil }) || l.firstRefuse != nil {
		t.Fatalf("load: waiting for %s: %d ok, %d refused (%v), %d failed (%v); answers %v", what,
			l.ok.Load(), l.refused.Load(), l.firstRefuse, l.failed.Load(), l.firstErr, l.pids)
	}
}

func (l *httpLoad) stop() {
	close(l.stopped)
	l.wg.Wait()
}

// getOnce is one HTTP/1.0 GET / over a new connection; it returns the body.
func getOnce(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	return readBody(c)
}

func readBody(c net.Conn) (string, error) {
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	head, body, ok := strings.Cut(string(b), "\r\n\r\n")
	if !ok || !strings.HasPrefix(head, "HTTP/1.") || !strings.Contains(head, " 200 ") {
		return "", fmt.Errorf("bad response %q", b)
	}
	return body, nil
}

// TestSystemdFDStoreKill9: under a service manager with an fd store, hupd
// stores its [[listen]] sockets (a named one and an unnamed one on port
// 0) once they are open. kill -9 of hupd under load (a new connection per
// request) takes its child along, but the manager holds the sockets:
// clients that connect in the gap wait in the backlog, and the hupd it
// starts again takes the sockets back by name (the unnamed one under the
// name made from its address) and does not store them again; its child
// answers them. No connection is refused. Then an edit of hupd.toml that
// drops the unnamed socket and adds another removes the one
// (FDSTOREREMOVE=1) and stores the other.
func TestSystemdFDStoreKill9(t *testing.T) {
	t.Parallel()
	m := newStoreManager(t, 4)
	conf := filepath.Join(t.TempDir(), "hupd.toml")
	base := fmt.Sprintf("command = [%q]\n[[listen]]\nname = \"web\"\naddress = \"tcp://127.0.0.1:0\"\n", helloBin)
	if err := os.WriteFile(conf, []byte(base+"[[listen]]\naddress = \"tcp://127.0.0.1:0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h1 := m.start("run", "-c", conf)
	ready := m.next("READY=1")
	if ready.pid != h1.Cmd.Process.Pid {
		t.Fatalf("READY=1 from pid %d, want hupd's %d", ready.pid, h1.Cmd.Process.Pid)
	}
	m.waitNames("web", "tcp_//127.0.0.1_0")
	for _, msg := range m.all {
		if msg.has("FDSTORE=1") && (msg.fds != 1 || msg.pid != h1.Cmd.Process.Pid) {
			t.Errorf("FDSTORE=1 message %v with %d fds from pid %d: want one fd, from hupd", msg.lines, msg.fds, msg.pid)
		}
	}
	web, anon := HostPort(h1.Listening("web")), HostPort(h1.Listening("unknown"))
	child1 := h1.ChildPID(1)

	load := startHTTPLoad(web, 4)
	// Some answers from generation 1 first.
	load.wait(t, "answers from generation 1", func() bool { return load.pids["pid "+strconv.Itoa(child1)] >= 20 })

	if err := syscall.Kill(h1.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := h1.Wait(); code != -1 {
		t.Fatalf("hupd exit code %d after SIGKILL", code)
	}
	// Pdeathsig ends the child and the standby shim: nothing but the
	// manager holds the sockets now, and nothing accepts.
	waitGone(t, child1)
	for _, ev := range h1.Events(logev.StandbyReady) {
		waitGone(t, ev.Int("pid"))
	}

	// In the gap: the connection is made (the store holds the socket)
	// and waits in the backlog, on both sockets.
	var gap []net.Conn
	for _, addr := range []string{web, anon} {
		c, err := net.DialTimeout("tcp", addr, deadline)
		if err != nil {
			t.Fatalf("connecting to %s while no hupd runs: %v", addr, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(deadline))
		if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		gap = append(gap, c)
	}
	m.waitNames("web", "tcp_//127.0.0.1_0") // the kill took nothing out

	h2 := m.start("run", "-c", conf)
	n := len(m.all)
	if ready := m.next("READY=1"); ready.pid != h2.Cmd.Process.Pid {
		t.Fatalf("READY=1 from pid %d, want the new hupd's %d", ready.pid, h2.Cmd.Process.Pid)
	}
	for _, msg := range m.all[n:] {
		if msg.has("FDSTORE=1") || msg.has("FDSTOREREMOVE=1") {
			t.Errorf("the restarted hupd sent %v: its sockets came from the store", msg.lines)
		}
	}
	child2 := h2.ChildPID(1)
	for _, name := range []string{"web", "unknown"} {
		ev := h2.WaitEvent(logev.Listening, 1, func(e Event) bool { return e.Str("socket") == name })
		if want := map[string]string{"web": web, "unknown": anon}[name]; HostPort(ev.Str("address")) != want || ev["inherited"] != true {
			t.Errorf("restarted hupd: %v, want %s on %s inherited", ev, name, want)
		}
	}
	for i, c := range gap {
		body, err := readBody(c)
		if err != nil {
			t.Fatalf("gap client %d: %v", i, err)
		}
		if want := "pid " + strconv.Itoa(child2) + "\n"; !strings.HasPrefix(body, want) {
			t.Errorf("gap client %d answered %q, want it from the new child (%s)", i, body, want)
		}
	}
	// Answers from the new child under load, then the tally.
	load.wait(t, "answers from the new child", func() bool { return load.pids["pid "+strconv.Itoa(child2)] >= 20 })
	load.stop()
	t.Logf("load: %d ok, %d failed (first: %v), %d refused; answers by pid %v", load.ok.Load(), load.failed.Load(), load.firstErr, load.refused.Load(), load.pids)
	if r := load.refused.Load(); r != 0 {
		t.Errorf("%d connections refused (first: %v)", r, load.firstRefuse)
	}
	// Only requests the killed child had accepted can fail: one per worker.
	if f := load.failed.Load(); f > 4 {
		t.Errorf("%d requests failed (first: %v), want at most one per worker", f, load.firstErr)
	}

	// An edit: the unnamed socket goes, "api" comes (on another address:
	// the same one would keep the socket, under the new name).
	if err := os.WriteFile(conf, []byte(base+"[[listen]]\nname = \"api\"\naddress = \"tcp://127.0.0.2:0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rm := m.next("FDSTOREREMOVE=1")
	if name, _ := rm.value("FDNAME"); name != "tcp_//127.0.0.1_0" || rm.fds != 0 {
		t.Errorf("%v with %d fds, want the unnamed socket's name and no fd", rm.lines, rm.fds)
	}
	if st := m.next("FDSTORE=1"); !st.has("FDNAME=api") || st.fds != 1 {
		t.Errorf("%v with %d fds, want api's", st.lines, st.fds)
	}
	m.waitNames("web", "api")
	api := HostPort(h2.Listening("api"))
	m.mu.Lock()
	stored := m.store[1].f
	m.mu.Unlock()
	if got := socketPort(t, stored); got != api {
		t.Errorf("the store holds %s as api, hupd listens on %s", got, api)
	}
	if code := h2.Stop(); code != 0 {
		t.Fatalf("hupd exit code %d", code)
	}
}

func socketPort(t *testing.T, f *os.File) string {
	t.Helper()
	sa, err := unix.Getsockname(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	in, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		t.Fatalf("stored socket is bound to %#v", sa)
	}
	return net.JoinHostPort(net.IP(in.Addr[:]).String(), strconv.Itoa(in.Port))
}

// TestSystemdFDStoreLimit: with FileDescriptorStoreMax=1 ($FDSTORE=1) and
// two sockets, hupd stores the first only and warns once, naming the
// other; with [systemd] fdstore = no it stores nothing.
func TestSystemdFDStoreLimit(t *testing.T) {
	t.Parallel()
	m := newStoreManager(t, 1)
	h := m.start("run", "--listen", "a=tcp://127.0.0.1:0", "--listen", "b=tcp://127.0.0.1:0", "--", helloBin)
	m.next("READY=1")
	m.waitNames("a")
	var stores []string
	for _, msg := range m.all {
		if msg.has("FDSTORE=1") {
			stores = append(stores, strings.Join(msg.lines, " "))
		}
	}
	if want := []string{"FDSTORE=1 FDNAME=a"}; !slices.Equal(stores, want) {
		t.Errorf("sent %q, want %q", stores, want)
	}
	// Logged before the first generation started, but read from another
	// pipe than READY=1 came on.
	const limit = logev.FDStoreFull
	h.WaitEvent(limit, 1, nil)
	h.Sync()
	warn := h.Events(limit)
	if len(warn) != 1 || warn[0].Int("fdstore") != 1 || fmt.Sprint(warn[0]["not_stored"]) != "[b]" {
		t.Errorf("warnings %v, want one naming b", warn)
	}
	m.mu.Lock()
	full := m.full
	m.mu.Unlock()
	if full != 0 {
		t.Errorf("%d fds sent to a full store", full)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit code %d", code)
	}

	off := newStoreManager(t, 4)
	h = off.start("run", "--fdstore", "no", "--listen", "a=tcp://127.0.0.1:0", "--", helloBin)
	off.next("READY=1")
	for _, msg := range off.all {
		if msg.fds > 0 || msg.has("FDSTORE=1") {
			t.Errorf("fdstore = no: sent %v with %d fds", msg.lines, msg.fds)
		}
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit code %d", code)
	}
}

// TestSystemdFDStoreStale: hupd is started again with sockets in the store
// that its hupd.toml, edited while it was down, no longer has: "old" is
// gone and "web" moved from TCP to a unix socket. The name alone does not
// bring the TCP socket back as "web": hupd binds the new one, closes both
// stale sockets and removes them from the store (FDSTOREREMOVE=1 of each
// name), stores the new "web", and the old port refuses connections.
func TestSystemdFDStoreStale(t *testing.T) {
	t.Parallel()
	m := newStoreManager(t, 4)
	dir := t.TempDir()
	conf := filepath.Join(dir, "hupd.toml")
	head := fmt.Sprintf("command = [%q]\n", helloBin)
	if err := os.WriteFile(conf, []byte(head+"[[listen]]\nname = \"web\"\naddress = \"tcp://127.0.0.1:0\"\n[[listen]]\nname = \"old\"\naddress = \"tcp://127.0.0.1:0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h1 := m.start("run", "-c", conf)
	m.next("READY=1")
	m.waitNames("web", "old")
	oldWeb, oldOld := HostPort(h1.Listening("web")), HostPort(h1.Listening("old"))
	if code := h1.Stop(); code != 0 { // the store stays, as over a restart
		t.Fatalf("hupd exit code %d", code)
	}

	sock := filepath.Join(dir, "web.sock")
	if err := os.WriteFile(conf, []byte(head+"[[listen]]\nname = \"web\"\naddress = \"unix://"+sock+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h2 := m.start("run", "-c", conf)
	n := len(m.all)
	m.next("READY=1")
	var removed []string
	for _, msg := range m.all[n:] {
		if msg.has("FDSTOREREMOVE=1") {
			name, _ := msg.value("FDNAME")
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	if want := []string{"old", "web"}; !slices.Equal(removed, want) {
		t.Errorf("removed %q from the store, want %q", removed, want)
	}
	m.waitNames("web")
	m.mu.Lock()
	sa, err := unix.Getsockname(int(m.store[0].f.Fd()))
	m.mu.Unlock()
	if un, ok := sa.(*unix.SockaddrUnix); err != nil || !ok || un.Name != sock {
		t.Errorf("the store holds %#v (%v) as web, want the unix socket %s", sa, err, sock)
	}
	ev := h2.WaitEvent(logev.Listening, 1, func(e Event) bool { return e.Str("socket") == "web" })
	if ev.Str("address") != "unix://"+sock || ev["inherited"] != false {
		t.Errorf("restarted hupd: %v, want web on unix://%s, bound by hupd", ev, sock)
	}
	if closed := h2.Events(logev.InheritedClosed); len(closed) != 2 {
		t.Errorf("%d stale sockets logged, want 2: %v", len(closed), closed)
	}
	if body := fetch(t, "unix", sock, "/"); !strings.HasPrefix(body, "pid "+strconv.Itoa(h2.ChildPID(1))+"\nname web\n") {
		t.Errorf("unix socket answered %q", body)
	}
	for _, addr := range []string{oldWeb, oldOld} {
		if c, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
			if c != nil {
				c.Close()
			}
			t.Errorf("stale socket %s: %v, want connection refused (closed everywhere)", addr, err)
		}
	}
	if code := h2.Stop(); code != 0 {
		t.Fatalf("hupd exit code %d", code)
	}
}

// TestSystemdFDStoreUpgrade: an in-place upgrade (same PID) neither stores
// nor removes anything; the upgraded hupd knows what is stored: an edit
// that drops a socket then removes it, and only it.
func TestSystemdFDStoreUpgrade(t *testing.T) {
	t.Parallel()
	m := newStoreManager(t, 4)
	conf := filepath.Join(t.TempDir(), "hupd.toml")
	head := fmt.Sprintf("command = [%q]\n[[listen]]\nname = \"a\"\naddress = \"tcp://127.0.0.1:0\"\n", helloBin)
	if err := os.WriteFile(conf, []byte(head+"[[listen]]\nname = \"b\"\naddress = \"tcp://127.0.0.1:0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := m.start("run", "-c", conf)
	m.next("READY=1")
	m.waitNames("a", "b")
	n := len(m.all)
	if out, code := hupdCtl(t, h, "upgrade"); code != 0 {
		t.Fatalf("hupd upgrade: exit %d: %s", code, out)
	}
	h.WaitEvent(logev.Upgraded, 1, nil)
	h.Signal(syscall.SIGHUP)
	m.next("RELOADING=1")
	m.next("READY=1")
	for _, msg := range m.all[n:] {
		if msg.has("FDSTORE=1") || msg.has("FDSTOREREMOVE=1") || msg.fds > 0 {
			t.Errorf("around the upgrade: sent %v with %d fds", msg.lines, msg.fds)
		}
	}
	if err := os.WriteFile(conf, []byte(head), 0o644); err != nil {
		t.Fatal(err)
	}
	rm := m.next("FDSTOREREMOVE=1")
	if !rm.has("FDNAME=b") {
		t.Errorf("removed %v, want b", rm.lines)
	}
	h.WaitEvent(logev.ConfigApplied, 1, nil)
	m.waitNames("a")
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit code %d", code)
	}
	for _, msg := range m.all[n:] {
		if msg.has("FDSTORE=1") {
			t.Errorf("after the upgrade: stored again %v", msg.lines)
		}
	}
}
