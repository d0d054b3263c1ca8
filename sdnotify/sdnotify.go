// Package sdnotify speaks for hupd to the service manager that started it
// (systemd's sd_notify protocol): one datagram of newline-separated
// KEY=VALUE lines per call to the unix socket named by $NOTIFY_SOCKET,
// with fds attached (SCM_RIGHTS) for the manager's fd store.
//
// It is the sending side only; the messages hupd receives from its
// children are socketact's.
package sdnotify

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends to the service manager's notify socket.
type Notifier struct {
	addr     *unix.SockaddrUnix // a leading '@' names an abstract socket
	watchdog time.Duration
	fdStore  int
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET, or nil when hupd was not
// started by a service manager that listens (the variable is unset). The
// watchdog interval is $WATCHDOG_USEC when $WATCHDOG_PID is unset or
// hupd's own PID. The fd store's size is $FDSTORE (see FDStore). A socket
// in a form hupd cannot use is an error.
func FromEnv() (*Notifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: only unix socket paths and @abstract names are supported", path)
	}
	n := &Notifier{addr: &unix.SockaddrUnix{Name: path}}
	// systemd 254 and later set it from FileDescriptorStoreMax=, and only
	// when that is above 0; anything but a count is taken as unset.
	if v, err := strconv.ParseUint(os.Getenv("FDSTORE"), 10, 31); err == nil {
		n.fdStore = int(v)
	}
	if us := os.Getenv("WATCHDOG_USEC"); us != "" {
		pid := os.Getenv("WATCHDOG_PID")
		if pid == "" || pid == strconv.Itoa(os.Getpid()) {
			v, err := strconv.ParseUint(us, 10, 63)
			if err != nil || v == 0 {
				return nil, fmt.Errorf("WATCHDOG_USEC=%q: want a positive number of microseconds", us)
			}
			n.watchdog = time.Duration(v) * time.Microsecond
		}
	}
	return n, nil
}

// Watchdog is the service manager's watchdog interval, 0 if none: hupd
// must send WATCHDOG=1 more often than that.
func (n *Notifier) Watchdog() time.Duration { return n.watchdog }

// FDStore is how many file descriptors the service manager keeps for the
// service in its fd store ($FDSTORE, which systemd 254 and later set from
// FileDescriptorStoreMax=), 0 when it does not say: an older systemd, a
// service without a store, or another manager.
func (n *Notifier) FDStore() int { return n.fdStore }

// Send sends lines (KEY=VALUE, without newlines) as one datagram, from a
// socket of its own, as sd_notify(3) does: nothing stays open, and a
// service manager that re-executes itself is reached all the same.
func (n *Notifier) Send(lines ...string) error {
	return n.SendFDs(nil, lines...)
}

// SendFDs is Send with fds attached to the datagram (SCM_RIGHTS), as
// sd_pid_notify_with_fds(3) sends them: the manager receives duplicates,
// and the caller's fds stay open.
func (n *Notifier) SendFDs(fds []int, lines ...string) error {
	for _, l := range lines {
		if strings.ContainsRune(l, '\n') {
			return errors.New("sdnotify: a line must not hold a newline")
		}
	}
	return sendTo(n.addr.Name, []byte(strings.Join(lines, "\n")+"\n"), fds)
}

// SendTo sends payload as one datagram to the notify socket at path (a
// file path, or "@name" for an abstract one), from a socket of its own.
func SendTo(path string, payload []byte) error { return sendTo(path, payload, nil) }

func sendTo(path string, payload []byte, fds []int) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, payload, oob, &unix.SockaddrUnix{Name: path}, 0); err != nil {
		return fmt.Errorf("NOTIFY_SOCKET=%s: %w", path, os.NewSyscallError("sendmsg", err))
	}
	return nil
}

// ErrFDName is wrapped by the error for a name the service manager would
// not keep a stored fd under.
var ErrFDName = errors.New("sdnotify: invalid fd name")

// ValidFDName says why name cannot name an fd in the fd store (FDNAME=)
// and in $LISTEN_FDNAMES, or nil: systemd takes 1 to 255 printable ASCII
// characters other than ':', the separator of $LISTEN_FDNAMES, and stores
// an fd with any other name as "stored".
func ValidFDName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("%w %q: want 1 to 255 characters", ErrFDName, name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c > '~' || c == ':' {
			return fmt.Errorf("%w %q: only printable ASCII other than ':'", ErrFDName, name)
		}
	}
	return nil
}

// FDStore returns the lines that store the fds sent with them in the
// service manager's fd store under name (FDSTORE=1, FDNAME=). systemd
// keeps them until FDSTOREREMOVE=1 names them, their socket reports
// POLLHUP or POLLERR, or the service stops for good, and hands them back
// at the next start in $LISTEN_FDS and $LISTEN_FDNAMES. Names need not be
// unique; an fd the store already holds is not stored twice.
func FDStore(name string) ([]string, error) {
	if err := ValidFDName(name); err != nil {
		return nil, err
	}
	return []string{"FDSTORE=1", "FDNAME=" + name}, nil
}

// FDStoreRemove returns the lines that close every fd the service
// manager's fd store holds under name (FDSTOREREMOVE=1, FDNAME=).
func FDStoreRemove(name string) ([]string, error) {
	if err := ValidFDName(name); err != nil {
		return nil, err
	}
	return []string{"FDSTOREREMOVE=1", "FDNAME=" + name}, nil
}

// MonotonicUsec is the MONOTONIC_USEC= line for now: CLOCK_MONOTONIC in
// microseconds, which systemd (253 and later) wants next to RELOADING=1
// to tell this reload from an earlier one.
func MonotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "MONOTONIC_USEC=0"
	}
	return "MONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
}

// ExtendTimeout is the EXTEND_TIMEOUT_USEC= line asking the service
// manager to wait d more from now for the current start, reload or stop.
func ExtendTimeout(d time.Duration) string {
	return "EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10)
}

// Status is the STATUS= line for s, on one line.
func Status(s string) string {
	return "STATUS=" + strings.ReplaceAll(s, "\n", " ")
}
