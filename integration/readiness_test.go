package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
	"golang.org/x/sys/unix"
)

// Readiness, sd_notify, the signal strategy and the control socket, end to
// end. The children these tests run are told what to do over a unix
// socket the test listens on (rdCtl): they connect, say
// "hello PID NOTIFY_SOCKET" and then act on one command line at a time, so
// that every step happens on a handshake, never after a sleep.

func init() {
	// rd-ctl CTLSOCK [KEY=VALUE…] [-ping=D] [-hup=reloading]: connect to
	// CTLSOCK and say "hello PID NOTIFY_SOCKET"; send the KEY=VALUE fields
	// as one notify datagram; with -ping, send WATCHDOG=1 every D and say
	// "ping N" after each; with -hup=reloading, answer SIGHUP with
	// RELOADING=1 (and MONOTONIC_USEC) but never READY=1, and say
	// "got HUP". Then act on commands (see rdCommand); exit 0 on TERM.
	childModes["rd-ctl"] = func(args []string) {
		start := time.Now()
		c, err := net.Dial("unix", args[0])
		if err != nil {
			fmt.Fprintf(os.Stderr, "child rd-ctl: %v\n", err)
			os.Exit(3)
		}
		var wmu sync.Mutex
		say := func(format string, a ...any) {
			wmu.Lock()
			defer wmu.Unlock()
			fmt.Fprintf(c, format+"\n", a...)
		}
		var (
			fields []string
			ping   time.Duration
			onHUP  string
		)
		for _, a := range args[1:] {
			switch {
			case strings.HasPrefix(a, "-ping="):
				ping, _ = time.ParseDuration(strings.TrimPrefix(a, "-ping="))
			case strings.HasPrefix(a, "-hup="):
				onHUP = strings.TrimPrefix(a, "-hup=")
			default:
				fields = append(fields, a)
			}
		}
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			for s := range sigs {
				if s == syscall.SIGTERM {
					os.Exit(0)
				}
				if onHUP == "reloading" {
					rdMustNotify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", rdMonotonicUsec()))
				}
				say("got HUP")
			}
		}()
		say("hello %d %s", os.Getpid(), os.Getenv("NOTIFY_SOCKET"))
		if len(fields) > 0 {
			rdMustNotify(strings.Join(fields, "\n"))
		}
		stopPing := make(chan chan struct{})
		if ping > 0 {
			go func() {
				t := time.NewTicker(ping)
				defer t.Stop()
				for n := 1; ; n++ {
					select {
					case done := <-stopPing:
						close(done)
						return
					case <-t.C:
					}
					rdMustNotify("WATCHDOG=1")
					say("ping %d", n)
				}
			}()
		}
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			cmd, arg, _ := strings.Cut(sc.Text(), " ")
			switch cmd {
			case "notify": // notify K=V K=V: one datagram
				rdMustNotify(strings.ReplaceAll(arg, " ", "\n"))
				say("ok")
			case "ready-after": // ready-after D: READY=1 once alive for D
				d, _ := time.ParseDuration(arg)
				// The program is slow to start: that is the behaviour
				// under test, not a wait for something to happen.
				time.Sleep(time.Until(start.Add(d)))
				rdMustNotify("READY=1")
				say("ok")
			case "helper": // helper K=V…: a grandchild sends the datagram
				w, pid := rdSpawnSender(arg)
				rdHelpers = append(rdHelpers, w)
				say("ok sent %d", pid)
			case "stop": // stop pinging
				if ping > 0 {
					done := make(chan struct{})
					stopPing <- done
					<-done
				}
				say("stopped")
			default:
				say("unknown command %q", cmd)
			}
		}
		select {} // the test hung up: wait for TERM
	}
	// rd-sender DEPTH K=V…: at depth 0 send the fields as one notify
	// datagram, print "sent PID" and stay alive until stdin ends; else
	// start rd-sender DEPTH-1 on the same stdin and stdout and wait for it.
	childModes["rd-sender"] = func(args []string) {
		depth, _ := strconv.Atoi(args[0])
		if depth > 0 {
			cmd := rdSelfCmd("rd-sender", append([]string{strconv.Itoa(depth - 1)}, args[1:]...)...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				os.Exit(3)
			}
			return
		}
		rdMustNotify(strings.Join(args[1:], "\n"))
		fmt.Println("sent", os.Getpid())
		io.Copy(io.Discard, os.Stdin)
	}
	// rd-silent: never speak sd_notify; print "ready PID"; exit 0 on TERM.
	childModes["rd-silent"] = func([]string) {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Println("ready", os.Getpid())
		<-sigs
	}
	// rd-notify: send READY=1, print "ready PID"; exit 0 on TERM.
	childModes["rd-notify"] = func([]string) {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		rdMustNotify("READY=1")
		fmt.Println("ready", os.Getpid())
		<-sigs
	}
	// rd-probe MARKER REPORTSOCK: the readiness probe. Exit 0 if MARKER
	// exists; else tell REPORTSOCK "probe PID failed" and exit 1.
	childModes["rd-probe"] = func(args []string) {
		if _, err := os.Stat(args[0]); err == nil {
			os.Exit(0)
		}
		if c, err := net.Dial("unix", args[1]); err == nil {
			fmt.Fprintf(c, "probe %d failed\n", os.Getpid())
			c.Close()
		}
		os.Exit(1)
	}
	// rd-check-fail: a --check command that finds the configuration bad.
	childModes["rd-check-fail"] = func([]string) {
		fmt.Println("config broken: line 3")
		os.Exit(1)
	}
}

