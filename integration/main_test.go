// Package integration drives the real hupd binary with real processes,
// sockets and signals. TestMain builds hupd and the examples once; the test
// binary itself impersonates child programs (see childModes).
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// envChild selects a child mode when the test binary runs as a child.
const envChild = "HUPD_TEST_CHILD"

// childModes are the behaviours the test binary can take as a child; test
// files add theirs in init. A mode never returns normally unless it wants
// exit status 0.
var childModes = map[string]func(args []string){}

var (
	hupdBin     string // built hupd
	helloBin    string // built examples/hello
	goserverBin string // built examples/legacy/goserver: binds its own port
	selfBin     string // this test binary, for child modes
)

// deadline bounds every wait in these tests; a handshake that does not
// happen within it is a failure, not a reason to wait longer.
const deadline = 20 * time.Second

// envLogLag (a duration) makes the harness read hupd's log that much
// later per line: a test that passes only while the reader keeps up counts
// or asserts before it waits (see WaitEvent and Sync). A probe for
// writing tests, e.g. HUPD_TEST_LOG_LAG=10ms go test -run TestX; a test
// whose hupd logs thousands of lines (a child's output) then runs into
// the deadline.
const envLogLag = "HUPD_TEST_LOG_LAG"

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		f, ok := childModes[mode]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
			os.Exit(99)
		}
		f(os.Args[1:])
		os.Exit(0)
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hupd-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// 0755 all the way so that tests can run children as other users.
	os.Chmod(dir, 0o755)
	hupdBin, helloBin, goserverBin = filepath.Join(dir, "hupd"), filepath.Join(dir, "hello"), filepath.Join(dir, "goserver")
	// One go build for the three (each named after its directory; hupd
	// after the module). -buildvcs=auto whatever GOFLAGS says: hupd
	// version reports the revision of a git checkout (TestVersion).
	// urfave_cli_no_docs: the hupd every build makes (README).
	cmd := exec.Command("go", "build", "-buildvcs=auto", "-tags", "urfave_cli_no_docs", "-o", dir+"/", "..", "../examples/hello", "../examples/legacy/goserver")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building hupd, hello and goserver: %v\n%s", err, out)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Copy the test binary where any user may execute it.
	selfBin = filepath.Join(dir, "child")
	if err := copyFile(self, selfBin, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	stopContainers() // the real systemd tests' (nspawn_test.go)
	return code
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// childCmd returns the argv that runs this test binary in mode. Children
// skip the race detector's one-second pause at exit (the test binary is
// built with -race in CI), so that stopping one does not cost a second.
func childCmd(mode string, args ...string) []string {
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return append([]string{"env", "GORACE=" + gorace, envChild + "=" + mode, selfBin}, args...)
}

// Event is one line of hupd's JSON log.
type Event map[string]any

// Msg returns the event's message.
func (e Event) Msg() string { s, _ := e["msg"].(string); return s }

// Int returns a numeric field.
func (e Event) Int(k string) int { f, _ := e[k].(float64); return int(f) }

// Str returns a string field.
func (e Event) Str(k string) string { s, _ := e[k].(string); return s }

// Dur returns a duration field (JSON logs write Go duration strings); 0 if
// it is missing or not one.
func (e Event) Dur(k string) time.Duration { d, _ := time.ParseDuration(e.Str(k)); return d }

// Hupd is a running hupd under test.
type Hupd struct {
	t    *testing.T
	Cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu     sync.Mutex
	cond   *sync.Cond
	events []Event
	stderr bytes.Buffer // lines that are not JSON (child output, errors), and the text of child output records
	raw    []string     // lines that are not JSON
	syncs  int          // log barriers made (Sync)

	Stdout *lineReader
}

// StartHupd runs hupd with args (after "hupd"); it adds JSON logging at
// debug level when the subcommand is run. It stops hupd at cleanup.
func StartHupd(t *testing.T, args ...string) *Hupd {
	t.Helper()
	return StartHupdCmd(t, exec.Command(hupdBin, withJSONLog(args)...))
}

func withJSONLog(args []string) []string {
	if len(args) == 0 || args[0] != "run" {
		return args
	}
	return append([]string{"run", "--log-format", "json", "--log-level", "debug"}, args[1:]...)
}

// StartHupdCmd starts a prepared command whose program is hupd (possibly
// wrapped, e.g. by unshare).
func StartHupdCmd(t *testing.T, cmd *exec.Cmd) *Hupd {
	t.Helper()
	h := &Hupd{t: t, Cmd: cmd, done: make(chan struct{})}
	h.cond = sync.NewCond(&h.mu)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Each hupd gets its own runtime directory, so that control sockets
	// (named after the command) never collide between tests.
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	if !slices.ContainsFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") }) {
		cmd.Env = append(cmd.Env, "XDG_RUNTIME_DIR="+t.TempDir())
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.Stdout = newLineReader(stdout)
	logDone := make(chan struct{})
	lag, _ := time.ParseDuration(os.Getenv(envLogLag))
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			time.Sleep(lag) // see envLogLag; no wait at all when unset
			line := sc.Bytes()
			var e Event
			h.mu.Lock()
			if json.Unmarshal(line, &e) == nil && e["msg"] != nil {
				h.events = append(h.events, e)
				if e.Msg() == logev.ChildOutput {
					// With JSON logs, the child's output comes as records:
					// its text is what it wrote, as in text logs.
					h.stderr.WriteString(e.Str(supervisor.KeyOutput))
					h.stderr.WriteByte('\n')
				} else if e.Msg() == logev.Fatal {
					// hupd's last error, as text logs write it.
					h.stderr.WriteString("hupd: " + e.Str(supervisor.KeyError) + "\n")
				}
			} else {
				h.stderr.Write(line)
				h.stderr.WriteByte('\n')
				h.raw = append(h.raw, string(line))
			}
			h.cond.Broadcast()
			h.mu.Unlock()
		}
	}()
	go func() {
		<-logDone
		h.Stdout.wait()
		h.err = cmd.Wait()
		h.mu.Lock()
		close(h.done)
		h.cond.Broadcast()
		h.mu.Unlock()
	}()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-h.done:
			case <-time.After(deadline):
				// Something still holds hupd's stdout or stderr.
				t.Errorf("hupd's output still open %s after SIGKILL: a process leaked", deadline)
			}
		}
		if t.Failed() {
			t.Logf("hupd log:\n%s", h.Log())
		}
	})
	return h
}

