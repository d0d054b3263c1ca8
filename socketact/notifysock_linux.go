package socketact

// The receiving side of sd_notify(3): hupd gives each child generation its
// own NOTIFY_SOCKET and reads what the child (or any process that finds the
// socket) sends there. The kernel stamps every datagram with the sender's
// PID, UID and GID (SCM_CREDENTIALS) and, on Linux 6.5 and later, a pidfd of
// the sender (SO_PASSPIDFD / SCM_PIDFD). The PID alone names the sender only
// while it lives: once it exits, the PID may be given to another process.
// ReceiveChecked therefore asks its caller about the sender right after the
// datagram is read, and believes the answer only if the sender's pidfd still
// answers afterwards: then whatever the caller read under /proc/PID described
// the sender itself. A sender that is gone by then cannot be placed, and is
// not verified.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNotifyClosed is returned by Receive once the socket has been closed.
var ErrNotifyClosed = errors.New("socketact: notify socket closed")

// ErrNotifyTruncated is returned by Receive for a datagram longer than
// NotifyMaxMessage bytes. Such datagrams are dropped, as systemd drops them.
var ErrNotifyTruncated = errors.New("socketact: notify datagram too long")

// NotifyMaxMessage is the longest datagram Receive accepts, in bytes: PIPE_BUF,
// as in systemd, so every sender that works under systemd works here.
const NotifyMaxMessage = 4096

// Modes of a directory made by NotifyDir.
const (
	// NotifyDirMode keeps the directory to hupd's user: right when the
	// children run as hupd's user or as root.
	NotifyDirMode fs.FileMode = 0o700
	// NotifyDirModeShared lets other users traverse the directory, but not
	// list it or change it: needed when a child runs as another user (after
	// a privilege drop) and must reach a socket inside. The socket file
	// itself is mode 0600, owned by that user (see ListenNotify).
	NotifyDirModeShared fs.FileMode = 0o711
)

// Keys of the sd_notify protocol that hupd acts on. Others (FDSTORE,
// EXIT_STATUS, …) arrive in Fields like any unknown key.
const (
	NotifyReady         = "READY"               // "1": startup or reload finished
	NotifyReloading     = "RELOADING"           // "1": reload started
	NotifyStopping      = "STOPPING"            // "1": shutdown started
	NotifyStatus        = "STATUS"              // free-form one-line status
	NotifyErrno         = "ERRNO"               // errno-style failure code
	NotifyMainPID       = "MAINPID"             // the service's main PID changed
	NotifyMonotonicUsec = "MONOTONIC_USEC"      // CLOCK_MONOTONIC at RELOADING=1
	NotifyExtendTimeout = "EXTEND_TIMEOUT_USEC" // ask for more time
	NotifyWatchdog      = "WATCHDOG"            // "1" keep-alive, "trigger" fail now
	NotifyWatchdogUsec  = "WATCHDOG_USEC"       // change the watchdog interval
	// "1", with one fd: the sender waits until that fd is closed, which
	// says that every datagram it sent before has been handled
	// (sd_notify_barrier(3); see NotifyMessage.Barrier).
	NotifyBarrier = "BARRIER"
)

// notifyRcvBuf is the receive buffer asked for, as systemd asks for its own
// notify socket. For AF_UNIX datagrams the queue is also bounded by
// net.unix.max_dgram_qlen; a sender blocks (or gets EAGAIN) while it is full,
// so the owner of a NotifySocket must keep calling Receive.
const notifyRcvBuf = 8 << 20

// scmMaxFD is the kernel's limit of fds in one SCM_RIGHTS message.
const scmMaxFD = 253

