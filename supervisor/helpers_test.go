package supervisor

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startGroup starts sh leading a process group of its own with a
// background sleep in it, and returns sh and the sleep's PID.
func startGroup(t *testing.T) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "sleep 1000 & echo $!; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Kill(-cmd.Process.Pid, unix.SIGKILL); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	return cmd, pid
}

// exitsWithin waits until pid has exited (its pidfd is readable).
func exitsWithin(t *testing.T, pid int, d time.Duration) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return true // gone and reaped
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(d)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(max(time.Until(deadline), 0)/time.Millisecond))
		if err != unix.EINTR {
			return n == 1
		}
	}
}

// TestHelperGroupsKillAll: when Run returns, the groups of the helpers
// still running (a check hupd stopped during) are killed with whatever
// they started, and a helper that starts after that is killed at once.
func TestHelperGroupsKillAll(t *testing.T) {
	var h helperGroups
	running, bg := startGroup(t)
	h.add(running.Process.Pid)
	ended, bg2 := startGroup(t)
	h.add(ended.Process.Pid)
	h.end(ended.Process.Pid) // its leader exited: its group goes at once
	if !exitsWithin(t, bg2, waitLimit) {
		t.Fatalf("the group of a helper that ended is alive")
	}
	if exitsWithin(t, bg, 0) {
		t.Fatalf("the running helper's group was killed before killAll")
	}
	h.killAll()
	if !exitsWithin(t, bg, waitLimit) || !exitsWithin(t, running.Process.Pid, waitLimit) {
		t.Fatalf("a running helper's group outlived killAll")
	}
	late, bg3 := startGroup(t)
	h.add(late.Process.Pid)
	if !exitsWithin(t, bg3, waitLimit) {
		t.Fatalf("a helper started after killAll lives")
	}
}
