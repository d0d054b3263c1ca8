package supervisor

import (
	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

// Sentinel ends a generation's processes when hupd dies (package
// internal/sentinel). The supervisor registers each generation from the
// moment its process exists, before its program is exec'd, until it is
// gone. Its methods may be called from any goroutine.
type Sentinel interface {
	// Register says that generation gen runs in process group pgid, with
	// its main process behind pidfd (borrowed: the callee keeps a
	// duplicate) and, when cgroup is not "", in that cgroup directory.
	// A second Register of gen replaces the first.
	Register(gen, pgid, pidfd int, cgroup string) error
	// Unregister says that generation gen is gone.
	Unregister(gen int) error
	// Handover returns hupd's end of the sentinel's socket (fd; -1 if
	// there is none) and the sentinel's PID, for an in-place upgrade.
	Handover() (fd, pid int)
}

// SentinelState is the sentinel as an in-place upgrade hands it over.
type SentinelState struct {
	FD  int `json:"fd"`
	PID int `json:"pid"`
}

// guard registers generation g (process group pgid, main process behind
// pidfd, and its cgroup when it has one) with the sentinel, if there is
// one. Any goroutine: it reads only what is fixed when g starts.
func (s *Supervisor) guard(g *generation, pgid, pidfd int) {
	if s.opts.Sentinel == nil {
		return
	}
	if g.grp.Path() != "" {
		pgid = 0 // the cgroup is the generation: a group id is never trusted there
	}
	if err := s.opts.Sentinel.Register(g.guardKey(), pgid, pidfd, g.grp.Path()); err != nil {
		s.log.Warn(logev.SentinelRegisterFailed, KeyGen, g.num, KeyPID, pgid, KeyError, err)
	}
}

// guardPID is guard for a process hupd has not started itself (a
// MAINPID= it follows, a generation taken over from an upgrade): its pidfd
// is opened here. The PID is hupd's child (or orphan) not reaped yet.
func (s *Supervisor) guardPID(g *generation, pid int) {
	if s.opts.Sentinel == nil {
		return
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		fd = -1 // gone already: its group is what is left to end
	}
	s.guard(g, g.pgid, fd)
	if fd >= 0 {
		unix.Close(fd)
	}
}

// guardKey is what the sentinel knows g by: its generation's number for
// the first start of instance 0 (as before instances existed, so that an
// upgrade from an older binary keeps its registrations), beyond any
// generation's number for the others, one key per start of an instance
// (a new one may run while the one it replaces still drains).
func (g *generation) guardKey() int { return g.num + g.inst<<32 + max(g.start-1, 0)<<48 }

// unguard tells the sentinel that g is gone.
func (s *Supervisor) unguard(g *generation) {
	if s.opts.Sentinel == nil {
		return
	}
	if err := s.opts.Sentinel.Unregister(g.guardKey()); err != nil {
		s.log.Warn(logev.SentinelUnregisterFailed, KeyGen, g.num, KeyError, err)
	}
}

// pidfdOpen opens a pidfd for pid, -1 on failure. Only for a child not
// reaped yet (under the reaper's lock), so that the PID is the child's.
func pidfdOpen(pid int) int {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1
	}
	return fd
}
