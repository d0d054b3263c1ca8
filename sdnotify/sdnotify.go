// Package sdnotify speaks for hupd to the service manager that started it
// (systemd's sd_notify protocol): one datagram of newline-separated
// KEY=VALUE lines per call to the unix socket named by $NOTIFY_SOCKET.
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
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET, or nil when hupd was not
// started by a service manager that listens (the variable is unset). The
// watchdog interval is $WATCHDOG_USEC when $WATCHDOG_PID is unset or
// hupd's own PID. A socket in a form hupd cannot use is an error.
func FromEnv() (*Notifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: only unix socket paths and @abstract names are supported", path)
	}
	n := &Notifier{addr: &unix.SockaddrUnix{Name: path}}
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

// Send sends lines (KEY=VALUE, without newlines) as one datagram, from a
// socket of its own, as sd_notify(3) does: nothing stays open, and a
// service manager that re-executes itself is reached all the same.
func (n *Notifier) Send(lines ...string) error {
	for _, l := range lines {
		if strings.ContainsRune(l, '\n') {
			return errors.New("sdnotify: a line must not hold a newline")
		}
	}
	return SendTo(n.addr.Name, []byte(strings.Join(lines, "\n")+"\n"))
}

// SendTo sends payload as one datagram to the notify socket at path (a
// file path, or "@name" for an abstract one), from a socket of its own.
func SendTo(path string, payload []byte) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, payload, 0, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("NOTIFY_SOCKET=%s: %w", path, os.NewSyscallError("sendto", err))
	}
	return nil
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
