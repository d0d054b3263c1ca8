// Package sentinel is hupd's side of the sentinel: a tiny process hupd
// starts at startup that outlives hupd just long enough to end every
// generation when hupd dies (SIGKILL, OOM kill, a crash), then exits. The
// parent-death signal reaches only a generation's first process; the
// sentinel also ends the rest of its process group (pre-fork workers),
// its main process if it moved (MAINPID=), and, when the generation has a
// cgroup, everything in it (a daemon that called setsid included).
//
// The sentinel is hupd's own binary (/proc/self/exe) in the mode of
// package guard, which describes the protocol. hupd keeps its end of the
// socketpair close-on-exec: no child inherits it, so EOF reaches the
// sentinel exactly when hupd's process is gone. An in-place upgrade keeps
// the sentinel: its fd and PID travel in the upgrade state (Handover,
// Adopt).
//
// Invariant: every generation hupd runs is registered from the moment its
// process exists (before its program is exec'd) until it is gone; a
// sentinel that dies while hupd runs is started again and every
// registration is sent again.
package sentinel

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hupd/hupd/internal/sentinel/guard"
	"github.com/hupd/hupd/signals"
	"golang.org/x/sys/unix"
)

// Sentinel is hupd's handle on the sentinel process; its methods may be
// called from any goroutine.
type Sentinel struct {
	reaper *signals.Reaper
	// lost is told when the sentinel died while hupd runs, with the
	// outcome of starting it again (nil: running again).
	lost func(e signals.Exit, err error)

	mu      sync.Mutex
	conn    int // hupd's end of the socketpair; -1 once closed
	pid     int
	started time.Time
	quick   int // deaths in a row within minLife of the start
	closed  bool
	regs    map[int]reg   // what is registered, to send again to a new sentinel
	done    chan struct{} // closed when the watcher has seen the last exit
	last    signals.Exit  // the exit after Close
	reaped  bool          // last is set
}

// reg is a registration as sent; pidfd is hupd's own duplicate.
type reg struct {
	pgid   int
	pidfd  int
	cgroup string
}

// A sentinel that dies while hupd runs is started again, unless it died
// within minLife of its start maxQuick times in a row: one that dies at
// once would die again.
const (
	minLife  = time.Second
	maxQuick = 3
)

// ErrDying is what lost gets when a sentinel keeps dying.
var ErrDying = errors.New("sentinel: died within a second of its start 3 times in a row; not started again")

// Start starts the sentinel through r (which must be running or started
// before long: the sentinel is its child). lost may be nil.
func Start(r *signals.Reaper, lost func(e signals.Exit, err error)) (*Sentinel, error) {
	s := &Sentinel{reaper: r, lost: lost, conn: -1, regs: map[int]reg{}, done: make(chan struct{})}
	exited, err := s.start()
	if err != nil {
		return nil, err
	}
	go s.watch(exited)
	return s, nil
}

// Adopt takes over the sentinel an upgrading hupd handed over (Handover):
// hupd's end fd and the sentinel's pid, whose exit r delivers on exited
// (signals.Reaper.Watch, before the reaper runs). It sets fd close-on-exec.
func Adopt(r *signals.Reaper, fd, pid int, exited <-chan signals.Exit, lost func(e signals.Exit, err error)) *Sentinel {
	unix.CloseOnExec(fd)
	s := &Sentinel{reaper: r, lost: lost, conn: fd, pid: pid, started: time.Now(), regs: map[int]reg{}, done: make(chan struct{})}
	go s.watch(exited)
	return s
}

// start starts a sentinel process and makes it s's; s is not shared yet.
func (s *Sentinel) start() (<-chan signals.Exit, error) {
	conn, pid, exited, err := s.spawn()
	if err != nil {
		return nil, err
	}
	s.conn, s.pid, s.started = conn, pid, time.Now()
	return exited, nil
}

