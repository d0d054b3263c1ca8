package health

import (
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// deadline bounds every wait in these tests.
const deadline = 10 * time.Second

// fakeSource is a Source whose answer the test sets, and which can be
// made to hang until released, as a stuck supervisor loop would.
type fakeSource struct {
	mu      sync.Mutex
	st      supervisor.Status
	hang    chan struct{} // not nil: Status waits until it is closed
	calls   atomic.Int32
	usage   atomic.Int32  // calls of StatusUsage
	entered chan struct{} // not nil: told of each call
}

// StatusUsage is Status: the fake has no usage to sample; usage counts
// the calls that asked for it.
func (f *fakeSource) StatusUsage() supervisor.Status {
	f.usage.Add(1)
	return f.Status()
}

func (f *fakeSource) Status() supervisor.Status {
	f.calls.Add(1)
	f.mu.Lock()
	hang, entered := f.hang, f.entered
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if hang != nil {
		<-hang
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeSource) set(st supervisor.Status) {
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
}

// stick makes Status hang; the returned function releases it.
func (f *fakeSource) stick() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.hang = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.hang = nil
			f.mu.Unlock()
			close(ch)
		})
	}
}

func ready(gen int) supervisor.Status {
	return supervisor.Status{Generations: []supervisor.GenerationStatus{{Gen: gen, State: supervisor.StateReady}}}
}

// testServer is a started Server on 127.0.0.1:0 and a client for it.
type testServer struct {
	*Server
	url    string
	client *http.Client
}

// start starts a Server on src; at cleanup it is closed and no goroutine
// of it may be left (of any Server: one per test or subtest).
func start(t *testing.T, opts Options, src Source) *testServer {
	t.Helper()
	opts.Address = "127.0.0.1:0"
	s, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start(src)
	tr := &http.Transport{}
	ts := &testServer{Server: s, url: "http://" + s.Addr().String(), client: &http.Client{Transport: tr, Timeout: deadline}}
	t.Cleanup(func() {
		s.Close()
		tr.CloseIdleConnections()
		noServerGoroutines(t)
	})
	return ts
}

// do sends a request and returns the status code, the body and the header.
func (ts *testServer) do(t *testing.T, method, path string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// noServerGoroutines fails t if a goroutine of the Server (its accept
// loop, a connection, a Status call) is still there. Goroutines end just
// after they signal it, so it looks again until the deadline.
func noServerGoroutines(t *testing.T) {
	t.Helper()
	var left string
	for end := time.Now().Add(deadline); time.Now().Before(end); runtime.Gosched() {
		buf := make([]byte, 1<<20)
		left = ""
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "health.(*Server)") {
				left = g
			}
		}
		if left == "" {
			return
		}
		time.Sleep(time.Millisecond) // polling for a goroutine's last instructions
	}
	t.Fatalf("a goroutine outlived Close:\n%s", left)
}

func TestLivez(t *testing.T) {
	src := &fakeSource{st: ready(1)}
	ts := start(t, Options{StatusTimeout: 50 * time.Millisecond}, src)
	if code, body, h := ts.do(t, "GET", "/livez"); code != 200 || body != "ok\n" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("/livez: %d %q %v; want 200 ok", code, body, h)
	}
	// A stopping or failing hupd is alive: only a loop that does not
	// answer is not.
	ts.Hooks().Reloaded(supervisor.ReloadResult{Strategy: supervisor.StrategySwap, Reason: "x"})
	src.set(supervisor.Status{Stopping: true})
	if code, _, _ := ts.do(t, "GET", "/livez"); code != 200 {
		t.Fatalf("/livez while stopping after a failed reload: %d, want 200", code)
	}
	release := src.stick()
	defer release()
	code, body, _ := ts.do(t, "GET", "/livez")
	if code != 503 || body != "hupd's supervisor did not answer within 50ms\n" {
		t.Fatalf("/livez with a stuck supervisor: %d %q; want 503 and why", code, body)
	}
	release()
	if code, _, _ := ts.do(t, "GET", "/livez"); code != 200 {
		t.Fatalf("/livez once the supervisor answers again: %d", code)
	}
}

// TestOneStatusCallInFlight: requests against a stuck supervisor share the
// one Status call in flight instead of starting one each.
func TestOneStatusCallInFlight(t *testing.T) {
	src := &fakeSource{st: ready(1)}
	ts := start(t, Options{StatusTimeout: 50 * time.Millisecond}, src)
	release := src.stick()
	defer release()
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for range 8 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", ts.url+"/readyz", nil)
			resp, err := ts.client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 503 {
			t.Errorf("/readyz with a stuck supervisor: %d, want 503", c)
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("%d Status calls for 8 requests against a stuck supervisor, want 1", n)
	}
	release()
	if code, _, _ := ts.do(t, "GET", "/readyz"); code != 200 {
		t.Errorf("/readyz once the supervisor answers: %d", code)
	}
}

