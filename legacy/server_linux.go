package legacy

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// sizeofSockaddrStorage is the longest address bind accepts.
const sizeofSockaddrStorage = 128

// Event is a trapped call hupd answered with a held socket.
type Event struct {
	Socket int  // index in the held list
	Listen bool // listen(2); otherwise bind(2)
	// Adopted: the program's own socket became held socket Socket (adopt
	// mode) at this call.
	Adopted bool
	PID     int // the calling thread (seccomp reports threads)
	// Process is the calling thread's process (its thread group), 0 if it
	// could not be read.
	Process int
	FD      int  // the program's fd number
	Addr    Addr // bind's address; the bound address of an adopted socket
}

// adoptMu orders adoptions across the servers of all generations: a
// placeholder is replaced once.
var adoptMu sync.Mutex

// Server answers the trapped calls of one generation (every process of it:
// a fork inherits the filter).
type Server struct {
	notify *os.File
	held   []Socket
	log    *slog.Logger
	report func(Event)
	warned []bool   // a family mismatch was logged for this held socket
	files  []string // socket files that exist, to check when Serve ends
	// busy is held from a notification's receipt to its answer, and
	// while the notify fd is closed: Pause takes it so that none is taken
	// in and left unanswered.
	busy   sync.Mutex
	closed bool // the notify fd, by Serve's end; under busy
}

// Closed reports, while paused, whether Serve has ended and closed the
// notify fd (every process of the generation is gone).
func (s *Server) Closed() bool { return s.closed }

// Pause returns once no trapped call is being answered and keeps the
// Server from taking the next one in until resume is called: the calls
// wait in the kernel, for this Server or for whoever holds the notify fd
// next (hupd's new image after an upgrade).
func (s *Server) Pause() (resume func()) {
	s.busy.Lock()
	return s.busy.Unlock
}

// NewServer answers the calls trapped by the filter whose notify fd is
// notify (non-blocking, close-on-exec), with held as the sockets to give.
// report, if not nil, is called (on Serve's goroutine) for every call
// answered with a held socket.
func NewServer(notify *os.File, held []Socket, log *slog.Logger, report func(Event)) *Server {
	return &Server{notify: notify, held: held, log: log, report: report, warned: make([]bool, len(held))}
}

// Serve answers trapped calls until no process uses the filter any more
// (the generation and all it forked have exited), then closes the notify
// fd. Each call is answered before the next one is read.
func (s *Server) Serve() {
	defer func() {
		s.busy.Lock()
		defer s.busy.Unlock()
		s.notify.Close()
		s.closed = true
	}()
	s.files = s.socketFiles()
	defer func() { s.checkSocketFiles(s.files) }()
	rc, err := s.notify.SyscallConn()
	if err != nil {
		s.log.Error(logev.BindNotifyFDUnusable, "error", err)
		return
	}
	for {
		var (
			n    notif
			done bool
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(p, 0); err != nil {
				return err != unix.EINTR && err != unix.EAGAIN
			}
			switch {
			case p[0].Revents&unix.POLLIN != 0:
				s.busy.Lock() // until answered, below
				n = notif{}   // RECV wants it zeroed
				rerr = ioctl(fd, ioctlRecv, unsafe.Pointer(&n))
				return true
			case p[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0:
				done = true
				return true
			}
			return false
		})
		if err != nil || done {
			return
		}
		if rerr != nil {
			s.busy.Unlock()
			continue // ENOENT: the caller died before we received it
		}
		ev, ok := s.answer(&n)
		s.busy.Unlock()
		// Outside busy: report may block on the supervisor, which may be
		// waiting in Pause.
		if ok && s.report != nil {
			s.report(ev)
		}
	}
}