// Log returns everything hupd wrote to stderr so far.
func (h *Hupd) Log() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, e := range h.events {
		j, _ := json.Marshal(e)
		b.Write(j)
		b.WriteByte('\n')
	}
	b.Write(h.stderr.Bytes())
	return b.String()
}

// Stderr returns the non-JSON part of hupd's stderr.
func (h *Hupd) Stderr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stderr.String()
}

// Events returns the log events with message msg so far.
func (h *Hupd) Events(msg string) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, e := range h.events {
		if e.Msg() == msg {
			out = append(out, e)
		}
	}
	return out
}

// waitCond waits on cond, with its lock mu held while ok runs, until ok
// is true (it returns true) or the deadline passes (false). A timer wakes
// it at the deadline; every other wake-up is a Broadcast by the writer.
func waitCond(mu *sync.Mutex, cond *sync.Cond, ok func() bool) bool {
	timer := time.AfterFunc(deadline, func() {
		mu.Lock()
		cond.Broadcast()
		mu.Unlock()
	})
	defer timer.Stop()
	start := time.Now()
	mu.Lock()
	defer mu.Unlock()
	for !ok() {
		if time.Since(start) >= deadline {
			return false
		}
		cond.Wait()
	}
	return true
}

// waitFor blocks until ok (called with h.mu held, again after each line
// hupd writes) is true and returns true; it returns false if hupd exits
// first, and fails the test if the deadline passes before either.
func (h *Hupd) waitFor(what string, ok func() bool) bool {
	h.t.Helper()
	exited := false
	if !waitCond(&h.mu, h.cond, func() bool {
		if ok() {
			return true
		}
		select {
		case <-h.done:
			exited = true
			return true
		default:
			return false
		}
	}) {
		h.t.Fatalf("%s not seen within %s", what, deadline)
	}
	return !exited
}