// rdMustNotify sends payload to $NOTIFY_SOCKET; a child that cannot exits 3.
// rdHelpers holds the stdin pipes that keep an rd-ctl child's helpers
// alive: a package variable, so that no finalizer closes them early.
var rdHelpers []*os.File

func rdMustNotify(payload string) {
	if err := rdNotifyTo(os.Getenv("NOTIFY_SOCKET"), payload); err != nil {
		fmt.Fprintf(os.Stderr, "child: notify: %v\n", err)
		os.Exit(3)
	}
}

// rdNotifyTo sends one sd_notify datagram to path ("@name": abstract).
func rdNotifyTo(path, payload string) error {
	if path == "" {
		return errors.New("no NOTIFY_SOCKET")
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Net: "unixgram", Name: path})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(payload))
	return err
}

func rdMonotonicUsec() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}

// rdSelfCmd runs this binary (from inside a child: selfBin is only set in
// the test process) in mode.
func rdSelfCmd(mode string, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envChild+"="+mode, "GORACE=atexit_sleep_ms=0")
	return cmd
}

// rdSpawnSender starts rd-sender 1 (so the datagram comes from a grandchild
// of the caller) with fields, waits for its "sent PID" and returns the
// write end of its stdin (it lives until that closes) and the sender's PID.
func rdSpawnSender(fields string) (*os.File, int) {
	cmd := rdSelfCmd("rd-sender", append([]string{"1"}, strings.Fields(fields)...)...)
	r, w, err := os.Pipe()
	if err != nil {
		os.Exit(3)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.Exit(3)
	}
	cmd.Stdin, cmd.Stderr = r, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "child: start sender: %v\n", err)
		os.Exit(3)
	}
	r.Close()
	line, _ := bufio.NewReader(out).ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "sent ")))
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: sender said %q\n", line)
		os.Exit(3)
	}
	go cmd.Wait()
	return w, pid
}

// rdCtl is the test's end of the children's command socket.
type rdCtl struct {
	path string
	l    *net.UnixListener
}

func rdListen(t *testing.T) *rdCtl {
	t.Helper()
	path := filepath.Join(sockDir(t), "ctl.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Net: "unix", Name: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &rdCtl{path: path, l: l}
}

// rdConn is one child's command connection.
type rdConn struct {
	t      *testing.T
	c      net.Conn
	r      *bufio.Reader
	pid    int
	notify string // its NOTIFY_SOCKET
}

// accept waits for the next child to connect and say hello.
func (ctl *rdCtl) accept(t *testing.T) *rdConn {
	t.Helper()
	ctl.l.SetDeadline(time.Now().Add(deadline))
	c, err := ctl.l.Accept()
	if err != nil {
		t.Fatalf("no child connected within %s: %v", deadline, err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rdConn{t: t, c: c, r: bufio.NewReader(c)}
	f := strings.Fields(rc.line())
	if len(f) != 3 || f[0] != "hello" {
		t.Fatalf("child said %q, want hello PID NOTIFY_SOCKET", f)
	}
	rc.pid, _ = strconv.Atoi(f[1])
	rc.notify = f[2]
	return rc
}

// line reads the child's next line.
func (rc *rdConn) line() string {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(deadline))
	l, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("reading from child: %v (read %q)", err, l)
	}
	return strings.TrimSuffix(l, "\n")
}

// expect reads lines until one starts with prefix, skipping "ping" lines.
func (rc *rdConn) expect(prefix string) string {
	rc.t.Helper()
	for {
		l := rc.line()
		if strings.HasPrefix(l, prefix) {
			return l
		}
		if !strings.HasPrefix(l, "ping ") {
			rc.t.Fatalf("child said %q, want %q…", l, prefix)
		}
	}
}

// do sends a command and returns the answer that starts with want.
func (rc *rdConn) do(cmd, want string) string {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, cmd+"\n"); err != nil {
		rc.t.Fatalf("command %q: %v", cmd, err)
	}
	return rc.expect(want)
}

// rdControlPath returns the control socket hupd logged.
func rdControlPath(h *Hupd) string {
	h.t.Helper()
	return h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
}

// rdCommand runs a short hupd command (reload, status) and waits for it;
// it reports instead of failing, so that a goroutine may call it.
func rdCommand(cmd *exec.Cmd) (oneShotResult, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := oneShotResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		return res, fmt.Errorf("hupd %q: %v; stderr: %s", cmd.Args[1:], err, res.stderr)
	}
	return res, nil
}

func rdHupdCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, hupdBin, args...)
}

// rdReloadResult is the outcome of `hupd reload --json`.
type rdReloadResult struct {
	supervisor.ReloadResult
	code   int
	stderr string
	err    error
}

// rdReloadAsync starts `hupd reload --json` and delivers its outcome.
func rdReloadAsync(h *Hupd) <-chan rdReloadResult {
	h.t.Helper()
	path := rdControlPath(h)
	out := make(chan rdReloadResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		res, err := rdCommand(rdHupdCmd(ctx, "reload", "--json", "--control", path))
		r := rdReloadResult{code: res.code, stderr: res.stderr, err: err}
		if err == nil {
			if jerr := json.Unmarshal([]byte(res.stdout), &r.ReloadResult); jerr != nil {
				r.err = fmt.Errorf("reload output %q: %v; stderr: %s", res.stdout, jerr, res.stderr)
			}
		}
		out <- r
	}()
	return out
}

