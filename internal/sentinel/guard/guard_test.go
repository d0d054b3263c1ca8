package guard

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/cgtest"
	"golang.org/x/sys/unix"
)

// testCgroup makes a cgroup under a writable cgroup2 mount, or skips.
func testCgroup(t *testing.T) string {
	t.Helper()
	dir := cgtest.Group(t, "hupd-guard-test")
	if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err != nil {
		t.Skipf("no cgroup.freeze (kernel before 5.2): %v", err)
	}
	return dir
}

// TestKillFrozen: without cgroup.kill, freezing the cgroup and killing
// what cgroup.procs lists ends every member, one in a session of its own
// included; the emptied cgroup is then removed.
func TestKillFrozen(t *testing.T) {
	dir := testCgroup(t)
	dfd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	cmd := exec.Command("/bin/sh", "-c", "sleep 1000 & setsid sleep 1000 & echo started; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, UseCgroupFD: true, CgroupFD: dfd}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	buf := make([]byte, 8)
	if n, _ := out.Read(buf); string(buf[:n]) != "started\n" {
		t.Fatalf("sh said %q", buf[:n])
	}
	procs, err := readFile(dir + "/cgroup.procs")
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, line := range splitLines(procs) {
		pid, _ := strconv.Atoi(line)
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			t.Fatalf("pidfd_open %d: %v", pid, err)
		}
		defer unix.Close(fd)
		fds = append(fds, fd)
	}
	if len(fds) != 3 {
		t.Fatalf("cgroup.procs %q: want sh and two sleeps", procs)
	}
	if !killFrozen(dir) {
		t.Fatal("killFrozen failed")
	}
	for _, fd := range fds {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(p, 10000); n != 1 {
			t.Fatalf("a member of the cgroup is alive after killFrozen (cgroup.procs was %q)", procs)
		}
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("sh not reaped")
	}
	if !removeCgroup(dir) {
		t.Fatal("removeCgroup failed")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there: %v", dir, err)
	}
}
