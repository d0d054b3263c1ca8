package supervisor

// Programs that daemonize (Options.Forking, systemd's Type=forking): the
// process hupd starts forks, its child calls setsid (and may fork again),
// and the first process exits 0. That exit is not the end of the
// generation: hupd finds the daemon it left and follows it as it follows
// a MAINPID= (follow, watchMain), so that signals, swaps, stop, status,
// the sentinel and upgrades all act on the daemon.
//
// Which process is the daemon: the PID in Options.Pidfile, read as
// untrusted input and accepted only for a process of the generation
// (inGeneration); without a pidfile, the single process of the generation
// that hupd, as the subreaper, was handed as an orphan (a daemon's
// workers are its children, not hupd's). None or several: the start
// fails. A process of the generation is:
//   - in cgroup mode, a process in the generation's cgroup;
//   - in the fallback, a process in the generation's process group, or an
//     orphan handed to hupd (its parent is hupd, and hupd did not start
//     it) whose environment names this generation's NOTIFY_SOCKET. Only
//     hupd's descendants are ever handed to hupd, so no process outside
//     hupd's tree (another user's, root's, hupd itself) can pass; within
//     it, the socket path tells generations apart. A daemon that clears
//     its environment's memory or hides it (not dumpable, another uid than
//     a non-root hupd) cannot be found there: the start fails.
//
// The search looks at a settled tree: it waits (orphans, ≤ orphanWait)
// for children of hupd still exiting, whose own children reach hupd only
// then; and a process found that exits 0 within forkSettle (the middle of
// a double fork whose first process did not wait) hands over to the
// single process it leaves.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/internal/safefile"
	"github.com/hupd/hupd/signals"
	"golang.org/x/sys/unix"
)

// pidfileLimit caps what is read of a pidfile: a PID and a newline.
const pidfileLimit = 64

// forkSettle is how long after the daemon is found its own exit with
// status 0 still counts as a step of daemonizing (the middle process of a
// double fork, found before it had forked the daemon): the process it
// leaves is followed in turn.
const forkSettle = time.Second

// forked handles the exit e of g's main process in forking mode; it
// reports whether g goes on with a daemon found. Otherwise (a failed exit,
// a stop, no daemon) the exit ends g, and g.failure says why the start
// failed when e alone does not.
func (s *Supervisor) forked(g *generation, e signals.Exit) bool {
	first := g.forking
	settling := !first && !g.foundAt.IsZero() && time.Since(g.foundAt) < forkSettle
	g.forking = false
	if !first && !settling || !e.Success() {
		return false
	}
	if s.stopping || g.state == StateDraining {
		if first {
			s.endOrphans(g) // stopped while it daemonized: what it left goes too
		}
		return false
	}
	pid, f, err := s.findDaemon(g, e.PID)
	if err != nil {
		if first {
			g.failure = "forking: " + err.Error()
			s.endOrphans(g)
		}
		return false
	}
	g.closeAnnounced()
	g.mainFD, g.mainPID = f, pid
	g.foundAt = time.Now()
	msg := logev.ForkingFollowDaemon
	if !first {
		msg = logev.ForkingFollowDaemonizing
	}
	s.follow(g, e, msg)
	g.grp.SetMain(pid) // the fallback finds the daemon's workers under it
	if first && g.state == StateStarting {
		switch {
		case g.ready.Kind == ReadyAuto:
			s.onReady(g, "forking: first process exited 0")
		case g.readyPending != "":
			s.onReady(g, g.readyPending)
		}
	}
	return true
}