// WaitEvent blocks until the n-th (1-based) event with message msg that
// satisfies match (nil matches all) has been logged, and returns it. It
// fails the test if hupd exits first or the deadline passes.
func (h *Hupd) WaitEvent(msg string, n int, match func(Event) bool) Event {
	h.t.Helper()
	var found Event
	nth := func() bool {
		seen := 0
		for _, e := range h.events {
			if e.Msg() == msg && (match == nil || match(e)) {
				if seen++; seen == n {
					found = e
					return true
				}
			}
		}
		return false
	}
	if !h.waitFor(fmt.Sprintf("log %q #%d", msg, n), nth) {
		h.t.Fatalf("hupd exited (%v) before logging %q #%d", h.err, msg, n)
	}
	return found
}

// Sync is a log barrier: it returns once the test has read every line
// hupd wrote before it answered a control request made now. Events only
// shows what the test has read so far, and hupd's log reaches it through a
// pipe and a goroutine: a count or an absence asserted right after an
// action can miss a line hupd has written already. After Sync it cannot.
// (Whether hupd has done the thing that logs is the caller's handshake to
// make first: a reply, a status round trip, a later event.)
//
// hupd logs an unknown control command as a warning, naming it; Sync
// sends one with a name of its own and waits for that line. hupd must run
// at level warn or below (every test does). Once hupd has exited, every
// line is read and Sync returns at once.
func (h *Hupd) Sync() {
	h.t.Helper()
	if h.exited() {
		return
	}
	ctl := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	h.mu.Lock()
	h.syncs++
	cmd := fmt.Sprintf("log-barrier-%d", h.syncs)
	h.mu.Unlock()
	c, err := net.DialTimeout("unix", ctl, deadline)
	if err != nil {
		if h.exited() {
			return
		}
		h.t.Fatalf("log barrier: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadline))
	if _, err := fmt.Fprintf(c, `{"v":1,"cmd":%q}`+"\n", cmd); err != nil && !h.exited() {
		h.t.Fatalf("log barrier: %v", err)
	}
	// False only when hupd exited first: then every line is read.
	h.waitFor("log barrier "+cmd+" (a warning)", func() bool {
		return slices.ContainsFunc(h.events, func(e Event) bool {
			return e.Msg() == logev.ControlBadRequest && strings.Contains(e.Str("error"), strconv.Quote(cmd))
		})
	})
}

// exited reports whether hupd has exited and its output has been read.
func (h *Hupd) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// Listening returns the bound address (URL) of the socket named name.
func (h *Hupd) Listening(name string) string {
	h.t.Helper()
	return h.WaitEvent(logev.Listening, 1, func(e Event) bool { return e.Str("socket") == name }).Str("address")
}

// HostPort strips the scheme from a tcp/udp URL.
func HostPort(url string) string {
	_, hp, _ := strings.Cut(url, "://")
	return hp
}

// ChildPID waits for generation gen to start and returns its PID.
func (h *Hupd) ChildPID(gen int) int {
	h.t.Helper()
	return h.WaitEvent(logev.ChildStarted, 1, func(e Event) bool { return e.Int("gen") == gen }).Int("pid")
}

// Signal sends sig to hupd.
func (h *Hupd) Signal(sig syscall.Signal) {
	h.t.Helper()
	if err := h.Cmd.Process.Signal(sig); err != nil {
		h.t.Fatalf("signal hupd: %v", err)
	}
}

// Wait waits for hupd to exit and returns its exit code (-1 if killed).
func (h *Hupd) Wait() int {
	h.t.Helper()
	select {
	case <-h.done:
	case <-time.After(deadline):
		h.t.Fatalf("hupd did not exit within %s", deadline)
	}
	if h.err == nil {
		return 0
	}
	if ee, ok := h.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	h.t.Fatalf("hupd: %v", h.err)
	return -1
}

// Stop sends SIGTERM and waits for hupd to exit; it returns the exit code.
func (h *Hupd) Stop() int {
	h.t.Helper()
	h.Signal(syscall.SIGTERM)
	return h.Wait()
}

// lineReader hands out lines of a stream as they arrive.
type lineReader struct {
	lines chan string
	done  chan struct{}

	mu  sync.Mutex
	raw []string // lines that are not JSON records
}

// RawLines returns the lines read so far that were not JSON records.
func (lr *lineReader) RawLines() []string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return slices.Clone(lr.raw)
}

// RawStderr returns the lines of hupd's stderr so far that were not JSON.
func (h *Hupd) RawStderr() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.raw)
}