// rdWaitReload waits for an rdReloadAsync outcome.
func rdWaitReload(t *testing.T, ch <-chan rdReloadResult) rdReloadResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r
	case <-time.After(deadline + time.Second):
		t.Fatalf("hupd reload did not return within %s", deadline)
	}
	return rdReloadResult{}
}

// rdReload runs `hupd reload --json` and returns its outcome.
func rdReload(t *testing.T, h *Hupd) rdReloadResult {
	t.Helper()
	return rdWaitReload(t, rdReloadAsync(h))
}

// rdReloadOK runs a reload that must succeed with strategy st.
func rdReloadOK(t *testing.T, h *Hupd, st supervisor.Strategy) rdReloadResult {
	t.Helper()
	r := rdReload(t, h)
	if r.code != 0 || !r.OK || r.Strategy != st {
		t.Fatalf("reload: exit %d, %+v, stderr %q; want ok with strategy %s", r.code, r.ReloadResult, r.stderr, st)
	}
	return r
}

// rdStatus runs `hupd status --json` and decodes it.
func rdStatus(t *testing.T, h *Hupd) supervisor.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	res, err := rdCommand(rdHupdCmd(ctx, "status", "--json", "--control", rdControlPath(h)))
	if err != nil || res.code != 0 {
		t.Fatalf("hupd status --json: exit %d, %v, stderr %q", res.code, err, res.stderr)
	}
	var st supervisor.Status
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatalf("status output %q: %v", res.stdout, err)
	}
	return st
}

// rdReady waits for generation gen's "child ready" event.
func rdReady(h *Hupd, gen int) Event {
	h.t.Helper()
	return h.WaitEvent(logev.ChildReady, 1, func(e Event) bool { return e.Int("gen") == gen })
}

// rdExpectReady waits for gen's "child ready" and checks how it was judged.
func rdExpectReady(t *testing.T, h *Hupd, gen int, how string) Event {
	t.Helper()
	e := rdReady(h, gen)
	if e.Str("ready") != how {
		t.Fatalf("gen %d ready by %q, want %q", gen, e.Str("ready"), how)
	}
	return e
}

// rdExpectSwap checks a swap's result: gen 1 replaced by gen 2.
func rdExpectSwap(t *testing.T, h *Hupd, r rdReloadResult) {
	t.Helper()
	if r.OldGen != 1 || r.OldPID != h.ChildPID(1) || r.NewGen != 2 || r.NewPID != h.ChildPID(2) || r.ReadyAfter <= 0 {
		t.Fatalf("reload result %+v: want gen 1 pid %d -> gen 2 pid %d with ready_after", r.ReloadResult, h.ChildPID(1), h.ChildPID(2))
	}
}

// rdArgv joins argv for an option that hupd splits on white space.
func rdArgv(t *testing.T, argv []string) string {
	t.Helper()
	for i, a := range argv {
		if strings.HasPrefix(a, "GORACE=") {
			argv[i] = "GORACE=atexit_sleep_ms=0" // the only setting without a space
		}
		if strings.ContainsAny(argv[i], " \t\n") {
			t.Fatalf("argument %q has white space: cannot pass it in a split command", a)
		}
	}
	return strings.Join(argv, " ")
}

func rdStop(t *testing.T, h *Hupd) {
	t.Helper()
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit code %d, want 0", code)
	}
}

func rdNoEvent(t *testing.T, h *Hupd, msg string) {
	t.Helper()
	h.Sync()
	if evs := h.Events(msg); len(evs) > 0 {
		t.Fatalf("unexpected %q: %v", msg, evs)
	}
}

// swapArgs runs cmd with the swap strategy on one TCP socket and readiness
// ready, plus extra options.
func swapArgs(ready string, cmd []string, extra ...string) []string {
	args := append([]string{"run", "--reload", "swap", "--ready", ready, "--listen", "http=tcp://127.0.0.1:0"}, extra...)
	return append(append(args, "--"), cmd...)
}

// TestReadyNotify: --ready notify with the hello example: each generation
// is ready on its READY=1, the reload completes and reports ready_after,
// and the new generation serves.
func TestReadyNotify(t *testing.T) {
	t.Parallel()
	h := StartHupd(t, swapArgs("notify", []string{helloBin})...)
	addr := HostPort(h.Listening("http"))
	rdExpectReady(t, h, 1, "READY=1")
	r := rdReloadOK(t, h, supervisor.StrategySwap)
	rdExpectSwap(t, h, r)
	if e := rdExpectReady(t, h, 2, "READY=1"); e.Dur("after") != time.Duration(r.ReadyAfter).Round(time.Microsecond) {
		t.Errorf("ready_after %s, hupd logged gen 2 ready after %s", time.Duration(r.ReadyAfter), e.Dur("after"))
	}
	// Until the old generation has closed its listener it may still accept
	// a new connection, rightly: wait until it is gone (its STOPPING=1 may
	// be overtaken by its exit, so that is no handshake to wait for).
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	if body := fetch(t, "tcp", addr, "/"); !strings.HasPrefix(body, fmt.Sprintf("pid %d\n", r.NewPID)) {
		t.Fatalf("after the reload the server says %q, want pid %d", body, r.NewPID)
	}
	rdStop(t, h)
}

