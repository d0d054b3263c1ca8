package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

// SockInfo is what the "sockinfo" child mode reports about one passed fd,
// read with getsockopt and getsockname on the fd itself.
type SockInfo struct {
	FD        int
	Name      string // its LISTEN_FDNAMES entry
	Family    string // inet, inet6, unix
	Type      string // stream, dgram
	Addr      string // host:port, a path, or @name for the abstract namespace
	Port      int
	Listening bool // SO_ACCEPTCONN
	ReusePort bool // SO_REUSEPORT
	V6Only    *bool
	Backlog   int // listen backlog of a TCP socket (TCP_INFO tcpi_sacked); 0 otherwise
}

// SockReport is the "sockinfo" child's one JSON line.
type SockReport struct {
	PID     int
	Sockets []SockInfo
}

func init() {
	// sockinfo: check LISTEN_PID, print one JSON SockReport line, then on
	// every stream socket answer each connection with "NAME\n" and close
	// it; exit 0 on TERM.
	childModes["sockinfo"] = func([]string) {
		names := activatedNames()
		rep := SockReport{PID: os.Getpid()}
		for i, name := range names {
			rep.Sockets = append(rep.Sockets, sockInfo(3+i, name))
		}
		for _, si := range rep.Sockets {
			if !si.Listening {
				continue
			}
			l, err := net.FileListener(os.NewFile(uintptr(si.FD), si.Name))
			if err != nil {
				fmt.Fprintf(os.Stderr, "child sockinfo: fd %d: %v\n", si.FD, err)
				os.Exit(3)
			}
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					io.WriteString(c, si.Name+"\n")
					c.Close()
				}
			}()
		}
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		json.NewEncoder(os.Stdout).Encode(rep)
		<-sigs
	}
	// udp-echo: check LISTEN_PID and LISTEN_FDS=1, echo every datagram on
	// fd 3 (udp or unixgram) back to its sender, print "ready PID"; exit 0
	// on TERM.
	childModes["udp-echo"] = func([]string) {
		if len(activatedNames()) != 1 {
			fmt.Fprintln(os.Stderr, "child udp-echo: want exactly one socket")
			os.Exit(3)
		}
		pc, err := net.FilePacketConn(os.NewFile(3, "socket"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "child udp-echo: %v\n", err)
			os.Exit(3)
		}
		go func() {
			buf := make([]byte, 64<<10)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Println("ready", os.Getpid())
		<-sigs
	}
	// fds: print one JSON FDReport line, then block until a signal ends it.
	childModes["fds"] = func([]string) {
		json.NewEncoder(os.Stdout).Encode(FDReport{Env: describeSelf(), Targets: fdTargets()})
		select {}
	}
	// fds-http: print one JSON FDReport line, then serve HTTP like "http".
	childModes["fds-http"] = func(args []string) {
		json.NewEncoder(os.Stdout).Encode(FDReport{Env: describeSelf(), Targets: fdTargets()})
		childModes["http"](args)
	}
}

// FDReport is what the "fds" child modes report: the ChildEnv and what
// every open fd points at.
type FDReport struct {
	Env     ChildEnv
	Targets map[int]string // fd → readlink of /proc/self/fd/N
}

func fdTargets() map[int]string {
	out := map[int]string{}
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return out
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, n := range names {
		fd, _ := strconv.Atoi(n)
		if fd == int(d.Fd()) {
			continue
		}
		out[fd], _ = os.Readlink("/proc/self/fd/" + n)
	}
	return out
}

// readFDReport reads the fds child's JSON line.
func readFDReport(h *Hupd) FDReport {
	h.t.Helper()
	var rep FDReport
	line := h.Stdout.NextWith(h.t, "{")
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		h.t.Fatalf("fds line %q: %v", line, err)
	}
	return rep
}

// ProgramFDs returns, sorted, the fds the program was given: all but those
// the Go runtime opens for itself (cgroup files it reads GOMAXPROCS limits
// from since Go 1.25, its netpoller's epoll and eventfd).
func (r FDReport) ProgramFDs() []int {
	var fds []int
	for fd, target := range r.Targets {
		if strings.HasPrefix(target, "/sys/fs/cgroup/") || target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]" {
			continue
		}
		fds = append(fds, fd)
	}
	slices.Sort(fds)
	return fds
}

// activatedNames checks the socket-activation variables the way
// sd_listen_fds does and returns one name per passed fd. A child that did
// not get its sockets exits 3.
func activatedNames() []string {
	if pid := os.Getenv("LISTEN_PID"); pid != strconv.Itoa(os.Getpid()) {
		fmt.Fprintf(os.Stderr, "child: LISTEN_PID=%q, my pid is %d\n", pid, os.Getpid())
		os.Exit(3)
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	if err != nil || n < 1 || len(names) != n {
		fmt.Fprintf(os.Stderr, "child: LISTEN_FDS=%q LISTEN_FDNAMES=%q\n", os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"))
		os.Exit(3)
	}
	return names
}

func sockInfo(fd int, name string) SockInfo {
	si := SockInfo{FD: fd, Name: name}
	domain, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	typ, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	acc, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	rp, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	si.Listening, si.ReusePort = acc == 1, rp == 1
	si.Type = map[int]string{unix.SOCK_STREAM: "stream", unix.SOCK_DGRAM: "dgram"}[typ]
	si.Family = map[int]string{unix.AF_INET: "inet", unix.AF_INET6: "inet6", unix.AF_UNIX: "unix"}[domain]
	if domain == unix.AF_INET6 {
		v, _ := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		b := v == 1
		si.V6Only = &b
	}
	if si.Listening && domain != unix.AF_UNIX {
		if ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			si.Backlog = int(ti.Sacked) // sk_max_ack_backlog for a listening socket
		}
	}
	sa, _ := unix.Getsockname(fd)
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		si.Addr, si.Port = net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port)), sa.Port
	case *unix.SockaddrInet6:
		si.Addr, si.Port = net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port)), sa.Port
	case *unix.SockaddrUnix:
		si.Addr = sa.Name
		if strings.HasPrefix(si.Addr, "\x00") {
			si.Addr = "@" + si.Addr[1:]
		}
	}
	return si
}