// findDaemon returns the daemon that g's process gone (PID gone) left,
// with a pidfd that names it, checked to be a live process of g.
func (s *Supervisor) findDaemon(g *generation, gone int) (int, *os.File, error) {
	if p := g.pidfile; p != "" {
		pid, err := readPidfile(p)
		if err != nil {
			return 0, nil, err
		}
		if pid == gone {
			return 0, nil, fmt.Errorf("pidfile %s names pid %d, which has exited", p, pid)
		}
		f, err := s.openDaemon(g, pid)
		if err != nil {
			return 0, nil, fmt.Errorf("pidfile %s names pid %d: refused: %w", p, pid, err)
		}
		return pid, f, nil
	}
	var cands []int
	for try := 0; ; try++ {
		var err error
		if cands, err = s.orphans(g); err != nil {
			return 0, nil, err
		}
		if len(cands) != 1 {
			break
		}
		f, err := s.openDaemon(g, cands[0])
		if err == nil {
			return cands[0], f, nil
		}
		if !errors.Is(err, contain.ErrGone) && !errors.Is(err, unix.ESRCH) || try == 2 {
			return 0, nil, fmt.Errorf("pid %d: %w", cands[0], err)
		}
		// It exited since the scan (the middle process of a double
		// fork): what it left has been handed over, look again.
	}
	switch len(cands) {
	case 0:
		if g.grp.Path() == "" {
			return 0, nil, fmt.Errorf("the program left no process hupd can place in generation %d (without cgroups, a daemon is found in the generation's process group or as hupd's orphan with its NOTIFY_SOCKET)", g.num)
		}
		return 0, nil, fmt.Errorf("the program left no process in generation %d", g.num)
	}
	return 0, nil, fmt.Errorf("the program left %d processes in generation %d (pids %s) and no pidfile: set --pidfile",
		len(cands), g.num, joinPIDs(cands))
}

// orphans lists the processes of g that hupd, the subreaper, was handed
// (its children it did not start): the candidates for g's daemon.
//
// A child of hupd that is exiting still holds its children until its last
// thread has ended (a Go or threaded program's leader exits first), and
// one in the middle of its exit may no longer be placed in g while its
// children are not handed over yet. So while any child of hupd has exited
// but still has threads, or while none is found and some child of hupd
// outside g may yet exit, orphans waits for one of them to end and looks
// again: up to orphanWait in all.
func (s *Supervisor) orphans(g *generation) ([]int, error) {
	until := time.Now().Add(orphanWait)
	ended := map[int]bool{} // seen gone for good: their children are handed over
	for {
		kids, err := contain.Children(s.self)
		if err != nil {
			return nil, err
		}
		var out, dying, others []int
		for _, k := range kids {
			switch {
			case s.otherMain(g, k.PID) || ended[k.PID]:
			case k.Zombie:
				dying = append(dying, k.PID)
			default:
				if in, _ := s.inGeneration(g, k); in {
					out = append(out, k.PID)
				} else {
					others = append(others, k.PID)
				}
			}
		}
		wait := dying
		if len(out) == 0 {
			wait = append(wait, others...)
		}
		if len(wait) == 0 || time.Until(until) <= 0 {
			return out, nil
		}
		for _, pid := range waitAnyExited(wait, time.Until(until)) {
			ended[pid] = true
		}
	}
}

// orphanWait bounds how long orphans waits for exiting children of hupd
// to hand their own children over.
const orphanWait = 500 * time.Millisecond

// waitAnyExited waits, at most d, until every thread of one of the
// processes pids has ended (its pidfd is readable), and returns those that
// have (or are gone).
func waitAnyExited(pids []int, d time.Duration) []int {
	var gone []int
	fds := make([]unix.PollFd, 0, len(pids))
	polled := make([]int, 0, len(pids))
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			gone = append(gone, pid) // reaped already
			continue
		}
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		polled = append(polled, pid)
	}
	defer func() {
		for _, p := range fds {
			unix.Close(int(p.Fd))
		}
	}()
	if len(gone) > 0 || len(fds) == 0 {
		return gone
	}
	unix.Poll(fds, int(max(d, 0).Milliseconds())+1)
	for i, p := range fds {
		if p.Revents != 0 {
			gone = append(gone, polled[i])
		}
	}
	return gone
}

