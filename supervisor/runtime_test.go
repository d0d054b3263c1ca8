package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRuntimeDirFor(t *testing.T) {
	for in, want := range map[string]string{
		"/run/hupd/web.sock": "/run/hupd/web.d",
		"/srv/app/ctl":       "/srv/app/ctl.d",
		"/srv/app/a.b.sock":  "/srv/app/a.b.d",
	} {
		if got := RuntimeDirFor(in); got != want {
			t.Errorf("RuntimeDirFor(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRuntimeLockAndClean: a second OpenRuntime of the same directory is
// refused while the first holds it (even in one process: the lock is per
// open file); once the first is gone without Close, the next one removes
// what it left, and never follows a symbolic link out of the directory.
func TestRuntimeLockAndClean(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "x.sock")
	r1, err := OpenRuntime("x", ctl, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ar *AlreadyRunningError
	if _, err := OpenRuntime("x", ctl, true, nil); !errors.As(err, &ar) || ar.PID != os.Getpid() {
		t.Fatalf("second OpenRuntime: %v, want AlreadyRunningError with pid %d", err, os.Getpid())
	}
	// What a dead owner leaves: files, directories, a link out.
	outside := t.TempDir()
	keep := filepath.Join(outside, "keep")
	if err := os.WriteFile(keep, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	nd, err := r1.notifyDir(-1, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(nd, "gen-1.sock"), filepath.Join(r1.Dir, "junk")} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(r1.Dir, "link")); err != nil {
		t.Fatal(err)
	}
	r1.closeLock() // dies without Close
	r2, err := OpenRuntime("x", ctl, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(r2.Dir)
	if len(ents) != 1 || ents[0].Name() != runtimeLock {
		t.Errorf("after the cleanup %s holds %v, want only %s", r2.Dir, ents, runtimeLock)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("the cleanup followed a link out of the directory: %v", err)
	}
	r2.Close()
	if _, err := os.Lstat(r2.Dir); !os.IsNotExist(err) {
		t.Errorf("after Close %s: %v, want it gone", r2.Dir, err)
	}
}

// TestRuntimeRefusesLinkedDir: a runtime directory that is a symbolic
// link (to a directory of hupd's own) is refused, not followed.
func TestRuntimeRefusesLinkedDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "x.d")); err != nil {
		t.Fatal(err)
	}
	_, err := OpenRuntime("x", filepath.Join(dir, "x.sock"), true, nil)
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "is a symbolic link") {
		t.Fatalf("OpenRuntime: %v, want a symbolic link refused", err)
	}
}

// TestRuntimeMakesExplicitDir: a --control path whose directory is
// missing gets it made, private.
func TestRuntimeMakesExplicitDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	r, err := OpenRuntime("x", filepath.Join(dir, "x.sock"), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != os.FileMode(dirMode()) {
		t.Fatalf("%s: %v, %v; want mode %#o", dir, fi, err, dirMode())
	}
}