// quickChild is childCmd (which already skips the race detector's pause
// at exit).
func quickChild(mode string, args ...string) []string { return childCmd(mode, args...) }

// readSockReport reads the sockinfo child's JSON line.
func readSockReport(h *Hupd) SockReport {
	h.t.Helper()
	var rep SockReport
	line := h.Stdout.NextWith(h.t, "{")
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		h.t.Fatalf("sockinfo line %q: %v", line, err)
	}
	return rep
}

// waitStderr blocks until hupd's non-JSON stderr (where a wrapper such as
// systemd-socket-activate writes) contains s, and reports whether it does:
// false when the process exited without writing it.
func (h *Hupd) waitStderr(s string) bool {
	h.t.Helper()
	return h.waitFor(strconv.Quote(s)+" on stderr", func() bool { return strings.Contains(h.stderr.String(), s) })
}

// fetch makes one HTTP GET of path over a fresh connection to addr on
// network (tcp, unix; "@name" is abstract) and returns the body.
func fetch(t *testing.T, network, addr, path string) string {
	t.Helper()
	c := &http.Client{Timeout: deadline, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	resp, err := c.Get("http://hupd-test" + path)
	if err != nil {
		t.Fatalf("GET %s %s%s: %v", network, addr, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s %s%s: status %d, %v", network, addr, path, resp.StatusCode, err)
	}
	return string(b)
}

// readAllFrom connects to addr and returns everything the server sends
// before it closes the connection (sockinfo sends "NAME\n").
func readAllFrom(t *testing.T, network, addr string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, deadline)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadline))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s %s: %v", network, addr, err)
	}
	return string(b)
}

// echo sends msg from a fresh datagram socket to addr and returns the reply.
func echo(t *testing.T, network, addr, msg string) string {
	t.Helper()
	var (
		pc  net.PacketConn
		to  net.Addr
		err error
	)
	if network == "unixgram" {
		// A unixgram client needs an address of its own to get a reply.
		pc, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram", Name: filepath.Join(sockDir(t), "client.sock")})
		to = &net.UnixAddr{Net: "unixgram", Name: addr}
	} else {
		var ua *net.UDPAddr
		if ua, err = net.ResolveUDPAddr(network, addr); err == nil {
			to = ua
			local := "127.0.0.1:0"
			if ua.IP.To4() == nil {
				local = "[::1]:0"
			}
			pc, err = net.ListenPacket(network, local)
		}
	}
	if err != nil {
		t.Fatalf("datagram client for %s %s: %v", network, addr, err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(deadline))
	if _, err := pc.WriteTo([]byte(msg), to); err != nil {
		t.Fatalf("send to %s %s: %v", network, addr, err)
	}
	buf := make([]byte, 64<<10)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("reply from %s %s: %v", network, addr, err)
	}
	return string(buf[:n])
}

// sockDir returns a fresh short directory for unix sockets (sun_path holds
// at most 107 bytes, and t.TempDir paths of subtests can be long).
func sockDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "hupd-s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// abstractName returns a name in the abstract unix namespace that no other
// test (or test run) uses.
func abstractName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return fmt.Sprintf("@hupd-test-%d-%s", os.Getpid(), hex.EncodeToString(b))
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// needIPv6 skips t on a host without an IPv6 loopback (some containers).
func needIPv6(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback on this host: %v", err)
	}
	l.Close()
}

// needTool returns the path of an external program the test relies on. A
// missing one skips the test on a developer machine and fails it in CI
// (CI set), where it must be installed.
func needTool(t *testing.T, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed (CI is set: it must be)", candidates[0])
	}
	t.Skipf("%s not installed", candidates[0])
	return ""
}

func lstatSocket(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("socket file: %v", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("%s is %v, want a socket", path, fi.Mode())
	}
	return fi.Sys().(*syscall.Stat_t)
}

func assertGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after hupd exited (lstat: %v)", path, err)
	}
}

// TestSocketsGoSystemdConsumers: programs that take their sockets with
// go-systemd's activation.ListenersWithNames get every socket under its own
// name: two named TCP listeners and a unix one each answer with their name,
// from the child hupd started.
func TestSocketsGoSystemdConsumers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		argv []string
		want func(pid int, name string) string
		// ready waits until the child handles TERM (and so can exit 0).
		ready func(h *Hupd, pid int)
	}{
		{"examples/hello", []string{helloBin}, func(pid int, name string) string {
			return fmt.Sprintf("pid %d\nname %s\n", pid, name)
		}, func(h *Hupd, pid int) {
			if want := fmt.Sprintf("hello: pid %d serving 3 socket name(s)", pid); !h.waitStderr(want) {
				h.t.Fatalf("hupd exited (%v) before hello said %q", h.err, want)
			}
		}},
		{"child http", quickChild("http"), func(pid int, name string) string {
			return fmt.Sprintf("pid %d name %s", pid, name)
		}, func(h *Hupd, pid int) {
			if line := h.Stdout.NextWith(h.t, "ready"); line != fmt.Sprintf("ready %d", pid) {
				h.t.Fatalf("child said %q", line)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sock := filepath.Join(sockDir(t), "admin.sock")
			h := StartHupd(t, append([]string{"run",
				"--listen", "web=tcp://127.0.0.1:0",
				"--listen", "api=tcp://127.0.0.1:0",
				"--listen", "admin=unix://" + sock,
				"--"}, tc.argv...)...)
			web, api := HostPort(h.Listening("web")), HostPort(h.Listening("api"))
			if got := h.Listening("admin"); got != "unix://"+sock {
				t.Fatalf("admin listening on %q, want unix://%s", got, sock)
			}
			pid := h.ChildPID(1)
			tc.ready(h, pid)
			for _, c := range []struct{ network, addr, name string }{
				{"tcp", web, "web"}, {"tcp", api, "api"}, {"unix", sock, "admin"},
			} {
				body := fetch(t, c.network, c.addr, "/")
				if want := tc.want(pid, c.name); !strings.HasPrefix(body, want) {
					t.Errorf("%s %s answered %q, want it to start with %q", c.network, c.addr, body, want)
				}
			}
			if code := h.Stop(); code != 0 {
				t.Fatalf("hupd exit code %d, want 0", code)
			}
		})
	}
}