// NotifySocket is a unixgram socket that receives sd_notify datagrams with
// the sender's credentials (SO_PASSCRED / SCM_CREDENTIALS) and, where the
// kernel has it, a pidfd of the sender (SO_PASSPIDFD / SCM_PIDFD). Receive
// and Close may be called from different goroutines.
type NotifySocket struct {
	// Path is the value for a child's NOTIFY_SOCKET: an absolute file path
	// or "@name" for the abstract namespace.
	Path string

	f      *os.File
	rc     syscall.RawConn
	ino    uint64 // inode of the socket file we created, 0 if none
	pidfds bool   // SO_PASSPIDFD is on: each datagram brings SCM_PIDFD
	closed atomic.Bool
	once   sync.Once
	err    error

	// rmu serialises receivers, which share buf and oob: a generation gets
	// a few datagrams, and a pair of buffers each (5 KiB) was garbage.
	rmu      sync.Mutex
	buf, oob []byte

	// origin is 1 + a pidfd of the process started for the socket's
	// generation (SetOrigin); 0: none.
	origin atomic.Int64
}

// NotifyMessage is one datagram received on a NotifySocket.
type NotifyMessage struct {
	// PID, UID and GID of the sender as the kernel reports them
	// (SCM_CREDENTIALS), in hupd's namespaces. PID is 0 and UID and GID are
	// -1 when the datagram carried no credentials; a sender in a PID
	// namespace hupd cannot see also shows PID 0.
	PID, UID, GID int
	// Verified is the answer of ReceiveChecked's check about PID, kept only
	// if the sender was still there, under that PID, once the check had
	// returned (its pidfd still answered). Always false from Receive, and
	// for a datagram without credentials.
	Verified bool
	// CgroupID is the id of the sender's cgroup v2 (the inode number of its
	// directory), read from the sender's pidfd (PIDFD_INFO_CGROUPID); the
	// kernel keeps it after the sender has exited, so it places a sender
	// that is already gone (systemd-notify --no-block). 0 when unknown: no
	// pidfd came with the datagram (kernels before 6.5; before 6.15 for a
	// sender already reaped) or the kernel cannot tell (before 6.13).
	CgroupID uint64
	// Fields holds the KEY=VALUE lines of the datagram (see ParseNotify).
	// It is never nil.
	Fields map[string]string
	// Barrier is the fd a BARRIER=1 datagram carries, kept open, close-on-
	// exec: its sender waits until every copy is closed. The receiver closes
	// it once it has handled every datagram received before this one. It is
	// nil for every other datagram.
	Barrier *os.File
	// ClosedFDs counts the other file descriptors that came with the
	// datagram (SCM_RIGHTS, as FDSTORE=1 sends them). hupd does not keep fds
	// for a service: Receive has closed them.
	ClosedFDs int
}

// NotifyDir creates a fresh directory for notify sockets under dir
// (os.TempDir() when dir is ""), named hupd-notify-*. uid is the user the
// children will run as, -1 for hupd's own: when it is another user (and not
// root) the directory gets NotifyDirModeShared, else NotifyDirMode. A child
// that changes user later needs os.Chmod(dir, NotifyDirModeShared). The
// caller removes the directory (os.RemoveAll) when done.
func NotifyDir(dir string, uid int) (string, error) {
	d, err := os.MkdirTemp(dir, "hupd-notify-")
	if err != nil {
		return "", err
	}
	mode := NotifyDirMode
	if uid > 0 && uid != os.Geteuid() {
		mode = NotifyDirModeShared
	}
	// Set the mode explicitly: MkdirTemp's 0700 is less the umask.
	if err := os.Chmod(d, mode); err != nil {
		os.Remove(d)
		return "", err
	}
	return d, nil
}

// ListenNotify creates a notify socket at path: an absolute file path, or
// "@name" for the abstract namespace. The socket is close-on-exec, has
// SO_PASSCRED on, SO_PASSPIDFD too when the kernel has it (Linux 6.5), and a
// receive buffer large enough for bursts.
//
// A socket file is created with mode 0600; a stale socket file nobody uses is
// replaced, a live one or a file of another type is an error. If uid or gid
// is >= 0 the file is chowned to them (-1 leaves either unchanged), so that a
// child running as that user can send to it; the directory must then let
// that user through: NotifyDirModeShared (0711), as NotifyDir makes it for a
// uid. Abstract sockets have no file: uid and gid are ignored, and any
// process in hupd's network namespace can send (check the credentials).
func ListenNotify(path string, uid, gid int) (*NotifySocket, error) {
	fail := func(err error) (*NotifySocket, error) {
		return nil, fmt.Errorf("notify socket %s: %w", path, err)
	}
	abstract := strings.HasPrefix(path, "@")
	switch {
	case path == "@":
		return fail(errors.New("empty abstract socket name"))
	case !abstract && !strings.HasPrefix(path, "/"):
		return fail(errors.New("path must be absolute or start with '@'"))
	case len(path) > len(unix.RawSockaddrUnix{}.Path)-1:
		return fail(fmt.Errorf("path longer than %d bytes", len(unix.RawSockaddrUnix{}.Path)-1))
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fail(os.NewSyscallError("socket", err))
	}
	n := &NotifySocket{Path: path, f: os.NewFile(uintptr(fd), "notify:"+path)}
	if err := n.setup(fd, abstract, uid, gid); err != nil {
		n.Close()
		return fail(err)
	}
	if n.rc, err = n.f.SyscallConn(); err != nil {
		n.Close()
		return fail(err)
	}
	return n, nil
}