// endOrphans kills, in the fallback, what g's failed forking start left
// as hupd's orphans: without a cgroup, g's end (killGroup) would not
// reach them once they left its process group.
func (s *Supervisor) endOrphans(g *generation) {
	if g.grp.Path() != "" {
		return // the cgroup goes as a whole
	}
	pids, _ := s.orphans(g)
	for _, pid := range pids {
		if f, err := s.openDaemon(g, pid); err == nil {
			s.log.Info(logev.ForkingKillLeftover, KeyGen, g.num, KeyPID, pid)
			signalMain(f, unix.SIGKILL)
			f.Close()
		}
	}
}

// openDaemon opens a pidfd for pid and checks, once it is open (so that
// the PID cannot be another process's by then), that it is a live process
// of g.
func (s *Supervisor) openDaemon(g *generation, pid int) (*os.File, error) {
	f, err := openMain(pid)
	if err != nil {
		return nil, err
	}
	st, err := contain.Stat(pid)
	in := false
	if err == nil {
		in, err = s.inGeneration(g, st)
	}
	if err == nil && (!in || s.otherMain(g, pid)) {
		err = errNotMember
	}
	if err == nil && !pidfdAlive(f) {
		err = contain.ErrGone
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// inGeneration reports whether process p belongs to g, for the daemon
// search (see the comment at the top of this file).
func (s *Supervisor) inGeneration(g *generation, p contain.Proc) (bool, error) {
	if p.PID <= 1 || p.PID == s.self {
		return false, nil
	}
	if g.grp.Path() != "" {
		return g.grp.Contains(p.PID)
	}
	if lead := g.grp.Leader(); lead > 1 && p.PGID == lead { // never a group no longer g's
		return true, nil
	}
	if p.PPID != s.self || g.notify == nil || g.notify.Path == "" {
		return false, nil
	}
	return environHas(p.PID, "NOTIFY_SOCKET="+g.notify.Path)
}

// otherMain reports whether pid is a process hupd started itself (a
// generation's first process, the standby shim) or another generation's
// main process: never g's daemon.
func (s *Supervisor) otherMain(g *generation, pid int) bool {
	for _, o := range s.gens {
		if o.pgid == pid || o != g && o.pid == pid {
			return true
		}
	}
	return s.standby != nil && s.standby.pid == pid
}

// environLimit caps how much of a process's environment is searched.
const environLimit = 16 << 20

// environHas reports whether the environment process pid was started
// with (/proc/PID/environ) holds the variable kv ("KEY=VALUE").
func environHas(pid int, kv string) (bool, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false, err
	}
	defer f.Close()
	// Streamed through a fixed buffer: the environment is the child's to
	// size (hupd must not allocate what it says), and the variable may
	// straddle two reads, so the last len(want)-1 bytes are kept.
	want := []byte("\x00" + kv + "\x00")
	buf := make([]byte, len(want)-1+32<<10)
	buf[0] = 0 // the first variable follows a NUL too
	kept := 1
	r := io.LimitReader(f, environLimit)
	for {
		n, err := r.Read(buf[kept:])
		end := kept + n
		if err == io.EOF && (end == 0 || buf[end-1] != 0) && end < len(buf) {
			buf[end] = 0
			end++
		}
		if bytes.Contains(buf[:end], want) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		kept = copy(buf, buf[max(0, end-(len(want)-1)):end])
	}
}

// readPidfile reads a pidfile as untrusted input: a regular file (never a
// FIFO or a device: safefile), at most pidfileLimit bytes, holding one
// positive decimal PID.
func readPidfile(path string) (int, error) {
	data, err := safefile.ReadFile(path, pidfileLimit)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return 0, fmt.Errorf("pidfile %s: %w", path, err)
	}
	text := strings.TrimSpace(string(data))
	pid, err := strconv.Atoi(text)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s: not a PID: %q", path, text)
	}
	return pid, nil
}

func joinPIDs(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// daemonOf reports whether pid, followed as g's main process, is still a
// process of g by the daemon search's rule (in the fallback, a daemon that
// left g's process group is no member by member's).
func (s *Supervisor) daemonOf(g *generation, pid int) bool {
	st, err := contain.Stat(pid)
	if err != nil {
		return false
	}
	in, err := s.inGeneration(g, st)
	return err == nil && in
}
