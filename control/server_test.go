package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
	"golang.org/x/sys/unix"
)

// controlHelperEnv makes the test binary a control client: it calls ping on
// the socket named by the variable and prints a helperResult as JSON.
const controlHelperEnv = "HUPD_TEST_CONTROL_CALL"

// nobody is the uid (and gid) the permission tests run their client as.
const nobody = 65534

func TestMain(m *testing.M) {
	if path := os.Getenv(controlHelperEnv); path != "" {
		os.Exit(controlCallHelper(path))
	}
	os.Exit(m.Run())
}

type helperResult struct {
	UID    int    `json:"uid"`
	Reply  *Reply `json:"reply,omitempty"`
	Err    string `json:"err,omitempty"`
	EACCES bool   `json:"eacces,omitempty"`
}

func controlCallHelper(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := helperResult{UID: os.Getuid()}
	rep, err := Call(ctx, path, Request{Cmd: CmdPing})
	if err != nil {
		out.Err, out.EACCES = err.Error(), errors.Is(err, syscall.EACCES)
	} else {
		out.Reply = &rep
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		return 1
	}
	return 0
}

// fakeControl is a Handler; reload, when set, replaces the default
// successful reload.
type fakeControl struct {
	status supervisor.Status
	reload func(ctx context.Context) supervisor.ReloadResult
}

func (f *fakeControl) Upgrade(ctx context.Context, binary string) error {
	return errors.New("fake: no upgrade")
}

func (f *fakeControl) Reload(ctx context.Context) supervisor.ReloadResult {
	if f.reload != nil {
		return f.reload(ctx)
	}
	return supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySignal, OldGen: 1, NewGen: 2, NewPID: 4242}
}

func (f *fakeControl) Status() supervisor.Status { return f.status }

// syncBuffer is a log destination safe for concurrent use.
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

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type testServer struct {
	*Server
	log    *syncBuffer
	served chan error
}

// listenControl listens on path; serve starts it.
func listenControl(t *testing.T, path string, h Handler) *testServer {
	t.Helper()
	lb := &syncBuffer{}
	s, err := Listen(path, h, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, log: lb, served: make(chan error, 1)}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return ts
}