// spawn starts a sentinel process and returns hupd's end of its socket,
// its PID and its exit, once it is armed (up to a few seconds: never with
// s.mu held, or registrations, and with them spawns, would wait).
func (s *Sentinel) spawn() (conn, pid int, exited <-chan signals.Exit, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, nil, fmt.Errorf("sentinel: %w", os.NewSyscallError("socketpair", err))
	}
	ours, theirs := fds[0], fds[1]
	defer unix.Close(theirs)
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(ours)
		return -1, 0, nil, fmt.Errorf("sentinel: %w", os.NewSyscallError("open "+os.DevNull, err))
	}
	defer unix.Close(null)
	attr := &syscall.ProcAttr{
		// One P and no cgroup polling keep its Go runtime small.
		Env:   []string{guard.EnvMarker + "=" + guard.Version, "GOMAXPROCS=1", "GODEBUG=updatemaxprocs=0"},
		Files: []uintptr{uintptr(null), uintptr(null), 2, uintptr(theirs)},
		// A session of its own: no group signal of hupd's or a
		// generation's, no terminal's hangup reaches it. No parent-death
		// signal: it must outlive hupd.
		Sys: &syscall.SysProcAttr{Setsid: true},
	}
	if guard.FD != 3 {
		panic("sentinel: guard.FD must be the fd after stdio")
	}
	pid, exited, err = s.reaper.Start(func() (int, error) {
		// /proc/self/exe: hupd's own binary, even if replaced on disk.
		return syscall.ForkExec("/proc/self/exe", []string{guard.Argv0}, attr)
	})
	if err != nil {
		unix.Close(ours)
		return -1, 0, nil, fmt.Errorf("sentinel: %w", err)
	}
	if err := awaitArmed(ours); err != nil {
		unix.Close(ours) // it sees EOF and exits, if it ever runs
		unix.Kill(pid, unix.SIGKILL)
		return -1, 0, nil, fmt.Errorf("sentinel: %w", err)
	}
	return ours, pid, exited, nil
}

// armTimeout bounds the sentinel's start-up, a Go runtime's.
const armTimeout = 5 * time.Second

// awaitArmed waits for the sentinel's guard.Armed on fd.
func awaitArmed(fd int) error {
	end := time.Now().Add(armTimeout)
	for {
		left := time.Until(end)
		if left <= 0 {
			return fmt.Errorf("not armed within %s", armTimeout)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		if pfd[0].Revents == 0 {
			continue
		}
		var b [8]byte
		n, err := unix.Read(fd, b[:])
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			continue
		case err != nil:
			return os.NewSyscallError("read", err)
		case string(b[:n]) != guard.Armed:
			return fmt.Errorf("exited during its start-up (said %q)", b[:n])
		}
		return nil
	}
}

// watch waits for each sentinel's exit; one that dies while hupd runs is
// started again, and told every registration.
func (s *Sentinel) watch(exited <-chan signals.Exit) {
	for {
		e := <-exited
		s.mu.Lock()
		if s.closed {
			s.last, s.reaped = e, true
			s.mu.Unlock()
			close(s.done)
			return
		}
		unix.Close(s.conn)
		s.conn = -1
		if time.Since(s.started) < minLife {
			s.quick++
		} else {
			s.quick = 0
		}
		err := ErrDying
		if s.quick < maxQuick {
			// Started without the lock: Register and Unregister go on
			// meanwhile (failing to send, but kept in regs, which the
			// new sentinel is told below).
			s.mu.Unlock()
			conn, pid, next, serr := s.spawn()
			s.mu.Lock()
			switch err = serr; {
			case err != nil:
			case s.closed:
				// hupd stops: the new one sees EOF at once, with
				// nothing registered, and exits; its exit ends watch.
				unix.Close(conn)
				s.pid, exited = pid, next
				s.mu.Unlock()
				continue
			default:
				s.conn, s.pid, s.started, exited = conn, pid, time.Now(), next
				for gen, r := range s.regs {
					if err = s.send(gen, r); err != nil {
						break
					}
				}
			}
		}
		s.mu.Unlock()
		if s.lost != nil {
			s.lost(e, err)
		}
		if err != nil {
			s.mu.Lock()
			close(s.done)
			s.mu.Unlock()
			return
		}
	}
}

