package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAdoptRuntimeTakesTheHandedOverLock: the image an upgrade started
// takes the runtime directory over with the lock fd handed to it, without
// taking anything in it for a dead hupd's; without that fd, the directory
// is locked anew, which a live owner refuses.
func TestAdoptRuntimeTakesTheHandedOverLock(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "x.sock")
	r1, err := OpenRuntime("x", ctl, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	nd, err := r1.notifyDir(-1, -1)
	if err != nil {
		t.Fatal(err)
	}
	var ar *AlreadyRunningError
	if _, err := AdoptRuntime("x", ctl, true, 0, nil); !errors.As(err, &ar) ||
		!strings.Contains(err.Error(), "hupd x already running (pid "+strconv.Itoa(os.Getpid())+")") ||
		!strings.HasSuffix(err.Error(), "; run this one under another name (--name, or name in hupd.toml)") {
		t.Fatalf("AdoptRuntime without a lock: %v", err)
	}
	lock, err := unix.FcntlInt(uintptr(r1.LockFD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := AdoptRuntime("x", ctl, true, lock, nil)
	if err != nil {
		t.Fatalf("AdoptRuntime with the lock: %v", err)
	}
	if r2.LockFD() != lock {
		t.Fatalf("adopted lock fd %d, handed %d", r2.LockFD(), lock)
	}
	if _, err := os.Stat(nd); err != nil {
		t.Fatalf("adopting removed the notify directory: %v", err)
	}
	unix.Close(lock) // r1 still holds the lock; its Close removes the directory
}

// nobodyID is the uid and gid of another user than the tests' own.
const nobodyID = 65534

// TestNotifyDirForAnotherUser: children of a user that cannot reach the
// runtime directory get a notify directory in the temp dir, recorded in
// the runtime directory and removed by the next start after a crash.
func TestNotifyDirForAnotherUser(t *testing.T) {
	base := t.TempDir() // 0700: nobody cannot search it
	ctl := filepath.Join(base, "x.sock")
	r1, err := OpenRuntime("x", ctl, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := r1.notifyDir(nobodyID, nobodyID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(nd, r1.Dir) {
		t.Fatalf("notify dir %s inside a directory nobody cannot reach", nd)
	}
	if again, err := r1.notifyDir(nobodyID, nobodyID); err != nil || again != nd {
		t.Fatalf("second notifyDir: %s, %v; want %s reused", again, err, nd)
	}
	r1.closeLock() // dies without Close
	r2, err := OpenRuntime("x", ctl, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, err := os.Stat(nd); !os.IsNotExist(err) {
		t.Fatalf("%s after the next start: %v, want it removed", nd, err)
	}
	// An upgrade hands over a notify directory outside: it is recorded.
	elsewhere := filepath.Join(os.TempDir(), notifyTempPrefix+"test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(elsewhere)
	r2.keepNotifyDir(elsewhere)
	if got, err := os.Readlink(filepath.Join(r2.Dir, runtimeElsewhere)); err != nil || got != elsewhere {
		t.Fatalf("recorded %q, %v; want %s", got, err, elsewhere)
	}
}

// TestCheckControlDir: what a client refuses before it connects.
func TestCheckControlDir(t *testing.T) {
	private := t.TempDir()
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	sticky := t.TempDir()
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir       string
		explicit  bool
		untrusted bool
	}{
		{private, false, false},
		{private, true, false},
		{filepath.Join(private, "missing"), false, false},
		{open, false, true},
		{open, true, true},
		{sticky, true, false},
		{link, false, true},
		{link, true, false},
	} {
		err := CheckControlDir(filepath.Join(tc.dir, "x.sock"), tc.explicit)
		if errors.Is(err, ErrUntrusted) != tc.untrusted {
			t.Errorf("CheckControlDir(%s, explicit %v): %v, want untrusted %v", tc.dir, tc.explicit, err, tc.untrusted)
		}
	}
}

// TestUpgradeIdentityFromLock: state from a binary that did not hand over
// its name and control path gets them from the path of the lock it did
// hand over; without a lock there is no telling (the new image rolls
// back); and a lock that is not the directory's is an error that leaves
// it open, never a silent relock.
func TestUpgradeIdentityFromLock(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "x.sock")
	r, err := OpenRuntime("x", ctl, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	name, control, derived, err := (&Upgrade{Lock: r.LockFD()}).Identity()
	if err != nil || name != "x" || control != ctl || !derived {
		t.Fatalf("Identity from the lock: %q %q %v %v, want x %s derived", name, control, derived, err, ctl)
	}
	if name, control, derived, err := (&Upgrade{Name: "y", Control: "/y.sock", Lock: r.LockFD()}).Identity(); err != nil || name != "y" || control != "/y.sock" || derived {
		t.Fatalf("Identity handed over: %q %q %v %v, want y /y.sock", name, control, derived, err)
	}
	if _, _, _, err := (&Upgrade{}).Identity(); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Identity without name or lock: %v, want ErrNoIdentity", err)
	}
	lock, err := unix.FcntlInt(uintptr(r.LockFD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lock)
	other := filepath.Join(filepath.Dir(ctl), "other.sock")
	if r2, err := AdoptRuntime("other", other, true, lock, nil); err == nil {
		r2.Close()
		t.Fatal("AdoptRuntime took another directory's lock as its own")
	}
	if _, err := unix.FcntlInt(uintptr(lock), unix.F_GETFD, 0); err != nil {
		t.Fatalf("the handed-over lock was closed: %v", err)
	}
}

// TestNotifyDirForProgram: each program's view of the runtime directory
// (ForProgram) makes a notify directory of its own, distinct from the
// others' and from hupd's one program's, and Close removes them all.
func TestNotifyDirForProgram(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "x.sock")
	r, err := OpenRuntime("x", ctl, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, name := range []string{"", "web", "app", "elsewhere"} {
		d, err := r.ForProgram(name).notifyDir(-1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if seen[d] || filepath.Dir(d) != r.Dir {
			t.Fatalf("program %q: notify directory %s (seen: %v)", name, d, seen)
		}
		seen[d] = true
	}
	if r.ForProgram("") != r {
		t.Fatal(`ForProgram("") is not the runtime itself`)
	}
	r.Close()
	if _, err := os.Stat(r.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Close: %v", err)
	}
}