// pythonConsumer is a socket-activated server in plain Python: it checks
// LISTEN_PID against its own PID, LISTEN_FDS and LISTEN_FDNAMES against the
// names in argv, wraps fds 3… with socket.socket(fileno=…) and answers HTTP
// with its PID and the socket's name.
const pythonConsumer = `
import os, select, signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
want = sys.argv[1:]
pid = os.getpid()
def fail(msg):
    print("python consumer: " + msg, file=sys.stderr, flush=True)
    sys.exit(3)
env = os.environ
if env.get("LISTEN_PID") != str(pid):
    fail("LISTEN_PID=%r but os.getpid()=%d" % (env.get("LISTEN_PID"), pid))
if env.get("LISTEN_FDS") != str(len(want)):
    fail("LISTEN_FDS=%r, want %d" % (env.get("LISTEN_FDS"), len(want)))
if env.get("LISTEN_FDNAMES", "").split(":") != want:
    fail("LISTEN_FDNAMES=%r, want %r" % (env.get("LISTEN_FDNAMES"), ":".join(want)))
socks = {}
for i, name in enumerate(want):
    socks[socket.socket(fileno=3 + i)] = name
print("ready", pid, " ".join("%s=%s/%s" % (n, s.family.name, s.type.name) for s, n in socks.items()), flush=True)
while True:
    ready, _, _ = select.select(list(socks), [], [])
    for s in ready:
        c, _ = s.accept()
        with c:
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = c.recv(4096)
                if not chunk:
                    break
                req += chunk
            body = ("python pid %d name %s\n" % (pid, socks[s])).encode()
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
`

// TestSocketsPythonConsumer: a Python program started through hupd's exec
// shim sees LISTEN_PID equal to os.getpid() (hupd's shim kept the PID across
// exec), the right LISTEN_FDS and LISTEN_FDNAMES, and serves on fds 3 and 4.
func TestSocketsPythonConsumer(t *testing.T) {
	t.Parallel()
	python := needTool(t, "python3")
	sock := filepath.Join(sockDir(t), "admin.sock")
	h := StartHupd(t, "run", "--listen", "web=tcp://127.0.0.1:0", "--listen", "admin=unix://"+sock,
		"--", python, "-c", pythonConsumer, "web", "admin")
	web := HostPort(h.Listening("web"))
	pid := h.ChildPID(1)
	want := fmt.Sprintf("ready %d web=AF_INET/SOCK_STREAM admin=AF_UNIX/SOCK_STREAM", pid)
	if line := h.Stdout.NextWith(t, "ready"); line != want {
		t.Fatalf("python said %q, want %q", line, want)
	}
	if body := fetch(t, "tcp", web, "/"); body != fmt.Sprintf("python pid %d name web\n", pid) {
		t.Errorf("tcp: body %q", body)
	}
	if body := fetch(t, "unix", sock, "/"); body != fmt.Sprintf("python pid %d name admin\n", pid) {
		t.Errorf("unix: body %q", body)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit code %d, want 0", code)
	}
	assertGone(t, sock)
}

const gunicornApp = `
import os

def app(environ, start_response):
    body = ("gunicorn master %d worker %d path %s\n" % (os.getppid(), os.getpid(), environ["PATH_INFO"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`

// The hooks print to stdout, which hupd shares with its child: "listeners"
// once the arbiter has its sockets, "worker ready" once a worker serves.
const gunicornConf = `
workers = 1
graceful_timeout = 5

def when_ready(server):
    print("listeners", " ".join(str(l) for l in server.LISTENERS), flush=True)

def post_worker_init(worker):
    print("worker ready", worker.pid, flush=True)
`

// TestSocketsGunicorn: Debian's gunicorn, started with no --bind, takes a
// hupd-held TCP socket and a hupd-held unix socket through its systemd
// socket-activation support (LISTEN_PID must be its own PID) and serves a
// WSGI app on both; its master is the process hupd started. On stop,
// gunicorn leaves the unix socket file alone (it is not its own) and hupd
// removes it.
func TestSocketsGunicorn(t *testing.T) {
	t.Parallel()
	gunicorn := needTool(t, "/usr/bin/gunicorn", "gunicorn")
	dir := t.TempDir()
	writeFile(t, dir, "app.py", gunicornApp)
	conf := writeFile(t, dir, "gunicorn_conf.py", gunicornConf)
	sock := filepath.Join(sockDir(t), "g.sock")
	h := StartHupd(t, "run", "--listen", "http=tcp://127.0.0.1:0", "--listen", "local=unix://"+sock,
		"--", gunicorn, "--config", conf, "--chdir", dir, "app:app")
	web := HostPort(h.Listening("http"))
	master := h.ChildPID(1)
	line := h.Stdout.NextWith(t, "listeners ")
	for _, want := range []string{"http://" + web, "unix:" + sock} {
		if !strings.Contains(line, want) {
			t.Fatalf("gunicorn %q: want it to use hupd's socket %s (did it bind its own?)", line, want)
		}
	}
	h.Stdout.NextWith(t, "worker ready")
	for _, c := range []struct{ network, addr string }{{"tcp", web}, {"unix", sock}} {
		body := fetch(t, c.network, c.addr, "/"+c.network)
		if want := fmt.Sprintf("gunicorn master %d worker ", master); !strings.HasPrefix(body, want) || !strings.HasSuffix(body, " path /"+c.network+"\n") {
			t.Errorf("%s: body %q, want %q… path /%s", c.network, body, want, c.network)
		}
	}
	lstatSocket(t, sock)
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit code %d, want 0", code)
	}
	assertGone(t, sock)
}

