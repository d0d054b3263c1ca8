package signals

import (
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reaper is the one owner of all waits in a process.
type Reaper struct {
	// Orphans makes the reaper wait for any child (wait4(-1)), as PID 1 and
	// a subreaper must. Without it, it waits only for the PIDs it started,
	// which leaves other users of os/exec in the process alone.
	Orphans bool
	// Orphan is called, without the lock, for every reaped PID nobody
	// registered. It may be nil.
	Orphan func(Exit)

	mu      sync.Mutex
	waiters map[int]chan Exit
	recent  []Exit // the last orphans reaped, for Watch
}

// recentOrphans bounds what Reaper remembers of orphans nobody waited for.
const recentOrphans = 64

// Watch registers pid, a process that is this process's child or will
// become one (an orphan handed to a subreaper or PID 1), and returns a
// channel that receives its exit once. An orphan reaped moments before
// Watch was called is reported at once.
func (r *Reaper) Watch(pid int) <-chan Exit {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan Exit, 1)
	for i, e := range r.recent {
		if e.PID == pid {
			r.recent = append(r.recent[:i], r.recent[i+1:]...)
			ch <- e
			close(ch)
			return ch
		}
	}
	if r.waiters == nil {
		r.waiters = make(map[int]chan Exit)
	}
	r.waiters[pid] = ch
	return ch
}

// Start runs start, which must start exactly one child and return its PID,
// with the reaper's lock held, and registers that PID. The channel receives
// the child's exit once and is then closed.
func (r *Reaper) Start(start func() (int, error)) (int, <-chan Exit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err != nil {
		return 0, nil, err
	}
	if r.waiters == nil {
		r.waiters = make(map[int]chan Exit)
	}
	ch := make(chan Exit, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}

// Freeze stops all reaping until thaw is called (waiting out a Reap in
// progress), and reports whether each of pids is still registered: not
// reaped yet, its exit not handed to anyone. For an exec of the process
// that must leave every exit to the new image.
func (r *Reaper) Freeze(pids []int) (thaw func(), waiting bool) {
	r.mu.Lock()
	waiting = true
	for _, pid := range pids {
		if _, ok := r.waiters[pid]; !ok {
			waiting = false
		}
	}
	return r.mu.Unlock, waiting
}

// Run reaps children until done is closed. It must run before any child is
// started so that no SIGCHLD is missed, and only once per process.
func (r *Reaper) Run(done <-chan struct{}) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)
	for {
		r.Reap()
		select {
		case <-sigs:
		case <-done:
			return
		}
	}
}

// Reap collects every child that has exited so far.
func (r *Reaper) Reap() {
	var orphans []Exit
	r.mu.Lock()
	if r.Orphans {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
			if e, ok := r.deliver(pid, ws); !ok {
				orphans = append(orphans, e)
				if len(r.recent) == recentOrphans {
					r.recent = r.recent[1:]
				}
				r.recent = append(r.recent, e)
			}
		}
	} else {
		for pid := range r.waiters {
			var ws unix.WaitStatus
			got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			for errors.Is(err, unix.EINTR) {
				got, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			}
			if got == pid {
				r.deliver(pid, ws)
			}
		}
	}
	r.mu.Unlock()
	if r.Orphan != nil {
		for _, e := range orphans {
			r.Orphan(e)
		}
	}
}

// deliver hands an exit to its owner; r.mu is held.
func (r *Reaper) deliver(pid int, ws unix.WaitStatus) (Exit, bool) {
	e := Exit{PID: pid, Status: syscall.WaitStatus(ws)}
	ch, ok := r.waiters[pid]
	if ok {
		delete(r.waiters, pid)
		ch <- e
		close(ch)
	}
	return e, ok
}

// BecomeSubreaper makes this process the reaper of its descendants' orphans
// (PR_SET_CHILD_SUBREAPER), unless it is PID 1, which already is.
func BecomeSubreaper() error {
	if os.Getpid() == 1 {
		return nil
	}
	return os.NewSyscallError("prctl PR_SET_CHILD_SUBREAPER", unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
}