func TestReadyz(t *testing.T) {
	gens := func(gs ...supervisor.GenerationStatus) supervisor.Status {
		return supervisor.Status{Generations: gs}
	}
	g := func(n int, st supervisor.State) supervisor.GenerationStatus {
		return supervisor.GenerationStatus{Gen: n, State: st}
	}
	for _, tc := range []struct {
		name string
		st   supervisor.Status
		code int
		body string
	}{
		{"none", gens(), 503, "no generation ready"},
		{"first starting", gens(g(1, supervisor.StateStarting)), 503, "generation 1 starting: not ready yet"},
		{"ready", gens(g(1, supervisor.StateReady)), 200, "ok"},
		{"swap in progress", gens(g(1, supervisor.StateReady), g(2, supervisor.StateStarting)), 200, "ok"},
		{"old draining, new ready", gens(g(1, supervisor.StateDraining), g(2, supervisor.StateReady)), 200, "ok"},
		{"restart: old draining, new starting", gens(g(1, supervisor.StateDraining), g(2, supervisor.StateStarting)), 503, "generation 2 starting: not ready yet"},
		{"only draining", gens(g(3, supervisor.StateDraining)), 503, "no generation ready"},
		{"stopping", supervisor.Status{Stopping: true, Generations: []supervisor.GenerationStatus{g(1, supervisor.StateDraining)}}, 503, "stopping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, Options{}, &fakeSource{st: tc.st})
			if code, body, _ := ts.do(t, "GET", "/readyz"); code != tc.code || body != tc.body+"\n" {
				t.Errorf("/readyz: %d %q, want %d %q", code, body, tc.code, tc.body)
			}
		})
	}
}

// TestReadyzFailures: with Failures N, /readyz fails after N failed reloads
// in a row and is ready again after a good one; with 0 it never fails
// for that. The stop hook makes it fail at once.
func TestReadyzFailures(t *testing.T) {
	failed := supervisor.ReloadResult{Strategy: supervisor.StrategySwap, Reason: "check failed: exit status 1\n | line 3"}
	good := supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap}

	t.Run("failures 2", func(t *testing.T) {
		ts := start(t, Options{Failures: 2}, &fakeSource{st: ready(1)})
		h := ts.Hooks()
		expect := func(code int, body string) {
			t.Helper()
			if c, b, _ := ts.do(t, "GET", "/readyz"); c != code || (body != "" && b != body+"\n") {
				t.Fatalf("/readyz: %d %q, want %d %q", c, b, code, body)
			}
		}
		h.Reloaded(failed)
		expect(200, "ok")
		h.Reloaded(failed)
		expect(503, "2 reloads in a row failed; the last: check failed: exit status 1 | line 3")
		h.Reloaded(failed)
		expect(503, "")
		h.Reloaded(good)
		expect(200, "ok")
		h.Reloaded(failed)
		expect(200, "ok") // one in a row again
		if c, _, _ := ts.do(t, "GET", "/livez"); c != 200 {
			t.Fatalf("/livez after failed reloads: %d", c)
		}
		h.Stopping()
		expect(503, "stopping")
	})
	t.Run("off", func(t *testing.T) {
		off := start(t, Options{}, &fakeSource{st: ready(1)})
		for range 5 {
			off.Hooks().Reloaded(failed)
		}
		if c, _, _ := off.do(t, "GET", "/readyz"); c != 200 {
			t.Fatalf("/readyz with failures off after 5 failed reloads: %d, want 200", c)
		}
	})
}

// TestMethods: GET and HEAD only; other methods 405 with Allow; other
// paths 404.
func TestMethods(t *testing.T) {
	ts := start(t, Options{}, &fakeSource{st: ready(1)})
	for _, path := range []string{"/livez", "/readyz", "/metrics"} {
		if code, body, _ := ts.do(t, "HEAD", path); code != 200 || body != "" {
			t.Errorf("HEAD %s: %d %q", path, code, body)
		}
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
			code, _, h := ts.do(t, m, path)
			if code != 405 || h.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405, GET, HEAD", m, path, code, h.Get("Allow"))
			}
		}
	}
	for _, path := range []string{"/", "/livez/", "/health", "/metrics/x"} {
		if code, _, _ := ts.do(t, "GET", path); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
}