func (n *NotifySocket) setup(fd int, abstract bool, uid, gid int) error {
	// Before bind: no datagram can arrive without credentials.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return os.NewSyscallError("setsockopt SO_PASSCRED", err)
	}
	n.pidfds = passPidfd(fd)
	// SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, notifyRcvBuf) != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, notifyRcvBuf); err != nil {
			return os.NewSyscallError("setsockopt SO_RCVBUF", err)
		}
	}
	if !abstract {
		if err := removeStaleSocket(n.Path); err != nil {
			return err
		}
		// bind creates the file with the socket inode's mode less the
		// umask: never more open than 0600, not even for an instant.
		if err := unix.Fchmod(fd, 0o600); err != nil {
			return os.NewSyscallError("fchmod", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: n.Path}); err != nil {
		return os.NewSyscallError("bind", err)
	}
	if abstract {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(n.Path, &st); err != nil {
		return os.NewSyscallError("lstat", err)
	}
	n.ino = st.Ino
	if err := os.Chmod(n.Path, 0o600); err != nil {
		return err
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(n.Path, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// passPidfd asks the kernel for a pidfd of the sender with every datagram
// (SO_PASSPIDFD, Linux 6.5). Older kernels refuse the option (ENOPROTOOPT):
// then only SCM_CREDENTIALS identify a sender, and ReceiveChecked opens a
// pidfd from its PID itself.
func passPidfd(fd int) bool {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSPIDFD, 1) == nil
}

// PassesPidfd reports whether datagrams on n come with the sender's pidfd
// (SCM_PIDFD): false on kernels before 6.5.
func (n *NotifySocket) PassesPidfd() bool { return n.pidfds }

// Receive blocks for the next datagram. Outcomes:
//
//   - (m, nil): a datagram, with the sender's credentials and its fields;
//   - (m, ErrNotifyTruncated): a datagram longer than NotifyMaxMessage; m has
//     the credentials but no fields, the payload is dropped;
//   - (zero, ErrNotifyClosed): Close was called, before or during Receive;
//   - (zero, other error): recvmsg failed; the socket stays usable.
//
// In every case fds passed with the datagram have been closed, except the
// one of a BARRIER=1 datagram (m.Barrier), which the caller closes.
func (n *NotifySocket) Receive() (NotifyMessage, error) { return n.ReceiveChecked(nil) }

// ReceiveChecked is Receive that also asks check whether it trusts the
// sender, by PID, right after the datagram is read: while a sender that
// waits for a barrier (systemd-notify, sd_notify_barrier) still lives. The
// answer is m.Verified, kept only if the sender's pidfd still answers once
// check has returned, so that what check read about the PID (/proc/PID)
// was about the sender and not about a process that got the PID after it.
// The pidfd is the one the kernel attached (SCM_PIDFD); without
// SO_PASSPIDFD it is opened from the PID at once, which cannot tell a PID
// reused between the sender's exit and that moment (and without pidfds,
// before Linux 5.3, only kill(pid, 0) is left). A sender that has
// exited (and been reaped) before the datagram is read is never verified.
// check is not called for a datagram without credentials. check may be nil.
func (n *NotifySocket) ReceiveChecked(check func(pid int) bool) (NotifyMessage, error) {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	if n.buf == nil {
		n.buf = make([]byte, NotifyMaxMessage)
		n.oob = make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4)+unix.CmsgSpace(scmMaxFD*4))
	}
	// Nothing returned refers to them: ParseNotify copies, parseControl
	// keeps numbers.
	buf, oob := n.buf, n.oob
	var (
		nr, oobn, flags int
		rerr            error
	)
	err := n.rc.Read(func(fd uintptr) bool {
		// MSG_CMSG_CLOEXEC: an fd someone sends us (and the pidfd) must
		// not leak into a child started before we close it.
		nr, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if n.closed.Load() {
		if err == nil && rerr == nil {
			c := parseControl(oob[:oobn])
			c.close()
		}
		return NotifyMessage{}, ErrNotifyClosed
	}
	if err != nil {
		return NotifyMessage{}, err
	}
	if rerr != nil {
		return NotifyMessage{}, os.NewSyscallError("recvmsg", rerr)
	}
	c := parseControl(oob[:oobn])
	m := NotifyMessage{PID: c.pid, UID: c.uid, GID: c.gid, CgroupID: pidfdCgroup(c.pidfd)}
	if o := int(n.origin.Load()) - 1; c.pidfd >= 0 && o >= 0 && samePidfd(c.pidfd, o) {
		// The process started for this socket, even if it has exited
		// (and been reaped) since: a program that says READY=1 or
		// MAINPID= and exits at once.
		m.Verified = true
	} else if check != nil && m.PID > 0 {
		m.Verified = c.verify(m.PID, n.pidfds, check)
	}
	if flags&unix.MSG_TRUNC != 0 {
		m.Fields = map[string]string{}
		m.ClosedFDs = c.close()
		return m, ErrNotifyTruncated
	}
	m.Fields = ParseNotify(buf[:nr])
	if m.Flag(NotifyBarrier) && len(c.rights) > 0 {
		m.Barrier = os.NewFile(uintptr(c.rights[0]), "barrier")
		c.rights = c.rights[1:]
	}
	m.ClosedFDs = c.close()
	return m, nil
}

// SetOrigin gives n a pidfd of the process started for the socket's
// generation (-1: none); n closes it with Close. ReceiveChecked verifies a
// datagram whose SCM_PIDFD names that very process without asking check,
// also once it has exited. Call it before the first ReceiveChecked.
func (n *NotifySocket) SetOrigin(pidfd int) {
	if pidfd < 0 {
		pidfd = -1
	}
	if old := n.origin.Swap(int64(pidfd) + 1); old > 0 {
		unix.Close(int(old) - 1)
	}
}

// pidfsMagic is the pidfd filesystem's magic (Linux 6.9): from then on each
// process has an inode of its own, so that two pidfds name the same
// process exactly when their inodes are the same. Before, every pidfd had
// the one anonymous inode, which tells nothing.
const pidfsMagic = 0x50494446

// samePidfd reports whether pidfds a and b name the same process.
func samePidfd(a, b int) bool {
	var fs unix.Statfs_t
	if unix.Fstatfs(a, &fs) != nil || fs.Type != pidfsMagic {
		return false
	}
	var sa, sb unix.Stat_t
	if unix.Fstat(a, &sa) != nil || unix.Fstat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// control is what the control messages of one datagram carry.
type control struct {
	pid, uid, gid int
	pidfd         int   // SCM_PIDFD, -1 if none (or the kernel could not make one)
	rights        []int // SCM_RIGHTS
}

// parseControl takes the credentials, the pidfd and the fds from b. The
// fds are open until close.
func parseControl(b []byte) control {
	c := control{uid: -1, gid: -1, pidfd: -1}
	for len(b) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(b)
		if err != nil {
			break
		}
		b = rest
		if h.Level != unix.SOL_SOCKET {
			continue
		}
		switch h.Type {
		case unix.SCM_CREDENTIALS:
			if len(data) >= unix.SizeofUcred {
				cr, err := unix.ParseUnixCredentials(&unix.SocketControlMessage{Header: h, Data: data})
				if err == nil {
					c.pid, c.uid, c.gid = int(cr.Pid), int(cr.Uid), int(cr.Gid)
				}
			}
		case unix.SCM_PIDFD:
			// A negative value is the kernel's error: the sender was gone
			// before a pidfd could be made for it.
			if len(data) >= 4 && c.pidfd < 0 {
				c.pidfd = int(int32(binary.NativeEndian.Uint32(data)))
			}
		case unix.SCM_RIGHTS:
			fds, err := unix.ParseUnixRights(&unix.SocketControlMessage{
				Header: unix.Cmsghdr{Level: unix.SOL_SOCKET, Type: unix.SCM_RIGHTS},
				Data:   data[:len(data)&^3],
			})
			if err == nil {
				c.rights = append(c.rights, fds...)
			}
		}
	}
	return c
}

// verify asks check about pid and confirms that pid still named the
// sender afterwards (see ReceiveChecked). passed says SO_PASSPIDFD is on:
// then a missing pidfd means the sender was gone.
func (c *control) verify(pid int, passed bool, check func(int) bool) bool {
	if c.pidfd < 0 {
		if passed {
			return false
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err == unix.ENOSYS { // before Linux 5.3: the PID is all there is
			return check(pid) && unix.Kill(pid, 0) != unix.ESRCH
		}
		if err != nil {
			return false
		}
		c.pidfd = fd
	}
	return check(pid) && PidfdAlive(c.pidfd)
}

// close closes the pidfd and every fd still held, and returns how many fds
// of SCM_RIGHTS it closed.
func (c *control) close() int {
	if c.pidfd >= 0 {
		unix.Close(c.pidfd)
		c.pidfd = -1
	}
	for _, fd := range c.rights {
		unix.Close(fd)
	}
	n := len(c.rights)
	c.rights = nil
	return n
}

// pidfdCgroup returns the cgroup id of the process behind pidfd, also after
// it has exited, or 0. For a process already reaped the kernel answers only
// when PIDFD_INFO_EXIT is asked for too (ESRCH otherwise), with the cgroup
// it exited in (Linux 6.15; SCM_PIDFD of a sender reaped before the
// datagram is read, 6.16).
func pidfdCgroup(pidfd int) uint64 {
	if pidfd < 0 {
		return 0
	}
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_CGROUPID | unix.PIDFD_INFO_EXIT}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(pidfd), unix.PIDFD_GET_INFO, uintptr(unsafe.Pointer(&info)))
	if errno != 0 || info.Mask&unix.PIDFD_INFO_CGROUPID == 0 {
		return 0
	}
	return info.Cgroupid
}

// PidfdAlive reports whether the process behind pidfd has not been reaped
// yet, so that its PID still names it (a zombie counts: its PID is not
// free). It answers true when only permission is lacking.
func PidfdAlive(pidfd int) bool {
	return unix.PidfdSendSignal(pidfd, 0, nil, 0) != unix.ESRCH
}

// Close unblocks Receive, closes the socket and removes its file (only if
// the file at Path is still the socket it bound). It does not remove the
// directory. Calling Close again does nothing and returns nil.
func (n *NotifySocket) Close() error {
	n.once.Do(func() {
		n.SetOrigin(-1)
		n.closed.Store(true)
		if n.ino != 0 {
			var st unix.Stat_t
			if unix.Lstat(n.Path, &st) == nil && st.Ino == n.ino && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
				os.Remove(n.Path)
			}
		}
		n.err = n.f.Close()
	})
	return n.err
}

// ParseNotify parses a datagram: newline-separated KEY=VALUE lines. A later
// key wins; lines without '=' or with an empty key are ignored; a value keeps
// everything after the first '=' (including further '=' and spaces). The
// result is never nil. ParseNotify never panics.
func ParseNotify(b []byte) map[string]string {
	fields := make(map[string]string)
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && k != "" {
			fields[k] = v
		}
	}
	return fields
}

