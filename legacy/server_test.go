//go:build linux && (amd64 || arm64)

package legacy

// These tests start real programs through hupd's exec shim with the real
// seccomp filter and answer their trapped calls with a real Server. The
// program is this test binary itself: with childEnv set, TestMain runs the
// steps given as its arguments (see runChild) instead of the tests; each
// step does its syscalls with golang.org/x/sys/unix directly and reports
// on stdout, one line per step, which the test reads with a deadline.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

const (
	childEnv = "HUPD_LEGACY_TEST_CHILD"
	deadline = 20 * time.Second // generous: -race children start slowly
)

var (
	hupdBin  string // the hupd binary built by TestMain: the shim
	buildErr error
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		runChild(os.Args[1:])
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "legacy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hupdBin = filepath.Join(dir, "hupd")
	cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", hupdBin, "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build hupd: %v\n%s", err, out)
	}
	// Make the runtime open what it opens once (netpoller) before any
	// test counts its fds.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---- the child ----

// runChild runs steps, each one argument of the form "verb args...":
//
//	socket FAMILY TYPE [nonblock] [cloexec]  FAMILY inet|inet6|unix, TYPE stream|dgram|seqpacket
//	v6only 0|1                               IPV6_V6ONLY on the current socket
//	keepalive                                SO_KEEPALIVE on the current socket
//	bind ADDR [len=N]                        ADDR ip:port, [ip6]:port, unix:PATH, unix:@ABSTRACT, unixfs:PATH (never abstract)
//	listen N
//	stat                                     the current socket's identity and flags
//	accept                                   blocks; prints the peer
//	recv                                     blocks; prints the datagram
//	unlink PATH
//	unshare-files                            unshare(CLONE_FILES): the thread's own fd table
//	wait                                     reads a line from stdin (EOF also goes on)
//	thread                                   runs the rest on a new locked OS thread
//	fork                                     runs the rest in a new process (this binary again)
//
// It prints "pid PID TID" first, then one line per step whose first word is
// the verb.
func runChild(steps []string) {
	// Open the netpoller's epoll fd now: a thread that unshares its fd
	// table later must have it in its copy.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	// The steps run on one thread, whose id the events must show.
	runtime.LockOSThread()
	say("pid", os.Getpid(), unix.Gettid())
	c := &child{fd: -1, stdin: bufio.NewReader(os.Stdin)}
	c.run(steps)
}

type child struct {
	fd    int
	stdin *bufio.Reader
}

var sayMu sync.Mutex

// say writes one line with a single write(2), so that the lines of a
// forked child never mix with its parent's.
func say(verb string, args ...any) {
	sayMu.Lock()
	defer sayMu.Unlock()
	line := verb
	for _, a := range args {
		line += " " + fmt.Sprint(a)
	}
	os.Stdout.WriteString(line + "\n")
}

func die(format string, args ...any) {
	say("fatal", fmt.Sprintf(format, args...))
	os.Exit(3)
}

func errName(err error) string {
	if err == nil {
		return "0"
	}
	if e, ok := err.(unix.Errno); ok {
		if e == 0 {
			return "0"
		}
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
		return "errno" + strconv.Itoa(int(e))
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

func (c *child) run(steps []string) {
	for i, step := range steps {
		f := strings.Fields(step)
		switch f[0] {
		case "socket":
			fam := map[string]int{"inet": unix.AF_INET, "inet6": unix.AF_INET6, "unix": unix.AF_UNIX}[f[1]]
			typ := map[string]int{"stream": unix.SOCK_STREAM, "dgram": unix.SOCK_DGRAM, "seqpacket": unix.SOCK_SEQPACKET}[f[2]]
			for _, o := range f[3:] {
				typ |= map[string]int{"nonblock": unix.SOCK_NONBLOCK, "cloexec": unix.SOCK_CLOEXEC}[o]
			}
			fd, err := unix.Socket(fam, typ, 0)
			if err != nil {
				die("socket %q: %v", step, err)
			}
			c.fd = fd
			say("socket", fd)
		case "keepalive": // an option set before bind, for adopt mode
			say("keepalive", errName(unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)))
		case "v6only":
			n, _ := strconv.Atoi(f[1])
			if err := unix.SetsockoptInt(c.fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, n); err != nil {
				die("v6only: %v", err)
			}
			say("v6only", n)
		case "bind":
			raw := sockaddr(f[1])
			size := len(raw)
			if len(f) > 2 {
				size, _ = strconv.Atoi(strings.TrimPrefix(f[2], "len="))
			}
			buf := make([]byte, 128) // sizeof(struct sockaddr_storage)
			copy(buf, raw)
			_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(c.fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(size))
			say("bind", errName(e))
		case "listen":
			n, _ := strconv.Atoi(f[1])
			say("listen", errName(unix.Listen(c.fd, n)))
		case "stat":
			c.stat()
		case "accept":
			nfd, sa, err := unix.Accept(c.fd)
			if err != nil {
				die("accept: %v", err)
			}
			unix.Close(nfd)
			say("accept", sockaddrString(sa))
		case "recv":
			b := make([]byte, 100)
			n, _, err := unix.Recvfrom(c.fd, b, 0)
			if err != nil {
				die("recv: %v", err)
			}
			say("recv", string(b[:n]))
		case "unshare-files": // this thread gets its own fd table
			say("unshare-files", errName(unix.Unshare(unix.CLONE_FILES)))
		case "unlink":
			say("unlink", errName(unix.Unlink(f[1])))
		case "wait":
			c.stdin.ReadString('\n')
			say("wait")
		case "thread":
			// A goroutine locked to the main thread keeps it, so that the
			// one it starts gets another.
			var onThread func()
			onThread = func() {
				runtime.LockOSThread() // not unlocked: the thread ends with the goroutine
				if unix.Gettid() == unix.Getpid() {
					done := make(chan struct{})
					go func() { defer close(done); onThread() }()
					<-done
					runtime.UnlockOSThread()
					return
				}
				say("thread", unix.Gettid())
				c.run(steps[i+1:])
			}
			done := make(chan struct{})
			go func() { defer close(done); onThread() }()
			<-done
			return
		case "fork":
			self, err := os.Executable()
			if err != nil {
				die("%v", err)
			}
			cmd := exec.Command(self, steps[i+1:]...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Run(); err != nil {
				die("fork: %v", err)
			}
			say("fork", "exited")
			return
		default:
			die("unknown step %q", step)
		}
	}
}

// stat prints "stat ino=I addr=A cloexec=B nonblock=B family=F type=T".
func (c *child) stat() {
	var st unix.Stat_t
	if err := unix.Fstat(c.fd, &st); err != nil {
		die("fstat: %v", err)
	}
	sa, err := unix.Getsockname(c.fd)
	if err != nil {
		die("getsockname: %v", err)
	}
	info, err := os.ReadFile("/proc/thread-self/fdinfo/" + strconv.Itoa(c.fd))
	if err != nil {
		die("%v", err)
	}
	var flags uint64
	for _, l := range strings.Split(string(info), "\n") {
		if v, ok := strings.CutPrefix(l, "flags:"); ok {
			flags, _ = strconv.ParseUint(strings.TrimSpace(v), 8, 64)
		}
	}
	fl, err := unix.FcntlInt(uintptr(c.fd), unix.F_GETFL, 0)
	if err != nil {
		die("fcntl: %v", err)
	}
	fam, _ := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	typ, _ := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_TYPE)
	say("stat", "ino="+strconv.FormatUint(st.Ino, 10), "addr="+sockaddrString(sa),
		"cloexec="+strconv.FormatBool(flags&unix.O_CLOEXEC != 0),
		"nonblock="+strconv.FormatBool(fl&unix.O_NONBLOCK != 0),
		"family="+strconv.Itoa(fam), "type="+strconv.Itoa(typ))
}

// sockaddr encodes ADDR as a struct sockaddr.
func sockaddr(s string) []byte {
	if p, ok := strings.CutPrefix(s, "unixfs:"); ok {
		return append(rawUnix(p), 0)
	}
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if name, ok := strings.CutPrefix(p, "@"); ok {
			return rawUnix("\x00" + name) // abstract: no trailing NUL
		}
		return append(rawUnix(p), 0)
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		die("bad address %q", s)
	}
	if ap.Addr().Is4() {
		return rawIn4(ap.Addr().String(), int(ap.Port()))
	}
	return rawIn6(ap.Addr().String(), int(ap.Port()))
}

