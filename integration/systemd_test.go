package integration

import (
	"net"
	"os"
	"os/exec"
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

// fakeManager is the receiving end of $NOTIFY_SOCKET as systemd has it: a
// unix datagram socket with SO_PASSCRED, so that each message carries its
// sender's PID (systemd checks it against NotifyAccess=).
type fakeManager struct {
	t    *testing.T
	path string
	msgs chan notifyMsg
	all  []notifyMsg // every message read so far
}

type notifyMsg struct {
	pid   int
	lines []string
	at    time.Time
	fds   int // passed with it (SCM_RIGHTS)
}

func (m notifyMsg) has(line string) bool { return slices.Contains(m.lines, line) }

// value returns the value of KEY= in m, and whether it is there.
func (m notifyMsg) value(key string) (string, bool) {
	for _, l := range m.lines {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

func newFakeManager(t *testing.T) *fakeManager {
	t.Helper()
	m := &fakeManager{t: t, path: filepath.Join(t.TempDir(), "notify"), msgs: make(chan notifyMsg, 256)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: m.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	go func() {
		defer close(m.msgs)
		buf, oob := make([]byte, 4096), make([]byte, 256)
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			msg := notifyMsg{lines: strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n"), at: time.Now()}
			if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, cm := range cms {
					if cred, err := unix.ParseUnixCredentials(&cm); err == nil {
						msg.pid = int(cred.Pid)
					}
				}
			}
			m.msgs <- msg
		}
	}()
	return m
}

// next returns the next message that holds line, failing at the deadline.
func (m *fakeManager) next(line string) notifyMsg {
	m.t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case msg, ok := <-m.msgs:
			if !ok {
				m.t.Fatalf("notify socket closed waiting for %q", line)
			}
			m.all = append(m.all, msg)
			if msg.has(line) {
				return msg
			}
		case <-timeout:
			m.t.Fatalf("no %q on the notify socket in %v; got %v", line, deadline, m.all)
		}
	}
}

// nextNot is next, failing on a message that holds bad first.
func (m *fakeManager) nextNot(line, bad string) notifyMsg {
	m.t.Helper()
	n := len(m.all)
	msg := m.next(line)
	for _, p := range m.all[n:] {
		if p.has(bad) {
			m.t.Fatalf("%q before %q: %v", bad, line, m.all[n:])
		}
	}
	return msg
}

// rest reads the messages still on their way once their senders are gone,
// so that m.all holds every one: it sends one of its own and reads up to
// it (a datagram socket hands them out in the order they arrived). Its own
// is left out of m.all.
func (m *fakeManager) rest() {
	m.t.Helper()
	const end = "HUPD_TEST=end of messages"
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: m.path, Net: "unixgram"})
	if err != nil {
		m.t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(end)); err != nil {
		m.t.Fatal(err)
	}
	m.next(end)
	m.all = m.all[:len(m.all)-1]
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

func usecValue(t *testing.T, m notifyMsg, key string) int64 {
	t.Helper()
	v, ok := m.value(key)
	if !ok {
		t.Fatalf("%v has no %s=", m.lines, key)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", key, v)
	}
	return n
}