// answer handles one notification; whatever happens, the call is
// answered. It returns the event to report, if any.
func (s *Server) answer(n *notif) (Event, bool) {
	fd := s.notify.Fd()
	res := s.handle(n)
	if res.errno != 0 {
		if err := respond(fd, n.ID, 0, res.errno, false); err != nil && err != unix.ENOENT {
			s.log.Warn(logev.BindAnswerFailed, "pid", n.PID, "error", err)
		}
		return Event{}, false
	}
	if res.cont {
		if err := respond(fd, n.ID, 0, 0, true); err != nil && err != unix.ENOENT {
			s.log.Warn(logev.BindContinueFailed, "pid", n.PID, "error", err)
		}
		return Event{}, false
	}
	if !res.silent {
		// Read while the call waits: until it is answered, the thread
		// lives and its TID names it.
		if p, err := tgid(int(n.PID)); err == nil && idValid(fd, n.ID) {
			res.ev.Process = p
		}
	}
	if err := respond(fd, n.ID, 0, 0, false); err != nil {
		if err != unix.ENOENT {
			s.log.Warn(logev.BindAnswerFailed, "pid", n.PID, "error", err)
		}
		return Event{}, false
	}
	return res.ev, !res.silent
}

type result struct {
	cont   bool
	errno  unix.Errno // the call fails with it
	ev     Event
	silent bool // answered 0 with nothing to report
}

var pass = result{cont: true}

func (s *Server) handle(n *notif) result {
	switch int(n.Data.Nr) &^ 0x40000000 { // x32 calls have bit 30 set
	case unix.SYS_BIND:
		return s.bind(n)
	case unix.SYS_LISTEN:
		return s.listen(n)
	}
	return pass
}

