package watch

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPollChangeDuringInitialScan: a polled file written while New reads the
// group's content at start must be reported. New took the metadata
// signature that polling compares against after reading the content, so
// a write in between was in the signature but not in the hash: no poll
// ever saw a difference, and the change was never reported.
func TestPollChangeDuringInitialScan(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	writeFile(t, a, "one\n")
	// A large file read after a (names are read in order) holds the
	// initial scan long enough to write a in between; sparse, so it costs
	// no disk.
	big, err := os.Create(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	big.Close()
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ifd)
	if _, err := unix.InotifyAddWatch(ifd, a, unix.IN_CLOSE_NOWRITE); err != nil {
		t.Fatal(err)
	}

	type result struct {
		w   *Watcher
		err error
	}
	started := make(chan result, 1)
	go func() {
		w, err := New([]Group{{Paths: []string{dir}, PollInterval: 20 * time.Millisecond, Debounce: 20 * time.Millisecond}})
		started <- result{w, err}
	}()
	// Once the initial scan has read a, write it again.
	pfd := []unix.PollFd{{Fd: int32(ifd), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, int(deadline/time.Millisecond)); n != 1 || err != nil {
		t.Fatalf("the initial scan did not read %s: %d, %v", a, n, err)
	}
	writeFile(t, a, "two\n")
	r := <-started
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.w.Close()
	select {
	case ev := <-r.w.Events():
		if ev.Err != nil || !slices.Contains(ev.Changed, a) {
			t.Fatalf("event %+v, want a change of %s", ev, a)
		}
	case <-time.After(deadline):
		t.Fatalf("%s was written during the initial scan; no change reported within %s", a, deadline)
	}
}
