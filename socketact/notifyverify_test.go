//go:build linux

package socketact

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// receiveChecked is receive for ReceiveChecked.
func receiveChecked(t *testing.T, n *NotifySocket, check func(int) bool) NotifyMessage {
	t.Helper()
	ch := make(chan NotifyMessage, 1)
	go func() {
		m, err := n.ReceiveChecked(check)
		if err != nil {
			t.Errorf("ReceiveChecked: %v", err)
		}
		ch <- m
	}()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		n.Close()
		<-ch
		t.Fatal("no datagram within 10s")
		return NotifyMessage{}
	}
}

// TestNotifyChecked: the check sees the sender's PID while it is there; its
// answer is Verified; a datagram from a sender reaped before it is read is
// never verified, whatever the check says; the pidfds are not left open.
func TestNotifyChecked(t *testing.T) {
	warmUp(t)
	n := listenNotify(t, t.TempDir(), -1, -1)
	if !n.PassesPidfd() {
		var u unix.Utsname
		unix.Uname(&u)
		t.Logf("kernel %s has no SO_PASSPIDFD: testing the fallback", unix.ByteSliceToString(u.Release[:]))
	}
	t.Setenv(EnvNotifySocket, n.Path)
	before := openFDs(t)
	var asked []int
	yes := func(pid int) bool { asked = append(asked, pid); return true }
	no := func(pid int) bool { asked = append(asked, pid); return false }

	Notify("STATUS=a")
	if m := receiveChecked(t, n, yes); !m.Verified || m.PID != os.Getpid() {
		t.Errorf("live sender, check true: Verified %v, PID %d", m.Verified, m.PID)
	}
	Notify("STATUS=b")
	if m := receiveChecked(t, n, no); m.Verified {
		t.Error("check false: Verified")
	}
	Notify("STATUS=c")
	if m := receiveChecked(t, n, nil); m.Verified {
		t.Error("no check: Verified")
	}
	if !slices.Equal(asked, []int{os.Getpid(), os.Getpid()}) {
		t.Errorf("check asked about %v", asked)
	}

	// A sender that sent and was reaped before the datagram is read.
	cmd := exec.Command(os.Args[0], "-test.run=^TestNotifyHelperProcess$")
	cmd.Env = append(os.Environ(), envNotifyHelper+"=send", envNotifyMsg+"=READY=1")
	if err := cmd.Run(); err != nil { // stdin is /dev/null: it exits at once
		t.Fatal(err)
	}
	asked = nil
	m := receiveChecked(t, n, yes)
	if m.PID != cmd.Process.Pid || !m.Ready() {
		t.Fatalf("got %+v from %d", m, cmd.Process.Pid)
	}
	if m.Verified {
		t.Error("a sender reaped before its datagram was read was verified")
	}
	if want := ownCgroupID(t); want != 0 && m.CgroupID != 0 && m.CgroupID != want {
		t.Errorf("reaped sender: CgroupID %d, want %d (ours, which it shared)", m.CgroupID, want)
	}
	checkFDs(t, before)
}

// TestNotifyCgroupID: the sender's cgroup id is the inode number of its
// cgroup v2 directory.
func TestNotifyCgroupID(t *testing.T) {
	want := ownCgroupID(t)
	if want == 0 {
		t.Skip("no cgroup2 mount")
	}
	n := listenNotify(t, t.TempDir(), -1, -1)
	if !n.PassesPidfd() {
		t.Skip("no SO_PASSPIDFD")
	}
	t.Setenv(EnvNotifySocket, n.Path)
	Notify("STATUS=x")
	m := mustReceive(t, n)
	if m.CgroupID == 0 {
		t.Skip("the kernel does not report PIDFD_INFO_CGROUPID (Linux < 6.13)")
	}
	if m.CgroupID != want {
		t.Errorf("CgroupID %d, want %d", m.CgroupID, want)
	}
}