// TestReadyDelay: --ready delay:300ms with a child that never speaks
// sd_notify: each generation is judged ready by being alive for 300ms
// (hupd says so), and the reload waits for that.
func TestReadyDelay(t *testing.T) {
	t.Parallel()
	h := StartHupd(t, swapArgs("delay:300ms", childCmd("rd-silent"))...)
	h.Stdout.NextWith(t, "ready ")
	rdExpectReady(t, h, 1, "alive after 300ms")
	r := rdReloadOK(t, h, supervisor.StrategySwap)
	rdExpectSwap(t, h, r)
	rdExpectReady(t, h, 2, "alive after 300ms")
	if time.Duration(r.ReadyAfter) < 300*time.Millisecond {
		t.Fatalf("ready_after %s, want at least the 300ms delay", time.Duration(r.ReadyAfter))
	}
	rdNoEvent(t, h, logev.ReadyByAlive) // that is auto's
	rdStop(t, h)
}

// TestReadyExec: --ready exec:PROBE runs the probe (this binary) until it
// exits 0. The probe fails while a marker file is missing and tells the
// test so; only then does the test create the marker. So each generation
// is ready only after a failed probe run, and by a probe that succeeded.
func TestReadyExec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	report := filepath.Join(sockDir(t), "probe.sock")
	probe := rdArgv(t, childCmd("rd-probe", marker, report))
	h := StartHupd(t, swapArgs("exec:"+probe, childCmd("rd-silent"))...)

	// probeFailsThenPasses lets gen's probe fail once, then pass.
	probeFailsThenPasses := func(gen int) {
		t.Helper()
		l, err := net.ListenUnix("unix", &net.UnixAddr{Net: "unix", Name: report})
		if err != nil {
			t.Fatal(err)
		}
		// Reports left in the backlog die with the listener.
		defer l.Close()
		l.SetDeadline(time.Now().Add(deadline))
		c, err := l.Accept()
		if err != nil {
			t.Fatalf("gen %d: no probe ran within %s: %v", gen, deadline, err)
		}
		c.SetReadDeadline(time.Now().Add(deadline))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasSuffix(line, " failed\n") {
			t.Fatalf("probe said %q", line)
		}
		h.Sync()
		if evs := h.Events(logev.ChildReady); len(evs) >= gen {
			t.Fatalf("gen %d ready before its probe succeeded: %v", gen, evs)
		}
		writeFile(t, dir, "marker", "")
		rdExpectReady(t, h, gen, "probe succeeded")
	}

	probeFailsThenPasses(1)
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	reload := rdReloadAsync(h)
	probeFailsThenPasses(2)
	r := rdWaitReload(t, reload)
	if r.code != 0 || !r.OK {
		t.Fatalf("reload: exit %d, %+v, stderr %q", r.code, r.ReloadResult, r.stderr)
	}
	rdExpectSwap(t, h, r)
	rdStop(t, h)
}

// TestReadyAuto: --ready auto waits for READY=1 from a child that speaks
// sd_notify, and judges a silent child ready after 2s alive, saying so.
func TestReadyAuto(t *testing.T) {
	t.Parallel()
	t.Run("notifying", func(t *testing.T) {
		t.Parallel()
		h := StartHupd(t, swapArgs("auto", childCmd("rd-notify"))...)
		rdExpectReady(t, h, 1, "READY=1")
		r := rdReloadOK(t, h, supervisor.StrategySwap)
		rdExpectSwap(t, h, r)
		rdExpectReady(t, h, 2, "READY=1")
		rdNoEvent(t, h, logev.ReadyByAlive)
		rdStop(t, h)
	})
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		h := StartHupd(t, swapArgs("auto", childCmd("rd-silent"))...)
		for gen := 1; gen <= 2; gen++ {
			var reload <-chan rdReloadResult
			if gen == 2 {
				reload = rdReloadAsync(h)
			}
			e := h.WaitEvent(logev.ReadyByAlive, gen, nil)
			if e.Int("gen") != gen || e.Dur("after") != supervisor.DefaultAutoDelay {
				t.Fatalf("%v: want gen %d after %s", e, gen, supervisor.DefaultAutoDelay)
			}
			rdExpectReady(t, h, gen, "alive after 2s")
			if reload != nil {
				r := rdWaitReload(t, reload)
				if r.code != 0 || !r.OK || time.Duration(r.ReadyAfter) < supervisor.DefaultAutoDelay {
					t.Fatalf("reload: exit %d, %+v; want ok, ready after 2s", r.code, r.ReloadResult)
				}
				rdExpectSwap(t, h, r)
			}
		}
		rdStop(t, h)
	})
}

