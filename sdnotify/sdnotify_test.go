package sdnotify

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"os"

	"golang.org/x/sys/unix"
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

// TestFDStoreEnv: $FDSTORE is the store's size when it is a count, 0
// (unknown) otherwise.
func TestFDStoreEnv(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	for v, want := range map[string]int{"": 0, "4": 4, "0": 0, "-1": 0, "lots": 0, "4096": 4096} {
		t.Setenv("FDSTORE", v)
		n, err := FromEnv()
		if err != nil || n.FDStore() != want {
			t.Errorf("FDSTORE=%q: %v, %v; want %d", v, n, err, want)
		}
	}
}

// TestSendFDs: the fds go with the datagram as SCM_RIGHTS, each a
// duplicate of the sender's (the same socket), which stays open.
func TestSendFDs(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	c := listen(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	n, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, err := FDStore("http")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SendFDs([]int{int(f.Fd())}, lines...); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, oob := make([]byte, 1024), make([]byte, unix.CmsgSpace(4*4))
	k, oobn, _, _, err := c.ReadMsgUnix(b, oob)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b[:k]); got != "FDSTORE=1\nFDNAME=http\n" {
		t.Errorf("payload %q", got)
	}
	cms, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(cms) != 1 {
		t.Fatalf("control messages %v, %v", cms, err)
	}
	fds, err := unix.ParseUnixRights(&cms[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights %v, %v", fds, err)
	}
	defer unix.Close(fds[0])
	var sent, got unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &sent); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(fds[0], &got); err != nil {
		t.Fatal(err)
	}
	if sent.Ino != got.Ino || sent.Dev != got.Dev {
		t.Errorf("received fd is inode %d, sent %d", got.Ino, sent.Ino)
	}
	if fds[0] == int(f.Fd()) {
		t.Errorf("received fd %d is the sender's own number: not a duplicate", fds[0])
	}
	// Without fds: no control message at all.
	if err := n.SendFDs(nil, "FDSTOREREMOVE=1", "FDNAME=http"); err != nil {
		t.Fatal(err)
	}
	if _, oobn, _, _, err := c.ReadMsgUnix(b, oob); err != nil || oobn != 0 {
		t.Errorf("a message without fds: %d bytes of control data, %v", oobn, err)
	}
	if err := n.SendFDs([]int{int(f.Fd())}, "FDSTORE=1", "FDNAME=a\nREADY=1"); err == nil {
		t.Error("a line with a newline was sent")
	}
}

// TestFDNames: the names systemd keeps an fd under, and the lines that
// store and remove one.
func TestFDNames(t *testing.T) {
	for _, ok := range []string{"http", "unknown", "tcp_//127.0.0.1_8080", "a b", strings.Repeat("x", 255), "~!@#"} {
		if err := ValidFDName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a:b", "tab\there", "new\nline", "del\x7f", "caf\u00e9", strings.Repeat("x", 256)} {
		if err := ValidFDName(bad); !errors.Is(err, ErrFDName) {
			t.Errorf("%q: %v, want ErrFDName", bad, err)
		}
		if _, err := FDStore(bad); !errors.Is(err, ErrFDName) {
			t.Errorf("FDStore(%q): %v", bad, err)
		}
		if _, err := FDStoreRemove(bad); !errors.Is(err, ErrFDName) {
			t.Errorf("FDStoreRemove(%q): %v", bad, err)
		}
	}
	if got, _ := FDStore("web"); strings.Join(got, "\n") != "FDSTORE=1\nFDNAME=web" {
		t.Errorf("FDStore: %q", got)
	}
	if got, _ := FDStoreRemove("web"); strings.Join(got, "\n") != "FDSTOREREMOVE=1\nFDNAME=web" {
		t.Errorf("FDStoreRemove: %q", got)
	}
}