// TestSocketsURLForms: every listen URL form gives the child the socket it
// names, with the options asked for, and the address hupd logs is the bound
// one (port 0 resolved) and reachable.
func TestSocketsURLForms(t *testing.T) {
	t.Parallel()

	// Stream sockets served by the sockinfo child: name, URL, what the
	// child must see, and where to connect.
	for _, tc := range []struct {
		name, url   string
		family      string
		v6          bool
		dialNetwork string
	}{
		{"tcp4 port 0", "tcp4://127.0.0.1:0", "inet", false, "tcp4"},
		{"tcp6 loopback", "tcp6://[::1]:0", "inet6", true, "tcp6"},
		{"abstract unix", "", "unix", false, "unix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.v6 {
				needIPv6(t)
			}
			url := tc.url
			if url == "" {
				url = "unix://" + abstractName()
			}
			h := StartHupd(t, append([]string{"run", "--listen", "s=" + url, "--"}, quickChild("sockinfo")...)...)
			logged := h.Listening("s")
			rep := readSockReport(h)
			if rep.PID != h.ChildPID(1) || len(rep.Sockets) != 1 {
				t.Fatalf("child report %+v, want pid %d and one socket", rep, h.ChildPID(1))
			}
			si := rep.Sockets[0]
			if si.FD != 3 || si.Family != tc.family || si.Type != "stream" || !si.Listening {
				t.Fatalf("child got %+v, want a listening %s stream socket on fd 3", si, tc.family)
			}
			addr := HostPort(logged)
			if tc.family == "unix" {
				if logged != url || si.Addr != strings.TrimPrefix(url, "unix://") {
					t.Fatalf("logged %q, child bound to %q; want %s", logged, si.Addr, url)
				}
				addr = si.Addr // "@name": Go dials the abstract namespace
			} else {
				if si.Port == 0 || addr != si.Addr || !strings.HasPrefix(logged, strings.TrimSuffix(url, "0")) {
					t.Fatalf("logged %q, child bound to %q; want the real port of %s", logged, si.Addr, url)
				}
			}
			if got := readAllFrom(t, tc.dialNetwork, addr); got != "s\n" {
				t.Fatalf("%s %s answered %q, want %q", tc.dialNetwork, addr, got, "s\n")
			}
			if code := h.Stop(); code != 0 {
				t.Fatalf("hupd exit code %d, want 0", code)
			}
		})
	}

	// Datagram sockets echoed by the udp-echo child.
	for _, tc := range []struct {
		name, url string
		v6        bool
	}{
		{"udp", "udp://127.0.0.1:0", false},
		{"udp4", "udp4://127.0.0.1:0", false},
		{"udp6", "udp6://[::1]:0", true},
		{"unixgram", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.v6 {
				needIPv6(t)
			}
			url, network := tc.url, strings.SplitN(tc.url, ":", 2)[0]
			if url == "" {
				network, url = "unixgram", "unixgram://"+filepath.Join(sockDir(t), "g.sock")
			}
			h := StartHupd(t, append([]string{"run", "--listen", "d=" + url, "--"}, quickChild("udp-echo")...)...)
			logged := h.Listening("d")
			h.Stdout.NextWith(t, "ready")
			addr := HostPort(logged)
			if network == "unixgram" {
				if logged != url {
					t.Fatalf("logged %q, want %q", logged, url)
				}
				lstatSocket(t, addr)
			} else if _, port, _ := net.SplitHostPort(addr); port == "0" || port == "" {
				t.Fatalf("logged %q: want the bound port", logged)
			}
			msg := "hello " + tc.name
			if got := echo(t, network, addr, msg); got != msg {
				t.Fatalf("echo from %s %s: %q, want %q", network, addr, got, msg)
			}
			if code := h.Stop(); code != 0 {
				t.Fatalf("hupd exit code %d, want 0", code)
			}
		})
	}

	t.Run("unix file mode owner group", func(t *testing.T) {
		t.Parallel()
		// Root can give the file away; anyone else may only name themselves.
		uid, gid := 65534, 65534
		if os.Geteuid() != 0 {
			uid, gid = os.Getuid(), os.Getgid()
		}
		dir := sockDir(t)
		sock := filepath.Join(dir, "app.sock")
		conf := writeFile(t, dir, "hupd.toml", fmt.Sprintf(`
[[listen]]
name = "app"
address = "unix://%s"
mode = "0660"
owner = "%d"
group = "%d"
`, sock, uid, gid))
		h := StartHupd(t, append([]string{"run", "-c", conf, "--"}, quickChild("sockinfo")...)...)
		h.Listening("app")
		readSockReport(h)
		fi, err := os.Lstat(sock)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 || int(st.Uid) != uid || int(st.Gid) != gid {
			t.Fatalf("%s: mode %v uid %d gid %d, want socket 0660 %d:%d", sock, fi.Mode(), st.Uid, st.Gid, uid, gid)
		}
		if got := readAllFrom(t, "unix", sock); got != "app\n" {
			t.Fatalf("answered %q", got)
		}
		if code := h.Stop(); code != 0 {
			t.Fatalf("hupd exit code %d, want 0", code)
		}
		assertGone(t, sock)
	})

	t.Run("backlog reuseport", func(t *testing.T) {
		t.Parallel()
		dir := sockDir(t)
		conf := writeFile(t, dir, "hupd.toml", `
[[listen]]
name = "tuned"
address = "tcp://127.0.0.1:0"
backlog = 7
reuseport = true

[[listen]]
name = "default"
address = "tcp://127.0.0.1:0"

[[listen]]
name = "udp"
address = "udp://127.0.0.1:0"
reuseport = true
`)
		h := StartHupd(t, append([]string{"run", "-c", conf, "--"}, quickChild("sockinfo")...)...)
		rep := readSockReport(h)
		if len(rep.Sockets) != 3 {
			t.Fatalf("child got %+v, want 3 sockets", rep.Sockets)
		}
		tuned, def, udp := rep.Sockets[0], rep.Sockets[1], rep.Sockets[2]
		if tuned.Name != "tuned" || !tuned.ReusePort || tuned.Backlog != 7 {
			t.Errorf("tuned: %+v, want SO_REUSEPORT and backlog 7", tuned)
		}
		somaxconn := 4096
		if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
			somaxconn, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if def.Name != "default" || def.ReusePort || def.Backlog != somaxconn {
			t.Errorf("default: %+v, want no SO_REUSEPORT and backlog somaxconn=%d", def, somaxconn)
		}
		if udp.Name != "udp" || udp.Type != "dgram" || !udp.ReusePort {
			t.Errorf("udp: %+v, want a datagram socket with SO_REUSEPORT", udp)
		}
		// SO_REUSEPORT is real: another socket with it may bind the same
		// port while hupd holds it (bound only, never listening).
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: tuned.Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Errorf("bind with SO_REUSEPORT next to hupd's socket: %v", err)
		}
		for _, si := range rep.Sockets[:2] {
			if got := readAllFrom(t, "tcp", si.Addr); got != si.Name+"\n" {
				t.Errorf("%s answered %q", si.Addr, got)
			}
		}
		if code := h.Stop(); code != 0 {
			t.Fatalf("hupd exit code %d, want 0", code)
		}
	})

	t.Run("v6only", func(t *testing.T) {
		t.Parallel()
		needIPv6(t)
		dir := sockDir(t)
		conf := writeFile(t, dir, "hupd.toml", `
[[listen]]
name = "only6"
address = "tcp://[::]:0"
v6only = true

[[listen]]
name = "dual"
address = "tcp6://[::]:0"
v6only = false

[[listen]]
name = "tcp6-default"
address = "tcp6://[::]:0"

[[listen]]
name = "tcp-default"
address = "tcp://[::]:0"
`)
		h := StartHupd(t, append([]string{"run", "-c", conf, "--"}, quickChild("sockinfo")...)...)
		rep := readSockReport(h)
		if len(rep.Sockets) != 4 {
			t.Fatalf("child got %+v, want 4 sockets", rep.Sockets)
		}
		// Without v6only, Go's convention: tcp6 is IPv6 only, tcp on an
		// unspecified host is dual stack.
		for i, want := range []bool{true, false, true, false} {
			si := rep.Sockets[i]
			if si.Family != "inet6" || si.V6Only == nil || *si.V6Only != want {
				t.Errorf("%s: %+v, want inet6 with IPV6_V6ONLY=%v", si.Name, si, want)
			}
		}
		only6, dual := rep.Sockets[0], rep.Sockets[1]
		v4 := func(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
		v6 := func(port int) string { return net.JoinHostPort("::1", strconv.Itoa(port)) }
		if got := readAllFrom(t, "tcp", v4(dual.Port)); got != "dual\n" {
			t.Errorf("dual over IPv4 answered %q", got)
		}
		if got := readAllFrom(t, "tcp", v6(dual.Port)); got != "dual\n" {
			t.Errorf("dual over IPv6 answered %q", got)
		}
		if got := readAllFrom(t, "tcp", v6(only6.Port)); got != "only6\n" {
			t.Errorf("only6 over IPv6 answered %q", got)
		}
		if c, err := net.DialTimeout("tcp", v4(only6.Port), deadline); err == nil {
			c.Close()
			t.Errorf("only6: IPv4 connection to port %d accepted, want refused", only6.Port)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("only6 over IPv4: %v, want connection refused", err)
		}
		if code := h.Stop(); code != 0 {
			t.Fatalf("hupd exit code %d, want 0", code)
		}
	})
}

