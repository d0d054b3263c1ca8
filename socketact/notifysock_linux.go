package socketact

// The receiving side of sd_notify(3): hupd gives each child generation its
// own NOTIFY_SOCKET and reads what the child (or any process that finds the
// socket) sends there. The kernel stamps every datagram with the sender's
// PID, UID and GID (SCM_CREDENTIALS), so hupd can tell the main process from
// a helper and can drop datagrams from strangers.

import (
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

// Keys of the sd_notify protocol that hupd acts on. Others (FDSTORE, BARRIER,
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
)

// notifyRcvBuf is the receive buffer asked for, as systemd asks for its own
// notify socket. For AF_UNIX datagrams the queue is also bounded by
// net.unix.max_dgram_qlen; a sender blocks (or gets EAGAIN) while it is full,
// so the owner of a NotifySocket must keep calling Receive.
const notifyRcvBuf = 8 << 20

// scmMaxFD is the kernel's limit of fds in one SCM_RIGHTS message.
const scmMaxFD = 253

// NotifySocket is a unixgram socket that receives sd_notify datagrams with
// the sender's credentials (SO_PASSCRED / SCM_CREDENTIALS). Receive and Close
// may be called from different goroutines.
type NotifySocket struct {
	// Path is the value for a child's NOTIFY_SOCKET: an absolute file path
	// or "@name" for the abstract namespace.
	Path string

	f      *os.File
	rc     syscall.RawConn
	ino    uint64 // inode of the socket file we created, 0 if none
	closed atomic.Bool
	once   sync.Once
	err    error
}

// NotifyMessage is one datagram received on a NotifySocket.
type NotifyMessage struct {
	// PID, UID and GID of the sender as the kernel reports them
	// (SCM_CREDENTIALS), in hupd's namespaces. PID is 0 and UID and GID are
	// -1 when the datagram carried no credentials; a sender in a PID
	// namespace hupd cannot see also shows PID 0.
	PID, UID, GID int
	// Fields holds the KEY=VALUE lines of the datagram (see ParseNotify).
	// It is never nil.
	Fields map[string]string
	// ClosedFDs counts the file descriptors that came with the datagram
	// (SCM_RIGHTS, as FDSTORE=1 sends them). hupd does not keep fds for a
	// service: Receive has closed them.
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
// SO_PASSCRED on and a receive buffer large enough for bursts.
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

// Receive blocks for the next datagram. Outcomes:
//
//   - (m, nil): a datagram, with the sender's credentials and its fields;
//   - (m, ErrNotifyTruncated): a datagram longer than NotifyMaxMessage; m has
//     the credentials but no fields, the payload is dropped;
//   - (zero, ErrNotifyClosed): Close was called, before or during Receive;
//   - (zero, other error): recvmsg failed; the socket stays usable.
//
// In every case fds passed with the datagram have been closed.
func (n *NotifySocket) Receive() (NotifyMessage, error) {
	buf := make([]byte, NotifyMaxMessage)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(scmMaxFD*4))
	var (
		nr, oobn, flags int
		rerr            error
	)
	err := n.rc.Read(func(fd uintptr) bool {
		// MSG_CMSG_CLOEXEC: an fd someone sends us must not leak into a
		// child started before we close it.
		nr, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if n.closed.Load() {
		if err == nil && rerr == nil {
			closeRights(oob[:oobn])
		}
		return NotifyMessage{}, ErrNotifyClosed
	}
	if err != nil {
		return NotifyMessage{}, err
	}
	if rerr != nil {
		return NotifyMessage{}, os.NewSyscallError("recvmsg", rerr)
	}
	m := NotifyMessage{UID: -1, GID: -1}
	m.parseControl(oob[:oobn])
	if flags&unix.MSG_TRUNC != 0 {
		m.Fields = map[string]string{}
		return m, ErrNotifyTruncated
	}
	m.Fields = ParseNotify(buf[:nr])
	return m, nil
}

// parseControl takes the credentials from b and closes any fds it carries.
func (m *NotifyMessage) parseControl(b []byte) {
	for len(b) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(b)
		if err != nil {
			return
		}
		b = rest
		if h.Level != unix.SOL_SOCKET {
			continue
		}
		switch h.Type {
		case unix.SCM_CREDENTIALS:
			if len(data) >= unix.SizeofUcred {
				c, err := unix.ParseUnixCredentials(&unix.SocketControlMessage{Header: h, Data: data})
				if err == nil {
					m.PID, m.UID, m.GID = int(c.Pid), int(c.Uid), int(c.Gid)
				}
			}
		case unix.SCM_RIGHTS:
			m.ClosedFDs += closeFDs(data)
		}
	}
}

// closeRights closes the fds of every SCM_RIGHTS message in b.
func closeRights(b []byte) {
	var m NotifyMessage
	m.parseControl(b)
}

func closeFDs(data []byte) int {
	fds, err := unix.ParseUnixRights(&unix.SocketControlMessage{
		Header: unix.Cmsghdr{Level: unix.SOL_SOCKET, Type: unix.SCM_RIGHTS},
		Data:   data[:len(data)&^3],
	})
	if err != nil {
		return 0
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	return len(fds)
}

// Close unblocks Receive, closes the socket and removes its file (only if
// the file at Path is still the socket it bound). It does not remove the
// directory. Calling Close again does nothing and returns nil.
func (n *NotifySocket) Close() error {
	n.once.Do(func() {
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

// parentPID reads the PPid of pid from /proc/PID/stat: the fourth field,
// counted after the last ')' because the command name may hold anything.
func parentPID(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:]) // state, ppid, …
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}