func sockaddrString(sa unix.Sockaddr) string {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrUnix:
		if sa.Name == "" || sa.Name == "@" { // x/sys shows an unnamed address as "@"
			return "unix:unnamed"
		}
		return "unix:" + sa.Name
	}
	return fmt.Sprintf("%T", sa)
}

// ---- the test side ----

// trapped is one program started with the trap filter, and the Server
// answering it.
type trapped struct {
	t        *testing.T
	held     []Socket
	proc     *os.Process
	stdin    *os.File
	lines    chan string
	events   chan Event
	served   chan struct{}
	readers  sync.WaitGroup
	stderr   bytes.Buffer // the child's, read until readers are done
	log      *syncBuffer
	notifyFD int
	tid      int  // the thread making the calls: the events' PID
	pid      int  // its process: the events' Process
	serving  bool // Serve was started
	exited   bool // the child was waited for
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// start runs the child with steps (in dir, if not ""), trapped, and a
// Server for held. It stops the child, if still running, at cleanup.
func start(t *testing.T, held []Socket, dir string, steps ...string) *trapped {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := pipe(t)
	outR, outW := pipe(t)
	errR, errW := pipe(t)
	cmd := socketact.Command{
		Shim: hupdBin, Path: self, Args: append([]string{self}, steps...),
		Env: childEnvironment(), Dir: dir, UID: -1, GID: -1, Trap: true,
		Stdin: inR, Stdout: outW, Stderr: errW,
	}
	p, wait, err := cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		t.Fatal(err)
	}
	tr := &trapped{
		t: t, held: held, proc: p, pid: p.Pid, stdin: inW,
		lines: make(chan string, 100), events: make(chan Event, 100), served: make(chan struct{}),
		log: &syncBuffer{},
	}
	tr.readers.Add(2)
	go func() {
		defer tr.readers.Done()
		defer outR.Close()
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			tr.lines <- sc.Text()
		}
		close(tr.lines)
	}()
	go func() {
		defer tr.readers.Done()
		defer errR.Close()
		io.Copy(&tr.stderr, errR)
	}()
	t.Cleanup(tr.stop)
	notify, err := wait()
	if err != nil {
		t.Fatalf("starting the child: %v", err)
	}
	tr.notifyFD = int(notify.Fd())
	logger := slog.New(slog.NewTextHandler(tr.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := NewServer(notify, held, logger, func(ev Event) { tr.events <- ev })
	tr.serving = true
	go func() {
		defer close(tr.served)
		srv.Serve()
	}()
	tr.tid, _ = strconv.Atoi(tr.expect("pid")[1])
	return tr
}

// childEnvironment is the test's environment with childEnv set, and
// without the race detector's second of sleep at every exit.
func childEnvironment() []string {
	env := []string{childEnv + "=1"}
	race := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "GORACE="); ok {
			race = v + " " + race
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GORACE="+race)
}

func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

// expect returns the fields after the verb of the child's next line,
// which must start with verb.
func (tr *trapped) expect(verb string) []string {
	tr.t.Helper()
	select {
	case line, ok := <-tr.lines:
		if !ok {
			tr.fatalf("child ended its output; want a %q line", verb)
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != verb {
			tr.fatalf("child said %q, want a %q line", line, verb)
		}
		return f[1:]
	case <-time.After(deadline):
		tr.fatalf("no %q line from the child in %v", verb, deadline)
	}
	return nil
}

// expectLine wants the child's next line to be exactly want.
func (tr *trapped) expectLine(want string) {
	tr.t.Helper()
	verb, _, _ := strings.Cut(want, " ")
	if got := strings.Join(append([]string{verb}, tr.expect(verb)...), " "); got != want {
		tr.fatalf("child said %q, want %q", got, want)
	}
}

// childStat is a "stat" line.
type childStat struct {
	ino               uint64
	addr              string
	cloexec, nonblock bool
	family, typ       int
}

func (tr *trapped) expectStat() childStat {
	tr.t.Helper()
	kv := map[string]string{}
	for _, f := range tr.expect("stat") {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	var s childStat
	s.ino, _ = strconv.ParseUint(kv["ino"], 10, 64)
	s.addr = kv["addr"]
	s.cloexec = kv["cloexec"] == "true"
	s.nonblock = kv["nonblock"] == "true"
	s.family, _ = strconv.Atoi(kv["family"])
	s.typ, _ = strconv.Atoi(kv["type"])
	return s
}

// expectFD returns the fd number of a "socket" line.
func (tr *trapped) expectFD() int {
	tr.t.Helper()
	fd, err := strconv.Atoi(tr.expect("socket")[0])
	if err != nil {
		tr.fatalf("bad socket line: %v", err)
	}
	return fd
}

// event returns the next call the Server answered with a held socket.
func (tr *trapped) event() Event {
	tr.t.Helper()
	select {
	case ev := <-tr.events:
		if ev.Process != tr.pid {
			tr.t.Errorf("event by thread %d names process %d, want %d", ev.PID, ev.Process, tr.pid)
		}
		ev.Process = 0 // checked: the callers compare the rest
		return ev
	case <-time.After(deadline):
		tr.fatalf("no event in %v", deadline)
	}
	return Event{}
}

func (tr *trapped) send(line string) {
	tr.t.Helper()
	if _, err := tr.stdin.WriteString(line + "\n"); err != nil {
		tr.fatalf("writing to the child: %v", err)
	}
}

func (tr *trapped) fatalf(format string, args ...any) {
	tr.t.Helper()
	tr.t.Fatalf(format+"\nchild stderr so far:\n%s", append(args, tr.stderrSoFar())...) // stop logs the server's
}

func (tr *trapped) stderrSoFar() string {
	// Only safe to read once the reader is done; otherwise say so.
	done := make(chan struct{})
	go func() { tr.readers.Wait(); close(done) }()
	select {
	case <-done:
		return tr.stderr.String()
	case <-time.After(100 * time.Millisecond):
		return "(child still running)"
	}
}

// exit lets the child finish (stdin EOF), wants it to exit 0 with no
// output left, then wants Serve to return and close the notify fd, with
// no event it did not expect.
func (tr *trapped) exit() {
	tr.t.Helper()
	tr.stdin.Close()
	exited := make(chan *os.ProcessState, 1)
	go func() {
		st, _ := tr.proc.Wait()
		exited <- st
	}()
	var st *os.ProcessState
	select {
	case st = <-exited:
	case <-time.After(deadline):
		tr.proc.Kill()
		<-exited
		tr.exited = true
		tr.fatalf("child did not exit in %v", deadline)
	}
	tr.exited = true
	tr.readers.Wait()
	for line := range tr.lines {
		tr.t.Errorf("unexpected child output %q", line)
	}
	if !st.Success() {
		tr.t.Errorf("child: %v\nstderr:\n%s", st, tr.stderr.String())
	}
	tr.waitServed()
	close(tr.events)
	for ev := range tr.events {
		tr.t.Errorf("unexpected event %+v", ev)
	}
}

// waitServed wants Serve to return, and the notify fd to be closed.
func (tr *trapped) waitServed() {
	tr.t.Helper()
	select {
	case <-tr.served:
	case <-time.After(deadline):
		tr.t.Fatalf("Serve did not return in %v after the child exited", deadline)
	}
	if l, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(tr.notifyFD)); err == nil && strings.Contains(l, "seccomp") {
		tr.t.Errorf("notify fd %d still open after Serve returned (%s)", tr.notifyFD, l)
	}
}

// stop kills a child the test did not finish with exit, and waits for
// everything it started.
func (tr *trapped) stop() {
	if !tr.exited {
		tr.proc.Kill()
		tr.proc.Wait()
		tr.stdin.Close()
		go func() {
			for range tr.lines { // unread: keep the reader from blocking
			}
		}()
		tr.readers.Wait()
		if tr.serving {
			select {
			case <-tr.served:
			case <-time.After(deadline):
				tr.t.Errorf("Serve did not return in %v after the child was killed", deadline)
			}
		}
	}
	if tr.t.Failed() {
		tr.t.Logf("server log:\n%s", tr.log)
	}
}

// checkFDs wants the test process to have as many fds open at the end of
// the test as at its start: no notify fd, held socket or pipe leaks. Call
// it first, so that its cleanup runs last.
func checkFDs(t *testing.T) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		if after := openFDs(t); !slices.Equal(before, after) {
			t.Errorf("fd leak: open fds %v before the test, %v after", before, after)
		}
	})
}

func openFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fds = append(fds, e.Name()+"->"+l)
	}
	// ReadDir's own fd is in the list; it is the same number each time.
	return fds
}

// hold makes a held socket of network ("tcp4", "tcp6", "udp4", "udp6",
// "unix", "unixgram") at addr the way hupd does (a blocking, close-on-exec
// socket, os.NewFile) and describes it. backlog is listen's for stream
// sockets; v6only sets IPV6_V6ONLY on inet6 ones.
func hold(t *testing.T, network, addr string, v6only bool, backlog int) Socket {
	t.Helper()
	var (
		fam, typ int
		sa       unix.Sockaddr
	)
	switch network {
	case "tcp4", "tcp6", "udp4", "udp6":
		typ = unix.SOCK_STREAM
		if network[0] == 'u' {
			typ = unix.SOCK_DGRAM
		}
		ap := netip.MustParseAddrPort(addr)
		if network[3] == '4' {
			fam, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
		} else {
			fam, sa = unix.AF_INET6, &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
		}
	case "unix":
		fam, typ, sa = unix.AF_UNIX, unix.SOCK_STREAM, &unix.SockaddrUnix{Name: addr}
	case "unixgram":
		fam, typ, sa = unix.AF_UNIX, unix.SOCK_DGRAM, &unix.SockaddrUnix{Name: addr}
	default:
		t.Fatalf("bad network %q", network)
	}
	fd, err := unix.Socket(fam, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), network+" "+addr)
	t.Cleanup(func() { f.Close() })
	if fam == unix.AF_INET6 {
		v := 0
		if v6only {
			v = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("bind %s %s: %v", network, addr, err)
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, backlog); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Describe(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s Socket) addrPort() string {
	return netip.AddrPortFrom(s.IP, uint16(s.Port)).String()
}

func heldInos(held []Socket) []uint64 {
	var inos []uint64
	for _, h := range held {
		inos = append(inos, h.ino)
	}
	return inos
}

func nonblocking(t *testing.T, s Socket) bool {
	t.Helper()
	fl, err := unix.FcntlInt(s.File.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

// freePort returns a TCP port on 127.0.0.1 that a bind without
// SO_REUSEADDR can take (net.Listen sets SO_REUSEADDR, and would give a
// port TIME_WAIT connections still use).
func freePort(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*unix.SockaddrInet4).Port
}

// bindable reports whether a socket of type typ can bind 0.0.0.0:port
// now.
func bindable(typ, port int) bool {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrInet4{Port: port}) == nil
}

// holdWhere is hold, retried until ok accepts the port the kernel chose:
// a port free for the held socket may be taken in another protocol or
// family (by other programs, or by TIME_WAIT connections of earlier
// tests).
func holdWhere(t *testing.T, network, addr string, v6only bool, backlog int, ok func(port int) bool) Socket {
	t.Helper()
	for range 50 {
		s := hold(t, network, addr, v6only, backlog)
		if ok(s.Port) {
			return s
		}
		s.File.Close()
	}
	t.Fatalf("no port for %s %s that suits the test", network, addr)
	return Socket{}
}

func needIPv6(t *testing.T) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: netip.IPv6Loopback().As16()}); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
}