// TestSocketsUnixPathInTheWay: what hupd does when something already sits at
// a unix socket path. A stale socket file (nobody listens) is replaced; a
// regular file is an error that names the path and leaves the file alone;
// a socket someone listens on is "in use" and stays theirs.
func TestSocketsUnixPathInTheWay(t *testing.T) {
	t.Parallel()

	t.Run("stale socket replaced", func(t *testing.T) {
		t.Parallel()
		sock := filepath.Join(sockDir(t), "s.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Net: "unix", Name: sock})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		if c, err := net.Dial("unix", sock); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("dial the stale socket: %v, want connection refused", err)
		}
		h := StartHupd(t, append([]string{"run", "--listen", "s=unix://" + sock, "--"}, quickChild("sockinfo")...)...)
		readSockReport(h)
		// The file is hupd's now: it answers. (Inode numbers prove nothing:
		// tmpfs hands the freed one straight to the new file.)
		lstatSocket(t, sock)
		if got := readAllFrom(t, "unix", sock); got != "s\n" {
			t.Fatalf("answered %q", got)
		}
		if code := h.Stop(); code != 0 {
			t.Fatalf("hupd exit code %d, want 0", code)
		}
		assertGone(t, sock)
	})

	// fails runs hupd on path, expects it to exit non-zero before starting
	// a child, and returns its one-line error message.
	fails := func(t *testing.T, path string) string {
		t.Helper()
		h := StartHupd(t, append([]string{"run", "--listen", "s=unix://" + path, "--"}, quickChild("exit", "0")...)...)
		if code := h.Wait(); code == 0 {
			t.Fatalf("hupd exit code 0, want an error")
		}
		if ev := h.Events(logev.ChildStarted); len(ev) != 0 {
			t.Fatalf("a child was started: %v", ev)
		}
		msg := strings.TrimSuffix(h.Stderr(), "\n")
		if msg == "" || strings.Contains(msg, "\n") || !strings.Contains(msg, path) {
			t.Fatalf("error message %q: want one line naming %s", msg, path)
		}
		return msg
	}

	t.Run("regular file kept", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, sockDir(t), "not-a-socket", "precious\n")
		msg := fails(t, path)
		t.Logf("hupd said: %s", msg)
		if b, err := os.ReadFile(path); err != nil || string(b) != "precious\n" {
			t.Fatalf("%s after hupd: %q, %v; want it untouched", path, b, err)
		}
	})

	t.Run("live socket in use", func(t *testing.T) {
		t.Parallel()
		sock := filepath.Join(sockDir(t), "live.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ino := lstatSocket(t, sock).Ino
		msg := fails(t, sock)
		t.Logf("hupd said: %s", msg)
		if !strings.Contains(msg, "in use") {
			t.Errorf("error message %q: want it to say the socket is in use", msg)
		}
		if got := lstatSocket(t, sock).Ino; got != ino {
			t.Fatalf("%s was replaced (inode %d, was %d)", sock, got, ino)
		}
		// And it is still ours: a client reaches our listener.
		go func() {
			if c, err := net.Dial("unix", sock); err == nil {
				c.Close()
			}
		}()
		l.(*net.UnixListener).SetDeadline(time.Now().Add(deadline))
		c, err := l.Accept()
		if err != nil {
			t.Fatalf("our listener after hupd: %v", err)
		}
		c.Close()
	})
}