func (ts *testServer) serve(t *testing.T) *testServer {
	t.Helper()
	go func() { ts.served <- ts.Serve() }()
	t.Cleanup(func() {
		ts.Close()
		select {
		case err := <-ts.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return ts
}

// startControl serves h on a socket in a new temporary directory.
func startControl(t *testing.T, h Handler) *testServer {
	t.Helper()
	return listenControl(t, filepath.Join(t.TempDir(), "ctl", "test.sock"), h).serve(t)
}

func call(t *testing.T, path string, req Request) Reply {
	t.Helper()
	rep, err := Call(testCtx(t), path, req)
	if err != nil {
		t.Fatalf("Call(%+v): %v", req, err)
	}
	return rep
}

// rawConn is a connection that speaks lines.
type rawConn struct {
	*net.UnixConn
	r *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{UnixConn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

func (c *rawConn) reply(t *testing.T) Reply {
	t.Helper()
	b, err := c.r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading reply: %v (got %q)", err, b)
	}
	var rep Reply
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("reply %q: %v", b, err)
	}
	if rep.V != ProtocolVersion {
		t.Errorf("reply %q: v = %d, want %d", b, rep.V, ProtocolVersion)
	}
	return rep
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestControlRoundTrip(t *testing.T) {
	hadDeadline := make(chan bool, 1)
	var fail atomic.Bool
	h := &fakeControl{status: supervisor.Status{Name: "web", PID: 77, Strategy: supervisor.StrategySignal, Reloads: 3,
		Generations: []supervisor.GenerationStatus{{Gen: 2, PID: 4242, State: supervisor.StateReady, Uptime: supervisor.Duration(1500 * time.Millisecond)}}}}
	h.reload = func(ctx context.Context) supervisor.ReloadResult {
		_, ok := ctx.Deadline()
		hadDeadline <- ok
		if fail.Load() {
			return supervisor.ReloadResult{OK: false, Strategy: supervisor.StrategySignal, Reason: "new generation exited with status 3", Output: []string{"boom"}}
		}
		return supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySignal, OldGen: 1, NewGen: 2, NewPID: 4242}
	}
	s := startControl(t, h)
	if got := s.Path(); !strings.HasSuffix(got, "/ctl/test.sock") {
		t.Errorf("Path() = %q", got)
	}

	if rep := call(t, s.Path(), Request{Cmd: CmdPing}); !rep.OK || rep.V != ProtocolVersion || rep.Error != "" {
		t.Errorf("ping: %+v", rep)
	}

	rep := call(t, s.Path(), Request{Cmd: CmdStatus})
	if !rep.OK || rep.Status == nil {
		t.Fatalf("status: %+v", rep)
	}
	if st := rep.Status; st.Name != "web" || st.PID != 77 || st.Reloads != 3 || len(st.Generations) != 1 ||
		st.Generations[0].State != supervisor.StateReady || st.Generations[0].Uptime != supervisor.Duration(1500*time.Millisecond) {
		t.Errorf("status = %+v", st)
	}

	rep = call(t, s.Path(), Request{Cmd: CmdReload})
	if !rep.OK || rep.Error != "" || rep.Reload == nil || !rep.Reload.OK || rep.Reload.NewGen != 2 || rep.Reload.NewPID != 4242 {
		t.Errorf("reload: %+v", rep)
	}
	if recv(t, hadDeadline, "reload") {
		t.Error("reload without a timeout got a context with a deadline")
	}

	fail.Store(true)
	rep = call(t, s.Path(), Request{V: ProtocolVersion, Cmd: CmdReload})
	recv(t, hadDeadline, "reload")
	if rep.OK || rep.Reload == nil || rep.Reload.OK || rep.Error != "reload failed: new generation exited with status 3" ||
		len(rep.Reload.Output) != 1 {
		t.Errorf("failed reload: %+v", rep)
	}
}

func TestControlReloadTimeout(t *testing.T) {
	type seen struct {
		deadline time.Time
		ok       bool
		err      error
	}
	got := make(chan seen, 1)
	h := &fakeControl{reload: func(ctx context.Context) supervisor.ReloadResult {
		// The timeout is a limit on the wait once the reload is handed
		// over (supervisor.WithWaitLimit), counted from then.
		ctx, cancel := supervisor.WaitContext(ctx)
		defer cancel()
		dl, ok := ctx.Deadline()
		<-ctx.Done()
		got <- seen{dl, ok, ctx.Err()}
		return supervisor.ReloadResult{OK: false, Reason: "timed out waiting for the new generation"}
	}}
	s := startControl(t, h)

	before := time.Now()
	rep := call(t, s.Path(), Request{Cmd: CmdReload, Timeout: "50ms"})
	after := time.Now()
	if rep.OK || !strings.Contains(rep.Error, "timed out waiting") || rep.Reload == nil {
		t.Errorf("reply: %+v", rep)
	}
	sn := recv(t, got, "reload")
	if !sn.ok || sn.deadline.Before(before.Add(50*time.Millisecond)) || sn.deadline.After(after.Add(50*time.Millisecond)) {
		t.Errorf("handler deadline %v (set %v), want 50ms after a time in [%v, %v]", sn.deadline, sn.ok, before, after)
	}
	if !errors.Is(sn.err, context.DeadlineExceeded) {
		t.Errorf("handler ctx ended with %v, want DeadlineExceeded", sn.err)
	}

	for _, bad := range []string{"soon", "-1s", "0s", "10"} {
		rep := call(t, s.Path(), Request{Cmd: CmdReload, Timeout: bad})
		if rep.OK || !strings.Contains(rep.Error, "invalid reload timeout") || rep.Reload != nil {
			t.Errorf("timeout %q: %+v", bad, rep)
		}
	}
	select {
	case sn := <-got:
		t.Errorf("handler called for a bad timeout: %+v", sn)
	default:
	}
}

func TestControlMalformedRequests(t *testing.T) {
	s := startControl(t, &fakeControl{})
	c := dialRaw(t, s.Path())
	for _, tc := range []struct{ line, want string }{
		{`not json`, "malformed request"},
		{`{"v":1,"cmd":"ping"`, "malformed request"},
		{`[1,2]`, "malformed request"},
		{``, "malformed request"},
		{`{"v":1,"cmd":"ping"} {"v":1}`, "malformed request"},
		{`{"v":"1","cmd":"ping"}`, "malformed request"},
		{`{"cmd":"ping"}`, `missing protocol version "v": this hupd speaks version 1`},
		{`{"v":2,"cmd":"ping"}`, "unsupported protocol version 2: this hupd speaks version 1"},
		{`{"v":0,"cmd":"ping"}`, "this hupd speaks version 1"},
		{`{"v":1}`, `missing command "cmd": valid commands are reload, status, ping`},
		{`{"v":1,"cmd":"explode"}`, `unknown command "explode": valid commands are reload, status, ping`},
		{`{"v":1,"cmd":"reload","timeout":"soon"}`, `invalid reload timeout "soon"`},
		{strings.Repeat("x", MaxLine+1), "request line longer than 65536 bytes"},
		{strings.Repeat("y", 3*MaxLine+17), "request line longer than 65536 bytes"},
	} {
		c.send(t, tc.line)
		rep := c.reply(t)
		if rep.OK || !strings.Contains(rep.Error, tc.want) || rep.Status != nil || rep.Reload != nil {
			t.Errorf("%.40q: %+v, want error containing %q", tc.line, rep, tc.want)
		}
	}
	// The same connection is still in sync...
	c.send(t, `{"v":1,"cmd":"ping","extra":"ignored"}`)
	if rep := c.reply(t); !rep.OK {
		t.Errorf("ping after bad requests, same connection: %+v", rep)
	}
	// ...and a new one is served.
	if rep := call(t, s.Path(), Request{Cmd: CmdPing}); !rep.OK {
		t.Errorf("ping on a new connection: %+v", rep)
	}
}

func TestControlLineLimit(t *testing.T) {
	s := startControl(t, &fakeControl{})
	c := dialRaw(t, s.Path())
	ping := `{"v":1,"cmd":"ping"}`
	c.send(t, ping+strings.Repeat(" ", MaxLine-len(ping))) // exactly the limit
	if rep := c.reply(t); !rep.OK {
		t.Errorf("line of %d bytes: %+v", MaxLine, rep)
	}
	c.send(t, ping+strings.Repeat(" ", MaxLine+1-len(ping)))
	if rep := c.reply(t); rep.OK {
		t.Errorf("line of %d bytes: %+v", MaxLine+1, rep)
	}
	c.send(t, ping)
	if rep := c.reply(t); !rep.OK {
		t.Errorf("ping after an over-long line: %+v", rep)
	}
	// Lines longer than the read buffer are gathered whole, whatever the
	// length of their last part.
	for _, n := range []int{readBuf - 1, readBuf, readBuf + 1, 3*readBuf + 5} {
		c.send(t, ping+strings.Repeat(" ", n-len(ping)))
		if rep := c.reply(t); !rep.OK {
			t.Errorf("line of %d bytes: %+v", n, rep)
		}
	}
}

// TestControlConnectionCost: each `hupd reload` is a connection; what
// serving one allocates is garbage hupd's heap must absorb, so it must not
// grow with MaxLine (it was MaxLine+1 bytes of read buffer
// per connection).
func TestControlConnectionCost(t *testing.T) {
	s := startControl(t, &fakeControl{})
	call(t, s.Path(), Request{Cmd: CmdPing}) // warm up: JSON caches, the first goroutines
	const n = 40
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		if rep := call(t, s.Path(), Request{Cmd: CmdPing}); !rep.OK {
			t.Fatalf("ping: %+v", rep)
		}
	}
	runtime.ReadMemStats(&m1)
	// Client and server together, both in this process.
	per := (m1.TotalAlloc - m0.TotalAlloc) / n
	t.Logf("a ping on a new connection allocates %d bytes", per)
	if per > MaxLine/2 {
		t.Errorf("a ping on a new connection allocates %d bytes, want at most %d", per, MaxLine/2)
	}
}

func TestControlPipelinedInOrder(t *testing.T) {
	s := startControl(t, &fakeControl{status: supervisor.Status{Name: "pipe"}})
	c := dialRaw(t, s.Path())
	// One write, four requests; a last line without newline, then EOF.
	io.WriteString(c, `{"v":1,"cmd":"ping"}`+"\n"+`{"v":1,"cmd":"nope"}`+"\n"+`{"v":1,"cmd":"status"}`+"\r\n"+`{"v":1,"cmd":"reload"}`)
	c.CloseWrite()
	if rep := c.reply(t); !rep.OK || rep.Status != nil || rep.Reload != nil {
		t.Errorf("1st reply: %+v, want ping's", rep)
	}
	if rep := c.reply(t); rep.OK || !strings.Contains(rep.Error, "unknown command") {
		t.Errorf("2nd reply: %+v, want an error", rep)
	}
	if rep := c.reply(t); !rep.OK || rep.Status == nil || rep.Status.Name != "pipe" {
		t.Errorf("3rd reply: %+v, want status", rep)
	}
	if rep := c.reply(t); !rep.OK || rep.Reload == nil {
		t.Errorf("4th reply: %+v, want reload", rep)
	}
	if b, err := c.r.ReadBytes('\n'); err != io.EOF || len(b) != 0 {
		t.Errorf("after the last reply: %q, %v; want EOF", b, err)
	}
}

func TestControlConcurrentClients(t *testing.T) {
	s := startControl(t, &fakeControl{status: supervisor.Status{Name: "many"}})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			req := Request{Cmd: []string{CmdPing, CmdStatus, CmdReload}[i%3]}
			rep, err := Call(ctx, s.Path(), req)
			if err == nil && !rep.OK {
				err = fmt.Errorf("%s: %+v", req.Cmd, rep)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestControlSocketModes(t *testing.T) {
	for _, tc := range []struct {
		umask int
		sub   []string // directories Listen creates
	}{
		{0, []string{"a", "b"}}, // the most permissive umask: modes must not depend on it
		{0o277, []string{"a"}},  // one that strips owner bits
	} {
		t.Run(fmt.Sprintf("umask%#o", tc.umask), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(append(append([]string{dir}, tc.sub...), "x.sock")...)
			old := syscall.Umask(tc.umask)
			s := listenControl(t, path, &fakeControl{}).serve(t)
			syscall.Umask(old)

			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
				t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
			}
			// bind made the file no more open than 0600: nothing was fixed afterwards.
			if s.boundMode&^0o600 != 0 {
				t.Errorf("bind created the socket file with mode %#o, more open than 0600", s.boundMode)
			}
			if tc.umask == 0 && s.boundMode != 0o600 {
				t.Errorf("bind created the socket file with mode %#o, want 0600", s.boundMode)
			}
			// Private to hupd's user; root's may be traversed, for a child
			// of another user to reach its notify socket beside it.
			wantDir := fs.FileMode(0o700)
			if os.Geteuid() == 0 {
				wantDir = 0o711
			}
			d := dir
			for _, sub := range tc.sub {
				d = filepath.Join(d, sub)
				if fi, err := os.Stat(d); err != nil {
					t.Error(err)
				} else if fi.Mode().Perm() != wantDir {
					t.Errorf("%s: mode %v, want %v", d, fi.Mode().Perm(), wantDir)
				}
			}
			if rep := call(t, s.Path(), Request{Cmd: CmdPing}); !rep.OK {
				t.Errorf("ping: %+v", rep)
			}
		})
	}
}

// staleSocket leaves a socket file at path that nobody listens on.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
}

func TestControlReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stale.sock")
	staleSocket(t, path)
	// A second name keeps the old inode alive, so its number is not reused.
	if err := os.Link(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	var before unix.Stat_t
	if err := unix.Lstat(path, &before); err != nil {
		t.Fatal(err)
	}
	s := listenControl(t, path, &fakeControl{}).serve(t)
	var after unix.Stat_t
	if err := unix.Lstat(path, &after); err != nil {
		t.Fatal(err)
	}
	if after.Ino == before.Ino {
		t.Error("the stale socket file was not replaced")
	}
	if after.Mode&0o777 != 0o600 {
		t.Errorf("mode %o, want 600", after.Mode&0o777)
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdPing}); !rep.OK {
		t.Errorf("ping: %+v", rep)
	}
}

func TestControlRefusesRegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notasocket")
	if err := os.WriteFile(path, []byte("keep me"), 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(path, &fakeControl{}, nil)
	if err == nil {
		s.Close()
		t.Fatal("Listen on a regular file succeeded")
	}
	if !strings.Contains(err.Error(), path) || errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %q: want one naming %s, not EADDRINUSE", err, path)
	}
	b, rerr := os.ReadFile(path)
	fi, serr := os.Lstat(path)
	if rerr != nil || serr != nil || string(b) != "keep me" || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Errorf("file changed: %q %v %v %v", b, fi.Mode(), rerr, serr)
	}
}

func TestControlRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.sock")
	// Another program's socket...
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := Listen(path, &fakeControl{}, nil)
	if err == nil {
		s.Close()
		t.Fatal("Listen on a live socket succeeded")
	}
	if want := "another hupd is running on " + path; !strings.Contains(err.Error(), want) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %q: want %q wrapping EADDRINUSE", err, want)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the live socket was harmed: %v", err)
	}
	c.Close()
	ln.Close()

	// ...and another hupd's.
	first := listenControl(t, path, &fakeControl{}).serve(t)
	if s, err := Listen(path, &fakeControl{}, nil); err == nil {
		s.Close()
		t.Fatal("second Listen succeeded")
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second Listen: %v", err)
	}
	if rep := call(t, first.Path(), Request{Cmd: CmdPing}); !rep.OK {
		t.Errorf("first server after the second's attempt: %+v", rep)
	}
}

