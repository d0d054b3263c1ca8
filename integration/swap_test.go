package integration

// Blue/green reloads end to end: zero downtime under load across many
// swaps, rollback when the new generation fails, bounded drains,
// coalescing of reload requests, the restart strategy and max_draining.
// Every wait is on a handshake (a log event, a reload reply, a pidfd, an
// HTTP answer) under the package deadline.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
	"golang.org/x/sys/unix"
)

func init() {
	// swap-serve [-exit-if FILE] [-ready-unless FILE] [-ignore-term]
	// [-hold DIR]: serve HTTP on every passed socket, answering "pid N",
	// and send READY=1. On TERM: stop accepting, answer further requests
	// on open connections with "Connection: close", wait for the clients
	// to leave, shut down and exit 0 (the gentle drain examples/hello
	// does). The flags change that:
	//   -exit-if FILE: when FILE exists at start, say so on stderr and
	//     exit 3 before touching a socket;
	//   -ready-unless FILE: serve, but send READY=1 only when FILE does
	//     not exist at start (say so on stderr);
	//   -ignore-term: keep serving after TERM (saying so on stderr);
	//   -hold DIR: after TERM, stop accepting, then wait until
	//     DIR/release-PID exists before draining.
	childModes["swap-serve"] = swapServe
}

func swapServe(args []string) {
	fs := flag.NewFlagSet("swap-serve", flag.ExitOnError)
	exitIf := fs.String("exit-if", "", "exit 3 at start when this file exists")
	readyUnless := fs.String("ready-unless", "", "send READY=1 only when this file does not exist")
	ignoreTerm := fs.Bool("ignore-term", false, "keep serving after TERM")
	hold := fs.String("hold", "", "on TERM, wait for DIR/release-PID before draining")
	fs.Parse(args)
	pid := os.Getpid()
	if *exitIf != "" {
		if _, err := os.Stat(*exitIf); err == nil {
			fmt.Fprintf(os.Stderr, "swap-serve pid %d: %s exists: refusing to start\n", pid, filepath.Base(*exitIf))
			os.Exit(3)
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM)
	srv := &swapServer{pid: pid}
	for i, name := range activatedNames() {
		f := os.NewFile(uintptr(3+i), name)
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "swap-serve: fd %d: %v\n", 3+i, err)
			os.Exit(3)
		}
		srv.serve(l)
	}
	ready := true
	if *readyUnless != "" {
		if _, err := os.Stat(*readyUnless); err == nil {
			fmt.Fprintf(os.Stderr, "swap-serve pid %d: serving, but %s exists: not sending READY=1\n", pid, filepath.Base(*readyUnless))
			ready = false
		}
	}
	if ready {
		if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); !ok {
			fmt.Fprintf(os.Stderr, "swap-serve: READY=1 not sent (%v)\n", err)
			os.Exit(3)
		}
	}
	for range sigs {
		if !*ignoreTerm {
			break
		}
		fmt.Fprintf(os.Stderr, "swap-serve pid %d: ignoring TERM\n", pid)
	}
	srv.stopAccepting()
	if *hold != "" {
		fmt.Fprintf(os.Stderr, "swap-serve pid %d: holding until release-%d\n", pid, pid)
		swapAwaitFile(*hold, "release-"+strconv.Itoa(pid))
	}
	srv.drain()
}

// swapServer is the gentle drain of examples/hello in small: the listening
// socket lives on in hupd, so stop accepting (new clients queue for the
// next generation), tell clients on open connections to leave, and shut
// down only once they have.
type swapServer struct {
	pid      int
	servers  []*http.Server
	ls       []net.Listener
	serving  sync.WaitGroup // the Serve calls
	draining atomic.Bool
	mu       sync.Mutex
	open     int
	left     chan struct{} // closed when open reaches 0 while draining
}

func (s *swapServer) serve(l net.Listener) {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.draining.Load() {
				w.Header().Set("Connection", "close")
			}
			fmt.Fprintf(w, "pid %d\n", s.pid)
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			s.mu.Lock()
			defer s.mu.Unlock()
			switch st {
			case http.StateNew:
				s.open++
			case http.StateClosed, http.StateHijacked:
				if s.open--; s.open == 0 && s.left != nil {
					close(s.left)
					s.left = nil
				}
			}
		},
	}
	s.servers, s.ls = append(s.servers, srv), append(s.ls, l)
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		srv.Serve(l)
	}()
}

// stopAccepting closes the listeners and returns once every Serve has
// returned, so that open counts every connection that was accepted.
func (s *swapServer) stopAccepting() {
	s.draining.Store(true)
	for _, l := range s.ls {
		l.Close()
	}
	s.serving.Wait()
}