// wantRedirect checks a bind event and the child's stat after it: the
// child's fd is held socket i, and the report saw exactly that bind, by
// thread tr.tid.
func (tr *trapped) wantRedirect(i, fd int, addr Addr, st childStat) Event {
	tr.t.Helper()
	ev := tr.event()
	want := Event{Socket: i, PID: tr.tid, FD: fd, Addr: addr}
	if ev != want {
		tr.t.Errorf("event %+v, want %+v", ev, want)
	}
	if st.ino != tr.held[i].ino {
		tr.t.Errorf("child's fd %d has inode %d after bind, want held socket %d's %d", fd, st.ino, i, tr.held[i].ino)
	}
	return ev
}

// listenBacklog reads, with NETLINK_SOCK_DIAG as ss(8) does, the accept
// queue of the listening TCP socket with inode ino: its limit (the
// backlog, sk_max_ack_backlog) and how many connections wait in it. A
// dump is not a snapshot: when it takes several reads and another
// listener of the same hash bucket closes between two of them (other
// tests running beside this one), the kernel resumes at a position that
// has moved and skips one. A socket that listens is in the table, so a
// dump that misses it is taken again (seen once in CI).
func listenBacklog(t *testing.T, family int, ino uint64) (limit, queued uint32) {
	t.Helper()
	for range 20 {
		if limit, queued, ok := dumpListener(t, family, ino); ok {
			return limit, queued
		}
	}
	t.Fatalf("no listening socket with inode %d in 20 dumps", ino)
	return 0, 0
}

// dumpListener is one sock_diag dump of the listening TCP sockets of
// family, looking for the one with inode ino.
func dumpListener(t *testing.T, family int, ino uint64) (limit, queued uint32, ok bool) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// struct nlmsghdr + struct inet_diag_req_v2 (56 bytes).
	req := make([]byte, unix.SizeofNlMsghdr+56)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	r := req[unix.SizeofNlMsghdr:]
	r[0], r[1] = byte(family), unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(r[4:], 1<<10) // states: TCP_LISTEN
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return 0, 0, false
			case unix.NLMSG_ERROR:
				t.Fatalf("sock_diag: error %d", int32(binary.NativeEndian.Uint32(m.Data)))
			}
			// struct inet_diag_msg: 4 bytes, id (48), expires, rqueue, wqueue, uid, inode.
			d := m.Data
			if len(d) >= 72 && uint64(binary.NativeEndian.Uint32(d[68:])) == ino {
				return binary.NativeEndian.Uint32(d[60:]), binary.NativeEndian.Uint32(d[56:]), true
			}
		}
	}
}

// ---- the tests ----

