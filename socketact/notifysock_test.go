//go:build linux

package socketact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Environment of the helper process: the test binary re-executed with
// -test.run=^TestNotifyHelperProcess$ (no TestMain, so nothing here collides
// with other helpers of the package).
const (
	envNotifyHelper = "HUPD_NOTIFY_HELPER" // "send" or "grandchild"
	envNotifyMsg    = "HUPD_NOTIFY_MSG"    // the datagram to send
)

// Exit codes of the helper.
const (
	helperSendFailed = 3
	helperPermission = 4
)

// TestNotifyHelperProcess is not a test: it is the child program of the
// tests below. "send" sends $HUPD_NOTIFY_MSG to $NOTIFY_SOCKET and then lives
// until stdin reaches EOF, so the test can look at it while it runs;
// "grandchild" starts a "send" helper and waits for it.
func TestNotifyHelperProcess(t *testing.T) {
	switch os.Getenv(envNotifyHelper) {
	case "":
		return
	case "send":
		if _, err := Notify(os.Getenv(envNotifyMsg)); err != nil {
			fmt.Fprintln(os.Stderr, "notify:", err)
			if errors.Is(err, fs.ErrPermission) {
				os.Exit(helperPermission)
			}
			os.Exit(helperSendFailed)
		}
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "grandchild":
		cmd := exec.Command(os.Args[0], "-test.run=^TestNotifyHelperProcess$")
		cmd.Env = append(os.Environ(), envNotifyHelper+"=send")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "grandchild:", err)
			os.Exit(helperSendFailed)
		}
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(envNotifyHelper))
		os.Exit(2)
	}
}

// helper is a running helper process; Close ends it.
type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
}

// startHelper starts the test binary bin as helper mode, sending msg to the
// notify socket at path, with the credentials cred (nil: ours).
func startHelper(t *testing.T, bin, mode, path, msg string, cred *syscall.Credential) *helper {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestNotifyHelperProcess$")
	cmd.Env = append(os.Environ(), envNotifyHelper+"="+mode, envNotifyMsg+"="+msg, EnvNotifySocket+"="+path)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	h := &helper{cmd: cmd}
	cmd.Stdout, cmd.Stderr = &h.stderr, &h.stderr
	var err error
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.stdin.Close()
		h.cmd.Wait()
	})
	return h
}