func (s *swapServer) drain() {
	s.mu.Lock()
	left := make(chan struct{})
	if s.open == 0 {
		close(left)
	} else {
		s.left = left
	}
	s.mu.Unlock()
	select {
	case <-left:
	case <-time.After(time.Second): // the child's own grace, as hello's
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range s.servers {
		srv.Shutdown(ctx)
	}
}

// swapAwaitFile blocks until dir/name exists, with inotify: the watch is
// in place before the first look, so a file created at any moment is seen.
func swapAwaitFile(dir, name string) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		fmt.Fprintf(os.Stderr, "swap-serve: inotify: %v\n", err)
		os.Exit(3)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		fmt.Fprintf(os.Stderr, "swap-serve: watch %s: %v\n", dir, err)
		os.Exit(3)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "swap-serve: read inotify: %v\n", err)
			os.Exit(3)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			if strings.TrimRight(string(nameBytes), "\x00") == name {
				return
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// swapHupd is a hupd under test serving one HTTP socket.
type swapHupd struct {
	*Hupd
	addr string // host:port of the socket named http
	ctl  string // control socket path
}

// swapStart runs hupd with --listen http=tcp://127.0.0.1:0, the TOML
// config conf (if not empty), flags, and the command argv.
func swapStart(t *testing.T, conf string, flags []string, argv ...string) *swapHupd {
	t.Helper()
	args := []string{"run", "--listen", "http=tcp://127.0.0.1:0"}
	if conf != "" {
		p := filepath.Join(t.TempDir(), "hupd.toml")
		if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-c", p)
	}
	args = append(append(append(args, flags...), "--"), argv...)
	h := StartHupd(t, args...)
	return &swapHupd{Hupd: h, addr: HostPort(h.Listening("http")), ctl: h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")}
}

// ready waits until generation gen is ready and returns its PID.
func (s *swapHupd) ready(gen int) int {
	s.t.Helper()
	return s.WaitEvent(logev.ChildReady, 1, swapGen(gen)).Int("pid")
}

// call sends one control request; it does not fail the test itself, so
// that other goroutines may use it.
func (s *swapHupd) call(cmd string) (control.Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	return control.Call(ctx, s.ctl, control.Request{Cmd: cmd})
}

// reload asks for a reload over the control socket and returns its result.
func (s *swapHupd) reload(t *testing.T) supervisor.ReloadResult {
	t.Helper()
	rep, err := s.call(control.CmdReload)
	if err != nil || rep.Reload == nil {
		t.Fatalf("reload: %+v, %v", rep, err)
	}
	return *rep.Reload
}

// reloadCLI runs `hupd reload --control PATH` with extra args.
func (s *swapHupd) reloadCLI(t *testing.T, args ...string) oneShotResult {
	t.Helper()
	return oneShot(t, "", nil, append([]string{"reload", "--control", s.ctl}, args...)...)
}

// status returns hupd's status over the control socket.
func (s *swapHupd) status(t *testing.T) supervisor.Status {
	t.Helper()
	rep, err := s.call(control.CmdStatus)
	if err != nil || rep.Status == nil {
		t.Fatalf("status: %+v, %v", rep, err)
	}
	return *rep.Status
}

// swapGen matches the events of generation n.
func swapGen(n int) func(Event) bool { return func(e Event) bool { return e.Int("gen") == n } }

// swapEventIndex waits for the n-th event msg that satisfies match and
// returns its position in hupd's log. (A reply or a later event the test
// waited for can reach it before the line: it waits, as WaitEvent does.)
func swapEventIndex(h *Hupd, msg string, n int, match func(Event) bool) int {
	h.t.Helper()
	h.WaitEvent(msg, n, match)
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := 0
	for i, e := range h.events {
		if e.Msg() == msg && (match == nil || match(e)) {
			if seen++; seen == n {
				return i
			}
		}
	}
	return -1
}

// swapTime is when hupd logged e.
func swapTime(t *testing.T, e Event) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, e.Str("time"))
	if err != nil {
		t.Fatalf("event %v: time: %v", e, err)
	}
	return ts
}

// swapPID reads the PID from a "pid N…" body; 0 if there is none.
func swapPID(body string) int {
	var pid int
	fmt.Sscanf(body, "pid %d", &pid)
	return pid
}