// TestSocketsUnixFilesRemovedOnExit: the socket files hupd created are gone
// when it exits, whichever way it exits, and a file someone else put at
// the path meanwhile is left alone.
func TestSocketsUnixFilesRemovedOnExit(t *testing.T) {
	t.Parallel()

	t.Run("stop", func(t *testing.T) {
		t.Parallel()
		dir := sockDir(t)
		stream, gram := filepath.Join(dir, "s.sock"), filepath.Join(dir, "g.sock")
		h := StartHupd(t, append([]string{"run", "--listen", "s=unix://" + stream, "--listen", "g=unixgram://" + gram,
			"--listen", "a=unix://" + abstractName(), "--"}, quickChild("sockinfo")...)...)
		if rep := readSockReport(h); len(rep.Sockets) != 3 {
			t.Fatalf("child got %+v, want 3 sockets", rep.Sockets)
		}
		lstatSocket(t, stream)
		lstatSocket(t, gram)
		if code := h.Stop(); code != 0 {
			t.Fatalf("hupd exit code %d, want 0", code)
		}
		assertGone(t, stream)
		assertGone(t, gram)
	})

	t.Run("child exits", func(t *testing.T) {
		t.Parallel()
		sock := filepath.Join(sockDir(t), "s.sock")
		h := StartHupd(t, append([]string{"run", "--restart", "never", "--listen", "s=unix://" + sock, "--"}, quickChild("exit", "4")...)...)
		if code := h.Wait(); code != 4 {
			t.Fatalf("hupd exit code %d, want the child's 4", code)
		}
		h.WaitEvent(logev.Listening, 1, nil)
		assertGone(t, sock)
	})

	t.Run("later socket fails", func(t *testing.T) {
		t.Parallel()
		dir := sockDir(t)
		sock := filepath.Join(dir, "first.sock")
		regular := writeFile(t, dir, "second", "precious\n")
		h := StartHupd(t, append([]string{"run", "--listen", "a=unix://" + sock, "--listen", "b=unix://" + regular, "--"}, quickChild("exit", "0")...)...)
		if code := h.Wait(); code == 0 {
			t.Fatal("hupd exit code 0, want an error")
		}
		assertGone(t, sock)
		if _, err := os.Stat(regular); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("replaced file kept", func(t *testing.T) {
		t.Parallel()
		sock := filepath.Join(sockDir(t), "s.sock")
		h := StartHupd(t, append([]string{"run", "--listen", "s=unix://" + sock, "--"}, quickChild("sockinfo")...)...)
		readSockReport(h)
		// Someone removes hupd's socket file and puts their own there.
		if err := os.Remove(sock); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ino := lstatSocket(t, sock).Ino
		if code := h.Stop(); code != 0 {
			t.Fatalf("hupd exit code %d, want 0", code)
		}
		if got := lstatSocket(t, sock).Ino; got != ino {
			t.Fatalf("%s changed (inode %d, was %d)", sock, got, ino)
		}
	})
}

// TestSocketsChildFDsAndEnv: a child sees fds 0, 1, 2 and its sockets,
// never an fd hupd inherited without close-on-exec; and the LISTEN_*,
// NOTIFY_SOCKET values in hupd's own environment (meant for some other
// process) never reach a child unchanged.
func TestSocketsChildFDsAndEnv(t *testing.T) {
	t.Parallel()
	stale := map[string]string{
		"LISTEN_FDS":      "2",
		"LISTEN_PID":      "1",
		"LISTEN_FDNAMES":  "stale1:stale2",
		"LISTEN_PIDFDID":  "4242",
		"NOTIFY_SOCKET":   "/nonexistent/hupd-test-notify",
		"HUPD_TEST_CHECK": "passed through", // control: an ordinary variable
	}
	// start runs hupd with the stale variables and two inherited fds that
	// lack close-on-exec: fd 3 (where a child's first socket goes) and
	// fd 10 (beyond every socket). It returns what those two point at.
	start := func(t *testing.T, args ...string) (*Hupd, []string) {
		t.Helper()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		var inherited []string
		for _, f := range []*os.File{r, w} {
			target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			inherited = append(inherited, target)
		}
		cmd := exec.Command(hupdBin, withJSONLog(append([]string{"run"}, args...))...)
		cmd.ExtraFiles = []*os.File{r, nil, nil, nil, nil, nil, nil, w}
		cmd.Env = os.Environ()
		for k, v := range stale {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		h := StartHupdCmd(t, cmd)
		// hupd itself did inherit fd 10, so the test means something.
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/10", cmd.Process.Pid)); err != nil || target != inherited[1] {
			t.Fatalf("hupd's fd 10 is %q (%v), want the inherited %s", target, err, inherited[1])
		}
		return h, inherited
	}
	checkFDs := func(t *testing.T, rep FDReport, inherited []string, want []int) {
		t.Helper()
		if got := rep.ProgramFDs(); !slices.Equal(got, want) {
			t.Errorf("child fds %v (%v), want %v", got, rep.Targets, want)
		}
		for fd, target := range rep.Targets {
			if slices.Contains(inherited, target) {
				t.Errorf("child fd %d is %s, which hupd inherited", fd, target)
			}
		}
	}
	checkEnv := func(t *testing.T, ce ChildEnv, want map[string]string) {
		t.Helper()
		for k, v := range stale {
			got, ok := ce.Env[k]
			w, wantSet := want[k]
			switch {
			case wantSet && (!ok || got != w):
				t.Errorf("child %s=%q (set %v), want %q", k, got, ok, w)
			case !wantSet && ok && got == v:
				t.Errorf("child inherited hupd's stale %s=%q", k, got)
			}
		}
	}

	t.Run("no sockets", func(t *testing.T) {
		t.Parallel()
		h, inherited := start(t, append([]string{"--"}, quickChild("fds")...)...)
		rep := readFDReport(h)
		checkFDs(t, rep, inherited, []int{0, 1, 2})
		for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LISTEN_PIDFDID"} {
			if v, ok := rep.Env.Env[k]; ok {
				t.Errorf("child without sockets has %s=%q", k, v)
			}
		}
		checkEnv(t, rep.Env, map[string]string{"HUPD_TEST_CHECK": "passed through"})
	})

	t.Run("two sockets", func(t *testing.T) {
		t.Parallel()
		sock := filepath.Join(sockDir(t), "admin.sock")
		h, inherited := start(t, append([]string{"--listen", "web=tcp://127.0.0.1:0", "--listen", "admin=unix://" + sock, "--"}, quickChild("fds")...)...)
		web := HostPort(h.Listening("web"))
		rep := readFDReport(h)
		if rep.Env.PID != h.ChildPID(1) {
			t.Fatalf("child pid %d, hupd logged %d", rep.Env.PID, h.ChildPID(1))
		}
		checkFDs(t, rep, inherited, []int{0, 1, 2, 3, 4})
		if want := []string{"tcp " + web, "unix " + sock}; !slices.Equal(rep.Env.ListenerKind, want) {
			t.Errorf("child's fds 3, 4 are %q, want %q", rep.Env.ListenerKind, want)
		}
		checkEnv(t, rep.Env, map[string]string{
			"LISTEN_FDS":      "2",
			"LISTEN_PID":      strconv.Itoa(rep.Env.PID),
			"LISTEN_FDNAMES":  "web:admin",
			"HUPD_TEST_CHECK": "passed through",
		})
	})
}

// startSocketActivated starts hupd (args(port) then cmd) under
// systemd-socket-activate listening on 127.0.0.1:port, with ssaArgs (-E
// KEY=VALUE to pass variables: it passes on only TERM, PATH, USER, HOME
// and those; XDG_RUNTIME_DIR is added to keep hupd's control socket
// private). It takes a port number, not 0: one is taken from the kernel and
// released, and when another socket grabs it in between (parallel tests
// bind and dial all the time) systemd-socket-activate exits and another is
// tried. It execs hupd on the first connection.
func startSocketActivated(t *testing.T, ssa string, ssaArgs []string, args func(port int) []string, cmd ...string) (*Hupd, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		a := append([]string{"-l", addr, "--fdname=web", "-E", "XDG_RUNTIME_DIR=" + t.TempDir()}, ssaArgs...)
		a = append(append(a, hupdBin), withJSONLog(args(port))...)
		h := StartHupdCmd(t, exec.Command(ssa, append(a, cmd...)...))
		if h.waitStderr("Listening on " + addr + " as ") {
			return h, addr
		}
		if attempt == 3 {
			t.Fatalf("systemd-socket-activate exited (%v):\n%s", h.err, h.Stderr())
		}
		t.Logf("port %d taken meanwhile; trying another:\n%s", port, h.Stderr())
	}
}

