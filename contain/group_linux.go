package contain

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrGone is wrapped by Contains' error for a process that no longer
// exists.
var ErrGone = errors.New("contain: no such process")

// Group is the set of processes of one generation: a cgroup (Path) or, in
// the fallback, a process group and its leader's descendants. Its methods
// may be called from any goroutine; on a nil Group they report nothing and
// do nothing.
type Group struct {
	path string // "" in the fallback
	rel  string // path below the cgroup2 mount, as /proc/PID/cgroup shows it
	id   uint64
	fd   int // the cgroup's directory, for CLONE_INTO_CGROUP; -1 without

	pgid atomic.Int64 // the process group its first process leads
	main atomic.Int64 // the generation's main process

	mu     sync.Mutex
	peak   uint64 // highest memory sample (when the kernel keeps none)
	pidfd  int    // the main process's pidfd, -1 if none: tells it is still ours
	closed bool
}

func newFallback() *Group {
	return &Group{fd: -1, pidfd: -1}
}

func openGroup(dir, rel string) (*Group, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: dir, Err: err}
	}
	return &Group{path: dir, rel: rel, id: st.Ino, fd: fd, pidfd: -1}, nil
}

// Path is the group's cgroup directory; "" in the fallback.
func (g *Group) Path() string {
	if g == nil {
		return ""
	}
	return g.path
}

// ID is the cgroup's id: the inode number of its directory, which is what
// PIDFD_GET_INFO reports as PIDFD_INFO_CGROUPID for a member and what
// name_to_handle_at gives as its cgroup's handle. 0 in the fallback.
func (g *Group) ID() uint64 {
	if g == nil {
		return 0
	}
	return g.id
}

// FD is the cgroup directory's fd, to start a process in it
// (syscall.SysProcAttr.UseCgroupFD and CgroupFD); -1 in the fallback.
// It stays open until the group is retired.
func (g *Group) FD() int {
	if g == nil {
		return -1
	}
	return g.fd
}

// Leader is the process group the generation's processes are known to be
// in (its first process leads it), 0 when there is none to trust.
func (g *Group) Leader() int {
	if g == nil {
		return 0
	}
	return int(g.pgid.Load())
}

// DropLeader forgets the process group: once the generation's main process
// is one outside it (a MAINPID= followed) and its leader has exited, the
// group may empty and its id be taken by a stranger's new group, which
// neither a kill nor a membership test may then reach.
func (g *Group) DropLeader() {
	if g != nil {
		g.pgid.Store(0)
	}
}

// SetLeader records the process group leader: the generation's first
// process, started with Setpgid.
func (g *Group) SetLeader(pid int) {
	if g == nil {
		return
	}
	g.pgid.Store(int64(pid))
	if g.main.Load() == 0 {
		g.SetMain(pid)
	}
}

// SetMain records the generation's main process (MAINPID=, or the process
// followed after the first one exited).
func (g *Group) SetMain(pid int) {
	if g == nil || pid <= 0 {
		return
	}
	g.main.Store(int64(pid))
	fd, err := unix.PidfdOpen(pid, 0)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pidfd >= 0 {
		unix.Close(g.pidfd)
	}
	g.pidfd = -1
	if err == nil && !g.closed {
		g.pidfd = fd
	} else if err == nil {
		unix.Close(fd)
	}
}

// mainAlive reports whether the main process still runs, so that its PID
// still names it: the fallback places processes under it only then, never
// under a PID the kernel may have given to an unrelated process.
func (g *Group) mainAlive() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pidfd >= 0 && unix.PidfdSendSignal(g.pidfd, 0, nil, 0) == nil
}

// Contains reports whether process pid belongs to the group.
//
// In cgroup mode it reads /proc/PID/cgroup: true when the process is in
// the group's cgroup or one below it. In the fallback: the process is in
// the group's process group, or it is the main process or its parent
// links lead to it, while the main process runs.
//
// (false, error wrapping ErrGone): the process no longer exists. A zombie
// (exited, not reaped yet, so its PID is not reused) is placed by the
// cgroup it died in, which the kernel still shows; in the fallback it is
// not placed (ErrGone): its parent links no longer say where it was.
func (g *Group) Contains(pid int) (bool, error) {
	if g == nil || pid <= 0 {
		return false, nil
	}
	if g.path != "" {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return false, fmt.Errorf("pid %d: %w", pid, ErrGone)
		}
		if err != nil {
			return false, err
		}
		rel, err := parseProcCgroup(data)
		if err != nil {
			return false, err
		}
		return rel == g.rel || strings.HasPrefix(rel, g.rel+"/"), nil
	}
	st, err := readStat(pid)
	if err != nil {
		return false, err
	}
	if st.zombie {
		return false, fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	pgid, main := int(g.pgid.Load()), int(g.main.Load())
	if pgid > 1 && st.pgrp == pgid {
		return true, nil
	}
	if main <= 1 || !g.mainAlive() {
		return false, nil
	}
	if pid == main {
		return true, nil
	}
	for p, seen := st.ppid, 0; p > 1 && seen < 4096; seen++ {
		if p == main {
			return true, nil
		}
		ps, err := readStat(p)
		if err != nil {
			return false, nil
		}
		p = ps.ppid
	}
	return false, nil
}

// Kill sends SIGKILL to every process of the group: in cgroup mode with
// cgroup.kill alone (the kernel kills the whole cgroup and what is below
// it, forks included; a process group id is never trusted there); in the
// fallback to the process group while it is the generation's (see
// DropLeader), to the main process through its pidfd, and to every
// descendant of the main process it can still find (while the main
// process runs: once it has exited, nothing leads to its descendants any
// more).
func (g *Group) Kill() error {
	if g == nil {
		return nil
	}
	if g.path != "" {
		if err := writeFile(filepath.Join(g.path, "cgroup.kill"), "1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	var errs []error
	if pgid := int(g.pgid.Load()); pgid > 1 {
		if err := unix.Kill(-pgid, unix.SIGKILL); err != nil && err != unix.ESRCH {
			errs = append(errs, os.NewSyscallError("kill", err))
		}
	}
	g.mu.Lock()
	if g.pidfd >= 0 {
		unix.PidfdSendSignal(g.pidfd, unix.SIGKILL, nil, 0) // never a reused PID
	}
	g.mu.Unlock()
	if main := int(g.main.Load()); main > 1 && g.mainAlive() {
		procs, _ := scanProcs()
		for _, p := range procs {
			if descends(procs, p.pid, main) {
				unix.Kill(p.pid, unix.SIGKILL)
			}
		}
	}
	return errors.Join(errs...)
}

// close releases the group's fd.
func (g *Group) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed && g.fd >= 0 {
		unix.Close(g.fd)
	}
	if g.pidfd >= 0 {
		unix.Close(g.pidfd)
		g.pidfd = -1
	}
	g.closed = true
}