func (s *Server) bind(n *notif) result {
	pid, fd := int(n.PID), int(int32(n.Data.Args[0]))
	size := n.Data.Args[2]
	if size < 2 || size > sizeofSockaddrStorage {
		return pass // the kernel refuses it with EINVAL
	}
	buf := make([]byte, size)
	if _, err := unix.ProcessVMReadv(pid, []unix.Iovec{{Base: &buf[0], Len: size}},
		[]unix.RemoteIovec{{Base: uintptr(n.Data.Args[1]), Len: int(size)}}, 0); err != nil {
		if idValid(s.notify.Fd(), n.ID) {
			s.log.Warn(logev.BindAddressUnreadable, "pid", pid, "fd", fd, "error", err)
		}
		return pass
	}
	// The memory read belongs to the caller only while the call waits.
	if !idValid(s.notify.Fd(), n.ID) {
		return pass
	}
	a, abstract, err := callerAddr(pid, buf)
	if err != nil {
		return pass
	}
	if Match(s.held, a, true) < 0 && Match(s.held, a, false) < 0 {
		return pass // not ours: Go's and getaddrinfo's probe binds end here
	}
	fail := func(what string, err error) result {
		s.log.Warn(logev.BindRedirectFailed,
			"pid", pid, "fd", fd, "address", a.String(), "step", what, "error", err)
		return pass
	}
	theirs, err := peerFD(pid, fd)
	if err != nil {
		return fail("pidfd_getfd", err)
	}
	defer unix.Close(theirs)
	typ, err := unix.GetsockoptInt(theirs, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return pass // not a socket: bind fails as it would
	}
	if typ != unix.SOCK_STREAM && typ != unix.SOCK_DGRAM {
		return pass // SOCK_SEQPACKET, SOCK_RAW: nothing hupd holds
	}
	stream := typ == unix.SOCK_STREAM
	i := Match(s.held, a, stream)
	if i < 0 {
		return pass
	}
	if s.held[i].Pending {
		adoptMu.Lock()
		defer adoptMu.Unlock()
		s.refresh()
		if i = Match(s.held, a, stream); i < 0 {
			return pass
		}
		if s.held[i].Pending {
			if stream {
				return pass // its own bind; adopted when it listens
			}
			fam, v6only := socketFamily(theirs)
			j := Adoptable(s.held, a, false, fam, v6only)
			if j < 0 {
				s.notAdopted(i, pid, a)
				return pass
			}
			return s.adoptBind(pid, fd, theirs, buf, a, j)
		}
	}
	h := s.held[i]
	var st unix.Stat_t
	if unix.Fstat(theirs, &st) == nil && st.Ino == h.ino {
		return pass // already the held socket: bound, bind says EINVAL
	}
	if fam, err := unix.GetsockoptInt(theirs, unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil && fam != h.Family && !s.warned[i] {
		s.warned[i] = true
		msg := logev.BindOtherFamily
		switch {
		case fam == unix.AF_INET && h.Family == unix.AF_INET6:
			msg = logev.BindIPv4GetsIPv6
		case fam == unix.AF_INET6 && h.Family == unix.AF_INET:
			msg = logev.BindIPv6GetsIPv4
		}
		s.log.Warn(msg, "pid", pid, "address", a.String(), "family", familyName(fam), "held", familyName(h.Family))
	}
	fl, err := unix.FcntlInt(uintptr(theirs), unix.F_GETFL, 0)
	if err != nil {
		return fail("fcntl", err)
	}
	// O_NONBLOCK belongs to the shared socket: take the program's mode.
	// Fd once: for a file from a net listener's File, each call would make
	// the socket blocking again.
	var fdflags uint32
	if cloexec(pid, fd) {
		fdflags = unix.O_CLOEXEC
	}
	step := "fcntl O_NONBLOCK"
	err = withFD(h.File, func(hfd int) error {
		if err := unix.SetNonblock(hfd, fl&unix.O_NONBLOCK != 0); err != nil {
			return err
		}
		step = "SECCOMP_IOCTL_NOTIF_ADDFD"
		add := notifAddfd{ID: n.ID, Flags: unix.SECCOMP_ADDFD_FLAG_SETFD, SrcFD: uint32(hfd), NewFD: uint32(fd), NewFDFlags: fdflags}
		return ioctl(s.notify.Fd(), ioctlAddfd, unsafe.Pointer(&add))
	})
	if err != nil {
		if err == unix.ENOENT {
			return pass // the caller is gone
		}
		return fail(step, err)
	}
	if a.Family == unix.AF_UNIX && !abstract {
		s.checkSocketFile(h, a, pid)
	}
	return result{ev: Event{Socket: i, PID: pid, FD: fd, Addr: a}}
}

func (s *Server) listen(n *notif) result {
	pid, fd := int(n.PID), int(int32(n.Data.Args[0]))
	theirs, err := peerFD(pid, fd)
	if err != nil {
		return pass
	}
	defer unix.Close(theirs)
	var st unix.Stat_t
	if unix.Fstat(theirs, &st) != nil {
		return pass
	}
	for i, h := range s.held {
		if !h.Pending && h.ino == st.Ino {
			return result{ev: Event{Socket: i, Listen: true, PID: pid, FD: fd}}
		}
	}
	if slices.ContainsFunc(s.held, func(h Socket) bool { return h.Pending && h.Stream }) {
		return s.adoptListen(pid, fd, theirs, int(int32(n.Data.Args[1])))
	}
	return pass
}

// callerAddr decodes sockaddr raw of process pid, a relative unix path
// made absolute from pid's working directory.
func callerAddr(pid int, raw []byte) (a Addr, abstract bool, err error) {
	if a, err = parseSockaddr(raw); err != nil {
		return a, false, err
	}
	abstract = a.Family == unix.AF_UNIX && raw[2] == 0
	if a.Family == unix.AF_UNIX && !abstract && !filepath.IsAbs(a.Path) {
		// Relative, even if it begins with '@' like an abstract name.
		if cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd"); err == nil {
			a.Path = filepath.Join(cwd, a.Path)
		}
	}
	return a, abstract, nil
}

// refresh takes up the adoptions other generations' servers made. Under
// adoptMu.
func (s *Server) refresh() {
	for i, h := range s.held {
		if h.Pending && socketact.Bound(h.File) {
			s.describe(i)
		}
	}
}

