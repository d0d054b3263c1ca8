package signals

import (
	"fmt"
	"syscall"
)

// Exit is how a process ended.
type Exit struct {
	PID    int
	Status syscall.WaitStatus
}

// Code returns the exit code a shell would report: the exit status, or
// 128+n for a process killed by signal n.
func (e Exit) Code() int {
	if e.Status.Signaled() {
		return 128 + int(e.Status.Signal())
	}
	return e.Status.ExitStatus()
}

// Success reports a zero exit status.
func (e Exit) Success() bool { return e.Status.Exited() && e.Status.ExitStatus() == 0 }

func (e Exit) String() string {
	if e.Status.Signaled() {
		s := fmt.Sprintf("killed by signal %s", Name(e.Status.Signal()))
		if e.Status.CoreDump() {
			s += " (core dumped)"
		}
		return s
	}
	return fmt.Sprintf("exit status %d", e.Status.ExitStatus())
}