// settle makes one status round trip on the control socket and returns
// once hupd has closed its end of it: the client half-closes after the
// reply and reads until hupd's end-of-stream, which hupd sends by closing
// the connection's fd.
func (s *swapHupd) settle(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("unix", s.ctl, deadline)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(c, `{"v":1,"cmd":"status"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	c.(*net.UnixConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || !strings.Contains(string(b), `"ok":true`) {
		t.Fatalf("status round trip: %q, %v", b, err)
	}
}

// swapFDs lists a process's open fds and what they point at.
func swapFDs(t *testing.T, pid int) map[int]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		out[fd], _ = os.Readlink(filepath.Join(dir, e.Name()))
	}
	return out
}

// swapConn is one client connection that sends requests by hand, so that
// a test knows which generation holds it.
type swapConn struct {
	c  net.Conn
	br *bufio.Reader
}

func swapDial(t *testing.T, addr string) *swapConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(deadline))
	return &swapConn{c: c, br: bufio.NewReader(c)}
}

func (c *swapConn) send(path string) error {
	_, err := fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\nHost: hupd-test\r\n\r\n", path)
	return err
}

// read reads one response: status, body, and whether the server asked
// to close the connection (Connection: close).
func (c *swapConn) read() (int, string, bool, error) {
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Close, err
}

// get sends one request and reads its answer; it fails t unless it is 200.
func (c *swapConn) get(t *testing.T, path string) (body string, closing bool) {
	t.Helper()
	if err := c.send(path); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	code, body, closing, err := c.read()
	if err != nil || code != 200 {
		t.Fatalf("GET %s: status %d, %v", path, code, err)
	}
	return body, closing
}

// --- Load generator ---

// swapLoad keeps HTTP clients busy against one address: some open a new
// TCP connection per request, others each keep one connection alive.
type swapLoad struct {
	addr string
	stop atomic.Bool
	wg   sync.WaitGroup

	mu   sync.Mutex
	cond *sync.Cond
	res  swapLoadResult
}

// swapLoadResult counts the outcome of every request. Only OK is a
// success: every other class is a request a client lost.
type swapLoadResult struct {
	OK                           int
	Refused, Reset, EOF, Timeout int
	Non200, BadBody, Other       int
	Retried                      int // answered, but only after the transport retried on a new connection
	ByKind                       map[string]int
	ByPID                        map[int]int
	Samples                      []swapSample
	FirstErrs                    []string
	Started, Stopped             time.Time
	newClients, keepAliveClients int
	maxLatency                   time.Duration
	latencies                    []time.Duration
}

// swapSample is one answered request: when it was sent, and which PID
// answered it.
type swapSample struct {
	start time.Time
	pid   int
}

// Failures is the number of requests that did not get a 200 from a child.
func (r swapLoadResult) Failures() int {
	return r.Refused + r.Reset + r.EOF + r.Timeout + r.Non200 + r.BadBody + r.Other
}

func (r swapLoadResult) String() string {
	d := r.Stopped.Sub(r.Started)
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))].Round(time.Microsecond)
	}
	return fmt.Sprintf("%d ok (%.0f/s over %s; new-connection %d, keep-alive %d; %d PIDs; latency p50 %s p99 %s max %s), "+
		"failed: refused %d, reset %d, EOF %d, timeout %d, non-200 %d, bad body %d, other %d; retried by the transport %d%s",
		r.OK, float64(r.OK)/d.Seconds(), d.Round(time.Millisecond), r.ByKind["new"], r.ByKind["keepalive"], len(r.ByPID),
		pct(0.5), pct(0.99), r.maxLatency.Round(time.Microsecond),
		r.Refused, r.Reset, r.EOF, r.Timeout, r.Non200, r.BadBody, r.Other, r.Retried, swapErrList(r.FirstErrs))
}

func swapErrList(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	return "; first errors: " + strings.Join(errs, "; ")
}

// swapStartLoad starts newConn clients that use a new connection per
// request and keepAlive clients with one keep-alive connection each.
func swapStartLoad(t *testing.T, addr string, newConn, keepAlive int) *swapLoad {
	t.Helper()
	l := &swapLoad{addr: addr}
	l.cond = sync.NewCond(&l.mu)
	l.res = swapLoadResult{ByKind: map[string]int{}, ByPID: map[int]int{}, Started: time.Now(),
		newClients: newConn, keepAliveClients: keepAlive}
	client := func(keep bool) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DisableKeepAlives:   !keep,
			MaxIdleConnsPerHost: 1,
			MaxConnsPerHost:     1,
		}}
	}
	for i := 0; i < newConn; i++ {
		l.wg.Add(1)
		go l.run(client(false), "new")
	}
	for i := 0; i < keepAlive; i++ {
		l.wg.Add(1)
		go l.run(client(true), "keepalive")
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

func (l *swapLoad) run(c *http.Client, kind string) {
	defer l.wg.Done()
	defer c.CloseIdleConnections()
	for !l.stop.Load() {
		l.one(c, kind)
	}
}

func (l *swapLoad) one(c *http.Client, kind string) {
	var conns atomic.Int32
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { conns.Add(1) },
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+l.addr+"/", nil)
	start := time.Now()
	resp, err := c.Do(req)
	var body []byte
	code := 0
	if err == nil {
		code = resp.StatusCode
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	took := time.Since(start)
	pid := swapPID(string(body))

	l.mu.Lock()
	defer l.mu.Unlock()
	r := &l.res
	r.latencies = append(r.latencies, took)
	r.maxLatency = max(r.maxLatency, took)
	var ne net.Error
	class := ""
	switch {
	case err == nil && code != 200:
		r.Non200++
		class = fmt.Sprintf("status %d", code)
	case err == nil && pid == 0:
		r.BadBody++
		class = fmt.Sprintf("body %q", body)
	case err == nil:
		r.OK++
		r.ByKind[kind]++
		r.ByPID[pid]++
		r.Samples = append(r.Samples, swapSample{start, pid})
		if conns.Load() > 1 {
			r.Retried++
		}
		l.cond.Broadcast()
		return
	case errors.Is(err, syscall.ECONNREFUSED):
		r.Refused++
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		r.Reset++
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		r.EOF++
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		r.Timeout++
	default:
		r.Other++
	}
	if class == "" {
		class = err.Error()
	}
	if len(r.FirstErrs) < 5 {
		r.FirstErrs = append(r.FirstErrs, fmt.Sprintf("%s client at %s: %s", kind, start.Format("15:04:05.000000"), class))
	}
	l.cond.Broadcast()
}

// waitOK blocks until at least n requests in all have been answered, and
// at least one by pid if pid is not 0; it fails t at the deadline.
func (l *swapLoad) waitOK(t *testing.T, n, pid int) {
	t.Helper()
	if !waitCond(&l.mu, l.cond, func() bool { return l.res.OK >= n && (pid == 0 || l.res.ByPID[pid] > 0) }) {
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Fatalf("load: %d answers (want %d), %d from pid %d within %s: %s", l.res.OK, n, l.res.ByPID[pid], pid, deadline, l.res)
	}
}

// Stop ends the load once every client's request in flight is answered.
func (l *swapLoad) Stop() swapLoadResult {
	if !l.stop.Swap(true) {
		l.wg.Wait()
		l.mu.Lock()
		l.res.Stopped = time.Now()
		l.mu.Unlock()
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}

// swapNoFailures fails t if the load lost any request.
func swapNoFailures(t *testing.T, r swapLoadResult, min int) {
	t.Helper()
	t.Logf("load: %s", r)
	if r.Failures() != 0 {
		t.Errorf("load lost %d requests: %s", r.Failures(), r)
	}
	if r.OK < min {
		t.Errorf("load got %d answers, want at least %d", r.OK, min)
	}
	for kind, n := range map[string]int{"new": r.newClients, "keepalive": r.keepAliveClients} {
		if n > 0 && r.ByKind[kind] == 0 {
			t.Errorf("no %s client got an answer", kind)
		}
	}
}

// --- Tests ---

// TestSwapZeroDowntime: 100 swaps back to back under continuous load from
// clients that open a connection per request and clients that keep one
// alive. No request is lost, every swap starts a new PID, one generation
// is left at the end, and hupd holds as many fds as before.
func TestSwapZeroDowntime(t *testing.T) {
	// Not parallel: the load needs the machine's cores to itself.
	const swaps = 100
	s := swapStart(t, "", nil, helloBin, "-grace", "10s")
	firstPID := s.ready(1)
	hupdPID := s.Cmd.Process.Pid
	s.settle(t) // a control round trip, as after the swaps
	before := swapFDs(t, hupdPID)

	load := swapStartLoad(t, s.addr, 3, 3)
	load.waitOK(t, 50, firstPID)

	var results []supervisor.ReloadResult
	t0 := time.Now()
	for i := 0; i < swaps; i++ {
		var r supervisor.ReloadResult
		if i%10 == 9 {
			// Every tenth through `hupd reload`, as an operator would.
			out := s.reloadCLI(t, "--json")
			if err := json.Unmarshal([]byte(out.stdout), &r); err != nil || out.code != 0 {
				t.Fatalf("swap %d: hupd reload exit %d, stdout %q (%v), stderr %q", i+1, out.code, out.stdout, err, out.stderr)
			}
		} else {
			r = s.reload(t)
		}
		if !r.OK {
			t.Fatalf("swap %d failed: %+v", i+1, r)
		}
		results = append(results, r)
	}
	swapsTook := time.Since(t0)
	// Wait for every old generation to have drained and exited.
	for gen := 1; gen <= swaps; gen++ {
		s.WaitEvent(logev.ChildExited, 1, swapGen(gen))
	}
	res := load.Stop()

	// The load: nothing lost, and it really ran across the swaps.
	swapNoFailures(t, res, 5*swaps)
	if res.Retried != 0 {
		t.Errorf("%d requests were answered only after the client transport retried them on a new connection", res.Retried)
	}
	if len(res.ByPID) < swaps/2 {
		t.Errorf("only %d of %d generations answered the load", len(res.ByPID), swaps+1)
	}

	// Every swap a new PID, distinct from all others, in a chain.
	seen := map[int]bool{firstPID: true}
	prev := firstPID
	var took, ready []time.Duration
	for i, r := range results {
		if r.NewPID == r.OldPID || r.OldPID != prev || seen[r.NewPID] || r.NewGen != i+2 || r.OldGen != i+1 {
			t.Errorf("swap %d: gen %d pid %d -> gen %d pid %d (previous pid %d)", i+1, r.OldGen, r.OldPID, r.NewGen, r.NewPID, prev)
		}
		seen[r.NewPID], prev = true, r.NewPID
		took = append(took, r.Finished.Sub(r.Started))
		ready = append(ready, time.Duration(r.ReadyAfter))
	}
	slices.Sort(took)
	slices.Sort(ready)
	t.Logf("%d swaps in %s (%s per swap, reload wall clock included); reload took p50 %s max %s; new generation ready after p50 %s max %s",
		swaps, swapsTook.Round(time.Millisecond), (swapsTook / swaps).Round(time.Microsecond),
		took[len(took)/2].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond),
		ready[len(ready)/2].Round(time.Microsecond), ready[len(ready)-1].Round(time.Microsecond))

	// Each old generation drained itself (exit 0), none was killed.
	s.Sync()
	for _, e := range s.Events(logev.ChildExited) {
		if e.Str("status") != "exit status 0" || e.Str("state") != string(supervisor.StateDraining) {
			t.Errorf("gen %d exited %q in state %q, want exit status 0 while draining", e.Int("gen"), e.Str("status"), e.Str("state"))
		}
	}
	if ev := s.Events(logev.StopTimeout); len(ev) != 0 {
		t.Errorf("generations were killed: %v", ev)
	}

	// One generation left: the last one, ready.
	st := s.status(t)
	if len(st.Generations) != 1 || st.Generations[0].PID != prev || st.Generations[0].State != supervisor.StateReady ||
		st.Generations[0].Gen != swaps+1 || st.Reloads != swaps {
		t.Errorf("status after the swaps: %d reloads, generations %+v; want one, gen %d pid %d ready", st.Reloads, st.Generations, swaps+1, prev)
	}

	// hupd's own fds: as many as before, pointing at the same kinds of
	// things. The output pipes of an exited generation and the server
	// end of a control connection are closed by goroutines that see EOF
	// after the exit is logged or the reply is read: each try first makes
	// a control round trip that ends when hupd has closed its end.
	kinds := func(fds map[int]string) []string {
		var k []string
		for _, target := range fds {
			if i := strings.IndexByte(target, '['); i > 0 {
				target = target[:i] // socket:[inode] -> socket:
			}
			if strings.HasPrefix(target, "/sys/fs/cgroup/") {
				target = "cgroup" // a generation's, held to clone into it: gen-N changes
			}
			k = append(k, target)
		}
		sort.Strings(k)
		return k
	}
	var after map[int]string
	tries := 1
	for ; ; tries++ {
		s.settle(t)
		after = swapFDs(t, hupdPID)
		if slices.Equal(kinds(before), kinds(after)) || tries == 20 {
			break
		}
	}
	if len(after) != len(before) || !slices.Equal(kinds(before), kinds(after)) {
		t.Errorf("hupd has %d fds after %d swaps, %d before:\nbefore %v\nafter  %v", len(after), swaps, len(before), before, after)
	}
	t.Logf("hupd fds: %d before, %d after (%d control round trips to settle)", len(before), len(after), tries)
	if code := s.Stop(); code != 0 {
		t.Errorf("hupd exit code %d, want 0", code)
	}
}

// TestSwapRollback: a reload whose new generation fails leaves the old one
// serving, under load, without losing a request; `hupd reload` exits 1
// and says why, and so does status.
func TestSwapRollback(t *testing.T) {
	t.Parallel()

	// rollback runs one failed reload under load and checks what every
	// kind of failure has in common; it returns the result and the
	// stderr of `hupd reload`.
	rollback := func(t *testing.T, s *swapHupd, arm func(), wantReason string, newGen bool) (supervisor.ReloadResult, string) {
		t.Helper()
		oldPID := s.ready(1)
		load := swapStartLoad(t, s.addr, 2, 2)
		load.waitOK(t, 20, oldPID)
		arm()
		out := s.reloadCLI(t)
		if out.code != 1 {
			t.Fatalf("hupd reload exit %d, want 1; stdout %q stderr %q", out.code, out.stdout, out.stderr)
		}
		if !strings.Contains(out.stderr, "hupd: reload failed: "+wantReason) {
			t.Errorf("hupd reload stderr %q: want the reason %q", out.stderr, wantReason)
		}
		st := s.status(t)
		r := st.LastReload
		if r == nil || r.OK || !strings.HasPrefix(r.Reason, wantReason) || r.OldPID != oldPID {
			t.Fatalf("status last reload %+v: want failed with %q, old pid %d", r, wantReason, oldPID)
		}
		if newGen {
			// The new generation is gone, the old one never left.
			if r.NewGen != 2 || r.NewPID == 0 || r.NewPID == oldPID {
				t.Errorf("last reload new gen %d pid %d, want gen 2 with a pid of its own", r.NewGen, r.NewPID)
			}
			s.WaitEvent(logev.ChildExited, 1, swapGen(2))
			waitGone(t, r.NewPID)
		} else if ev := s.Events(logev.ChildStarted); len(ev) != 1 {
			t.Errorf("a new generation was started: %v", ev)
		}
		if ev := s.Events(logev.Draining); slices.ContainsFunc(ev, swapGen(1)) {
			t.Errorf("the old generation was asked to stop: %v", ev)
		}
		// Not a request lost, from before the reload until the new
		// generation was gone.
		swapNoFailures(t, load.Stop(), 20)
		// The old PID answers every client, on new connections too.
		after := swapStartLoad(t, s.addr, 1, 1)
		after.waitOK(t, 10, 0)
		if res := after.Stop(); res.Failures() != 0 || len(res.ByPID) != 1 || res.ByPID[oldPID] != res.OK {
			t.Errorf("after the rollback: %s; want every answer from the old pid %d", res, oldPID)
		}
		st = s.status(t)
		if len(st.Generations) != 1 || st.Generations[0].PID != oldPID || st.Generations[0].State != supervisor.StateReady {
			t.Errorf("status generations %+v, want only gen 1 pid %d ready", st.Generations, oldPID)
		}
		if st.LastReload == nil || st.LastReload.OK || st.LastReload.Reason != r.Reason {
			t.Errorf("status last reload %+v, want the failure %q", st.LastReload, r.Reason)
		}
		t.Logf("hupd reload said:\n%s", out.stderr)
		// The whole log, once hupd is gone: the failed generation was
		// not taken for a crash of the serving one (no restart, no third
		// generation), and the old one left only when hupd stopped.
		if code := s.Stop(); code != 0 {
			t.Errorf("hupd exit code %d, want 0", code)
		}
		if ev := s.Events(logev.RestartingChild); len(ev) != 0 {
			t.Errorf("hupd restarted a child after the failed reload: %v", ev)
		}
		if ev, want := s.Events(logev.ChildStarted), map[bool]int{true: 2, false: 1}[newGen]; len(ev) != want {
			t.Errorf("%d generations started, want %d: %v", len(ev), want, ev)
		}
		return *r, out.stderr
	}

	t.Run("new generation exits at start", func(t *testing.T) {
		t.Parallel()
		marker := filepath.Join(t.TempDir(), "broken")
		s := swapStart(t, "", []string{"--ready", "notify"}, childCmd("swap-serve", "-exit-if", marker)...)
		r, stderr := rollback(t, s, func() { writeFile(t, filepath.Dir(marker), "broken", "") },
			"generation 2 exited before it was ready: exit status 3", true)
		line := fmt.Sprintf("swap-serve pid %d: broken exists: refusing to start", r.NewPID)
		if len(r.Output) == 0 || r.Output[len(r.Output)-1] != line {
			t.Errorf("reload output %q: want its last line %q", r.Output, line)
		}
		if !strings.Contains(r.Reason, line) || !strings.Contains(stderr, "  | "+line+"\n") {
			t.Errorf("reason %q, hupd reload stderr %q: want the child's last line %q", r.Reason, stderr, line)
		}
	})

	t.Run("new generation never ready", func(t *testing.T) {
		t.Parallel()
		marker := filepath.Join(t.TempDir(), "stuck")
		s := swapStart(t, "", []string{"--ready", "notify", "--ready-timeout", "500ms"},
			childCmd("swap-serve", "-ready-unless", marker)...)
		r, stderr := rollback(t, s, func() { writeFile(t, filepath.Dir(marker), "stuck", "") },
			"generation 2 not ready within 500ms (readiness notify)", true)
		line := fmt.Sprintf("swap-serve pid %d: serving, but stuck exists: not sending READY=1", r.NewPID)
		if !slices.Contains(r.Output, line) || !strings.Contains(stderr, "  | "+line+"\n") {
			t.Errorf("reload output %q, hupd reload stderr %q: want the child's line %q", r.Output, stderr, line)
		}
		if took := r.Finished.Sub(r.Started); took < 500*time.Millisecond {
			t.Errorf("the reload failed after %s, before the 500ms readiness timeout", took)
		}
		// It was serving: it is stopped as an old generation is (stop
		// signal, gentle drain), not killed with the requests it holds.
		s.WaitEvent(logev.Draining, 1, swapGen(2))
		if ev := s.WaitEvent(logev.ChildExited, 1, swapGen(2)); ev.Str("status") != "exit status 0" {
			t.Errorf("gen 2 exited %q, want exit status 0 after its drain", ev.Str("status"))
		}
	})

	t.Run("check fails", func(t *testing.T) {
		t.Parallel()
		conf := `[reload]
check = ["sh", "-c", "echo checking; echo bad config >&2; exit 1"]
`
		s := swapStart(t, conf, []string{"--ready", "notify"}, childCmd("swap-serve")...)
		r, _ := rollback(t, s, func() {}, "check failed: sh: exit status 1", false)
		if !strings.Contains(r.Reason, "bad config") {
			t.Errorf("reason %q: want the check's output %q", r.Reason, "bad config")
		}
	})
}

// TestSwapDrain: the old generation's drain is bounded (a child that
// ignores TERM is killed at --stop-timeout) and gentle (a request in flight
// on the old generation completes after the swap).
func TestSwapDrain(t *testing.T) {
	t.Parallel()

	t.Run("ignores TERM: killed at stop timeout", func(t *testing.T) {
		t.Parallel()
		s := swapStart(t, "", []string{"--ready", "notify", "--stop-timeout", "300ms"}, childCmd("swap-serve", "-ignore-term")...)
		oldPID := s.ready(1)
		c := swapDial(t, s.addr) // held by gen 1: nobody else accepts yet
		if body, _ := c.get(t, "/"); swapPID(body) != oldPID {
			t.Fatalf("answer %q, want pid %d", body, oldPID)
		}
		r := s.reload(t)
		if !r.OK || r.OldPID != oldPID || r.NewPID == oldPID {
			t.Fatalf("reload %+v", r)
		}
		drainEv := s.WaitEvent(logev.Draining, 1, swapGen(1))
		s.waitStderr(fmt.Sprintf("swap-serve pid %d: ignoring TERM", oldPID))
		// TERM delivered and ignored: it still serves its connection.
		if body, closing := c.get(t, "/"); swapPID(body) != oldPID || closing {
			t.Fatalf("after TERM: answer %q (Connection: close %v), want pid %d still serving", body, closing, oldPID)
		}
		killEv := s.WaitEvent(logev.StopTimeout, 1, swapGen(1))
		exitEv := s.WaitEvent(logev.ChildExited, 1, swapGen(1))
		waitGone(t, oldPID)
		if got := exitEv.Str("status"); got != "killed by signal KILL" {
			t.Errorf("gen 1 exited %q, want killed by signal KILL", got)
		}
		if d := swapTime(t, killEv).Sub(swapTime(t, drainEv)); d < 300*time.Millisecond || d > 5*time.Second {
			t.Errorf("killed %s after draining began, want at the 300ms stop timeout", d)
		} else {
			t.Logf("killed %s after draining began (stop timeout 300ms)", d.Round(time.Millisecond))
		}
		if body := fetch(t, "tcp", s.addr, "/"); swapPID(body) != r.NewPID {
			t.Errorf("after the kill %q, want pid %d", body, r.NewPID)
		}
		st := s.status(t)
		if len(st.Generations) != 1 || st.Generations[0].PID != r.NewPID {
			t.Errorf("generations %+v, want only pid %d", st.Generations, r.NewPID)
		}
	})

	t.Run("long request finishes on the old generation", func(t *testing.T) {
		t.Parallel()
		s := swapStart(t, "", nil, helloBin, "-grace", "10s")
		oldPID := s.ready(1)
		c := swapDial(t, s.addr)
		if body, _ := c.get(t, "/"); swapPID(body) != oldPID {
			t.Fatalf("answer %q, want pid %d", body, oldPID)
		}
		// Same connection, so gen 1 serves it: a request that takes 1.5s.
		sent := time.Now()
		if err := c.send("/slow?d=1500ms"); err != nil {
			t.Fatal(err)
		}
		type answer struct {
			code int
			body string
			err  error
			at   time.Time
		}
		slow := make(chan answer, 1)
		go func() {
			code, body, _, err := c.read()
			slow <- answer{code, body, err, time.Now()}
		}()
		r := s.reload(t)
		if !r.OK || r.OldPID != oldPID || r.NewPID == oldPID {
			t.Fatalf("reload %+v", r)
		}
		// hello says STOPPING=1 as its drain begins, just before it closes
		// its listener.
		s.WaitEvent(logev.ChildStopping, 1, swapGen(1))
		// New connections go to the new generation while the old one
		// finishes. The old one may take one or two in the moment before
		// its listener is closed.
		fromOld := 0
		for {
			body, _ := swapDial(t, s.addr).get(t, "/")
			pid := swapPID(body)
			if pid == r.NewPID {
				break
			}
			if fromOld++; pid != oldPID || fromOld == 5 {
				t.Fatalf("new request after the swap: %q, want pid %d (%d answers from the old pid)", body, r.NewPID, fromOld)
			}
		}
		select {
		case a := <-slow:
			t.Fatalf("the slow request ended (%d %q %v) before a new one was served by the new generation", a.code, a.body, a.err)
		default:
		}
		var a answer
		select {
		case a = <-slow:
		case <-time.After(deadline):
			t.Fatal("no answer to the slow request")
		}
		if a.err != nil || a.code != 200 || a.body != fmt.Sprintf("pid %d\nslept 1.5s\n", oldPID) {
			t.Fatalf("slow request: %d %q %v; want 200 from pid %d", a.code, a.body, a.err, oldPID)
		}
		t.Logf("slow request answered by the old pid %d after %s, %s after the swap was done",
			oldPID, a.at.Sub(sent).Round(time.Millisecond), a.at.Sub(r.Finished).Round(time.Millisecond))
		if !a.at.After(r.Finished) {
			t.Errorf("the slow request ended before the swap was done: nothing tested")
		}
		exitEv := s.WaitEvent(logev.ChildExited, 1, swapGen(1))
		if got := exitEv.Str("status"); got != "exit status 0" {
			t.Errorf("gen 1 exited %q, want exit status 0 after draining", got)
		}
		s.Sync()
		if s.Events(logev.StopTimeout) != nil {
			t.Error("a generation was killed")
		}
	})
}

// TestSwapCoalesce: a burst of SIGHUPs during a swap is folded into at
// most one more swap.
func TestSwapCoalesce(t *testing.T) {
	t.Parallel()
	s := swapStart(t, "", nil, helloBin, "-grace", "10s")
	s.ready(1)
	for i := 0; i < 50; i++ {
		s.Signal(syscall.SIGHUP)
	}
	// Wait until every reload that started is done and every generation
	// it replaced has exited, and no other has started meanwhile (a HUP
	// read after the first reload ended starts one right after it). The
	// status counts a reload when it starts, before it logs "reload
	// started": the log as read so far may be behind it.
	s.WaitEvent(logev.ReloadDone, 1, nil)
	started := 0
	var st supervisor.Status
	for {
		if st = s.status(t); st.Reloads == started {
			break
		}
		started = st.Reloads
		s.WaitEvent(logev.ReloadDone, started, nil)
		for gen := 1; gen <= started; gen++ {
			s.WaitEvent(logev.ChildExited, 1, swapGen(gen))
		}
	}
	last := started + 1
	t.Logf("50 SIGHUPs: %d swaps (status: %d reloads), %d queued-reload messages", started, st.Reloads, len(s.Events(logev.ReloadQueued)))
	if started < 1 || started > 2 || st.Reloads != started {
		t.Errorf("%d reloads started (status %d), want 1 or 2", started, st.Reloads)
	}
	if ev := s.Events(logev.ReloadFailed); len(ev) != 0 {
		t.Errorf("reloads failed: %v", ev)
	}
	if len(st.Generations) != 1 || st.Generations[0].Gen != last || st.Generations[0].State != supervisor.StateReady {
		t.Errorf("generations %+v, want only gen %d, ready", st.Generations, last)
	}
	if body := fetch(t, "tcp", s.addr, "/"); swapPID(body) != st.Generations[0].PID {
		t.Errorf("answer %q, want pid %d", body, st.Generations[0].PID)
	}
}

// TestSwapRestart: the restart strategy stops the old generation before
// starting the new one; the socket stays open, so clients that connect in
// between wait in its backlog and none is refused.
func TestSwapRestart(t *testing.T) {
	t.Parallel()
	s := swapStart(t, "", []string{"--reload", "restart"}, helloBin, "-grace", "10s")
	oldPID := s.ready(1)
	// An idle keep-alive client of gen 1: hello's drain waits for it (up
	// to its 1s idle grace) with its listener closed, and gen 2 starts
	// only after gen 1 exits. Meanwhile nobody accepts.
	idle := swapDial(t, s.addr)
	if body, _ := idle.get(t, "/"); swapPID(body) != oldPID {
		t.Fatalf("answer %q, want pid %d", body, oldPID)
	}
	load := swapStartLoad(t, s.addr, 2, 2)
	load.waitOK(t, 50, oldPID)

	// The moment the old generation is gone, a fresh client connects.
	probe := make(chan string, 1)
	go func() {
		s.mu.Lock()
		for !slices.ContainsFunc(s.events, func(e Event) bool { return e.Msg() == logev.ChildExited && e.Int("gen") == 1 }) {
			select {
			case <-s.done:
				s.mu.Unlock()
				probe <- "hupd exited"
				return
			default:
			}
			s.cond.Wait()
		}
		s.mu.Unlock()
		c := &http.Client{Timeout: deadline, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + s.addr + "/")
		if err != nil {
			probe <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		probe <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()

	out := s.reloadCLI(t)
	if out.code != 0 || !strings.HasPrefix(out.stdout, fmt.Sprintf("reload ok (restart): gen 1 pid %d -> gen 2 pid ", oldPID)) {
		t.Fatalf("hupd reload: exit %d, stdout %q, stderr %q", out.code, out.stdout, out.stderr)
	}
	newPID := s.ready(2)
	if newPID == oldPID {
		t.Fatalf("new pid %d = old", newPID)
	}
	var p string
	select {
	case p = <-probe:
	case <-time.After(deadline):
		t.Fatal("no answer to the probe")
	}
	if swapPID(strings.TrimPrefix(p, "200 ")) != newPID {
		t.Errorf("client that connected when the old generation was gone got %q, want 200 from pid %d", p, newPID)
	}
	load.waitOK(t, 0, newPID)
	res := load.Stop()
	swapNoFailures(t, res, 50)

	// Order: the old one drained and exited before the new one started.
	exited := s.WaitEvent(logev.ChildExited, 1, swapGen(1))
	started := s.WaitEvent(logev.ChildStarted, 1, swapGen(2))
	readyEv := s.WaitEvent(logev.ChildReady, 1, swapGen(2))
	if swapEventIndex(s.Hupd, logev.ChildExited, 1, swapGen(1)) > swapEventIndex(s.Hupd, logev.ChildStarted, 1, swapGen(2)) {
		t.Errorf("gen 2 started before gen 1 exited")
	}
	if exited.Str("status") != "exit status 0" {
		t.Errorf("gen 1 exited %q, want exit status 0", exited.Str("status"))
	}
	// Requests sent before gen 2 existed and answered by it waited in the
	// socket's backlog; so did every request sent after gen 1 exited.
	draining := swapTime(t, s.WaitEvent(logev.Draining, 1, swapGen(1)))
	from, to := swapTime(t, exited), swapTime(t, started)
	queued := 0
	for _, smp := range res.Samples {
		if smp.start.Before(to) && smp.pid == newPID {
			queued++
		}
		if smp.start.After(from) && smp.pid != newPID {
			t.Errorf("request sent at %s, after gen 1 exited, answered by pid %d", smp.start.Format("15:04:05.000000"), smp.pid)
		}
	}
	if queued == 0 {
		t.Errorf("no request waited in the backlog for gen 2 (gen 1 drained from %s to %s, gen 2 started at %s)",
			draining.Format("15:04:05.000000"), from.Format("15:04:05.000000"), to.Format("15:04:05.000000"))
	}
	t.Logf("restart: gen 1 drained for %s, gen 2 started %s after its exit and was ready %s after that; "+
		"%d load requests waited in the backlog for gen 2, all answered; probe after gen 1's exit: %q",
		from.Sub(draining).Round(time.Millisecond), to.Sub(from).Round(time.Microsecond),
		swapTime(t, readyEv).Sub(to).Round(time.Microsecond), queued, p)
	if len(res.ByPID) != 2 || res.ByPID[oldPID] == 0 || res.ByPID[newPID] == 0 {
		t.Errorf("answers by pid %v, want both %d and %d", res.ByPID, oldPID, newPID)
	}
}

// TestSwapMaxDraining: with max_draining = 1, a reload that would make a
// second generation drain waits until the first has exited, then runs.
func TestSwapMaxDraining(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := `[reload]
max_draining = 1
ready = "notify"
[process]
stop_timeout = "60s"
`
	s := swapStart(t, conf, nil, childCmd("swap-serve", "-hold", dir)...)
	release := func(pid int) { writeFile(t, dir, "release-"+strconv.Itoa(pid), "") }
	pid1 := s.ready(1)

	r1 := s.reload(t)
	if !r1.OK || r1.OldPID != pid1 {
		t.Fatalf("first reload %+v", r1)
	}
	s.waitStderr(fmt.Sprintf("swap-serve pid %d: holding until release-%d", pid1, pid1))

	second := make(chan supervisor.ReloadResult, 1)
	go func() {
		rep, err := s.call(control.CmdReload)
		if err != nil || rep.Reload == nil {
			second <- supervisor.ReloadResult{Reason: fmt.Sprintf("call: %+v %v", rep, err)}
			return
		}
		second <- *rep.Reload
	}()
	// hupd has the second request and holds it back: gen 1 still drains.
	s.WaitEvent(logev.ReloadQueued, 1, nil)
	select {
	case r := <-second:
		t.Fatalf("second reload ended while gen 1 drains: %+v", r)
	default:
	}
	if n := len(s.Events(logev.ReloadStarted)); n != 1 {
		t.Fatalf("%d reloads started while gen 1 drains, want 1", n)
	}
	if !processAlive(pid1) || len(s.Events(logev.ChildExited)) != 0 {
		t.Fatalf("gen 1 (pid %d) did not drain: alive %v, exits %v", pid1, processAlive(pid1), s.Events(logev.ChildExited))
	}
	st := s.status(t)
	if len(st.Generations) != 2 || st.Generations[0].State != supervisor.StateDraining || st.Generations[1].State != supervisor.StateReady {
		t.Fatalf("generations while held %+v, want gen 1 draining and gen 2 ready", st.Generations)
	}

	release(pid1)
	var r2 supervisor.ReloadResult
	select {
	case r2 = <-second:
	case <-time.After(deadline):
		t.Fatal("second reload did not finish")
	}
	if !r2.OK || r2.OldPID != r1.NewPID || r2.NewGen != 3 {
		t.Fatalf("second reload %+v, want gen 2 pid %d -> gen 3", r2, r1.NewPID)
	}
	exit1 := swapEventIndex(s.Hupd, logev.ChildExited, 1, swapGen(1))
	start2 := swapEventIndex(s.Hupd, logev.ReloadStarted, 2, nil)
	child3 := swapEventIndex(s.Hupd, logev.ChildStarted, 1, swapGen(3))
	if exit1 < 0 || !(exit1 < start2 && start2 < child3) {
		t.Errorf("log order: gen 1 exited at %d, second reload started at %d, gen 3 started at %d; want that order", exit1, start2, child3)
	}
	if ev := s.WaitEvent(logev.ChildExited, 1, swapGen(1)); ev.Str("status") != "exit status 0" {
		t.Errorf("gen 1 exited %q, want exit status 0 (drained, not killed)", ev.Str("status"))
	}
	if ev := s.Events(logev.TooManyDraining); len(ev) != 0 {
		t.Errorf("a draining generation was killed: %v", ev)
	}
	release(r1.NewPID)
	release(r2.NewPID)
	s.WaitEvent(logev.ChildExited, 1, swapGen(2))
	if code := s.Stop(); code != 0 {
		t.Errorf("hupd exit code %d, want 0", code)
	}
}