// TestSocketsSystemdSocketActivate: hupd itself socket-activated by
// systemd-socket-activate. Without --listen it passes the socket on under
// the name systemd gave it; with --listen it adopts the inherited socket (by
// name, else by address) instead of binding the port a second time.
func TestSocketsSystemdSocketActivate(t *testing.T) {
	t.Parallel()
	ssa := needTool(t, "/usr/bin/systemd-socket-activate", "systemd-socket-activate")
	help, err := exec.Command(ssa, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", ssa, err, help)
	}
	for _, opt := range []string{"--fdname=", "-E --setenv="} {
		if !strings.Contains(string(help), opt) {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s has no %s option (CI is set: install a newer systemd):\n%s", ssa, opt, help)
			}
			t.Skipf("%s has no %s option:\n%s", ssa, opt, help)
		}
	}

	for _, tc := range []struct {
		name     string
		listen   func(port int) []string
		wantName string
	}{
		{"passed on", func(int) []string { return nil }, "web"},
		{"adopted by name", func(port int) []string { return []string{"--listen", fmt.Sprintf("web=tcp://127.0.0.1:%d", port)} }, "web"},
		{"adopted by address", func(port int) []string { return []string{"--listen", fmt.Sprintf("api=tcp://127.0.0.1:%d", port)} }, "api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// -E carries a marker to the child.
			h, addr := startSocketActivated(t, ssa, []string{"-E", "HUPD_TEST_SSA=via-E"},
				func(port int) []string { return append(append([]string{"run"}, tc.listen(port)...), "--") }, quickChild("fds-http")...)
			// It starts hupd on the first connection: this request.
			body := fetch(t, "tcp", addr, "/")
			pid := h.ChildPID(1)
			if want := fmt.Sprintf("pid %d name %s", pid, tc.wantName); body != want {
				t.Fatalf("body %q, want %q", body, want)
			}
			ev := h.WaitEvent(logev.Listening, 1, nil)
			if ev.Str("socket") != tc.wantName || ev.Str("address") != "tcp://"+addr || ev["inherited"] != true {
				t.Fatalf("hupd logged %v, want %s at tcp://%s inherited", ev, tc.wantName, addr)
			}
			if n := len(h.Events(logev.Listening)); n != 1 {
				t.Fatalf("%d listening events, want 1", n)
			}
			rep := readFDReport(h)
			ce := rep.Env
			if ce.PID != pid || ce.Env["LISTEN_PID"] != strconv.Itoa(pid) || ce.Env["LISTEN_FDS"] != "1" ||
				ce.Env["LISTEN_FDNAMES"] != tc.wantName || ce.Env["HUPD_TEST_SSA"] != "via-E" {
				t.Errorf("child pid %d env %v: want LISTEN_PID=%d LISTEN_FDS=1 LISTEN_FDNAMES=%s HUPD_TEST_SSA=via-E",
					ce.PID, ce.Env, pid, tc.wantName)
			}
			if fds := rep.ProgramFDs(); !slices.Equal(fds, []int{0, 1, 2, 3}) || !slices.Equal(ce.ListenerKind, []string{"tcp " + addr}) {
				t.Errorf("child fds %v sockets %v, want [0 1 2 3] with tcp %s", rep.Targets, ce.ListenerKind, addr)
			}
			h.Stdout.NextWith(t, "ready") // its TERM handler is in place
			if code := h.Stop(); code != 0 {
				t.Fatalf("hupd exit code %d, want 0", code)
			}
		})
	}
}

