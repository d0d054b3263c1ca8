package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"os"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 1024)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

// TestSendPathAndAbstract: one datagram of newline-terminated lines, to a
// socket path and to an abstract name.
func TestSendPathAndAbstract(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@hupd-sdnotify-test-" + strconv.Itoa(os.Getpid())} {
		c := listen(t, name)
		t.Setenv("NOTIFY_SOCKET", name)
		n, err := FromEnv()
		if err != nil || n == nil {
			t.Fatalf("%s: FromEnv = %v, %v", name, n, err)
		}
		if err := n.Send("READY=1", Status("serving\ngeneration 1")); err != nil {
			t.Fatal(err)
		}
		if got, want := read(t, c), "READY=1\nSTATUS=serving generation 1\n"; got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
		if err := n.Send("A=1\nB=2"); err == nil {
			t.Error("a line with a newline was sent")
		}
	}
}

// TestFromEnv: no socket, no notifier; a socket form hupd cannot use and a
// bad WATCHDOG_USEC are errors; the watchdog is hupd's only when
// WATCHDOG_PID is unset or hupd's own PID.
func TestFromEnv(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if n, err := FromEnv(); n != nil || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, %v", n, err)
	}
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "vsock:2:1234") {
		t.Errorf("vsock socket: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		bad       bool
	}{
		{"", "", 0, false},
		{"2000000", "", 2 * time.Second, false},
		{"2000000", strconv.Itoa(os.Getpid()), 2 * time.Second, false},
		{"2000000", "1", 0, false}, // for another process
		{"0", "", 0, true},
		{"soon", "", 0, true},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		n, err := FromEnv()
		if tc.bad {
			if err == nil {
				t.Errorf("WATCHDOG_USEC=%q: no error", tc.usec)
			}
			continue
		}
		if err != nil || n.Watchdog() != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, %v; want %v", tc.usec, tc.pid, n, err, tc.want)
		}
	}
}

func TestLines(t *testing.T) {
	if got := ExtendTimeout(1500 * time.Millisecond); got != "EXTEND_TIMEOUT_USEC=1500000" {
		t.Error(got)
	}
	if got := MonotonicUsec(); !strings.HasPrefix(got, "MONOTONIC_USEC=") || got == "MONOTONIC_USEC=0" {
		t.Error(got)
	}
}