// wait ends the helper (EOF on its stdin) and returns its exit code.
func (h *helper) wait(t *testing.T) int {
	t.Helper()
	h.stdin.Close()
	err := h.cmd.Wait()
	if h.stderr.Len() > 0 {
		t.Logf("helper %d: %s", h.cmd.Process.Pid, h.stderr.Bytes())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return h.cmd.ProcessState.ExitCode()
}

// copyTestBinary copies the test binary to a directory every user can
// enter (go test's own build directory is 0700) under the given name.
func copyTestBinary(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hupd-notify-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// listenNotify makes a notify socket in a fresh NotifyDir for uid under
// parent, closed and removed when the test ends.
func listenNotify(t *testing.T, parent string, uid, gid int) *NotifySocket {
	t.Helper()
	dir, err := NotifyDir(parent, uid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n, err := ListenNotify(filepath.Join(dir, "notify.sock"), uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// receive waits up to 10 s for the next datagram on n; on timeout it closes
// n, which ends the pending Receive.
func receive(t *testing.T, n *NotifySocket) (NotifyMessage, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		m   NotifyMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := n.Receive()
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-ctx.Done():
		n.Close()
		<-ch
		t.Fatal("no datagram within 10s")
		return NotifyMessage{}, nil
	}
}

func mustReceive(t *testing.T, n *NotifySocket) NotifyMessage {
	t.Helper()
	m, err := receive(t, n)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return m
}

// openFDs lists this process's open fds.
func openFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			fds = append(fds, e.Name()+" -> "+target)
		}
	}
	return fds
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

func checkFDs(t *testing.T, before []string) {
	t.Helper()
	if after := openFDs(t); !slices.Equal(before, after) {
		t.Errorf("fds changed:\nbefore %q\nafter  %q", before, after)
	}
}

// warmUp creates and closes a socket so that the runtime's poller fds exist
// before a test counts fds.
func warmUp(t *testing.T) {
	t.Helper()
	n := listenNotify(t, t.TempDir(), -1, -1)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNotifyRoundTrip(t *testing.T) {
	n := listenNotify(t, t.TempDir(), -1, -1)
	t.Setenv(EnvNotifySocket, n.Path)
	sent, err := Notify("READY=1\nSTATUS=serving on :80, a=b\nMAINPID=42\nEXTEND_TIMEOUT_USEC=5000000\n")
	if !sent || err != nil {
		t.Fatalf("Notify = %v, %v", sent, err)
	}
	m := mustReceive(t, n)
	if m.PID != os.Getpid() || m.UID != os.Getuid() || m.GID != os.Getgid() {
		t.Errorf("credentials %d/%d/%d, want %d/%d/%d", m.PID, m.UID, m.GID, os.Getpid(), os.Getuid(), os.Getgid())
	}
	want := map[string]string{"READY": "1", "STATUS": "serving on :80, a=b", "MAINPID": "42", "EXTEND_TIMEOUT_USEC": "5000000"}
	if !maps.Equal(m.Fields, want) {
		t.Errorf("Fields = %q, want %q", m.Fields, want)
	}
	if !m.Ready() || m.ClosedFDs != 0 {
		t.Errorf("Ready = %v, ClosedFDs = %d", m.Ready(), m.ClosedFDs)
	}
	if d, ok := m.Usec(NotifyExtendTimeout); d != 5*time.Second || !ok {
		t.Errorf("Usec(EXTEND_TIMEOUT_USEC) = %v, %v", d, ok)
	}
	if pid, ok := m.MainPID(); pid != 42 || !ok {
		t.Errorf("MainPID = %d, %v", pid, ok)
	}

	// An empty datagram is a message without fields.
	if _, err := Notify(""); err != nil {
		t.Fatal(err)
	}
	if m := mustReceive(t, n); m.PID != os.Getpid() || m.Fields == nil || len(m.Fields) != 0 {
		t.Errorf("empty datagram: %+v", m)
	}
}

func TestNotifyAbstract(t *testing.T) {
	path := fmt.Sprintf("@hupd-notify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	n, err := ListenNotify(path, 65534, 65534) // owner ignored: no file
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Path != path {
		t.Errorf("Path = %q", n.Path)
	}
	t.Setenv(EnvNotifySocket, path)
	if _, err := Notify("STOPPING=1"); err != nil {
		t.Fatal(err)
	}
	m := mustReceive(t, n)
	if m.PID != os.Getpid() || !m.Flag(NotifyStopping) {
		t.Errorf("got %+v", m)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("abstract socket made a file: %v", err)
	}
	if _, err := ListenNotify(path, -1, -1); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second bind of %s: %v, want EADDRINUSE", path, err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	// The name is free again.
	n2, err := ListenNotify(path, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	n2.Close()
}

// TestNotifyFromChild checks the credentials of datagrams that children and
// grandchildren send, and IsDescendant on them while they live.
func TestNotifyFromChild(t *testing.T) {
	n := listenNotify(t, t.TempDir(), -1, -1)
	// A name with ')' and spaces checks that /proc/PID/stat is parsed from
	// the last ')'.
	bin := copyTestBinary(t, "n) 1 2 (x")

	child := startHelper(t, bin, "send", n.Path, "READY=1\nSTATUS=child", nil)
	m := mustReceive(t, n)
	if m.PID != child.cmd.Process.Pid {
		t.Errorf("PID = %d, want the child's %d", m.PID, child.cmd.Process.Pid)
	}
	if s, ok := m.Status(); !m.Ready() || s != "child" || !ok {
		t.Errorf("Fields = %q", m.Fields)
	}
	if !IsDescendant(m.PID, os.Getpid()) {
		t.Errorf("IsDescendant(child %d, self %d) = false", m.PID, os.Getpid())
	}
	if IsDescendant(os.Getpid(), m.PID) {
		t.Errorf("IsDescendant(self, child) = true")
	}
	if IsDescendant(1, os.Getpid()) {
		t.Errorf("IsDescendant(1, self) = true")
	}
	if code := child.wait(t); code != 0 {
		t.Fatalf("child exited %d", code)
	}
	if IsDescendant(m.PID, os.Getpid()) {
		t.Errorf("IsDescendant(%d) = true after the child was reaped", m.PID)
	}

	mid := startHelper(t, bin, "grandchild", n.Path, "STATUS=grandchild", nil)
	m = mustReceive(t, n)
	if m.PID == mid.cmd.Process.Pid || m.PID == 0 {
		t.Errorf("PID = %d, want the grandchild's", m.PID)
	}
	if !IsDescendant(m.PID, mid.cmd.Process.Pid) || !IsDescendant(m.PID, os.Getpid()) {
		t.Errorf("grandchild %d not a descendant of child %d and of self", m.PID, mid.cmd.Process.Pid)
	}
	if code := mid.wait(t); code != 0 {
		t.Fatalf("child exited %d", code)
	}
}

func TestIsDescendant(t *testing.T) {
	self := os.Getpid()
	for _, tc := range []struct {
		pid, ancestor int
		want          bool
	}{
		{self, self, true},
		{self, os.Getppid(), true},
		{0, self, false},
		{-1, self, false},
		{self, 0, false},
		{self, -1, false},
		{0, 0, false},
		{1 << 30, self, false}, // beyond pid_max: no such process
		{os.Getppid(), self, false},
	} {
		if got := IsDescendant(tc.pid, tc.ancestor); got != tc.want {
			t.Errorf("IsDescendant(%d, %d) = %v, want %v", tc.pid, tc.ancestor, got, tc.want)
		}
	}
}

// TestNotifyPrivilegeDrop checks a socket chowned to a child that runs as
// nobody: the child can send and is reported as nobody, another user cannot.
func TestNotifyPrivilegeDrop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown and to start processes as another user")
	}
	const nobody = 65534
	n := listenNotify(t, "", nobody, nobody) // under /tmp: nobody must reach it
	dir := filepath.Dir(n.Path)
	if mode := fileMode(t, dir); mode != fs.ModeDir|NotifyDirModeShared {
		t.Fatalf("directory mode %v, want %v", mode, fs.ModeDir|NotifyDirModeShared)
	}
	fi, err := os.Lstat(n.Path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != fs.ModeSocket|0o600 || st.Uid != nobody || st.Gid != nobody {
		t.Errorf("socket file mode %v owner %d:%d, want %v %d:%d", fi.Mode(), st.Uid, st.Gid, fs.ModeSocket|0o600, nobody, nobody)
	}
	bin := copyTestBinary(t, "hupd-notify-test")

	h := startHelper(t, bin, "send", n.Path, "READY=1", &syscall.Credential{Uid: nobody, Gid: nobody})
	m := mustReceive(t, n)
	if m.PID != h.cmd.Process.Pid || m.UID != nobody || m.GID != nobody || !m.Ready() {
		t.Errorf("got %+v, want PID %d from %d:%d", m, h.cmd.Process.Pid, nobody, nobody)
	}
	if code := h.wait(t); code != 0 {
		t.Fatalf("sender as nobody exited %d", code)
	}

	other := startHelper(t, bin, "send", n.Path, "READY=1", &syscall.Credential{Uid: nobody - 1, Gid: nobody - 1})
	if code := other.wait(t); code != helperPermission {
		t.Errorf("sender as %d exited %d, want %d (permission denied)", nobody-1, code, helperPermission)
	}
	// Nothing from it is queued: the next datagram is ours.
	t.Setenv(EnvNotifySocket, n.Path)
	if _, err := Notify("STATUS=marker"); err != nil {
		t.Fatal(err)
	}
	if m := mustReceive(t, n); m.PID != os.Getpid() || m.Fields[NotifyStatus] != "marker" {
		t.Errorf("got %+v, want the marker", m)
	}
}

func TestNotifyDirModes(t *testing.T) {
	parent := t.TempDir()
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	for _, tc := range []struct {
		uid  int
		want fs.FileMode
	}{
		{-1, NotifyDirMode},
		{0, NotifyDirMode},
		{os.Geteuid(), NotifyDirMode},
		{os.Geteuid() + 1000, NotifyDirModeShared},
	} {
		dir, err := NotifyDir(parent, tc.uid)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fileMode(t, dir); mode != fs.ModeDir|tc.want {
			t.Errorf("NotifyDir(uid %d): mode %v, want %v", tc.uid, mode, fs.ModeDir|tc.want)
		}
		if !strings.HasPrefix(filepath.Base(dir), "hupd-notify-") || filepath.Dir(dir) != parent {
			t.Errorf("NotifyDir made %s", dir)
		}
	}
	// The socket file is 0600 whatever the umask.
	unix.Umask(0)
	n := listenNotify(t, parent, -1, -1)
	if mode := fileMode(t, n.Path); mode != fs.ModeSocket|0o600 {
		t.Errorf("socket file mode %v, want %v", mode, fs.ModeSocket|0o600)
	}
	if _, err := NotifyDir(filepath.Join(parent, "missing"), -1); err == nil {
		t.Error("NotifyDir in a missing directory succeeded")
	}
}

func TestNotifyClose(t *testing.T) {
	warmUp(t)
	before := openFDs(t)
	dir := t.TempDir()
	n, err := ListenNotify(filepath.Join(dir, "n.sock"), -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvNotifySocket, n.Path)
	if _, err := Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	// The goroutine takes the queued datagram and blocks in a second
	// Receive, which Close must end.
	first := make(chan NotifyMessage)
	done := make(chan error, 1)
	go func() {
		m, err := n.Receive()
		if err != nil {
			done <- err
			return
		}
		first <- m
		_, err = n.Receive()
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-first:
	case err := <-done:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("no datagram")
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotifyClosed) {
			t.Errorf("pending Receive returned %v, want ErrNotifyClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not unblock Receive")
	}
	if _, err := n.Receive(); !errors.Is(err, ErrNotifyClosed) {
		t.Errorf("Receive after Close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Lstat(n.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file not removed: %v", err)
	}
	checkFDs(t, before)

	// Close leaves alone a file that replaced the socket.
	n, err = ListenNotify(filepath.Join(dir, "n.sock"), -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(n.Path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.Path, []byte("not mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Close()
	if b, err := os.ReadFile(n.Path); err != nil || string(b) != "not mine" {
		t.Errorf("Close removed or changed a file it did not create: %q, %v", b, err)
	}
	checkFDs(t, before)
}

// TestNotifyClosesPassedFDs sends fds with a datagram (as FDSTORE=1 does) and
// checks that Receive closed them: the write end of a pipe sent twice is gone
// once the read end sees EOF.
func TestNotifyClosesPassedFDs(t *testing.T) {
	warmUp(t)
	n := listenNotify(t, t.TempDir(), -1, -1)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	wfd := int(w.Fd())
	if err := unix.Sendmsg(s, []byte("FDSTORE=1\nFDNAME=x"), unix.UnixRights(wfd, wfd), &unix.SockaddrUnix{Name: n.Path}, 0); err != nil {
		t.Fatal(err)
	}
	w.Close() // only the two copies in flight remain
	before := openFDs(t)
	m := mustReceive(t, n)
	if m.ClosedFDs != 2 || m.PID != os.Getpid() || m.Fields["FDSTORE"] != "1" {
		t.Errorf("got %+v, want 2 closed fds", m)
	}
	checkFDs(t, before)
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	if k, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("pipe read = %d, %v; want EOF (a write end is still open)", k, err)
	}
}

func TestNotifyTooLong(t *testing.T) {
	n := listenNotify(t, t.TempDir(), -1, -1)
	t.Setenv(EnvNotifySocket, n.Path)
	long := "STATUS=" + strings.Repeat("x", NotifyMaxMessage-len("STATUS="))
	if _, err := Notify(long + "y\nREADY=1"); err != nil {
		t.Fatal(err)
	}
	m, err := receive(t, n)
	if !errors.Is(err, ErrNotifyTruncated) || m.PID != os.Getpid() || len(m.Fields) != 0 || m.Ready() {
		t.Errorf("too long: %+v, %v; want credentials, no fields, ErrNotifyTruncated", m, err)
	}
	if _, err := Notify(long); err != nil {
		t.Fatal(err)
	}
	if m := mustReceive(t, n); len(m.Fields[NotifyStatus]) != NotifyMaxMessage-len("STATUS=") {
		t.Errorf("datagram of exactly %d bytes: STATUS has %d bytes", NotifyMaxMessage, len(m.Fields[NotifyStatus]))
	}
}

// TestNotifyBurst sends more datagrams than the kernel queues
// (net.unix.max_dgram_qlen) while Receive reads them: none is lost and they
// arrive in order.
func TestNotifyBurst(t *testing.T) {
	n := listenNotify(t, t.TempDir(), -1, -1)
	t.Setenv(EnvNotifySocket, n.Path)
	const count = 300
	errc := make(chan error, 1)
	go func() {
		for i := range count {
			if _, err := Notify("STATUS=" + strconv.Itoa(i)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range count {
		m := mustReceive(t, n)
		if s := m.Fields[NotifyStatus]; s != strconv.Itoa(i) {
			t.Fatalf("datagram %d has STATUS=%s", i, s)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestNotifyReceiveCost: the receive buffers are the socket's, not each
// datagram's (a 4 KiB payload buffer and 1 KiB of control space were
// garbage per datagram).
func TestNotifyReceiveCost(t *testing.T) {
	n := listenNotify(t, t.TempDir(), -1, -1)
	t.Setenv(EnvNotifySocket, n.Path)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := Notify("STATUS=" + strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 1)
	mustReceive(t, n) // the first allocates the buffers
	// Batches queued before they are read (a sender blocks past
	// net.unix.max_dgram_qlen, 10 by default); only reading is counted.
	const batch, batches = 8, 5
	var total uint64
	for b := range batches {
		first := 1 + b*batch
		send(first, first+batch)
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for i := first; i < first+batch; i++ {
			m, err := n.Receive() // queued: does not block
			if err != nil || m.Fields[NotifyStatus] != strconv.Itoa(i) {
				t.Fatalf("datagram %d: %+v, %v", i, m, err)
			}
		}
		runtime.ReadMemStats(&m1)
		total += m1.TotalAlloc - m0.TotalAlloc
	}
	per := total / (batch * batches)
	t.Logf("a datagram allocates %d bytes", per)
	if per >= NotifyMaxMessage {
		t.Errorf("a datagram allocates %d bytes, want less than its buffer (%d)", per, NotifyMaxMessage)
	}
}

func TestListenNotifyErrors(t *testing.T) {
	dir := t.TempDir()
	long := "/" + strings.Repeat("a", 120)
	for _, p := range []string{"", "@", "relative.sock", long, "@" + long, filepath.Join(dir, "missing", "n.sock")} {
		if n, err := ListenNotify(p, -1, -1); err == nil {
			n.Close()
			t.Errorf("ListenNotify(%q) succeeded", p)
		}
	}

	// A regular file is never replaced.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenNotify(file, -1, -1); err == nil {
		t.Error("ListenNotify over a regular file succeeded")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Error("regular file changed")
	}

	// A live socket is in use; a stale one is replaced.
	path := filepath.Join(dir, "n.sock")
	n := listenNotify(t, dir, -1, -1)
	if _, err := ListenNotify(n.Path, -1, -1); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("ListenNotify on a live socket: %v, want EADDRINUSE", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd) // leaves a stale socket file
	n2, err := ListenNotify(path, -1, -1)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer n2.Close()
	t.Setenv(EnvNotifySocket, path)
	if _, err := Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	if m := mustReceive(t, n2); !m.Ready() {
		t.Errorf("got %+v", m)
	}
}

func TestParseNotify(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"READY=1", map[string]string{"READY": "1"}},
		{"READY=1\n", map[string]string{"READY": "1"}},
		{"READY=1\nSTATUS=a=b c\n\nSTATUS=later", map[string]string{"READY": "1", "STATUS": "later"}},
		{"STATUS=", map[string]string{"STATUS": ""}},
		{"noequals\n=empty key\nX==y", map[string]string{"X": "=y"}},
		{"A=1\r\nB= 2 ", map[string]string{"A": "1\r", "B": " 2 "}},
		{"K=\x00v\xff", map[string]string{"K": "\x00v\xff"}},
	} {
		if got := ParseNotify([]byte(tc.in)); !maps.Equal(got, tc.want) || got == nil {
			t.Errorf("ParseNotify(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNotifyMessageHelpers(t *testing.T) {
	msg := func(kv ...string) NotifyMessage {
		m := NotifyMessage{Fields: map[string]string{}}
		for i := 0; i < len(kv); i += 2 {
			m.Fields[kv[i]] = kv[i+1]
		}
		return m
	}
	maxUsec := strconv.FormatInt(int64(1<<63-1)/int64(time.Microsecond), 10)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"5000000", 5 * time.Second, true},
		{maxUsec, time.Duration(1<<63-1) / time.Microsecond * time.Microsecond, true},
		{maxUsec + "0", 0, false},
		{"18446744073709551616", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{" 1", 0, false},
		{"1s", 0, false},
		{"", 0, false},
	} {
		if d, ok := msg(NotifyWatchdogUsec, tc.v).Usec(NotifyWatchdogUsec); d != tc.want || ok != tc.ok {
			t.Errorf("Usec(%q) = %v, %v; want %v, %v", tc.v, d, ok, tc.want, tc.ok)
		}
	}
	if _, ok := msg().Usec(NotifyWatchdogUsec); ok {
		t.Error("Usec of a missing key is ok")
	}
	for v, want := range map[string]int{"1": 1, "4194304": 4194304, "0": 0, "-5": 0, "x": 0, "": 0, "99999999999": 0} {
		if pid, ok := msg(NotifyMainPID, v).MainPID(); pid != want || ok != (want > 0) {
			t.Errorf("MainPID(%q) = %d, %v", v, pid, ok)
		}
	}
	if e, ok := msg(NotifyErrno, "2").Errno(); e != syscall.ENOENT || !ok {
		t.Errorf("Errno = %v, %v", e, ok)
	}
	if _, ok := msg(NotifyErrno, "0").Errno(); ok {
		t.Error("ERRNO=0 is ok")
	}
	if msg(NotifyReady, "true").Ready() || !msg(NotifyReady, "1").Ready() || msg().Ready() {
		t.Error("Ready is not exactly READY=1")
	}
	if !msg(NotifyWatchdog, "1").Flag(NotifyWatchdog) || msg(NotifyWatchdog, "trigger").Flag(NotifyWatchdog) {
		t.Error("Flag(WATCHDOG) wrong")
	}
	if s, ok := msg().Status(); s != "" || ok {
		t.Error("Status of a missing key is ok")
	}
	if s, ok := msg(NotifyStatus, "").Status(); s != "" || !ok {
		t.Error("empty STATUS= is not ok")
	}
}

// FuzzParseNotify checks ParseNotify against a second implementation (the
// last line with a key wins) and that what it returns prints back to itself.
func FuzzParseNotify(f *testing.F) {
	for _, s := range []string{
		"", "READY=1", "READY=1\nSTATUS=x=y\n", "=x", "a", "\n\n", "A=1\nA=2", "RELOADING=1\nMONOTONIC_USEC=123",
		"WATCHDOG=trigger", "MAINPID=\x00", "K=v\r\n", "\xff=\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := ParseNotify(b)
		want := map[string]string{}
		lines := bytes.Split(b, []byte("\n"))
		for i := len(lines) - 1; i >= 0; i-- {
			eq := bytes.IndexByte(lines[i], '=')
			if eq <= 0 {
				continue
			}
			if k := string(lines[i][:eq]); !hasKey(want, k) {
				want[k] = string(lines[i][eq+1:])
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseNotify(%q) = %q, want %q", b, got, want)
		}
		var out []string
		for _, k := range slices.Sorted(maps.Keys(got)) {
			if k == "" || strings.ContainsAny(k, "=\n") || strings.Contains(got[k], "\n") {
				t.Fatalf("ParseNotify(%q): bad field %q=%q", b, k, got[k])
			}
			out = append(out, k+"="+got[k])
		}
		if again := ParseNotify([]byte(strings.Join(out, "\n"))); !maps.Equal(again, got) {
			t.Fatalf("ParseNotify(%q) = %q does not survive printing: %q", b, got, again)
		}
	})
}