// TestMetricsEndpoint: /metrics over HTTP, with the counters of the hooks,
// the gauges of the status, and the exposition format's content type.
func TestMetricsEndpoint(t *testing.T) {
	src := &fakeSource{st: supervisor.Status{Restarts: 2, ConfigHash: "h1", Generations: []supervisor.GenerationStatus{
		{Gen: 4, State: supervisor.StateReady}}}}
	ts := start(t, Options{StatusTimeout: 50 * time.Millisecond}, src)
	h := ts.Hooks()
	h.Started(4, 44)
	h.Ready(4, 44, time.Second)
	h.Reloaded(supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategyRestart})
	code, body, hdr := ts.do(t, "GET", "/metrics")
	if code != 200 || hdr.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("/metrics: %d, Content-Type %q", code, hdr.Get("Content-Type"))
	}
	e, err := parseExposition(body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	for k, v := range map[string]float64{
		"hupd_up":                      1,
		"hupd_generation_starts_total": 1,
		"hupd_restarts_total":          2,
		"hupd_current_generation":      4,
		"hupd_generations":             1,
		seriesKey("hupd_reloads_total", label{"result", "ok"}, label{"strategy", "restart"}): 1,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "1"}):                             1,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "0.5"}):                           0,
		seriesKey("hupd_config_info", label{"hash", "h1"}):                                   1,
	} {
		if got, ok := e.series[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	release := src.stick()
	defer release()
	_, body, _ = ts.do(t, "GET", "/metrics")
	if e, err = parseExposition(body); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if e.series["hupd_up"] != 0 || e.series["hupd_generation_starts_total"] != 1 {
		t.Errorf("stuck supervisor: hupd_up %v, starts %v; want 0 and the counters", e.series["hupd_up"], e.series["hupd_generation_starts_total"])
	}
}

// TestListenErrors: the error is the reason alone, errors.Is finds the
// errno, and nothing stays open.
func TestListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = Listen(Options{Address: busy.Addr().String()})
	if !errors.Is(err, syscall.EADDRINUSE) || err.Error() != "bind: address already in use" {
		t.Errorf("busy port: %v; want EADDRINUSE, the reason alone", err)
	}
	if _, err := Listen(Options{Address: "127.0.0.1"}); err == nil || strings.Contains(err.Error(), "listen tcp") {
		t.Errorf("no port: %v; want the reason alone", err)
	}
}

// TestCloseWithoutStart: a Server that never served closes its socket.
func TestCloseWithoutStart(t *testing.T) {
	s, err := Listen(Options{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	s.Close()
	s.Start(&fakeSource{}) // after Close: nothing
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still held after Close: %v", err)
	}
	l.Close()
	noServerGoroutines(t)
}

// TestCloseWaits: Close closes open connections (one that has sent half a
// head too), waits for a request that waits for a stuck supervisor, and
// leaves no goroutine behind; the port is free afterwards.
func TestCloseWaits(t *testing.T) {
	src := &fakeSource{st: ready(1), entered: make(chan struct{}, 1)}
	s, err := Listen(Options{Address: "127.0.0.1:0", StatusTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.Start(src)
	url := "http://" + s.Addr().String()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: deadline}
	resp, err := client.Get(url + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	<-src.entered
	if !resp.Close {
		t.Errorf("/livez: no Connection: close; want one request per connection")
	}
	// A connection that sent half a head stays open until HeaderTimeout.
	half, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	io.WriteString(half, "GET /livez HTTP/1.1\r\n")

	release := src.stick()
	defer release()
	// A raw connection whose request waits for the stuck supervisor: the
	// test knows the request arrived once Status was called.
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-src.entered:
	case <-time.After(deadline):
		t.Fatal("the request never reached the source")
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	release() // Close returns once the Status call in flight has
	select {
	case <-closed:
	case <-time.After(deadline):
		t.Fatal("Close did not return")
	}
	for _, c := range []net.Conn{c, half} {
		c.SetReadDeadline(time.Now().Add(deadline))
		// The server closed it: EOF, or a reset if it closed before it
		// read what the client sent.
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("a connection open at Close: %v, want it closed", err)
		}
	}
	noServerGoroutines(t)
	l, err := net.Listen("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("port still held after Close: %v", err)
	}
	l.Close()
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\n b\t\tc "); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
	long := strings.Repeat("é", 400)
	got := oneLine(long)
	if !strings.HasSuffix(got, "…") || len(got) > maxReason+len("…")+1 || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Errorf("oneLine of a long text: %d bytes, %q…", len(got), got[:20])
	}
}

// TestProbesSampleNoUsage: /livez and /readyz take a plain snapshot; only
// /metrics asks for what each generation uses (which, without cgroups,
// scans /proc: a kubelet probing often must not pay for it).
func TestProbesSampleNoUsage(t *testing.T) {
	src := &fakeSource{st: ready(1)}
	ts := start(t, Options{}, src)
	for _, p := range []string{"/livez", "/readyz", "/livez"} {
		if code, _, _ := ts.do(t, "GET", p); code != 200 {
			t.Fatalf("%s: %d", p, code)
		}
	}
	if n := src.usage.Load(); n != 0 {
		t.Fatalf("probes sampled usage %d times, want 0", n)
	}
	if code, _, _ := ts.do(t, "GET", "/metrics"); code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	if n := src.usage.Load(); n != 1 {
		t.Fatalf("/metrics sampled usage %d times, want 1", n)
	}
}
