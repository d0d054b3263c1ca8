package socketact

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func nonblocking(t *testing.T, f *os.File) bool {
	t.Helper()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

// spawnWith starts true(1) with f as fd 3, the way the supervisor hands
// sockets to children (os/exec calls File.Fd on it).
func spawnWith(t *testing.T, f *os.File) {
	t.Helper()
	cmd := exec.Command("true")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
}

// The O_NONBLOCK flag is on the file description every generation shares:
// spawning a child must not change it under the running ones.
func TestNonBlockingSurvivesSpawns(t *testing.T) {
	for _, nb := range []bool{false, true} {
		ls, err := Open([]Spec{{Address: Address{Network: "tcp", Host: "127.0.0.1"}, NonBlocking: nb, UID: -1, GID: -1}})
		if err != nil {
			t.Fatal(err)
		}
		l := ls[0]
		for range 2 {
			spawnWith(t, l.File)
			if got := nonblocking(t, l.File); got != nb {
				t.Fatalf("nonblocking=%v: O_NONBLOCK is %v after a spawn", nb, got)
			}
		}
		// An edit flips it in place.
		n, err := l.Reconfigure(Spec{Address: l.Spec.Address, NonBlocking: !nb, UID: -1, GID: -1})
		if err != nil {
			t.Fatal(err)
		}
		spawnWith(t, n.File)
		if got := nonblocking(t, n.File); got != !nb {
			t.Fatalf("reconfigured to nonblocking=%v: O_NONBLOCK is %v", !nb, got)
		}
		CloseAll(ls)
	}
}

// A socket hupd inherited in O_NONBLOCK mode (systemd's NonBlocking=yes)
// keeps it: os.NewFile registers such a descriptor with Go's poller, and
// File.Fd (os/exec calls it for every child) leaves the flag alone only for
// files made by NewFile, not for those of net's File methods.
func TestInheritedNonBlockingKept(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inherited")
	defer f.Close()
	spawnWith(t, f)
	if !nonblocking(t, f) {
		t.Fatal("O_NONBLOCK of an inherited socket cleared by a spawn")
	}
}