// describe reads held socket i again once a program's socket is on its fd.
// A unix socket keeps its configured path, which a program's relative one
// matched: getsockname reports the path as the program gave it.
func (s *Server) describe(i int) {
	d, err := Describe(s.held[i].File)
	if err != nil {
		s.log.Warn(logev.AdoptDescribeFailed, "error", err)
		d = s.held[i]
		d.Port, d.Path = 0, "" // matches nothing
	}
	if d.Family == unix.AF_UNIX {
		d.Path = s.held[i].Path
	}
	d.Pending = false
	s.held[i] = d
}

// adoptListen runs the listen of a program's stream socket bound to an
// address that pending socket covers, with the program's backlog, and
// adopts the socket: its options and backlog are the program's own.
func (s *Server) adoptListen(pid, fd, theirs, backlog int) result {
	if typ, err := unix.GetsockoptInt(theirs, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
		return pass
	}
	var raw [sizeofSockaddrStorage]byte
	size := uint32(len(raw))
	if _, _, e := unix.Syscall(unix.SYS_GETSOCKNAME, uintptr(theirs), uintptr(unsafe.Pointer(&raw[0])), uintptr(unsafe.Pointer(&size))); e != 0 {
		return pass
	}
	a, _, err := callerAddr(pid, raw[:min(size, uint32(len(raw)))])
	if err != nil {
		return pass
	}
	adoptMu.Lock()
	defer adoptMu.Unlock()
	s.refresh()
	fam, v6only := socketFamily(theirs)
	i := Adoptable(s.held, a, true, fam, v6only)
	if i < 0 {
		if j := Match(s.held, a, true); j >= 0 && s.held[j].Pending {
			s.notAdopted(j, pid, a)
		}
		return pass
	}
	if err := unix.Listen(theirs, backlog); err != nil {
		return result{errno: errnoOf(err)}
	}
	if err := s.adopt(theirs, i, a); err != nil {
		s.log.Warn(logev.AdoptTakeFailed, "pid", pid, "fd", fd, "error", err)
		// It listens all the same: readiness by listen counts it.
		return result{ev: Event{Socket: i, Listen: true, PID: pid, FD: fd}}
	}
	return result{ev: Event{Socket: i, Listen: true, Adopted: true, PID: pid, FD: fd, Addr: a}}
}

// adoptBind binds the program's datagram socket for it and adopts it: no
// later call of a datagram socket would show hupd that the program's own
// bind worked. The bind runs with hupd's privileges; an error is the
// program's.
func (s *Server) adoptBind(pid, fd, theirs int, raw []byte, a Addr, i int) result {
	var err error
	if a.Family == unix.AF_UNIX {
		// a.Path is absolute now; an abstract name keeps its '@'.
		err = unix.Bind(theirs, &unix.SockaddrUnix{Name: a.Path})
	} else if _, _, e := unix.Syscall(unix.SYS_BIND, uintptr(theirs), uintptr(unsafe.Pointer(&raw[0])), uintptr(len(raw))); e != 0 {
		err = e
	}
	if err != nil {
		return result{errno: errnoOf(err)}
	}
	if err := s.adopt(theirs, i, a); err != nil {
		s.log.Warn(logev.AdoptTakeFailed, "pid", pid, "fd", fd, "error", err)
		return result{ev: Event{Socket: i, PID: pid, FD: fd, Addr: a}} // bound all the same
	}
	return result{ev: Event{Socket: i, Adopted: true, PID: pid, FD: fd, Addr: a}}
}

// adopt puts the program's socket theirs (bound to a) on pending socket
// i's fd number, for this and every later generation. Under adoptMu.
func (s *Server) adopt(theirs, i int, a Addr) error {
	if err := withFD(s.held[i].File, func(fd int) error {
		return os.NewSyscallError("dup3", unix.Dup3(theirs, fd, unix.O_CLOEXEC))
	}); err != nil {
		return err
	}
	s.describe(i)
	if a.Family == unix.AF_UNIX && !strings.HasPrefix(a.Path, "@") {
		s.files = append(s.files, s.held[i].Path) // the program may remove it as it stops
	}
	return nil
}

