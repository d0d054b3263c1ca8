package signals

import (
	"syscall"
	"testing"
)

func TestExit(t *testing.T) {
	exited := func(code int) syscall.WaitStatus { return syscall.WaitStatus(code << 8) }
	killed := func(sig syscall.Signal, core bool) syscall.WaitStatus {
		ws := syscall.WaitStatus(sig)
		if core {
			ws |= 0x80
		}
		return ws
	}
	for _, tc := range []struct {
		ws      syscall.WaitStatus
		code    int
		success bool
		str     string
	}{
		{exited(0), 0, true, "exit status 0"},
		{exited(3), 3, false, "exit status 3"},
		{exited(255), 255, false, "exit status 255"},
		{killed(syscall.SIGTERM, false), 143, false, "killed by signal TERM"},
		{killed(syscall.SIGKILL, false), 137, false, "killed by signal KILL"},
		{killed(syscall.SIGSEGV, true), 139, false, "killed by signal SEGV (core dumped)"},
		{killed(36, false), 164, false, "killed by signal RTMIN+2"},
	} {
		e := Exit{PID: 1, Status: tc.ws}
		if e.Code() != tc.code || e.Success() != tc.success || e.String() != tc.str {
			t.Errorf("status %#x: Code %d Success %v String %q; want %d %v %q", int(tc.ws), e.Code(), e.Success(), e.String(), tc.code, tc.success, tc.str)
		}
	}
}