func TestControlDirChecks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	foreign := filepath.Join(t.TempDir(), "foreign")
	if err := os.Mkdir(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(foreign, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{foreign: "is owned by uid 65534", open: "writable by group or others"} {
		path := filepath.Join(dir, "x.sock")
		if s, err := Listen(path, &fakeControl{}, nil); err == nil {
			s.Close()
			t.Errorf("%s: Listen succeeded", dir)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", dir, err, want)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: socket file left behind (%v)", dir, err)
		}
	}
	// Sticky and world-writable, like /tmp, is fine.
	if err := os.Chmod(open, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	listenControl(t, filepath.Join(open, "x.sock"), &fakeControl{})
}

func countFDs(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(des)
}

// settleGoroutines waits until at most n goroutines run.
func settleGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestControlCloseReleasesEverything(t *testing.T) {
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	h := &fakeControl{reload: func(ctx context.Context) supervisor.ReloadResult {
		started <- struct{}{}
		<-ctx.Done()
		ended <- ctx.Err()
		return supervisor.ReloadResult{Reason: "timed out waiting for the reload"}
	}}
	ctx := testCtx(t)
	// Warm up: the runtime opens its poller's fds on first use.
	{
		s, err := Listen(filepath.Join(t.TempDir(), "warm.sock"), h, nil)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve() }()
		if _, err := Call(ctx, s.Path(), Request{Cmd: CmdPing}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		recv(t, served, "warm-up Serve to return")
	}
	path := filepath.Join(t.TempDir(), "ctl", "close.sock")
	fds, goroutines := countFDs(t), runtime.NumGoroutine()

	s, err := Listen(path, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	for _, cmd := range []string{CmdPing, CmdStatus} {
		if rep, err := Call(ctx, path, Request{Cmd: cmd}); err != nil || !rep.OK {
			t.Fatalf("%s: %+v, %v", cmd, rep, err)
		}
	}
	if _, err := Listen(path, h, nil); !errors.Is(err, syscall.EADDRINUSE) { // an error path: must not leak either
		t.Fatalf("second Listen: %v", err)
	}
	idle, err := net.Dial("unix", path) // a client that connects and waits
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(20 * time.Second))
	calling := make(chan error, 1)
	go func() {
		rep, err := Call(ctx, path, Request{Cmd: CmdReload})
		if err == nil && rep.OK {
			err = errors.New("reload call cut off by Close succeeded")
		}
		calling <- err
	}()
	recv(t, started, "reload to start")

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close returned: the handler's context was cancelled and it returned.
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("handler ctx ended with %v, want Canceled", err)
		}
	default:
		t.Error("Close returned before the reload handler did")
	}
	if err := recv(t, served, "Serve to return"); err != nil {
		t.Errorf("Serve: %v", err)
	}
	// The client got the cancelled reload's result, or its connection closed
	// first: either way it did not hear of success.
	if err := recv(t, calling, "the reload call to end"); err != nil && strings.Contains(err.Error(), "succeeded") {
		t.Error(err)
	}
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection after Close: %v, want EOF", err)
	}
	idle.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Serve(); err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
	if n := len(s.conns); n != 0 {
		t.Errorf("%d connections still tracked", n)
	}
	settleGoroutines(t, goroutines)
	if n := countFDs(t); n != fds {
		t.Errorf("%d fds open after Close, %d before", n, fds)
	}
	if _, err := Call(ctx, path, Request{Cmd: CmdPing}); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Call after Close: %v, want ENOENT", err)
	}
}

func TestControlCloseKeepsReplacedSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sock")
	s, err := Listen(path, &fakeControl{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", path) // someone else's now
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("the new socket was removed: %v", err)
	}
}

func TestControlClientHangupCancelsWait(t *testing.T) {
	started := make(chan struct{}, 2)
	ended := make(chan error, 2)
	eof := make(chan bool, 2)
	h := &fakeControl{reload: func(ctx context.Context) supervisor.ReloadResult {
		started <- struct{}{}
		<-ctx.Done()
		ended <- ctx.Err()
		return supervisor.ReloadResult{Reason: "timed out waiting for the reload"}
	}}
	ts := listenControl(t, filepath.Join(t.TempDir(), "x.sock"), h)
	ts.testHookEOF = func(gone bool) { eof <- gone }
	s := ts.serve(t)

	c := dialRaw(t, s.Path())
	c.send(t, `{"v":1,"cmd":"reload"}`)
	recv(t, started, "reload to start")
	c.Close()
	if !recv(t, eof, "the server to see the hangup") {
		t.Error("a closed connection was taken for a half-closed one")
	}
	if err := recv(t, ended, "the handler's ctx to end"); !errors.Is(err, context.Canceled) {
		t.Errorf("handler ctx: %v, want Canceled", err)
	}

	// Call's own deadline: it gives up, hangs up, and the wait ends too.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := Call(ctx, s.Path(), Request{Cmd: CmdReload})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), s.Path()) {
		t.Errorf("Call past its deadline: %v, want DeadlineExceeded naming the path", err)
	}
	recv(t, started, "second reload to start")
	if err := recv(t, ended, "the handler's ctx to end"); !errors.Is(err, context.Canceled) {
		t.Errorf("handler ctx: %v, want Canceled", err)
	}

	if rep := call(t, s.Path(), Request{Cmd: CmdPing}); !rep.OK {
		t.Errorf("ping after hangups: %+v", rep)
	}
}