// withFD runs fn with f's fd, which f's owner cannot close meanwhile (a
// stop closes hupd's copies of the sockets while generations drain): a
// closed fd number could be another file's by then.
func withFD(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// socketFiles lists the held unix sockets whose files exist now.
func (s *Server) socketFiles() []string {
	var paths []string
	for _, h := range s.held {
		if h.Family == unix.AF_UNIX && !h.Pending && h.Path != "" && h.Path[0] != '@' && isSocketFile(h.Path) {
			paths = append(paths, h.Path)
		}
	}
	return paths
}

// checkSocketFiles warns about socket files (from socketFiles) that the
// generation removed, as Go's net.Listen("unix") does when its listener
// is closed: the socket still works, but clients cannot find it.
func (s *Server) checkSocketFiles(paths []string) {
	for _, p := range paths {
		if !isSocketFile(p) {
			s.log.Warn(logev.BindSocketFileRemoved, "path", p)
		}
	}
}

func isSocketFile(path string) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK
}

// checkSocketFile warns when a program removed the socket file before its
// bind, as many do to clear a stale one: clients can no longer reach the
// held socket by its path.
func (s *Server) checkSocketFile(h Socket, a Addr, pid int) {
	if !isSocketFile(h.Path) {
		s.log.Warn(logev.BindSocketFileRemovedBefore, "pid", pid, "path", a.Path)
	}
}

// peerFD duplicates the calling thread's fd into hupd (pidfd_getfd). A
// thread pidfd (Linux 6.9) reaches the thread's own fd table, which a
// thread that unshared CLONE_FILES does not share with its process; older
// kernels get the process's.
func peerFD(tid, fd int) (int, error) {
	pidfd, err := unix.PidfdOpen(tid, pidfdThread)
	if err != nil {
		pid, terr := tgid(tid)
		if terr != nil {
			return -1, terr
		}
		if pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
			return -1, os.NewSyscallError("pidfd_open", err)
		}
	}
	defer unix.Close(pidfd)
	theirs, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return -1, os.NewSyscallError("pidfd_getfd", err)
	}
	unix.CloseOnExec(theirs)
	return theirs, nil
}

// pidfdThread is PIDFD_THREAD (O_EXCL): a pidfd for a thread, not only a
// thread-group leader.
const pidfdThread = unix.O_EXCL

// tgid is the process of thread tid (seccomp reports the thread).
func tgid(tid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, err
	}
	_, rest, ok := bytes.Cut(b, []byte("\nTgid:"))
	if !ok {
		return 0, fmt.Errorf("/proc/%d/status has no Tgid", tid)
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	return strconv.Atoi(string(bytes.TrimSpace(line)))
}

// cloexec reports whether the program's fd is close-on-exec, so that the
// held socket put in its place keeps that.
func cloexec(tid, fd int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return true
	}
	_, rest, ok := bytes.Cut(b, []byte("flags:"))
	if !ok {
		return true
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	fl, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 8, 64)
	return err != nil || fl&unix.O_CLOEXEC != 0
}

// socketFamily reads a program socket's family and, for IPv6, whether it
// is IPv6-only.
func socketFamily(fd int) (family int, v6only bool) {
	family, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if family == unix.AF_INET6 {
		v, _ := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		v6only = v != 0
	}
	return family, v6only
}

// notAdopted warns, once per socket, that a program bound a socket that
// hupd does not take for pending socket i: it would hold more than was
// configured (another family, IPV6_V6ONLY, a wider address).
func (s *Server) notAdopted(i, pid int, a Addr) {
	if s.warned[i] {
		return
	}
	s.warned[i] = true
	s.log.Warn(logev.AdoptMismatch, "pid", pid, "address", a.String())
}

// errnoOf is the errno a failed syscall gave (EINVAL if none).
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) && e != 0 {
		return e
	}
	return unix.EINVAL
}

func familyName(f int) string {
	switch f {
	case unix.AF_INET:
		return "IPv4"
	case unix.AF_INET6:
		return "IPv6"
	case unix.AF_UNIX:
		return "unix"
	}
	return "family " + strconv.Itoa(f)
}