// PID returns the sentinel's PID (0 when there is none any more).
func (s *Sentinel) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn < 0 {
		return 0
	}
	return s.pid
}

// Register tells the sentinel that generation gen runs in process group
// pgid with its main process behind pidfd (-1: none; the caller keeps its
// own) and, when cgroup is not "", in that cgroup directory, which the
// sentinel kills and removes. A second Register of gen replaces the first.
func (s *Sentinel) Register(gen, pgid, pidfd int, cgroup string) error {
	r := reg{pgid: pgid, pidfd: -1, cgroup: cgroup}
	if pidfd >= 0 {
		fd, err := unix.FcntlInt(uintptr(pidfd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return fmt.Errorf("sentinel: %w", os.NewSyscallError("fcntl", err))
		}
		r.pidfd = fd
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.regs[gen]; ok && old.pidfd >= 0 {
		unix.Close(old.pidfd)
	}
	s.regs[gen] = r
	return s.send(gen, r)
}

// Unregister tells the sentinel that generation gen is gone.
func (s *Sentinel) Unregister(gen int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.regs[gen]
	if !ok {
		return nil
	}
	if old.pidfd >= 0 {
		unix.Close(old.pidfd)
	}
	delete(s.regs, gen)
	return s.sendMsg(guard.Unregister+guard.Sep+strconv.Itoa(gen), nil)
}

// send sends a registration; s.mu is held.
func (s *Sentinel) send(gen int, r reg) error {
	msg := guard.Register + guard.Sep + strconv.Itoa(gen) + guard.Sep + strconv.Itoa(r.pgid) + guard.Sep + r.cgroup
	var rights []byte
	if r.pidfd >= 0 {
		rights = unix.UnixRights(r.pidfd)
	}
	return s.sendMsg(msg, rights)
}

func (s *Sentinel) sendMsg(msg string, rights []byte) error {
	if len(msg) > guard.MaxMessage {
		return fmt.Errorf("sentinel: message of %d bytes (a cgroup path too long?)", len(msg))
	}
	if s.conn < 0 {
		return errors.New("sentinel: not running")
	}
	for {
		// Never blocking: a sentinel stopped (SIGSTOP) with a full queue
		// must not stall hupd's spawns; the registration fails instead.
		err := unix.Sendmsg(s.conn, []byte(msg), rights, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sentinel: %w", os.NewSyscallError("sendmsg", err))
		}
		return nil
	}
}

// Handover returns, for an in-place upgrade, hupd's end of the socket
// (its close-on-exec flag is the caller's to clear) and the sentinel's
// PID; fd is -1 when there is no sentinel any more.
func (s *Sentinel) Handover() (fd, pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn, s.pid
}

// Close closes hupd's end: the sentinel ends whatever is still registered
// (nothing, once every generation has exited) and exits. Close waits up to
// wait for that exit and returns it (ok false if it did not come).
func (s *Sentinel) Close(wait time.Duration) (e signals.Exit, ok bool) {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.conn >= 0 {
			unix.Close(s.conn)
		}
		for gen, r := range s.regs {
			if r.pidfd >= 0 {
				unix.Close(r.pidfd)
			}
			delete(s.regs, gen)
		}
	}
	s.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.last, s.reaped
	case <-t.C:
		return signals.Exit{}, false
	}
}

// Release unregisters every generation and closes hupd's end without
// waiting: the sentinel exits with nothing to end. For a sentinel that a
// failed upgrade's new image started, before it goes back to a previous
// binary that does not know it.
func (s *Sentinel) Release() {
	s.mu.Lock()
	for gen := range s.regs {
		s.sendMsg(guard.Unregister+guard.Sep+strconv.Itoa(gen), nil)
	}
	s.mu.Unlock()
	s.Close(0)
}