func TestControlHalfCloseStillAnswered(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	eof := make(chan bool, 1)
	h := &fakeControl{reload: func(ctx context.Context) supervisor.ReloadResult {
		started <- struct{}{}
		<-release
		if err := ctx.Err(); err != nil {
			return supervisor.ReloadResult{Reason: err.Error()}
		}
		return supervisor.ReloadResult{OK: true, NewGen: 2}
	}}
	ts := listenControl(t, filepath.Join(t.TempDir(), "x.sock"), h)
	ts.testHookEOF = func(gone bool) { eof <- gone }
	s := ts.serve(t)

	c := dialRaw(t, s.Path())
	c.send(t, `{"v":1,"cmd":"reload"}`)
	recv(t, started, "reload to start")
	if err := c.CloseWrite(); err != nil { // as socat and nc do at the end of their input
		t.Fatal(err)
	}
	if recv(t, eof, "the server to see the end of input") {
		t.Error("a half-closed connection was taken for a closed one")
	}
	close(release)
	if rep := c.reply(t); !rep.OK || rep.Reload == nil || rep.Reload.NewGen != 2 {
		t.Errorf("reply: %+v", rep)
	}
}

func FuzzControlRequest(f *testing.F) {
	for _, s := range []string{`{"v":1,"cmd":"ping"}`, `{"v":1,"cmd":"reload","timeout":"1m30s"}`, `{"v":2}`, `null`, `{"cmd":"status"}`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, timeout, err := parseRequest(line)
		if err != nil {
			if b, merr := json.Marshal(errReply(err)); merr != nil || !json.Valid(b) {
				t.Fatalf("error reply does not encode: %v", merr)
			}
			return
		}
		if req.V != ProtocolVersion {
			t.Fatalf("accepted version %d", req.V)
		}
		switch req.Cmd {
		case CmdPing, CmdStatus:
		case CmdReload:
			if timeout < 0 || (timeout == 0) != (req.Timeout == "") {
				t.Fatalf("timeout %v from %q", timeout, req.Timeout)
			}
		default:
			t.Fatalf("accepted command %q", req.Cmd)
		}
	})
}