func newLineReader(r io.Reader) *lineReader {
	lr := &lineReader{lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		defer close(lr.lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			// A child's output line in JSON logs is a record: its text
			// is what the child wrote, as in text logs.
			var rec struct {
				Msg    string  `json:"msg"`
				Output *string `json:"output"`
			}
			err := json.Unmarshal(sc.Bytes(), &rec)
			if err == nil && rec.Msg == logev.ChildOutput && rec.Output != nil {
				lr.lines <- *rec.Output
				continue
			}
			if err != nil {
				lr.mu.Lock()
				lr.raw = append(lr.raw, sc.Text())
				lr.mu.Unlock()
			}
			lr.lines <- sc.Text()
		}
	}()
	return lr
}

func (lr *lineReader) wait() { <-lr.done }

// Next returns the next line, failing t at the deadline or at EOF.
func (lr *lineReader) Next(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	select {
	case l, ok := <-lr.lines:
		if !ok {
			t.Fatal("stdout closed while waiting for a line")
		}
		return l
	case <-ctx.Done():
		t.Fatalf("no line on stdout within %s", deadline)
	}
	return ""
}

// NextWith returns the next line that starts with prefix, skipping others.
func (lr *lineReader) NextWith(t *testing.T, prefix string) string {
	t.Helper()
	for {
		if l := lr.Next(t); strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

// fixedPorts are the ports fixedPort handed out.
var fixedPorts struct {
	sync.Mutex
	used map[int]bool
}

// fixedPort returns a TCP port for a test whose program binds a port the
// test names (not port 0): free on 127.0.0.1 (network "tcp4") or on [::]
// (network "tcp", dual stack) when it returns. A port found by binding
// port 0 and closing it is in the kernel's ephemeral range, where a test
// running beside this one can take it before the program binds it (by
// binding port 0, or as the local port of any connection it makes). This
// one is below that range, and never handed out twice in this process.
func fixedPort(t *testing.T, network string) int {
	t.Helper()
	const low = 20000
	high := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &high)
	}
	if high-low < 1000 {
		t.Fatalf("the ephemeral port range starts at %d: no room below it for fixed ports", high)
	}
	host := "127.0.0.1"
	if network == "tcp" {
		host = "::"
	}
	fixedPorts.Lock()
	defer fixedPorts.Unlock()
	if fixedPorts.used == nil {
		fixedPorts.used = map[int]bool{}
	}
	for range 1000 {
		p := low + rand.IntN(high-low)
		if fixedPorts.used[p] {
			continue
		}
		l, err := net.Listen(network, net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			continue // some service's
		}
		l.Close()
		fixedPorts.used[p] = true
		return p
	}
	t.Fatalf("no free %s port in [%d, %d)", network, low, high)
	return 0
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitGone waits until pid no longer exists (or is a zombie), using pidfd
// poll so it blocks on the kernel rather than sleeping.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	fd, err := pidfdOpen(pid)
	if err != nil {
		return // already gone
	}
	defer syscall.Close(fd)
	if !pollReadable(fd, deadline) {
		t.Fatalf("process %d still alive after %s", pid, deadline)
	}
}