// TestServerTCPRedirect proves a TCP bind to a held address puts the held
// socket on the program's fd (same inode, same address), bind returns 0,
// the report sees it, and the program accepts the held socket's
// connections.
func TestServerTCPRedirect(t *testing.T) {
	checkFDs(t)
	held := []Socket{hold(t, "tcp4", "127.0.0.1:0", false, 64)}
	tr := start(t, held, "", "socket inet stream", "bind "+held[0].addrPort(), "stat", "listen 16", "accept")
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	st := tr.expectStat()
	tr.wantRedirect(0, fd, in4("127.0.0.1", held[0].Port), st)
	if st.addr != held[0].addrPort() {
		tr.t.Errorf("child's getsockname %s, want %s", st.addr, held[0].addrPort())
	}
	tr.expectLine("listen 0")
	if ev := tr.event(); ev != (Event{Socket: 0, Listen: true, PID: tr.tid, FD: fd}) {
		t.Errorf("listen event %+v", ev)
	}
	c, err := net.DialTimeout("tcp4", held[0].addrPort(), deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr.expectLine("accept " + c.LocalAddr().String())
	tr.exit()
}

// TestServerListenKeepsBacklog proves the program's listen(fd, 1) on the
// held socket returns 0 without calling listen: the held socket keeps its
// backlog of 64 (read with sock_diag), and 10 connections nobody accepts
// all complete and wait in its queue.
func TestServerListenKeepsBacklog(t *testing.T) {
	checkFDs(t)
	held := []Socket{hold(t, "tcp4", "127.0.0.1:0", false, 64)}
	if limit, _ := listenBacklog(t, unix.AF_INET, held[0].ino); limit != 64 {
		t.Fatalf("held socket's backlog is %d before the test, want 64", limit)
	}
	tr := start(t, held, "", "socket inet stream", "bind "+held[0].addrPort(), "listen 1", "wait")
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	if ev, want := tr.event(), (Event{Socket: 0, PID: tr.tid, FD: fd, Addr: in4("127.0.0.1", held[0].Port)}); ev != want {
		t.Errorf("bind event %+v, want %+v", ev, want)
	}
	tr.expectLine("listen 0")
	ev := tr.event()
	if ev != (Event{Socket: 0, Listen: true, PID: tr.tid, FD: fd}) {
		t.Errorf("listen event %+v", ev)
	}
	if limit, _ := listenBacklog(t, unix.AF_INET, held[0].ino); limit != 64 {
		t.Errorf("held socket's backlog is %d after the program's listen(fd, 1), want 64", limit)
	}
	const clients = 10
	for i := range clients {
		c, err := net.DialTimeout("tcp4", held[0].addrPort(), 5*time.Second)
		if err != nil {
			t.Fatalf("client %d of %d: %v (accept queue shrunk?)", i+1, clients, err)
		}
		defer c.Close()
	}
	// The last handshake's ACK may still be on its way through loopback.
	for end := time.Now().Add(deadline); ; {
		_, queued := listenBacklog(t, unix.AF_INET, held[0].ino)
		if queued == clients {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d connections in the held socket's accept queue, want %d", queued, clients)
		}
		time.Sleep(5 * time.Millisecond)
	}
	tr.send("go")
	tr.expectLine("wait")
	tr.exit()
}

// TestServerUntouchedBinds proves binds no held socket covers go ahead as
// the program made them, on its own sockets, and so does its listen: port
// 0, another port, UDP to port 0 and to a held TCP socket's port, an
// unrelated unix path, and a datagram socket on a held stream socket's
// path (which then fails as it would without hupd). No event is reported.
func TestServerUntouchedBinds(t *testing.T) {
	checkFDs(t)
	dir := t.TempDir()
	udpFree := func(port int) bool { return bindable(unix.SOCK_DGRAM, port) }
	held := []Socket{
		holdWhere(t, "tcp4", "127.0.0.1:0", false, 64, udpFree),
		hold(t, "unix", filepath.Join(dir, "held.sock"), false, 64),
	}
	other := freePort(t)
	tr := start(t, held, "",
		"socket inet stream", "bind 127.0.0.1:0", "listen 5", "stat",
		"socket inet stream", fmt.Sprintf("bind 127.0.0.1:%d", other), "stat",
		"socket inet dgram", "bind 127.0.0.1:0", "stat",
		"socket inet dgram", "bind "+held[0].addrPort(), "stat",
		"socket unix stream", "bind unix:"+filepath.Join(dir, "other.sock"), "stat",
		"socket unix dgram", "bind unix:"+held[1].Path,
	)
	own := func(what string) childStat {
		t.Helper()
		tr.expectFD()
		tr.expectLine("bind 0")
		if what == "port 0" {
			tr.expectLine("listen 0")
		}
		st := tr.expectStat()
		if slices.Contains(heldInos(held), st.ino) {
			t.Errorf("%s: the child's socket is a held one (inode %d)", what, st.ino)
		}
		return st
	}
	st := own("port 0")
	if ap, err := netip.ParseAddrPort(st.addr); err != nil || ap.Port() == 0 || ap.Port() == uint16(held[0].Port) || ap.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("port 0: bound to %s", st.addr)
	}
	if limit, _ := listenBacklog(t, unix.AF_INET, st.ino); limit != 5 {
		t.Errorf("port 0: the child's own listen(fd, 5) gave backlog %d", limit)
	}
	if st := own("another port"); st.addr != fmt.Sprintf("127.0.0.1:%d", other) {
		t.Errorf("another port: bound to %s", st.addr)
	}
	if st := own("udp port 0"); !strings.HasPrefix(st.addr, "127.0.0.1:") || st.addr == "127.0.0.1:0" || st.typ != unix.SOCK_DGRAM {
		t.Errorf("udp port 0: bound to %s, type %d", st.addr, st.typ)
	}
	if st := own("udp on the held tcp port"); st.addr != held[0].addrPort() || st.typ != unix.SOCK_DGRAM {
		t.Errorf("udp on the held tcp port: bound to %s, type %d", st.addr, st.typ)
	}
	if st := own("unrelated unix path"); st.addr != "unix:"+filepath.Join(dir, "other.sock") {
		t.Errorf("unrelated unix path: bound to %s", st.addr)
	}
	tr.expectFD()
	tr.expectLine("bind EADDRINUSE")
	tr.exit()
}

// TestServerUDPRedirect proves a UDP bind to a held UDP address gets the
// held socket, reported as a bind (Listen false), and the program
// receives the datagrams sent to it.
func TestServerUDPRedirect(t *testing.T) {
	checkFDs(t)
	tcp := holdWhere(t, "tcp4", "127.0.0.1:0", false, 64, func(port int) bool { return bindable(unix.SOCK_DGRAM, port) })
	// The same port number for both: the type tells them apart.
	held := []Socket{tcp, hold(t, "udp4", tcp.addrPort(), false, 0)}
	tr := start(t, held, "", "socket inet dgram", "bind "+held[1].addrPort(), "stat", "recv")
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	st := tr.expectStat()
	tr.wantRedirect(1, fd, in4("127.0.0.1", held[1].Port), st)
	c, err := net.Dial("udp4", held[1].addrPort())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	tr.expectLine("recv hello")
	tr.exit()
}