// asNobody runs this test binary as uid 65534 calling ping on path.
func asNobody(t *testing.T, path string) helperResult {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := openTempDir(t, "hupd-control-bin-")
	bin := filepath.Join(dir, "client.test")
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(testCtx(t), bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), controlHelperEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as uid %d: %v\n%s", nobody, err, stderr.Bytes())
	}
	var res helperResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if res.UID != nobody {
		t.Fatalf("client ran as uid %d", res.UID)
	}
	return res
}

// openTempDir returns a new directory anyone may enter, removed at the end.
func openTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestControlRefusesOtherUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	reloads := make(chan struct{}, 1)
	h := &fakeControl{reload: func(context.Context) supervisor.ReloadResult {
		reloads <- struct{}{}
		return supervisor.ReloadResult{OK: true}
	}}
	path := filepath.Join(openTempDir(t, "hupd-control-"), "ctl", "x.sock")
	s := listenControl(t, path, h).serve(t)
	// Open the file system's door so that only SO_PEERCRED stands in the way.
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}

	res := asNobody(t, path)
	if res.Err != "" || res.Reply == nil {
		t.Fatalf("client: %+v, want a reply", res)
	}
	if want := "permission denied: uid 65534 is not hupd's user"; res.Reply.OK || res.Reply.Error != want {
		t.Errorf("reply %+v, want OK=false and %q", *res.Reply, want)
	}
	if log := s.log.String(); !strings.Contains(log, logev.ControlRefused) ||
		!strings.Contains(log, "uid=65534") || !strings.Contains(log, "pid=") || !strings.Contains(log, "level=WARN") {
		t.Errorf("log: %q", log)
	}
	// The server still serves its own user.
	if rep := call(t, path, Request{Cmd: CmdReload}); !rep.OK {
		t.Errorf("reload by root: %+v", rep)
	}
	recv(t, reloads, "root's reload")
}