// TestNotifyForeignSenderIgnored: only the generation's process and its
// descendants speak for it. A READY=1 the test process itself sends to the
// new generation's NOTIFY_SOCKET during a reload is ignored (and logged
// with the sender's PID); the same READY=1 from a grandchild of the
// generation completes the reload.
func TestNotifyForeignSenderIgnored(t *testing.T) {
	t.Parallel()
	ctl := rdListen(t)
	h := StartHupd(t, swapArgs("notify", childCmd("rd-ctl", ctl.path), "--ready-timeout", "5s")...)
	c1 := ctl.accept(t)
	c1.do("notify READY=1", "ok")
	rdExpectReady(t, h, 1, "READY=1")

	reload := rdReloadAsync(h)
	c2 := ctl.accept(t)
	if c2.pid != h.ChildPID(2) || c2.notify == c1.notify {
		t.Fatalf("gen 2 is pid %d with NOTIFY_SOCKET %s; hupd started pid %d, gen 1 has %s", c2.pid, c2.notify, h.ChildPID(2), c1.notify)
	}
	if err := rdNotifyTo(c2.notify, "READY=1"); err != nil {
		t.Fatal(err)
	}
	e := h.WaitEvent(logev.NotifyOutsider, 1, nil)
	if e.Int("gen") != 2 || e.Int("sender") != os.Getpid() {
		t.Fatalf("%v: want gen 2, sender %d (this test)", e, os.Getpid())
	}
	// hupd handles datagrams in order and logs as it goes: had it taken
	// this one, its "child ready" would be logged by now (and read, after
	// the barrier).
	h.Sync()
	if evs := h.Events(logev.ChildReady); len(evs) != 1 {
		t.Fatalf("a foreign READY=1 made a generation ready: %v", evs)
	}
	rdNoEvent(t, h, logev.ReloadDone)

	line := c2.do("helper READY=1", "ok sent ")
	sender, _ := strconv.Atoi(strings.TrimPrefix(line, "ok sent "))
	// The sender is alive (it waits for its parent) and is no child of
	// gen 2 but a grandchild.
	parent, ok := rdParent(sender)
	if grand, ok2 := rdParent(parent); !ok || !ok2 || parent == c2.pid || grand != c2.pid {
		t.Fatalf("sender %d: parent %d, grandparent %d; want a grandchild of gen 2 (pid %d)", sender, parent, grand, c2.pid)
	}
	r := rdWaitReload(t, reload)
	if r.code != 0 || !r.OK {
		t.Fatalf("reload: exit %d, %+v, stderr %q", r.code, r.ReloadResult, r.stderr)
	}
	rdExpectSwap(t, h, r)
	rdExpectReady(t, h, 2, "READY=1")
	if n := len(h.Events(logev.NotifyOutsider)); n != 1 {
		t.Fatalf("%d datagrams ignored, want only the test's", n)
	}
	rdStop(t, h)
}