// Flag reports whether key is set to "1" (READY, RELOADING, STOPPING,
// WATCHDOG, …).
func (m NotifyMessage) Flag(key string) bool { return m.Fields[key] == "1" }

// Ready reports whether the message says READY=1.
func (m NotifyMessage) Ready() bool { return m.Flag(NotifyReady) }

// Status returns the STATUS= value and whether there was one.
func (m NotifyMessage) Status() (string, bool) {
	s, ok := m.Fields[NotifyStatus]
	return s, ok
}

// Usec returns the value of key (EXTEND_TIMEOUT_USEC, WATCHDOG_USEC,
// MONOTONIC_USEC) read as decimal microseconds. It returns false when the key
// is missing, is not a plain unsigned decimal or does not fit a Duration.
func (m NotifyMessage) Usec(key string) (time.Duration, bool) {
	s, ok := m.Fields[key]
	if !ok {
		return 0, false
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil || u > uint64(1<<63-1)/uint64(time.Microsecond) {
		return 0, false
	}
	return time.Duration(u) * time.Microsecond, true
}

// MainPID returns the MAINPID= value when it is a valid PID (> 0).
func (m NotifyMessage) MainPID() (int, bool) {
	pid, err := strconv.ParseInt(m.Fields[NotifyMainPID], 10, 32)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return int(pid), true
}

// Errno returns the ERRNO= value when it is a valid errno (> 0).
func (m NotifyMessage) Errno() (syscall.Errno, bool) {
	e, err := strconv.ParseInt(m.Fields[NotifyErrno], 10, 32)
	if err != nil || e <= 0 {
		return 0, false
	}
	return syscall.Errno(e), true
}

// maxAncestry bounds the walk up the process tree: PID reuse during the walk
// could otherwise make a loop.
const maxAncestry = 4096

// IsDescendant reports whether pid is ancestor or one of its descendants, by
// following parent PIDs (/proc/PID/stat, in hupd's PID namespace). It is false
// when either is <= 0, when pid does not exist, or when the chain ends (PID 1,
// or a parent outside the namespace) without meeting ancestor. An orphan
// reparented to a subreaper (hupd itself, as PID 1 or with
// PR_SET_CHILD_SUBREAPER) descends from the subreaper, no longer from the
// generation that spawned it. The answer is a snapshot: processes can exit and
// PIDs be reused while it is computed.
func IsDescendant(pid, ancestor int) bool {
	if pid <= 0 || ancestor <= 0 {
		return false
	}
	for range maxAncestry {
		if pid == ancestor {
			return true
		}
		ppid, ok := parentPID(pid)
		if !ok || ppid <= 0 || ppid == pid {
			return false
		}
		pid = ppid
	}
	return false
}

// parentPID reads the PPid of pid from /proc/PID/stat.
func parentPID(pid int) (int, bool) {
	ppid, _, ok := procStat(pid)
	return ppid, ok
}

// ProcessGroup returns the process group of pid, from /proc/PID/stat (in
// hupd's PID namespace), and false when pid does not exist. The answer is a
// snapshot, about whatever process has the PID now.
func ProcessGroup(pid int) (int, bool) {
	if pid <= 0 {
		return 0, false
	}
	_, pgid, ok := procStat(pid)
	return pgid, ok
}

// procStat reads the parent PID and the process group of pid from
// /proc/PID/stat: the fourth and fifth fields.
func procStat(pid int) (ppid, pgid int, ok bool) {
	f, ok := statFields(pid)
	if !ok || len(f) < 3 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	return ppid, pgid, err1 == nil && err2 == nil
}

// statFields returns the fields of /proc/PID/stat from the third (state)
// on, counted after the last ')' because the command name may hold
// anything; false when pid does not exist.
func statFields(pid int) ([]string, bool) {
	// Read with plain system calls into one buffer: this runs for every
	// notify datagram, several times.
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	var buf [1024]byte // the line is some 300 bytes
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil || n <= 0 {
		return nil, false
	}
	s := string(buf[:n])
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true
}

// StartTime returns when pid started, in clock ticks after boot (the 22nd
// field of /proc/PID/stat), and false when pid does not exist. With the
// PID it names one process over time: a PID reused later has a later
// start.
func StartTime(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	f, ok := statFields(pid)
	if !ok || len(f) < 20 {
		return 0, false
	}
	t, err := strconv.ParseUint(f[19], 10, 64)
	return t, err == nil
}
