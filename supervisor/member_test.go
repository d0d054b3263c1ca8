package supervisor

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/hupd/hupd/contain"
)

// TestMember: a generation's members are its process, that process's
// descendants, and its process group; never hupd, hupd's ancestors, PID 1
// or an unrelated process.
func TestMember(t *testing.T) {
	start := func(pgid bool) *exec.Cmd {
		// sh waits for its own child, which is in its group and descends
		// from it.
		c := exec.Command("sh", "-c", "sleep 1000 & wait")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: pgid}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL); c.Process.Kill(); c.Wait() })
		return c
	}
	gen := start(true)
	other := start(false)
	s := &Supervisor{self: os.Getpid()}
	grp, _ := contain.Off("test").NewGroup(1) // the fallback: a process group
	grp.SetLeader(gen.Process.Pid)
	g := &generation{pgid: gen.Process.Pid, grp: grp}
	g.origin.Store(int64(gen.Process.Pid))
	for _, tc := range []struct {
		name string
		pid  int
		want bool
	}{
		{"the process started", gen.Process.Pid, true},
		{"hupd", os.Getpid(), false},
		{"hupd's parent", os.Getppid(), false},
		{"pid 1", 1, false},
		{"unrelated", other.Process.Pid, false},
		{"nonexistent", 1 << 30, false},
	} {
		if got := s.member(g, tc.pid); got != tc.want {
			t.Errorf("%s (%d): member = %v, want %v", tc.name, tc.pid, got, tc.want)
		}
	}
	// A process only in the group: the root no longer counts (as after a
	// MAINPID= hand-over), its group does.
	g.origin.Store(0)
	if !s.member(g, gen.Process.Pid) {
		t.Error("group leader not a member by its group")
	}
	// Once the group is no longer the generation's (DropLeader), it makes
	// no member.
	grp.DropLeader()
	if s.member(g, gen.Process.Pid) {
		t.Error("a process of a dropped group is a member")
	}
	// By descent only: another group, the root set.
	g2 := &generation{pgid: 1 << 30}
	g2.mainRoot.Store(int64(other.Process.Pid))
	if !s.member(g2, other.Process.Pid) {
		t.Error("the accepted MAINPID is not a member of its own tree")
	}
	if s.member(g2, gen.Process.Pid) {
		t.Error("a process of another tree and group is a member")
	}
}