// rdParent returns pid's parent PID.
func rdParent(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// TestNotifyExtendTimeout: EXTEND_TIMEOUT_USEC=5000000 gives a generation
// 5s more than --ready-timeout 2s: a child that becomes ready 2.5s after
// it started (its READY=1 released by the test only after hupd has logged
// the extension) is still ready in time, first and in a reload. (The child
// must ask for the extension within the --ready-timeout, counted from its
// start: with 300ms, a loaded CI machine sometimes started it later than
// that, and the reload failed.)
func TestNotifyExtendTimeout(t *testing.T) {
	t.Parallel()
	ctl := rdListen(t)
	h := StartHupd(t, swapArgs("notify", childCmd("rd-ctl", ctl.path, "EXTEND_TIMEOUT_USEC=5000000"), "--ready-timeout", "2s")...)
	var reload <-chan rdReloadResult
	for gen := 1; gen <= 2; gen++ {
		if gen == 2 {
			reload = rdReloadAsync(h)
		}
		c := ctl.accept(t)
		e := h.WaitEvent(logev.ReadyTimeoutExtended, 1, func(e Event) bool { return e.Int("gen") == gen })
		if e.Dur("timeout") != 5*time.Second {
			t.Fatalf("%v: want the timeout extended by 5s", e)
		}
		c.do("ready-after 2500ms", "ok")
		if e := rdExpectReady(t, h, gen, "READY=1"); e.Dur("after") <= 2*time.Second {
			t.Fatalf("gen %d ready after %s: want it later than the 2s --ready-timeout", gen, e.Dur("after"))
		}
	}
	r := rdWaitReload(t, reload)
	if r.code != 0 || !r.OK {
		t.Fatalf("reload: exit %d, %+v, stderr %q", r.code, r.ReloadResult, r.stderr)
	}
	rdExpectSwap(t, h, r)
	rdNoEvent(t, h, logev.NotReady)
	rdStop(t, h)
}

// TestWatchdogKillsSilentChild: a child that sets WATCHDOG_USEC=1500000
// lives as long as it sends WATCHDOG=1 (40 pings, 2s, longer than the
// watchdog, pass without a kill; the margin is wide because a loaded
// machine can stall the pinger for hundreds of milliseconds); once it stops pinging, hupd kills it
// ("watchdog timeout") and the restart policy (on-failure) starts
// generation 2.
func TestWatchdogKillsSilentChild(t *testing.T) {
	t.Parallel()
	ctl := rdListen(t)
	h := StartHupd(t, append([]string{"run", "--"}, childCmd("rd-ctl", ctl.path, "WATCHDOG_USEC=1500000", "READY=1", "-ping=50ms")...)...)
	c1 := ctl.accept(t)
	rdExpectReady(t, h, 1, "READY=1")
	c1.expect("ping 40")
	rdNoEvent(t, h, logev.WatchdogTimeout)
	c1.do("stop", "stopped")
	e := h.WaitEvent(logev.WatchdogTimeout, 1, nil)
	if e.Int("gen") != 1 || e.Int("pid") != c1.pid || e.Dur("timeout") != 1500*time.Millisecond {
		t.Fatalf("%v: want gen 1 pid %d, timeout 1.5s", e, c1.pid)
	}
	if e := h.WaitEvent(logev.ChildExited, 1, nil); e.Int("gen") != 1 || e.Str("status") != "killed by signal KILL" {
		t.Fatalf("%v: want gen 1 killed by signal KILL", e)
	}
	waitGone(t, c1.pid)
	c2 := ctl.accept(t)
	if c2.pid != h.ChildPID(2) {
		t.Fatalf("gen 2 is pid %d, child says %d", h.ChildPID(2), c2.pid)
	}
	if e := h.WaitEvent(logev.RestartingChild, 1, nil); e.Int("gen") != 2 {
		t.Fatalf("%v: want a restart as gen 2", e)
	}
	rdExpectReady(t, h, 2, "READY=1")
	rdStop(t, h)
}

// TestSignalStrategy: --reload signal reloads the child in place.
func TestSignalStrategy(t *testing.T) {
	t.Parallel()

	// hello speaks notify-reload: the reload returns once its READY=1
	// follows RELOADING=1, so it has re-read its config by then. The first
	// reload learns that it speaks the protocol, the second relies on it.
	t.Run("notify-reload", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		cfg := writeFile(t, dir, "hello.conf", "one\n")
		h := StartHupd(t, "run", "--reload", "signal", "--listen", "http=tcp://127.0.0.1:0", "--", helloBin, "-config", cfg)
		addr := HostPort(h.Listening("http"))
		pid := h.ChildPID(1)
		rdExpectReady(t, h, 1, "READY=1")
		if body := fetch(t, "tcp", addr, "/"); !strings.Contains(body, "config one\n") {
			t.Fatalf("body %q, want config one", body)
		}
		for _, content := range []string{"two", "three"} {
			writeFile(t, dir, "hello.conf", content+"\n")
			r := rdReloadOK(t, h, supervisor.StrategySignal)
			if r.OldPID != pid || r.NewPID != pid || r.NewGen != 1 {
				t.Fatalf("reload result %+v: want gen 1 pid %d reloaded in place", r.ReloadResult, pid)
			}
			if body := fetch(t, "tcp", addr, "/"); body != fmt.Sprintf("pid %d\nname http\nconfig %s\n", pid, content) {
				t.Fatalf("after the reload: body %q, want pid %d with config %s", body, pid, content)
			}
		}
		if n := len(h.Events(logev.ChildStarted)); n != 1 {
			t.Fatalf("%d children started, want 1", n)
		}
		rdNoEvent(t, h, logev.ReloadFailed)
		rdStop(t, h)
	})

	// A child that does not speak sd_notify: the reload is done when the
	// signal is delivered.
	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		h := StartHupd(t, append([]string{"run", "--reload", "signal", "--"}, childCmd("signals")...)...)
		h.Stdout.NextWith(t, "ready ")
		pid := h.ChildPID(1)
		r := rdReloadOK(t, h, supervisor.StrategySignal)
		if r.NewPID != pid {
			t.Fatalf("reload result %+v: want pid %d", r.ReloadResult, pid)
		}
		// It did not wait out the window given to notify speakers.
		if took := r.Finished.Sub(r.Started); took >= time.Second {
			t.Fatalf("reload took %s: want it done on delivery", took)
		}
		if got := h.Stdout.NextWith(t, "got "); got != "got HUP" {
			t.Fatalf("child said %q, want got HUP", got)
		}
		rdStop(t, h)
	})

	// A child that answers the signal with RELOADING=1 but never READY=1:
	// the reload fails after --ready-timeout, the child keeps running and
	// serving. Twice: once while hupd learns that the child speaks the
	// reload protocol, once relying on it.
	t.Run("never ready", func(t *testing.T) {
		t.Parallel()
		ctl := rdListen(t)
		h := StartHupd(t, append([]string{"run", "--reload", "signal", "--ready-timeout", "500ms", "--"},
			childCmd("rd-ctl", ctl.path, "READY=1", "-hup=reloading")...)...)
		c := ctl.accept(t)
		rdExpectReady(t, h, 1, "READY=1")
		for i := 1; i <= 2; i++ {
			r := rdReload(t, h)
			if r.code != 1 || r.OK || !strings.Contains(r.Reason, "not ready within") {
				t.Fatalf("reload %d: exit %d, %+v: want failed, not ready within", i, r.code, r.ReloadResult)
			}
			if took := r.Finished.Sub(r.Started); took < 500*time.Millisecond {
				t.Fatalf("reload %d failed after %s, before the 500ms timeout", i, took)
			}
			c.expect("got HUP")
		}
		if !processAlive(c.pid) {
			t.Fatalf("child %d is gone", c.pid)
		}
		st := rdStatus(t, h)
		if len(st.Generations) != 1 || st.Generations[0].PID != c.pid || st.Generations[0].State != supervisor.StateReady {
			t.Fatalf("status generations %+v: want pid %d still ready", st.Generations, c.pid)
		}
		rdNoEvent(t, h, logev.ChildExited)
		rdStop(t, h)
	})

	// A failing --check aborts the reload before any signal is sent.
	t.Run("check fails", func(t *testing.T) {
		t.Parallel()
		check := rdArgv(t, childCmd("rd-check-fail"))
		h := StartHupd(t, append([]string{"run", "--reload", "signal", "--check", check, "--"}, childCmd("signals")...)...)
		h.Stdout.NextWith(t, "ready ")
		r := rdReload(t, h)
		if r.code != 1 || r.OK || !strings.Contains(r.Reason, "check failed") || !strings.Contains(r.Reason, "config broken: line 3") {
			t.Fatalf("reload: exit %d, %+v: want failed with the check's output", r.code, r.ReloadResult)
		}
		rdNoEvent(t, h, logev.ReloadSignalSent)
		// Signals reach the child in the order hupd sends them: the next
		// one it reports is the USR1 sent now, not a HUP.
		h.Signal(syscall.SIGUSR1)
		if got := h.Stdout.NextWith(t, "got "); got != "got USR1" {
			t.Fatalf("child said %q, want got USR1 (no HUP before it)", got)
		}
		rdStop(t, h)
	})
}

