package socketact

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Handing hupd's sockets to a new image of itself (an in-place upgrade):
// the fds stay open across exec, and these carry what the new image must
// know about each to treat it as its own.

// ListenerState is a Listener as the new image receives it.
type ListenerState struct {
	FD        int
	Spec      Spec
	Bound     Address
	Inherited bool
	UnixIno   uint64 // the socket file hupd created, to remove at exit
}

// State describes l, whose socket is fd (l.File's, kept open across exec).
func (l *Listener) State() ListenerState {
	return ListenerState{FD: int(l.File.Fd()), Spec: l.Spec, Bound: l.Bound, Inherited: l.Inherited, UnixIno: l.unixIno}
}

// RestoreListener makes the Listener st describes, on its fd, close-on-exec
// again. It checks that the fd is a socket.
func RestoreListener(st ListenerState) (*Listener, error) {
	if _, err := unix.GetsockoptInt(st.FD, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return nil, fmt.Errorf("handed-over socket %s on fd %d: %w", st.Spec.Address, st.FD, os.NewSyscallError("getsockopt", err))
	}
	f, err := fileOf(st.FD, st.Spec.Address.String())
	if err != nil {
		return nil, fmt.Errorf("handed-over socket %s on fd %d: %w", st.Spec.Address, st.FD, err)
	}
	return &Listener{Spec: st.Spec, File: f, Bound: st.Bound, Inherited: st.Inherited, unixIno: st.UnixIno}, nil
}

// fileOf wraps socket fd, close-on-exec, in an *os.File that the Go
// runtime never polls, and keeps its number. os.NewFile of a non-blocking
// fd registers it with the runtime's epoll, which would then wake hupd at
// every connection; and the fd cannot be made blocking, as the open file
// description is shared with the children. So the File is made on a
// blocking stand-in (/dev/null) at that number, which the socket then
// replaces (dup3).
func fileOf(fd int, name string) (*os.File, error) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	if fl&unix.O_NONBLOCK == 0 {
		unix.CloseOnExec(fd)
		return os.NewFile(uintptr(fd), name), nil
	}
	keep, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	defer unix.Close(keep)
	null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("open /dev/null", err)
	}
	err = unix.Dup3(null, fd, unix.O_CLOEXEC)
	unix.Close(null)
	if err != nil {
		return nil, os.NewSyscallError("dup3", err)
	}
	f := os.NewFile(uintptr(fd), name) // blocking: never polled
	if err := unix.Dup3(keep, fd, unix.O_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("dup3", err) // unreachable: fd is open
	}
	return f, nil
}

// NotifyState is a NotifySocket as the new image receives it.
type NotifyState struct {
	FD   int
	Path string
	Ino  uint64
}

// State describes n, whose socket stays open across exec.
func (n *NotifySocket) State() NotifyState {
	fd := -1
	// Not n.f.Fd(), which would make the socket blocking.
	n.rc.Control(func(f uintptr) { fd = int(f) })
	return NotifyState{FD: fd, Path: n.Path, Ino: n.ino}
}

// RestoreNotify makes the NotifySocket st describes, close-on-exec again.
func RestoreNotify(st NotifyState) (*NotifySocket, error) {
	if _, err := unix.GetsockoptInt(st.FD, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return nil, fmt.Errorf("handed-over notify socket %s on fd %d: %w", st.Path, st.FD, os.NewSyscallError("getsockopt", err))
	}
	unix.CloseOnExec(st.FD)
	if err := unix.SetNonblock(st.FD, true); err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	// On again: harmless if it was, needed if an older hupd made it.
	n := &NotifySocket{Path: st.Path, ino: st.Ino, pidfds: passPidfd(st.FD), f: os.NewFile(uintptr(st.FD), "notify:"+st.Path)}
	rc, err := n.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	n.rc = rc
	return n, nil
}