func TestControlModeKeepsOtherUsersOut(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	path := filepath.Join(openTempDir(t, "hupd-control-"), "ctl", "x.sock")
	s := listenControl(t, path, &fakeControl{}).serve(t)
	// Only the socket's own 0600 stands in the way.
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	res := asNobody(t, path)
	if res.Reply != nil || !res.EACCES || !strings.Contains(res.Err, path) {
		t.Errorf("client: %+v, want EACCES from connect naming the path", res)
	}
	if log := s.log.String(); log != "" {
		t.Errorf("the server saw the connection: %q", log)
	}
}

// TestAnsweringUntilWritten: a reload request counts as being answered
// (Answering, which refuses an in-place upgrade) from its handling until
// its answer is written, past the handler's return, for a hupd of one
// program and of several; a status request does not count, and a
// reload's count ends once its answer is written (the next request on the
// connection sees none).
func TestAnsweringUntilWritten(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    func(during func()) Handler
	}{
		{"one program", func(during func()) Handler {
			return &fakeControl{reload: func(context.Context) supervisor.ReloadResult { during(); return supervisor.ReloadResult{OK: true} }}
		}},
		{"several programs", func(during func()) Handler {
			return &watchedFleet{fakeFleet: &fakeFleet{reloaded: make(chan []string, 1)}, during: during}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ts *testServer
			during := make(chan bool, 1)
			h := tc.h(func() { during <- ts.Answering() })
			ts = listenControl(t, filepath.Join(t.TempDir(), "test.sock"), h)
			answered := make(chan bool, 2)
			ts.testHookAnswered = func() { answered <- ts.Answering() }
			ts.serve(t)
			c := dialRaw(t, ts.Path())
			for _, req := range []Request{{Cmd: CmdReload}, {Cmd: CmdStatus}} {
				req.V = ProtocolVersion
				b, err := json.Marshal(req)
				if err != nil {
					t.Fatal(err)
				}
				c.send(t, string(b))
				c.reply(t)
			}
			if !recv(t, during, "during the reload") {
				t.Fatal("not answering while the handler reloads")
			}
			if !recv(t, answered, "reload answered") {
				t.Fatal("not answering once the reload's answer is made, before it is written")
			}
			if recv(t, answered, "status answered") {
				t.Fatal("answering a status request, or the reload's answer still counted once written")
			}
		})
	}
}

// watchedFleet is a fakeFleet whose ReloadPrograms calls during first.
type watchedFleet struct {
	*fakeFleet
	during func()
}

func (f *watchedFleet) ReloadPrograms(ctx context.Context, names []string) ([]ProgramReply, error) {
	f.during()
	return f.fakeFleet.ReloadPrograms(ctx, names)
}

// TestAnsweringClientNeverReads: a client that sends a reload and never
// reads its answer (one too large for the socket's buffers, as a failed
// reload's output tail can be) is hung up on once replyTimeout passes, the
// write failing with a timeout, and the reload no longer counts as being
// answered: without the write deadline the write blocks forever and every
// upgrade stays refused.
func TestAnsweringClientNeverReads(t *testing.T) {
	out := make([]string, 64<<10)
	for i := range out {
		out[i] = strings.Repeat("\x01", 64) // JSON-escaped: 6 bytes each
	}
	h := &fakeControl{reload: func(context.Context) supervisor.ReloadResult {
		return supervisor.ReloadResult{Reason: "check failed", Output: out}
	}}
	ts := listenControl(t, filepath.Join(t.TempDir(), "test.sock"), h)
	ts.replyTimeout = 200 * time.Millisecond
	written := make(chan error, 1)
	ts.testHookWritten = func(err error) { written <- err }
	ts.serve(t)
	c := dialRaw(t, ts.Path())
	if err := c.SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	c.send(t, `{"v":1,"cmd":"reload"}`)
	err := recv(t, written, "the reload's answer written or given up")
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writing the answer to a client that never reads: %v, want a timeout", err)
	}
	if ts.Answering() {
		t.Fatal("still answering once the write gave up")
	}
}