// TestControlSocket: hupd status (JSON and text) after a reload, a
// refused client of another user, and bad requests on a raw connection.
func TestControlSocket(t *testing.T) {
	t.Parallel()
	h := StartHupd(t, swapArgs("notify", []string{helloBin})...)
	addr := h.Listening("http")
	path := rdControlPath(h)
	rdExpectReady(t, h, 1, "READY=1")
	r := rdReloadOK(t, h, supervisor.StrategySwap)
	rdExpectSwap(t, h, r)

	st := rdStatus(t, h)
	if st.PID != h.Cmd.Process.Pid || st.Strategy != supervisor.StrategySwap || st.Reloads != 1 {
		t.Errorf("status pid %d strategy %s reloads %d: want pid %d, swap, 1", st.PID, st.Strategy, st.Reloads, h.Cmd.Process.Pid)
	}
	if len(st.Listeners) != 1 || st.Listeners[0].Name != "http" || st.Listeners[0].Address != addr || st.Listeners[0].FD != 3 {
		t.Errorf("status listeners %+v: want http at %s on fd 3", st.Listeners, addr)
	}
	i := slices.IndexFunc(st.Generations, func(g supervisor.GenerationStatus) bool { return g.Gen == 2 })
	if i < 0 || st.Generations[i].PID != r.NewPID || st.Generations[i].State != supervisor.StateReady || st.Generations[i].ReadyAfter <= 0 {
		t.Errorf("status generations %+v: want gen 2 pid %d ready", st.Generations, r.NewPID)
	}
	if lr := st.LastReload; lr == nil || !lr.OK || lr.NewGen != 2 || lr.NewPID != r.NewPID || lr.OldPID != r.OldPID {
		t.Errorf("status last_reload %+v: want the reload %+v", lr, r.ReloadResult)
	}

	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	text, err := rdCommand(rdHupdCmd(ctx, "status", "--control", path))
	if err != nil || text.code != 0 {
		t.Fatalf("hupd status: exit %d, %v, stderr %q", text.code, err, text.stderr)
	}
	for _, want := range []string{fmt.Sprintf("(pid %d)", h.Cmd.Process.Pid), strconv.Itoa(r.NewPID), addr} {
		if !strings.Contains(text.stdout, want) {
			t.Errorf("hupd status output lacks %q:\n%s", want, text.stdout)
		}
	}

	t.Run("other user refused", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to run a command as another user")
		}
		// What keeps other users out: the socket is 0600, so connect
		// fails before hupd checks the peer. Root's directory may be
		// traversed, not listed (0711), so that children dropped to
		// another user reach their notify sockets in NAME.d.
		for p, want := range map[string]os.FileMode{path: os.ModeSocket | 0o600, filepath.Dir(path): os.ModeDir | 0o711} {
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (os.ModeType | os.ModePerm); got != want {
				t.Fatalf("%s has mode %v, want %v", p, got, want)
			}
		}
		cmd := rdHupdCmd(ctx, "reload", "--control", path)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		res, err := rdCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if res.code == 0 || !strings.Contains(res.stderr, "permission denied") {
			t.Fatalf("reload as uid 65534: exit %d, stderr %q; want refused", res.code, res.stderr)
		}
		if st := rdStatus(t, h); st.Reloads != 1 || len(h.Events(logev.ReloadStarted)) != 1 {
			t.Fatalf("after the refused client: %d reloads, want 1", st.Reloads)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		c, err := net.DialTimeout("unix", path, deadline)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(deadline))
		br := bufio.NewReader(c)
		ask := func(line string) control.Reply {
			t.Helper()
			if _, err := io.WriteString(c, line+"\n"); err != nil {
				t.Fatalf("send %q: %v", line, err)
			}
			b, err := br.ReadBytes('\n')
			if err != nil {
				t.Fatalf("reply to %q: %v (read %q)", line, err, b)
			}
			var rep control.Reply
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatalf("reply to %q is %q: %v", line, b, err)
			}
			return rep
		}
		for _, tc := range []struct{ req, want string }{
			{`not json`, "malformed request"},
			{`{"v":1,"cmd":"bogus"}`, `unknown command "bogus"`},
			{`{"cmd":"status"}`, "missing protocol version"},
			{`{"v":99,"cmd":"status"}`, "unsupported protocol version 99"},
			{`{"v":1,"cmd":"reload","timeout":"soon"}`, "invalid reload timeout"},
			{`{"v":1}`, `missing command "cmd"`},
		} {
			rep := ask(tc.req)
			if rep.OK || rep.V != control.ProtocolVersion || !strings.Contains(rep.Error, tc.want) || rep.Status != nil || rep.Reload != nil {
				t.Errorf("%s answered %+v, want an error with %q", tc.req, rep, tc.want)
			}
		}
		if rep := ask(`{"v":1,"cmd":"status"}`); !rep.OK || rep.Status == nil || rep.Status.PID != h.Cmd.Process.Pid || rep.Status.Reloads != 1 {
			t.Fatalf("status after the bad requests: %+v", rep)
		}
		if rep := ask(`{"v":1,"cmd":"ping"}`); !rep.OK || rep.Error != "" {
			t.Fatalf("ping: %+v", rep)
		}
	})
	rdStop(t, h)
}