// TestServerUnixPath proves a bind to a held unix socket's path, given
// absolute or relative to the program's working directory, gets the held
// socket (the event has the absolute path), and the program accepts
// connections made to the path.
func TestServerUnixPath(t *testing.T) {
	checkFDs(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.sock")
	held := []Socket{hold(t, "unix", path, false, 64)}
	tr := start(t, held, dir,
		"socket unix stream", "bind unix:"+path, "stat", "accept",
		"socket unix stream cloexec", "bind unix:app.sock", "stat",
		"socket unix stream", "bind unix:./app.sock", "stat",
	)
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	tr.wantRedirect(0, fd, unixAddr(path), tr.expectStat())
	c, err := net.DialTimeout("unix", path, deadline)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	tr.expectLine("accept unix:unnamed")
	for range 2 {
		fd := tr.expectFD()
		tr.expectLine("bind 0")
		st := tr.expectStat()
		tr.wantRedirect(0, fd, unixAddr(path), st)
		if st.addr != "unix:"+path {
			t.Errorf("child's getsockname %s, want unix:%s", st.addr, path)
		}
	}
	if strings.Contains(tr.log.String(), "removed the socket file") {
		t.Errorf("warned of a removed socket file that is there:\n%s", tr.log)
	}
	tr.exit()
}

// TestServerUnixAbstract proves a bind to a held abstract name gets the
// held socket, for stream and datagram sockets alike.
func TestServerUnixAbstract(t *testing.T) {
	checkFDs(t)
	name := fmt.Sprintf("@hupd-legacy-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	held := []Socket{hold(t, "unix", name, false, 64), hold(t, "unixgram", name+"-dgram", false, 0)}
	if held[0].Path != name {
		t.Fatalf("Describe: path %q, want %q", held[0].Path, name)
	}
	tr := start(t, held, "",
		"socket unix stream", "bind unix:"+name, "stat",
		"socket unix dgram", "bind unix:"+name+"-dgram", "stat",
		"socket unix dgram", "bind unix:"+name+"-other", "stat")
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	st := tr.expectStat()
	tr.wantRedirect(0, fd, unixAddr(name), st)
	if st.addr != "unix:"+name {
		t.Errorf("child's getsockname %s, want unix:%s", st.addr, name)
	}
	fd = tr.expectFD()
	tr.expectLine("bind 0")
	tr.wantRedirect(1, fd, unixAddr(name+"-dgram"), tr.expectStat())
	tr.expectFD()
	tr.expectLine("bind 0")
	if st := tr.expectStat(); slices.Contains(heldInos(held), st.ino) || st.addr != "unix:"+name+"-other" {
		t.Errorf("unrelated abstract name: child got %+v", st)
	}
	tr.exit()
}

// TestServerUnixRemovedFileWarns proves a program that removes the socket
// file before binding (to clear a stale one) still gets the held socket,
// and hupd warns that clients can no longer reach it.
func TestServerUnixRemovedFileWarns(t *testing.T) {
	checkFDs(t)
	path := filepath.Join(t.TempDir(), "app.sock")
	held := []Socket{hold(t, "unix", path, false, 64)}
	tr := start(t, held, "", "unlink "+path, "socket unix stream", "bind unix:"+path, "stat")
	tr.expectLine("unlink 0")
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	tr.wantRedirect(0, fd, unixAddr(path), tr.expectStat())
	tr.exit()
	if !strings.Contains(tr.log.String(), "removed the socket file") {
		t.Errorf("no warning about the removed socket file; log:\n%s", tr.log)
	}
}

// TestServerUnixFileRemovedAtExitWarns: a program that removes the socket
// file as it stops (Go's UnixListener.Close does) gets a warning naming
// the path once it has exited.
func TestServerUnixFileRemovedAtExitWarns(t *testing.T) {
	checkFDs(t)
	path := filepath.Join(t.TempDir(), "app.sock")
	held := []Socket{hold(t, "unix", path, false, 64)}
	tr := start(t, held, "", "socket unix stream", "bind unix:"+path, "listen 5", "unlink "+path)
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	if ev := tr.event(); ev.FD != fd {
		t.Errorf("bind event %+v", ev)
	}
	tr.expectLine("listen 0")
	tr.event()
	tr.expectLine("unlink 0")
	tr.exit()
	if log := tr.log.String(); !strings.Contains(log, logev.BindSocketFileRemoved) || !strings.Contains(log, path) {
		t.Errorf("no warning naming the removed socket file; log:\n%s", log)
	}
}

// TestServerCloseOnExec proves the held socket put on the program's fd
// keeps the fd's close-on-exec flag: set when the program made its
// socket with SOCK_CLOEXEC, clear when it did not.
func TestServerCloseOnExec(t *testing.T) {
	checkFDs(t)
	held := []Socket{hold(t, "tcp4", "127.0.0.1:0", false, 64)}
	tr := start(t, held, "",
		"socket inet stream cloexec", "stat", "bind "+held[0].addrPort(), "stat",
		"socket inet stream", "stat", "bind "+held[0].addrPort(), "stat")
	for _, want := range []bool{true, false} {
		fd := tr.expectFD()
		if before := tr.expectStat(); before.cloexec != want {
			t.Fatalf("child's own socket: cloexec %v, want %v", before.cloexec, want)
		}
		tr.expectLine("bind 0")
		st := tr.expectStat()
		tr.wantRedirect(0, fd, in4("127.0.0.1", held[0].Port), st)
		if st.cloexec != want {
			t.Errorf("socket made with SOCK_CLOEXEC=%v: after the redirect fd %d has close-on-exec %v", want, fd, st.cloexec)
		}
	}
	tr.exit()
}

// TestServerNonblock proves the held socket takes the O_NONBLOCK of the
// program's socket: SOCK_NONBLOCK makes it nonblocking (seen in the
// program and on hupd's own fd of it, which shares the open file), a
// blocking socket makes it blocking again.
func TestServerNonblock(t *testing.T) {
	checkFDs(t)
	held := []Socket{hold(t, "tcp4", "127.0.0.1:0", false, 64)}
	for _, want := range []bool{true, false, true} {
		if nonblocking(t, held[0]) == want {
			t.Fatalf("held socket already has nonblock=%v: the check proves nothing", want)
		}
		sock := "socket inet stream"
		if want {
			sock += " nonblock"
		}
		tr := start(t, held, "", sock, "bind "+held[0].addrPort(), "stat")
		fd := tr.expectFD()
		tr.expectLine("bind 0")
		st := tr.expectStat()
		tr.wantRedirect(0, fd, in4("127.0.0.1", held[0].Port), st)
		if st.nonblock != want {
			t.Errorf("%s: the child's fd has O_NONBLOCK %v after the redirect", sock, st.nonblock)
		}
		tr.exit()
		if got := nonblocking(t, held[0]); got != want {
			t.Errorf("%s: the held socket has O_NONBLOCK %v, want %v", sock, got, want)
		}
	}
}

// TestServerThread proves a bind made by a thread other than the main one
// is redirected, and reported with that thread's id.
func TestServerThread(t *testing.T) {
	checkFDs(t)
	held := []Socket{hold(t, "tcp4", "127.0.0.1:0", false, 64)}
	tr := start(t, held, "", "thread", "socket inet stream", "bind "+held[0].addrPort(), "stat")
	tid, _ := strconv.Atoi(tr.expect("thread")[0])
	if tid == tr.proc.Pid || tid == tr.tid {
		t.Fatalf("the thread step ran on thread %d: the main one is %d, the first step's %d", tid, tr.proc.Pid, tr.tid)
	}
	tr.tid = tid
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	tr.wantRedirect(0, fd, in4("127.0.0.1", held[0].Port), tr.expectStat())
	tr.exit()
}

// TestServerForkedChild proves a process the program starts inherits the
// filter: its bind is redirected too (also from a non-main thread), the
// events name its threads, and Serve returns only once both have exited.
func TestServerForkedChild(t *testing.T) {
	checkFDs(t)
	held := []Socket{hold(t, "tcp4", "127.0.0.1:0", false, 64), hold(t, "udp4", "127.0.0.1:0", false, 0)}
	tr := start(t, held, "", "socket inet stream", "bind "+held[0].addrPort(), "stat",
		"fork", "socket inet dgram", "bind "+held[1].addrPort(), "stat", "thread", "socket inet stream", "bind "+held[0].addrPort(), "stat")
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	tr.wantRedirect(0, fd, in4("127.0.0.1", held[0].Port), tr.expectStat())

	f := tr.expect("pid")
	pid, _ := strconv.Atoi(f[0])
	if pid == tr.proc.Pid {
		t.Fatalf("fork did not make a new process")
	}
	tr.pid = pid
	tr.tid, _ = strconv.Atoi(f[1])
	fd = tr.expectFD()
	tr.expectLine("bind 0")
	tr.wantRedirect(1, fd, in4("127.0.0.1", held[1].Port), tr.expectStat())

	tid, _ := strconv.Atoi(tr.expect("thread")[0])
	if tid == pid || tid == tr.tid {
		t.Fatalf("the forked child's thread step ran on thread %d: the main one is %d, the first step's %d", tid, pid, tr.tid)
	}
	tr.tid = tid
	fd = tr.expectFD()
	tr.expectLine("bind 0")
	tr.wantRedirect(0, fd, in4("127.0.0.1", held[0].Port), tr.expectStat())
	tr.expectLine("fork exited")
	tr.exit()
}

// TestServerDualStack proves a held "::" dual-stack TCP socket takes a
// program's AF_INET bind of 0.0.0.0 (the program then has an IPv6 socket,
// which hupd warns of), and a held "::" IPv6-only one does not.
func TestServerDualStack(t *testing.T) {
	needIPv6(t)
	checkFDs(t)
	dual := hold(t, "tcp6", "[::]:0", false, 64)
	if dual.V6Only {
		t.Fatal("Describe: V6Only set on a dual-stack socket")
	}
	tr := start(t, []Socket{dual}, "", "socket inet stream", "bind "+fmt.Sprintf("0.0.0.0:%d", dual.Port), "stat")
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	st := tr.expectStat()
	tr.wantRedirect(0, fd, in4("0.0.0.0", dual.Port), st)
	if st.family != unix.AF_INET6 || st.addr != fmt.Sprintf("[::]:%d", dual.Port) {
		t.Errorf("child's socket after the redirect: family %d, address %s", st.family, st.addr)
	}
	tr.exit()
	if !strings.Contains(tr.log.String(), logev.BindIPv4GetsIPv6) {
		t.Errorf("no family warning; log:\n%s", tr.log)
	}

	v6only := holdWhere(t, "tcp6", "[::]:0", true, 64, func(port int) bool { return bindable(unix.SOCK_STREAM, port) })
	if !v6only.V6Only {
		t.Fatal("Describe: V6Only not set")
	}
	tr = start(t, []Socket{v6only}, "",
		"socket inet stream", "bind "+fmt.Sprintf("0.0.0.0:%d", v6only.Port), "stat",
		"socket inet6 stream", "v6only 1", "bind "+fmt.Sprintf("[::]:%d", v6only.Port), "stat")
	tr.expectFD()
	tr.expectLine("bind 0") // holdWhere saw the port free for IPv4
	if st := tr.expectStat(); st.ino == v6only.ino || st.family != unix.AF_INET {
		t.Errorf("IPv4 bind got the IPv6-only held socket: %+v", st)
	}
	fd = tr.expectFD()
	tr.expectLine("v6only 1")
	tr.expectLine("bind 0")
	tr.wantRedirect(0, fd, in6("::", v6only.Port), tr.expectStat())
	tr.exit()
}

// TestServerV4HeldV6Program proves a held 0.0.0.0 TCP socket takes a
// program's AF_INET6 bind of "::" (the program then has an IPv4 socket,
// which hupd warns of).
func TestServerV4HeldV6Program(t *testing.T) {
	needIPv6(t)
	checkFDs(t)
	held := []Socket{hold(t, "tcp4", "0.0.0.0:0", false, 64)}
	tr := start(t, held, "", "socket inet6 stream", fmt.Sprintf("bind [::]:%d", held[0].Port), "stat")
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	st := tr.expectStat()
	tr.wantRedirect(0, fd, in6("::", held[0].Port), st)
	if st.family != unix.AF_INET || st.addr != fmt.Sprintf("0.0.0.0:%d", held[0].Port) {
		t.Errorf("child's socket after the redirect: family %d, address %s", st.family, st.addr)
	}
	tr.exit()
	if !strings.Contains(tr.log.String(), logev.BindIPv6GetsIPv4) {
		t.Errorf("no family warning; log:\n%s", tr.log)
	}
}

// TestServerKilledInBind proves a program killed while its bind waits for
// an answer does not keep Serve: it returns once the program is gone
// (having had nothing, or a notification of a dead caller, to answer),
// and closes the notify fd.
func TestServerKilledInBind(t *testing.T) {
	checkFDs(t)
	held := []Socket{hold(t, "tcp4", "127.0.0.1:0", false, 64)}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW := pipe(t)
	defer outR.Close()
	cmd := socketact.Command{
		Shim: hupdBin, Path: self, Args: []string{self, "socket inet stream", "bind " + held[0].addrPort()},
		Env: childEnvironment(), UID: -1, GID: -1, Trap: true, Stdout: outW,
	}
	p, wait, err := cmd.Start()
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	notify, err := wait()
	if err != nil {
		p.Kill()
		p.Wait()
		t.Fatal(err)
	}
	notifyFD := int(notify.Fd())
	// No Server yet: the bind waits in the filter. Find it there.
	sc := bufio.NewScanner(outR)
	for _, verb := range []string{"pid", "socket"} {
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), verb) {
			p.Kill()
			p.Wait()
			notify.Close()
			t.Fatalf("child: %q, want a %q line", sc.Text(), verb)
		}
	}
	for end := time.Now().Add(deadline); !inBind(p.Pid); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			p.Kill()
			p.Wait()
			notify.Close()
			t.Fatal("the child's bind never blocked in the filter")
		}
	}
	p.Kill()
	st, _ := p.Wait()
	if ws := st.Sys().(interface{ Signaled() bool }); !ws.Signaled() {
		t.Errorf("child: %v, want killed", st)
	}
	var events []Event
	served := make(chan struct{})
	go func() {
		defer close(served)
		NewServer(notify, held, slog.New(slog.NewTextHandler(io.Discard, nil)), func(ev Event) { events = append(events, ev) }).Serve()
	}()
	select {
	case <-served:
	case <-time.After(deadline):
		t.Fatalf("Serve did not return in %v after the child was killed", deadline)
	}
	if len(events) != 0 {
		t.Errorf("events for a dead caller: %+v", events)
	}
	if l, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(notifyFD)); err == nil && strings.Contains(l, "seccomp") {
		t.Errorf("notify fd %d still open after Serve returned", notifyFD)
	}
}