// TestSystemdNotify runs hupd under a fake service manager, as
// Type=notify-reload with WatchdogSec= would: hupd (never its child,
// which sends its own READY=1 to hupd) says READY=1 once generation 1 is
// ready, pings WATCHDOG=1, answers SIGHUP (systemd's reload signal) with
// RELOADING=1 and a MONOTONIC_USEC= taken at that moment, then READY=1
// with a STATUS= naming the new generation — or, when the reload's check
// fails, READY=1 with a STATUS= saying it failed and the old generation
// still serving — and says STOPPING=1 on TERM. Each start, reload and
// stop asks for the time hupd allows itself (EXTEND_TIMEOUT_USEC=).
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	m := newFakeManager(t)
	ok := filepath.Join(t.TempDir(), "check-passes")
	if err := os.WriteFile(ok, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	test, err := exec.LookPath("test")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hupdBin, withJSONLog([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "notify",
		"--ready-timeout", "20s", "--stop-timeout", "7s", "--check", test + " -e " + ok, "--", helloBin})...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+m.path, "WATCHDOG_USEC=200000")
	h := StartHupdCmd(t, cmd)
	hupd := h.Cmd.Process.Pid

	start := m.nextNot("READY=1", "RELOADING=1")
	if st, _ := start.value("STATUS"); !strings.HasPrefix(st, "serving generation 1 (pid "+strconv.Itoa(h.ChildPID(1))+")") {
		t.Errorf("STATUS=%q at READY=1", st)
	}
	if !slices.ContainsFunc(m.all, func(x notifyMsg) bool {
		st, _ := x.value("STATUS")
		_, ext := x.value("EXTEND_TIMEOUT_USEC")
		return strings.HasPrefix(st, "starting generation 1") && ext
	}) {
		t.Errorf("no STATUS=starting generation 1 with EXTEND_TIMEOUT_USEC= before READY=1: %v", m.all)
	}
	m.next("WATCHDOG=1")
	m.next("WATCHDOG=1")

	// A good reload.
	before := monotonicUsec(t)
	h.Signal(syscall.SIGHUP)
	rl := m.nextNot("RELOADING=1", "READY=1")
	after := monotonicUsec(t)
	if mono := usecValue(t, rl, "MONOTONIC_USEC"); mono < before || mono > after {
		t.Errorf("MONOTONIC_USEC=%d not between %d and %d (CLOCK_MONOTONIC around the SIGHUP)", mono, before, after)
	}
	if ext := usecValue(t, rl, "EXTEND_TIMEOUT_USEC"); ext < 40e6 {
		t.Errorf("EXTEND_TIMEOUT_USEC=%d at a reload with a 20s check and 20s readiness: want at least 40s", ext)
	}
	done := m.nextNot("READY=1", "RELOADING=1")
	h.WaitEvent(logev.ReloadDone, 1, nil)
	if st, _ := done.value("STATUS"); !strings.HasPrefix(st, "serving generation 2 (pid "+strconv.Itoa(h.ChildPID(2))+"); last reload ok (swap, ") {
		t.Errorf("STATUS=%q after a good reload", st)
	}

	// An upgrade in place: the same hupd (PID) goes on speaking for the
	// service, and a reload after it is announced as before.
	if out, code := hupdCtl(t, h, "upgrade"); code != 0 {
		t.Fatalf("hupd upgrade: exit %d: %s", code, out)
	}
	h.Signal(syscall.SIGHUP)
	m.nextNot("RELOADING=1", "READY=1")
	if st, _ := m.nextNot("READY=1", "RELOADING=1").value("STATUS"); !strings.HasPrefix(st, "serving generation 3 (pid "+strconv.Itoa(h.ChildPID(3))+"); last reload ok (swap, ") {
		t.Errorf("STATUS=%q after a reload by the upgraded hupd", st)
	}

	// A failing one: the check fails, generation 3 serves on.
	if err := os.Remove(ok); err != nil {
		t.Fatal(err)
	}
	h.Signal(syscall.SIGHUP)
	m.nextNot("RELOADING=1", "READY=1")
	failed := m.nextNot("READY=1", "RELOADING=1")
	if st, _ := failed.value("STATUS"); !strings.HasPrefix(st, "serving generation 3 (pid "+strconv.Itoa(h.ChildPID(3))+"); last reload failed (swap): ") {
		t.Errorf("STATUS=%q after a failed reload", st)
	}

	h.Signal(syscall.SIGTERM)
	stop := m.next("STOPPING=1")
	if ext := usecValue(t, stop, "EXTEND_TIMEOUT_USEC"); ext < 7e6 {
		t.Errorf("EXTEND_TIMEOUT_USEC=%d at stop with a 7s stop timeout", ext)
	}
	if code := h.Wait(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
	m.rest()
	for _, msg := range m.all {
		if msg.pid != hupd {
			t.Errorf("message %v from pid %d, not hupd (%d): a child's notify reached the service manager", msg.lines, msg.pid, hupd)
		}
	}
	if n := len(slices.DeleteFunc(slices.Clone(m.all), func(x notifyMsg) bool { return !x.has("READY=1") })); n != 4 {
		t.Errorf("%d READY=1 messages, want 4 (start and three reloads): %v", n, m.all)
	}
}

// TestSystemdSocketActivatedNotify: the pair a .socket and a Type=notify
// .service make, with systemd-socket-activate in systemd's place: hupd
// takes the activated socket, says READY=1 from its own PID once its child
// serves on that socket, and a reload through SIGHUP keeps serving it.
func TestSystemdSocketActivatedNotify(t *testing.T) {
	t.Parallel()
	ssa := needTool(t, "/usr/bin/systemd-socket-activate", "systemd-socket-activate")
	m := newFakeManager(t)
	h, addr := startSocketActivated(t, ssa, []string{"-E", "NOTIFY_SOCKET=" + m.path},
		func(int) []string { return []string{"run", "--ready", "notify", "--"} }, helloBin)
	// systemd-socket-activate execs hupd on the first connection.
	if body, want := fetch(t, "tcp", addr, "/"), "pid "+strconv.Itoa(h.ChildPID(1))+"\nname web\n"; !strings.HasPrefix(body, want) {
		t.Fatalf("body %q, want it to start %q", body, want)
	}
	ready := m.next("READY=1")
	if ready.pid != h.Cmd.Process.Pid {
		t.Fatalf("READY=1 from pid %d, want hupd's %d (exec'd by systemd-socket-activate)", ready.pid, h.Cmd.Process.Pid)
	}
	h.Signal(syscall.SIGHUP)
	m.next("RELOADING=1")
	if st, _ := m.next("READY=1").value("STATUS"); !strings.HasPrefix(st, "serving generation 2") {
		t.Fatalf("STATUS=%q after the reload", st)
	}
	// Until it has exited, the old generation may still accept.
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	if body, want := fetch(t, "tcp", addr, "/"), "pid "+strconv.Itoa(h.ChildPID(2))+"\nname web\n"; !strings.HasPrefix(body, want) {
		t.Fatalf("after the reload: body %q, want it to start %q", body, want)
	}
	// An upgrade keeps the sockets passed on as received, and swap as
	// the strategy: the next reload swaps on the same socket.
	if out, code := hupdCtl(t, h, "upgrade", "--control", h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")); code != 0 {
		t.Fatalf("hupd upgrade: exit %d: %s", code, out)
	}
	h.Signal(syscall.SIGHUP)
	m.next("RELOADING=1")
	if st, _ := m.next("READY=1").value("STATUS"); !strings.HasPrefix(st, "serving generation 3") {
		t.Fatalf("STATUS=%q after the reload by the upgraded hupd", st)
	}
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 2 })
	if body, want := fetch(t, "tcp", addr, "/"), "pid "+strconv.Itoa(h.ChildPID(3))+"\nname web\n"; !strings.HasPrefix(body, want) {
		t.Fatalf("after the upgrade and a reload: body %q, want it to start %q", body, want)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}