// TestControlChildEnv: the child finds the control socket in
// $HUPD_CONTROL, and `hupd status` run with only that variable (as the
// child would run it) reaches its hupd.
func TestControlChildEnv(t *testing.T) {
	t.Parallel()
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--"}, childCmd("env")...)...)
	path := rdControlPath(h)
	ce := readChildEnv(h)
	if got := ce.Env[supervisor.EnvControl]; got != path {
		t.Fatalf("child's %s=%q, want the control socket %s", supervisor.EnvControl, got, path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := rdHupdCmd(ctx, "status", "--json")
	cmd.Env = append(os.Environ(), supervisor.EnvControl+"="+path, "XDG_RUNTIME_DIR="+t.TempDir())
	res, err := rdCommand(cmd)
	if err != nil || res.code != 0 {
		t.Fatalf("hupd status with %s: exit %d, %v, stderr %q", supervisor.EnvControl, res.code, err, res.stderr)
	}
	var st supervisor.Status
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil || st.PID != h.Cmd.Process.Pid ||
		len(st.Generations) != 1 || st.Generations[0].PID != ce.PID {
		t.Fatalf("status %q (%v): want hupd pid %d with child %d", res.stdout, err, h.Cmd.Process.Pid, ce.PID)
	}
	// The env child ends on TERM by its default action.
	h.Stop()
}

// TestNotifyShortLivedSender: a shell-script child that says READY=1 with
// systemd-notify, which exits right after. It waits for hupd to close the
// fd of its BARRIER=1 first, so it is still there, a member of the
// generation, when hupd reads its READY=1, and every generation becomes
// ready on it (TestNotifySystemdNotifyShell has more variants).
func TestNotifyShortLivedSender(t *testing.T) {
	sn, err := exec.LookPath("systemd-notify")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("systemd-notify (Debian package systemd) is missing: %v", err)
		}
		t.Skip("systemd-notify not installed")
	}
	script := sn + ` --ready && exec sleep 1000`
	h := StartHupd(t, swapArgs("notify", []string{"sh", "-c", script}, "--ready-timeout", "10s")...)
	rdExpectReady(t, h, 1, "READY=1")
	for gen := 2; gen <= 4; gen++ {
		r := rdReloadOK(t, h, supervisor.StrategySwap)
		if r.NewGen != gen {
			t.Fatalf("reload made gen %d, want %d", r.NewGen, gen)
		}
		rdExpectReady(t, h, gen, "READY=1")
	}
	rdNoEvent(t, h, logev.NotifyOutsider)
	h.Stop()
}

// TestControlConfigHash: with -c, each generation records the hash of
// hupd.toml as it was when it started, and status shows it.
func TestControlConfigHash(t *testing.T) {
	dir := t.TempDir()
	conf := dir + "/hupd.toml"
	write := func(extra string) {
		t.Helper()
		toml := "command = [\"" + helloBin + "\"]\n[[listen]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:0\"\n" + extra
		if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	h := StartHupd(t, "run", "-c", conf)
	rdReady(h, 1)
	st := rdStatus(t, h)
	if len(st.Generations) != 1 || len(st.ConfigHash) != 16 || st.Generations[0].ConfigHash != st.ConfigHash {
		t.Fatalf("status %+v: want gen 1 with a 16-digit config hash", st)
	}
	first := st.ConfigHash
	write("# edited\n")
	rdReloadOK(t, h, supervisor.StrategySwap)
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	st = rdStatus(t, h)
	if len(st.Generations) != 1 || st.Generations[0].Gen != 2 || st.ConfigHash == first || st.Generations[0].ConfigHash != st.ConfigHash {
		t.Fatalf("after editing hupd.toml: %+v; want gen 2 with a new hash (gen 1 had %s)", st, first)
	}
	rdStop(t, h)
}

// TestSignalStrategyCheckTimeout: a check command that hangs is killed at
// the readiness timeout and the reload fails; the serving child is not
// touched and the next reload runs.
func TestSignalStrategyCheckTimeout(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	h := StartHupd(t, "run", "--listen", "http=tcp://127.0.0.1:0", "--check", sleep+" 1000", "--ready-timeout", "300ms", "--", helloBin)
	rdReady(h, 1)
	r := rdReload(t, h)
	if r.code != 1 || r.OK || !strings.Contains(r.Reason, "did not finish within 300ms") {
		t.Fatalf("reload: exit %d, %+v; want a failure naming the timeout", r.code, r.ReloadResult)
	}
	waitGone(t, h.WaitEvent(logev.CheckStarted, 1, nil).Int("pid"))
	if st := rdStatus(t, h); len(st.Generations) != 1 || st.Generations[0].Gen != 1 || st.Generations[0].State != supervisor.StateReady {
		t.Fatalf("status after the failed check: %+v", st.Generations)
	}
	if r := rdReload(t, h); r.code != 1 || !strings.Contains(r.Reason, "did not finish") {
		t.Fatalf("second reload: exit %d, %+v", r.code, r.ReloadResult)
	}
	rdStop(t, h)
}