// inBind reports whether a thread of process pid is in bind(2).
func inBind(pid int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if err == nil && strings.HasPrefix(string(b), strconv.Itoa(unix.SYS_BIND)+" ") {
			return true
		}
	}
	return false
}

// ---- regression tests for bugs found while writing these ----

// TestServerSockaddrStorageLength proves a bind whose address length is
// sizeof(struct sockaddr_storage), 128 — what a program passes when it
// binds a struct sockaddr_storage, and the kernel's own limit — is
// redirected like any other.
func TestServerSockaddrStorageLength(t *testing.T) {
	checkFDs(t)
	held := []Socket{hold(t, "tcp4", "127.0.0.1:0", false, 64)}
	tr := start(t, held, "",
		"socket inet stream", "bind "+held[0].addrPort()+" len=16", "stat",
		"socket inet stream", "bind "+held[0].addrPort()+" len=112", "stat",
		"socket inet stream", "bind "+held[0].addrPort()+" len=128", "stat")
	for _, size := range []int{16, 112, 128} {
		fd := tr.expectFD()
		if got := tr.expect("bind")[0]; got != "0" {
			t.Errorf("bind with address length %d: %s, want 0 (redirected)", size, got)
			tr.expectStat()
			continue
		}
		tr.wantRedirect(0, fd, in4("127.0.0.1", held[0].Port), tr.expectStat())
	}
	tr.exit()
}