// ownCgroupID returns the inode number of this process's cgroup v2
// directory, 0 if there is no cgroup2 mount.
func ownCgroupID(t *testing.T) uint64 {
	t.Helper()
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	var rel string
	for line := range strings.SplitSeq(string(cg), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel = p
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil || rel == "" {
		return 0
	}
	for line := range strings.SplitSeq(string(mi), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if f, g := strings.Fields(pre), strings.Fields(post); ok && len(f) >= 5 && len(g) > 0 && g[0] == "cgroup2" {
			var st unix.Stat_t
			if unix.Stat(filepath.Join(f[4], rel), &st) == nil {
				return st.Ino
			}
		}
	}
	return 0
}

// TestNotifyVerifyFallback: without SO_PASSPIDFD a pidfd is opened from the
// PID; a PID that no longer exists is not verified.
func TestNotifyVerifyFallback(t *testing.T) {
	yes := func(int) bool { return true }
	c := control{pidfd: -1}
	if !c.verify(os.Getpid(), false, yes) {
		t.Error("self not verified")
	}
	if c.pidfd < 0 {
		t.Error("no pidfd opened")
	}
	c.close()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	c = control{pidfd: -1}
	if c.verify(cmd.Process.Pid, false, yes) {
		t.Error("reaped pid verified")
	}
	c.close()
	c = control{pidfd: -1}
	if c.verify(os.Getpid(), true, yes) {
		t.Error("SO_PASSPIDFD on but no SCM_PIDFD: verified")
	}
}

// TestNotifyBarrier: the fd of BARRIER=1 is kept (the sender sees POLLHUP
// only once the receiver closes it), other fds of that datagram and the fds
// of any other datagram are closed.
func TestNotifyBarrier(t *testing.T) {
	warmUp(t)
	n := listenNotify(t, t.TempDir(), -1, -1)
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	var p, q [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if err := unix.Pipe2(q[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(q[0])
	send := func(msg string, fds ...int) {
		t.Helper()
		var oob []byte
		if len(fds) > 0 {
			oob = unix.UnixRights(fds...)
		}
		if err := unix.Sendmsg(s, []byte(msg), oob, &unix.SockaddrUnix{Name: n.Path}, 0); err != nil {
			t.Fatal(err)
		}
	}
	hup := func(fd int) bool {
		pfd := []unix.PollFd{{Fd: int32(fd)}}
		k, err := unix.Poll(pfd, 0)
		return err == nil && k == 1 && pfd[0].Revents&unix.POLLHUP != 0
	}
	send("BARRIER=1", p[1], q[1])
	send("BARRIER=1") // no fd: nothing to keep
	send("STATUS=x", p[1])
	unix.Close(p[1])
	unix.Close(q[1])
	before := openFDs(t)

	m := mustReceive(t, n)
	if m.Barrier == nil || m.ClosedFDs != 1 {
		t.Fatalf("BARRIER=1 with two fds: Barrier %v, ClosedFDs %d; want the first kept, one closed", m.Barrier, m.ClosedFDs)
	}
	if !hup(q[0]) {
		t.Error("the second fd of BARRIER=1 was not closed")
	}
	if m2 := mustReceive(t, n); m2.Barrier != nil || !m2.Flag(NotifyBarrier) {
		t.Errorf("BARRIER=1 without fd: %+v", m2)
	}
	if m3 := mustReceive(t, n); m3.Barrier != nil || m3.ClosedFDs != 1 {
		t.Errorf("STATUS=x with an fd: Barrier %v, ClosedFDs %d", m3.Barrier, m3.ClosedFDs)
	}
	if hup(p[0]) {
		t.Fatal("POLLHUP on the barrier pipe before the barrier fd was closed")
	}
	if fl, err := unix.FcntlInt(m.Barrier.Fd(), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
		t.Errorf("barrier fd flags %#x, %v: want close-on-exec", fl, err)
	}
	m.Barrier.Close()
	if !hup(p[0]) {
		t.Error("no POLLHUP once the barrier fd was closed")
	}
	after := openFDs(t)
	if len(after) != len(before) {
		t.Errorf("fds: %d before, %d after", len(before), len(after))
	}
}

func TestProcessGroup(t *testing.T) {
	if g, ok := ProcessGroup(os.Getpid()); !ok || g != unix.Getpgrp() {
		t.Errorf("ProcessGroup(self) = %d, %v; want %d", g, ok, unix.Getpgrp())
	}
	for _, pid := range []int{0, -1} {
		if _, ok := ProcessGroup(pid); ok {
			t.Errorf("ProcessGroup(%d) ok", pid)
		}
	}
}

// TestNotifyOrigin: a datagram from the process the socket's generation
// started (SetOrigin) is verified without check, also once that process
// has exited and been reaped (a program that says READY=1 and exits); a
// datagram from another process reaped the same way is not.
func TestNotifyOrigin(t *testing.T) {
	warmUp(t)
	n := listenNotify(t, t.TempDir(), -1, -1)
	if !n.PassesPidfd() {
		t.Skip("no SO_PASSPIDFD")
	}
	var fs unix.Statfs_t
	self, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Skip(err)
	}
	unix.Fstatfs(self, &fs)
	unix.Close(self)
	if fs.Type != pidfsMagic {
		t.Skip("pidfds without pidfs (Linux < 6.9): a pidfd does not name its process")
	}
	t.Setenv(EnvNotifySocket, n.Path)
	no := func(int) bool { return false }
	send := func() (int, int) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNotifyHelperProcess$")
		cmd.Env = append(os.Environ(), envNotifyHelper+"=send", envNotifyMsg+"=READY=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.PidfdOpen(cmd.Process.Pid, 0) // not reaped before Wait
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		return cmd.Process.Pid, fd
	}
	pid, fd := send()
	n.SetOrigin(fd)
	if m := receiveChecked(t, n, no); m.PID != pid || !m.Verified {
		t.Errorf("the origin, reaped: PID %d (want %d), Verified %v", m.PID, pid, m.Verified)
	}
	other, ofd := send()
	unix.Close(ofd)
	if m := receiveChecked(t, n, no); m.PID != other || m.Verified {
		t.Errorf("another process, reaped: PID %d (want %d), Verified %v", m.PID, other, m.Verified)
	}
}

// TestStartTime: the start time names a process: the same for two reads,
// not before this process's for a child started later, none for a PID
// that does not exist.
func TestStartTime(t *testing.T) {
	a, ok1 := StartTime(os.Getpid())
	b, ok2 := StartTime(os.Getpid())
	if !ok1 || !ok2 || a != b || a == 0 {
		t.Fatalf("own start time %d %v, %d %v", a, ok1, b, ok2)
	}
	c := exec.Command("sleep", "10")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	if s, ok := StartTime(c.Process.Pid); !ok || s < a {
		t.Errorf("child's start time %d %v, want ≥ %d", s, ok, a)
	}
	if _, ok := StartTime(1 << 30); ok {
		t.Error("a start time for a PID that does not exist")
	}
}