// TestSocketsShortForms: --listen's short forms open the sockets their
// URLs name: HOST:PORT a TCP socket on that host, :PORT one on every
// address, IPv4 and IPv6 (dual stack, as tcp://:PORT and systemd's
// ListenStream=PORT), /path a unix socket file and @name an abstract one.
// hupd logs each by its URL.
func TestSocketsShortForms(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(sockDir(t), "app.sock")
	abstract := abstractName()
	h := StartHupd(t, append([]string{"run", "--listen", "local=127.0.0.1:0", "--listen", "all=:0",
		"--listen", "file=" + sock, "--listen", "abs=" + abstract, "--"}, quickChild("sockinfo")...)...)
	local, all := h.Listening("local"), h.Listening("all")
	if got := h.Listening("file"); got != "unix://"+sock {
		t.Errorf("file socket logged as %q, want unix://%s", got, sock)
	}
	if got := h.Listening("abs"); got != "unix://"+abstract {
		t.Errorf("abstract socket logged as %q, want unix://%s", got, abstract)
	}
	rep := readSockReport(h)
	if len(rep.Sockets) != 4 {
		t.Fatalf("child report %+v, want 4 sockets", rep)
	}
	for i, want := range []struct{ name, family, addr string }{
		{"local", "inet", HostPort(local)},
		{"all", "inet6", ""},
		{"file", "unix", sock},
		{"abs", "unix", abstract},
	} {
		si := rep.Sockets[i]
		if si.FD != 3+i || si.Name != want.name || si.Family != want.family || si.Type != "stream" || !si.Listening ||
			want.addr != "" && si.Addr != want.addr {
			t.Errorf("child got %+v, want a listening %s stream socket %q named %s on fd %d", si, want.family, want.addr, want.name, 3+i)
		}
	}
	if !strings.HasPrefix(local, "tcp://127.0.0.1:") || rep.Sockets[0].Port == 0 {
		t.Errorf("127.0.0.1:0 logged as %q", local)
	}
	if si := rep.Sockets[1]; si.V6Only == nil || *si.V6Only || !strings.HasPrefix(all, "tcp://") {
		t.Errorf(":0 logged as %q, child got %+v: want a dual-stack tcp socket", all, si)
	}
	_, port, _ := net.SplitHostPort(HostPort(all))
	for _, d := range [][3]string{
		{"tcp", HostPort(local), "local"}, {"tcp4", net.JoinHostPort("127.0.0.1", port), "all"}, {"unix", sock, "file"}, {"unix", abstract, "abs"},
	} {
		if got := readAllFrom(t, d[0], d[1]); got != d[2]+"\n" {
			t.Errorf("%s %s answered %q, want %q", d[0], d[1], got, d[2]+"\n")
		}
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit code %d, want 0", code)
	}
}