// TestServerSeqpacketNotDgram proves a SOCK_SEQPACKET socket's bind to the
// path of a held SOCK_DGRAM unix socket is not redirected (Match: "the
// same path and socket type"): it goes ahead and fails with EADDRINUSE as
// it would without hupd.
func TestServerSeqpacketNotDgram(t *testing.T) {
	checkFDs(t)
	path := filepath.Join(t.TempDir(), "dgram.sock")
	held := []Socket{hold(t, "unixgram", path, false, 0)}
	tr := start(t, held, "", "socket unix seqpacket", "bind unix:"+path, "stat")
	tr.expectFD()
	got := tr.expect("bind")[0]
	st := tr.expectStat()
	if got != "EADDRINUSE" || st.ino == held[0].ino {
		t.Errorf("SOCK_SEQPACKET bind to a held SOCK_DGRAM path: bind %s, child's fd is the held socket: %v (type %d); want EADDRINUSE and its own socket",
			got, st.ino == held[0].ino, st.typ)
	}
	// Whatever happened, drain the report so exit sees no stray event.
	if got == "0" {
		tr.event()
	}
	tr.exit()
}

// TestServerUnixPathStartingWithAt proves a bind to a filesystem path
// that begins with "@" (relative, "@name" in the working directory) is
// not taken for the abstract name "@name" a held socket has.
func TestServerUnixPathStartingWithAt(t *testing.T) {
	checkFDs(t)
	dir := t.TempDir()
	name := fmt.Sprintf("@hupd-legacy-at-%d-%d", os.Getpid(), time.Now().UnixNano())
	held := []Socket{hold(t, "unix", name, false, 64)}
	tr := start(t, held, dir, "socket unix stream", "bind unixfs:"+name, "stat")
	tr.expectFD()
	tr.expectLine("bind 0")
	st := tr.expectStat()
	if st.ino == held[0].ino {
		t.Errorf("bind to the file %s/%s got the held abstract socket %s", dir, name, name)
		tr.event()
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		t.Errorf("the program's socket file: %v", err)
	}
	tr.exit()
}

// TestServerThreadOwnFDTable proves a bind by a thread with a file table
// of its own (unshare(CLONE_FILES)) is redirected: the fd seccomp reports
// is the calling thread's, not its process leader's.
func TestServerThreadOwnFDTable(t *testing.T) {
	checkFDs(t)
	held := []Socket{hold(t, "tcp4", "127.0.0.1:0", false, 64)}
	tr := start(t, held, "", "thread", "unshare-files", "socket inet stream", "socket inet stream", "bind "+held[0].addrPort(), "stat")
	tr.tid, _ = strconv.Atoi(tr.expect("thread")[0])
	tr.expectLine("unshare-files 0")
	tr.expectFD()
	fd := tr.expectFD() // in this thread's table only
	if got := tr.expect("bind")[0]; got != "0" {
		t.Errorf("bind from a thread with its own fd table: %s, want 0 (redirected)", got)
		tr.expectStat()
	} else {
		tr.wantRedirect(0, fd, in4("127.0.0.1", held[0].Port), tr.expectStat())
	}
	tr.exit()
}
