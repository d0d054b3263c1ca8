package supervisor

// Who belongs to a generation. A notify datagram counts only when its
// sender is verified as a member of the generation at the time it is read
// (socketact.NotifySocket.ReceiveChecked), and MAINPID= may only name a
// member. Every such question goes through member.

import (
	"errors"
	"os"
	"syscall"
	"unsafe"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// Log keys of membership decisions.
const (
	KeySender     = "sender"
	KeySuppressed = "suppressed"
)

// member reports whether pid belongs to generation g: it is g's main
// process (the one started, or the MAINPID= followed once that one exited)
// or descends from it, or is the MAINPID= announced or descends from it, or
// is in g's process group (/proc/PID/stat). hupd itself, its ancestors and
// PID 1 never are. It is safe on any goroutine:
// it reads only g.pgid, fixed at the start, and the atomic roots.
//
// Without cgroups this is a snapshot of the process tree, and what escapes
// it is known (in forking mode, hupd's orphans that carry g's
// NOTIFY_SOCKET are members too, see forking.go): a process that left the
// group (setsid, setpgid) and whose
// parent chain no longer reaches a root (its parent exited, and it was
// handed to hupd or to PID 1) is not a member; a process in hupd's session
// that joins g's group with setpgid is one.
func (s *Supervisor) member(g *generation, pid int) bool {
	if pid <= 1 || pid == s.self {
		return false
	}
	// Where the generation has a cgroup, the cgroup decides: every process
	// it started is in it (daemons that called setsid included) unless
	// moved out, which needs write access to the hierarchy. hupd and its
	// ancestors are never in a generation's cgroup.
	if g.grp.Path() != "" {
		in, err := g.grp.Contains(pid)
		return err == nil && in
	}
	// A descendant of a root (hupd's child, or a member it handed over
	// to) is neither hupd nor one of its ancestors. The sender is most
	// often the root itself: no /proc read at all.
	for _, root := range [...]int64{g.origin.Load(), g.mainRoot.Load()} {
		if root > 1 && socketact.IsDescendant(pid, int(root)) {
			return true
		}
	}
	// The process group only while it is the generation's: once the main
	// process is one outside it, it may have emptied and its id been taken
	// by a stranger's group (contain.Group.DropLeader).
	lead := g.grp.Leader()
	pgid, ok := socketact.ProcessGroup(pid)
	if ok && lead > 1 && pgid == lead && !socketact.IsDescendant(s.self, pid) {
		return true
	}
	// A daemon that left the process group and was handed to hupd (as
	// subreaper) once its parent exited: a program that daemonizes, or a
	// wrapper that sent MAINPID= of its daemon and exited at once (before
	// even the notify reader got to the datagram). forking.go's rule: an
	// orphan of hupd's whose environment names this generation's notify
	// socket (only hupd's own descendants are ever handed to hupd).
	return s.daemonOf(g, pid)
}

// mainVet is what the notify reader found of a MAINPID= when it read the
// datagram: a pidfd of the process, vetted as a member of the generation
// then, or why not.
type mainVet struct {
	f   *os.File
	err error
}

// vetMainPID opens a pidfd for pid and checks that pid is a member of g,
// at once: a wrapper that sends MAINPID= of the daemon it started and then
// exits is the daemon's parent only until it exits (the daemon is then
// hupd's, as subreaper, and outside the generation's process group). The
// pidfd then keeps naming that very process.
func (s *Supervisor) vetMainPID(g *generation, pid int) mainVet {
	f, err := openMain(pid)
	if err == nil && (!s.member(g, pid) || !pidfdAlive(f)) {
		f.Close()
		f, err = nil, errNotMember
	}
	return mainVet{f, err}
}

// acceptMainPID makes pid, named by MAINPID= (sent by sender) and vetted
// by vetMainPID (v), g's main process if it was a member of g; otherwise it
// is refused, with a warning. The pidfd keeps naming that very process:
// signals go through it, and its exit ends the generation once followed
// (watchMain).
func (s *Supervisor) acceptMainPID(g *generation, pid, sender int, v mainVet) bool {
	f, err := v.f, v.err
	if err == nil && !pidfdAlive(f) {
		f.Close()
		err = errNotMember
	}
	if err != nil {
		s.log.Warn(logev.MainPIDRefused, KeyGen, g.num, KeySender, sender, KeyPID, pid, KeyReason, err.Error())
		return false
	}
	g.closeAnnounced()
	g.mainFD, g.mainPID = f, pid
	g.mainRoot.Store(int64(pid))
	s.log.Info(logev.MainPIDChanged, KeyGen, g.num, KeyPID, pid, KeySender, sender)
	if pid != g.pid {
		s.watchGone(g, pid, f)
	}
	return true
}

// watchGone tells Run (evMainGone) when pid, g's MAINPID, exits while the
// process started still runs: from then on that process is g's main
// process again, and pid, which the kernel may give to another process, no
// longer roots member's tree. It waits on a duplicate of the pidfd f (the
// original is watchMain's once pid is followed), closed by closeMain.
func (s *Supervisor) watchGone(g *generation, pid int, f *os.File) {
	var dup int
	var err error = unix.EBADF
	withFD(f, func(fd int) { dup, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		return
	}
	w := os.NewFile(uintptr(dup), "pidfd") // non-blocking, as f: polled
	rc, err := w.SyscallConn()
	if err != nil {
		w.Close()
		return
	}
	g.goneFD = w
	go func() {
		if rc.Read(func(fd uintptr) bool { return pidfdExited(int(fd)) }) == nil {
			s.post(event{kind: evMainGone, gen: g, exit: signals.Exit{PID: pid}})
		}
	}()
}

// mainGone handles evMainGone on Run's goroutine.
func (s *Supervisor) mainGone(g *generation, pid int) {
	if g.exited() || g.mainPID != pid || g.pid == pid {
		return // replaced, followed (watchMain ends the generation), or over
	}
	g.closeAnnounced()
	g.mainPID = 0
	g.mainRoot.Store(0)
	s.log.Info(logev.MainPIDBack, KeyGen, g.num,
		KeyOldPID, pid, KeyPID, g.pid)
}

// pidfdExited reports whether the process behind pidfd has exited (its
// pidfd is readable).
func pidfdExited(pidfd int) bool {
	p := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, _ := unix.Poll(p, 0)
	return n > 0
}

// Reasons a MAINPID= is refused.
var (
	errNotMember = errors.New("supervisor: not a process of the generation")
	errSelf      = errors.New("supervisor: hupd's own pid")
)

// openMain opens a pidfd for pid, non-blocking so that Go's poller can wait
// for its exit.
func openMain(pid int) (*os.File, error) {
	if pid == os.Getpid() {
		return nil, errSelf
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	return os.NewFile(uintptr(fd), "pidfd"), nil
}

// pidfdAlive is socketact.PidfdAlive for a pidfd held as a file.
func pidfdAlive(f *os.File) bool {
	alive := false
	withFD(f, func(fd int) { alive = socketact.PidfdAlive(fd) })
	return alive
}

// withFD runs fn with f's descriptor without making it blocking (as Fd
// would).
func withFD(f *os.File, fn func(fd int)) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// signalMain sends sig to the process behind g.mainFD: never to a process
// that got its PID after it exited.
func signalMain(f *os.File, sig syscall.Signal) error {
	var err error = unix.ESRCH
	withFD(f, func(fd int) { err = unix.PidfdSendSignal(fd, sig, nil, 0) })
	if err != nil {
		return os.NewSyscallError("pidfd_send_signal", err)
	}
	return nil
}

// watchMain waits, on its own goroutine, for the exit of pid, g's main
// process since a MAINPID= hand-over, whoever its parent is, and hands it
// to Run as the exit of ref. Its pidfd f becomes readable at the exit.
// When hupd is the parent (an orphan handed to hupd as a subreaper or PID
// 1) the reaper has the exit status (reaped); otherwise the kernel keeps it
// in the pidfd once the parent has reaped it (PIDFD_INFO_EXIT, Linux 6.15;
// hupd waits up to reapWait for that), and when neither knows it the exit
// counts as a success, as systemd counts the end of a main process that is
// not its child. Closing f (the generation ended otherwise, or hupd stops)
// ends the wait without a word.
func (s *Supervisor) watchMain(ref *procRef, pid int, f *os.File, reaped <-chan signals.Exit) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	go func() {
		err := rc.Read(func(fd uintptr) bool { return pidfdExited(int(fd)) })
		if err != nil {
			return // closed
		}
		e, known := signals.Exit{PID: pid}, false
		select {
		case e, known = <-reaped:
		default:
			s.reaper.Reap() // it may be hupd's child, exited this instant
			select {
			case e, known = <-reaped:
			default:
			}
		}
		if !known {
			var status syscall.WaitStatus
			withFD(f, func(fd int) {
				// Its parent reaps it, normally at once: the pidfd then
				// reports POLLHUP, and the kernel has its status.
				unix.Poll([]unix.PollFd{{Fd: int32(fd)}}, reapWait)
				status, known = pidfdExit(fd)
			})
			e.Status = status
		}
		if !known {
			s.log.Info(logev.MainExitUnknown, KeyPID, pid)
		}
		s.forwardExit(ref, e)
	}()
}

// reapWait bounds, in milliseconds, the wait for another parent to reap a
// followed main process that has exited.
const reapWait = 1000

// pidfdExit returns the wait status of the exited, reaped process behind
// pidfd, when the kernel keeps it (PIDFD_INFO_EXIT, Linux 6.15).
func pidfdExit(pidfd int) (syscall.WaitStatus, bool) {
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(pidfd), unix.PIDFD_GET_INFO, uintptr(unsafe.Pointer(&info)))
	if errno != 0 || info.Mask&unix.PIDFD_INFO_EXIT == 0 {
		return 0, false
	}
	return syscall.WaitStatus(info.Exit_code), true
}

// closeAnnounced closes the pidfd of g's MAINPID and its duplicate, which
// also ends watchGone.
func (g *generation) closeAnnounced() {
	closePidfds(&g.mainFD, &g.goneFD)
}

// closeMain closes every pidfd g holds, which also ends watchMain and
// watchGone: when g has ended.
func (g *generation) closeMain() {
	closePidfds(&g.mainFD, &g.goneFD, &g.procFD)
}

func closePidfds(fs ...**os.File) {
	for _, f := range fs {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
}
