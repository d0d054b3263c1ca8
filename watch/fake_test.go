package watch

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fsnotify/fsnotify"
)

// fakeBackend stands in for fsnotify: the test feeds the events and errors
// by hand and reads back which directories were added and removed. Create
// it inside the synctest bubble, so that the watcher blocks durably on its
// channels.
type fakeBackend struct {
	events chan fsnotify.Event
	errs   chan error

	mu      sync.Mutex
	addErr  func(path string) error
	adds    []string
	removes []string
	closed  bool
}

func newFake() *fakeBackend {
	return &fakeBackend{events: make(chan fsnotify.Event), errs: make(chan error)}
}

func (f *fakeBackend) Add(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addErr != nil {
		if err := f.addErr(p); err != nil {
			return err
		}
	}
	f.adds = append(f.adds, p)
	return nil
}

func (f *fakeBackend) Remove(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removes = append(f.removes, p)
	return nil
}

func (f *fakeBackend) Events() <-chan fsnotify.Event { return f.events }
func (f *fakeBackend) Errors() <-chan error          { return f.errs }

func (f *fakeBackend) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeBackend) setAddErr(fn func(string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addErr = fn
}

// count says how often p was added and removed.
func (f *fakeBackend) count(p string) (adds, removes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.adds {
		if a == p {
			adds++
		}
	}
	for _, r := range f.removes {
		if r == p {
			removes++
		}
	}
	return adds, removes
}

func (f *fakeBackend) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// send delivers an fsnotify event for name.
func (f *fakeBackend) send(name string, op fsnotify.Op) {
	f.events <- fsnotify.Event{Name: name, Op: op}
}

// recv returns the watcher's next event, failing after an hour of fake time.
func recv(t *testing.T, w *Watcher) Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(time.Hour):
		t.Fatal("no event within an hour")
	}
	return Event{}
}

// none lets d of fake time pass and asserts that no event came.
func none(t *testing.T, w *Watcher, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	synctest.Wait()
	select {
	case ev := <-w.Events():
		t.Fatalf("unexpected event %+v", ev)
	default:
	}
}

// startFake starts a watcher on groups with a fake backend.
func startFake(t *testing.T, groups ...Group) (*Watcher, *fakeBackend) {
	t.Helper()
	be := newFake()
	w, err := start(groups, be)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w, be
}

func assertChange(t *testing.T, ev Event, group int, hash string, names ...string) {
	t.Helper()
	if ev.Err != nil || ev.Group != group || ev.Hash != hash || !slices.Equal(ev.Changed, names) {
		t.Fatalf("event %+v, want group %d hash %s changed %q", ev, group, hash, names)
	}
}

// hashOf is the hash paths have now.
func hashOf(t *testing.T, paths ...string) string {
	t.Helper()
	sums, errs := scanPaths(paths).sums(nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return total(sums)
}

func TestDebounceTiming(t *testing.T) {
	const d = 100 * time.Millisecond
	tests := []struct {
		name    string
		maxWait time.Duration
		every   time.Duration // events this often
		until   time.Duration // for this long
		want    time.Duration // the change is reported this long after the first event
	}{
		{name: "single event", every: d, until: 0, want: d},
		{name: "events closer than the debounce", maxWait: time.Hour, every: d / 2, until: 10 * d, want: 10*d + d},
		{name: "events two debounces apart", maxWait: time.Hour, every: 2 * d, until: 6 * d, want: d},
		{name: "stream bounded by MaxWait", maxWait: 3 * d, every: d / 2, until: 10 * d, want: 3 * d},
		{name: "stream bounded by default MaxWait", every: d / 2, until: 20 * d, want: maxWaitFactor * d},
		{name: "MaxWait below the debounce means the default", maxWait: d / 2, every: d / 2, until: 20 * d, want: maxWaitFactor * d},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := filepath.Join(t.TempDir(), "app.conf")
				writeFile(t, f, "one")
				w, be := startFake(t, Group{Paths: []string{f}, Debounce: d, MaxWait: tt.maxWait})
				writeFile(t, f, "two")
				t0 := time.Now()
				done := make(chan struct{})
				go func() {
					defer close(done)
					for at := time.Duration(0); at <= tt.until; at += tt.every {
						time.Sleep(time.Until(t0.Add(at)))
						be.send(f, fsnotify.Write)
					}
				}()
				ev := recv(t, w)
				if got := time.Since(t0); got != tt.want {
					t.Errorf("change reported %v after the first event, want %v", got, tt.want)
				}
				assertChange(t, ev, 0, hashOf(t, f), f)
				<-done
				// The rest of the stream changed nothing.
				none(t, w, time.Hour)
			})
		})
	}
}

// TestRouting checks that an event leads to a rescan only when it concerns
// a name the group depends on. A rescan would report the file that was
// created without an event, so no event means no rescan.
func TestRouting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = 100 * time.Millisecond
		dir := t.TempDir()
		file := filepath.Join(dir, "sub", "app.conf") // sub does not exist yet
		tree := filepath.Join(dir, "tree")
		mkdirAll(t, tree)
		w, be := startFake(t, Group{Paths: []string{file}, Debounce: d}, Group{Paths: []string{tree}, Debounce: d})

		mkdirAll(t, filepath.Dir(file))
		writeFile(t, file, "one")
		writeFile(t, filepath.Join(tree, "new.conf"), "new")

		// Unrelated names in the directory of the missing component.
		be.send(filepath.Join(dir, "other"), fsnotify.Create)
		be.send(filepath.Join(dir, "sub.tmp"), fsnotify.Create)
		be.send(filepath.Join(dir, "subx"), fsnotify.Write)
		// A directory nobody watches.
		be.send(filepath.Join(dir, "sub", "app.conf"), fsnotify.Write)
		be.send("/nonexistent/x", fsnotify.Write)
		none(t, w, time.Hour)
		if adds, _ := be.count(filepath.Dir(file)); adds != 0 {
			t.Fatalf("sub added %d times without an event for it", adds)
		}

		// The missing component appears.
		t0 := time.Now()
		be.send(filepath.Dir(file), fsnotify.Create)
		ev := recv(t, w)
		if time.Since(t0) != d {
			t.Errorf("change after %v, want %v", time.Since(t0), d)
		}
		assertChange(t, ev, 0, hashOf(t, file), file)
		if adds, _ := be.count(filepath.Dir(file)); adds != 1 {
			t.Errorf("sub added %d times, want 1", adds)
		}

		// An event about the watched tree itself (its own chmod) rescans it.
		be.send(tree, fsnotify.Chmod)
		assertChange(t, recv(t, w), 1, hashOf(t, tree), filepath.Join(tree, "new.conf"))
		none(t, w, time.Hour)
	})
}

// TestOverflow: events were lost, so every group is rescanned, and only a
// real change of content is reported.
func TestOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = 100 * time.Millisecond
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a", "a.conf"), filepath.Join(dir, "b", "b.conf")
		mkdirAll(t, filepath.Dir(a))
		mkdirAll(t, filepath.Dir(b))
		writeFile(t, a, "a")
		writeFile(t, b, "b")
		poll := filepath.Join(dir, "poll.conf")
		writeFile(t, poll, "p")
		began := time.Now()
		w, be := startFake(t,
			Group{Paths: []string{a}, Debounce: d},
			Group{Paths: []string{b}, Debounce: d},
			Group{Paths: []string{poll}, Debounce: d, PollInterval: time.Hour})

		be.errs <- fsnotify.ErrEventOverflow
		none(t, w, time.Minute)

		// Changed without any event delivered; the polled file changes
		// too but is left to its poll.
		writeFile(t, b, "b2")
		writeFile(t, poll, "p2")
		t0 := time.Now()
		be.errs <- fsnotify.ErrEventOverflow
		ev := recv(t, w)
		if time.Since(t0) != d {
			t.Errorf("change after %v, want %v", time.Since(t0), d)
		}
		assertChange(t, ev, 1, hashOf(t, b), b)
		none(t, w, 30*time.Minute)
		assertChange(t, recv(t, w), 2, hashOf(t, poll), poll)
		if got, want := time.Since(began), time.Hour+d; got != want {
			t.Errorf("polled change reported at began+%v, want began+%v", got, want)
		}
	})
}

// TestOverflowRearms: after an overflow, a watch may have died without the
// event that says so (its directory deleted and created again, with the
// same inode number, or moved away and back). Every directory is armed
// again.
func TestOverflowRearms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		sub := filepath.Join(dir, "sub")
		f := filepath.Join(sub, "app.conf")
		mkdirAll(t, sub)
		writeFile(t, f, "one")
		w, be := startFake(t, Group{Paths: []string{f}, Debounce: 100 * time.Millisecond})
		for _, p := range []string{dir, sub} {
			if adds, _ := be.count(p); adds != 1 {
				t.Fatalf("%s added %d times at start, want 1", p, adds)
			}
		}
		be.errs <- fsnotify.ErrEventOverflow
		none(t, w, time.Hour)
		for _, p := range []string{dir, sub} {
			if adds, removes := be.count(p); adds != 2 || removes != 1 {
				t.Errorf("%s: added %d and removed %d times after an overflow, want 2 and 1", p, adds, removes)
			}
		}
	})
}

// TestWatchedDirectoryReplaced: an event that says a watched directory was
// removed, renamed or created anew means its watch, if any, is on another
// inode or gone, even when the directory found at the rescan has the same
// inode number (ext4 reuses the number of a deleted directory at once).
func TestWatchedDirectoryReplaced(t *testing.T) {
	tests := []struct {
		op     fsnotify.Op
		rearms bool
	}{
		{fsnotify.Remove, true},
		{fsnotify.Rename, true},
		{fsnotify.Create, true},
		{fsnotify.Write, false},
		{fsnotify.Chmod, false},
	}
	for _, tt := range tests {
		t.Run(tt.op.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				sub := filepath.Join(dir, "sub")
				f := filepath.Join(sub, "app.conf")
				mkdirAll(t, sub)
				writeFile(t, f, "one")
				w, be := startFake(t, Group{Paths: []string{f}, Debounce: 100 * time.Millisecond})
				be.send(sub, tt.op)
				none(t, w, time.Hour)
				adds, removes := be.count(sub)
				if rearmed := adds == 2 && removes == 1; rearmed != tt.rearms || adds > 2 {
					t.Errorf("after %v of the watched directory: added %d and removed %d times, want re-armed: %v", tt.op, adds, removes, tt.rearms)
				}
			})
		})
	}
}

func TestPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval, d = time.Second, 100 * time.Millisecond
		dir := t.TempDir()
		f := filepath.Join(dir, "app.conf")
		writeFile(t, f, "one")
		tree := filepath.Join(dir, "tree")
		mkdirAll(t, tree)
		t0 := time.Now()
		w, err := New([]Group{
			{Paths: []string{f}, PollInterval: interval, Debounce: d},
			{Paths: []string{tree}, PollInterval: interval, Debounce: d},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if w.be != nil {
			t.Fatal("polling groups only, yet an inotify instance")
		}

		// Nothing changes: nothing is reported.
		none(t, w, 5*interval+interval/2) // t0+5.5s

		// A change is seen at the next poll, reported after the debounce.
		writeFile(t, f, "two")
		ev := recv(t, w)
		if got, want := time.Since(t0), 6*interval+d; got != want {
			t.Errorf("change reported at t0+%v, want t0+%v", got, want)
		}
		assertChange(t, ev, 0, hashOf(t, f), f)

		// A touch changes the metadata, not the content.
		later := time.Now().Add(time.Hour) // the file's clock is the real one: any other time will do
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
		none(t, w, 3*interval)
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
		none(t, w, 3*interval)

		// A file created in a polled tree, and a file deleted.
		t1 := time.Now()
		writeFile(t, filepath.Join(tree, "new.conf"), "new")
		ev = recv(t, w)
		if next := t0.Add(interval * (t1.Sub(t0)/interval + 1)).Add(d); !time.Now().Equal(next) {
			t.Errorf("change reported at t0+%v, want t0+%v", time.Since(t0), next.Sub(t0))
		}
		assertChange(t, ev, 1, hashOf(t, tree), filepath.Join(tree, "new.conf"))
		remove(t, f)
		assertChange(t, recv(t, w), 0, hashOf(t, f), f)
		none(t, w, 3*interval)
	})
}

func TestBaseline(t *testing.T) {
	for _, poll := range []time.Duration{0, time.Hour} {
		t.Run("poll="+poll.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const d = 100 * time.Millisecond
				f := filepath.Join(t.TempDir(), "app.conf")
				writeFile(t, f, "one")
				now := hashOf(t, f)
				t0 := time.Now()
				w, _ := startFake(t,
					Group{Paths: []string{f}, Debounce: d, PollInterval: poll, Baseline: "0123456789abcdef"},
					Group{Paths: []string{f}, Debounce: d, PollInterval: poll, Baseline: now},
					Group{Paths: []string{f}, Debounce: d, PollInterval: poll})
				if got := w.Hashes(); !slices.Equal(got, []string{now, now, now}) {
					t.Errorf("Hashes() = %q, want the content's hash %s three times", got, now)
				}
				ev := recv(t, w)
				if time.Since(t0) != d {
					t.Errorf("change reported after %v, want %v", time.Since(t0), d)
				}
				if ev.Group != 0 || ev.Hash != now || ev.Err != nil {
					t.Errorf("event %+v, want group 0 hash %s", ev, now)
				}
				none(t, w, 30*time.Minute)
			})
		})
	}
}

func TestLimitErrors(t *testing.T) {
	tests := []struct {
		err    error
		limit  bool
		sysctl string
	}{
		{syscall.ENOSPC, true, "fs.inotify.max_user_watches"},
		{syscall.EMFILE, true, "fs.inotify.max_user_instances"},
		{syscall.EACCES, false, ""},
		{syscall.ENOENT, false, ""}, // the directory vanished: not an error
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "app.conf")
			writeFile(t, f, "one")
			be := newFake()
			be.setAddErr(func(p string) error {
				if p == dir {
					return tt.err
				}
				return nil
			})
			w, err := start([]Group{{Paths: []string{"/nonexistent"}}, {Paths: []string{f}}}, be)
			if tt.err == syscall.ENOENT {
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				w.Close()
				return
			}
			if err == nil {
				w.Close()
				t.Fatal("start succeeded")
			}
			if !be.isClosed() {
				t.Error("start failed but left its backend open")
			}
			if errors.Is(err, ErrLimit) != tt.limit {
				t.Errorf("errors.Is(%q, ErrLimit) = %v, want %v", err, !tt.limit, tt.limit)
			}
			if !tt.limit {
				if !errors.Is(err, tt.err) {
					t.Errorf("error %q does not wrap %v", err, tt.err)
				}
				return
			}
			if !strings.Contains(err.Error(), tt.sysctl) || !strings.Contains(err.Error(), "poll_interval") {
				t.Errorf("error %q names neither %s nor poll_interval", err, tt.sysctl)
			}
		})
	}
}

// TestLimitAfterStart: a watch that cannot be added at a rescan is
// reported once, as a problem of its group, and the watcher carries on.
func TestLimitAfterStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = 100 * time.Millisecond
		dir := t.TempDir()
		sub := filepath.Join(dir, "sub")
		f := filepath.Join(sub, "app.conf")
		w, be := startFake(t, Group{Paths: []string{f}, Debounce: d})
		be.setAddErr(func(p string) error {
			if p == sub {
				return syscall.ENOSPC
			}
			return nil
		})
		mkdirAll(t, sub)
		be.send(sub, fsnotify.Create)
		ev := recv(t, w)
		if ev.Group != 0 || ev.Hash != "" || !errors.Is(ev.Err, ErrLimit) || !strings.Contains(ev.Err.Error(), sub) {
			t.Fatalf("event %+v, want a problem of group 0 wrapping ErrLimit naming %s", ev, sub)
		}
		be.send(sub, fsnotify.Create)
		none(t, w, time.Hour) // the same problem is not reported twice

		be.setAddErr(nil)
		writeFile(t, f, "one")
		be.send(sub, fsnotify.Create)
		assertChange(t, recv(t, w), 0, hashOf(t, f), f)
	})
}

func TestBackendError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, be := startFake(t, Group{Paths: []string{t.TempDir()}})
		boom := errors.New("boom")
		be.errs <- boom
		if ev := recv(t, w); ev.Group != -1 || !errors.Is(ev.Err, boom) || ev.Hash != "" {
			t.Fatalf("event %+v, want a problem of the whole watcher", ev)
		}
		// Closed backend channels stop nothing but the backend's part.
		close(be.events)
		close(be.errs)
		none(t, w, time.Hour)
	})
}

// TestClose: Close returns while the watcher waits to send an event nobody
// reads, closes Events and the backend, and leaves no goroutine behind
// (synctest.Test fails otherwise).
func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "app.conf")
		be := newFake()
		w, err := start([]Group{{Paths: []string{f}, Debounce: time.Millisecond}}, be)
		if err != nil {
			t.Fatal(err)
		}
		for i := range cap(w.out) + 1 {
			writeFile(t, f, strings.Repeat("x", i+1))
			be.send(f, fsnotify.Write)
			time.Sleep(time.Second)
		}
		synctest.Wait()
		if len(w.out) != cap(w.out) {
			t.Fatalf("%d events queued, want %d", len(w.out), cap(w.out))
		}
		w.Close()
		n := 0
		for range w.Events() {
			n++
		}
		if n != cap(w.out) {
			t.Errorf("%d events after Close, want %d", n, cap(w.out))
		}
		if !be.isClosed() {
			t.Error("backend not closed")
		}
	})
}

// TestRescanAfterNewWatch: a file that appears in a directory after the
// walk found the directory but before its watch is in place produces no
// event; the walk is repeated once a watch was added.
func TestRescanAfterNewWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		sub := filepath.Join(dir, "sub")
		f := filepath.Join(sub, "app.conf")
		w, be := startFake(t, Group{Paths: []string{f}, Debounce: 100 * time.Millisecond})
		be.setAddErr(func(p string) error {
			if p == sub {
				if _, err := os.Stat(f); err != nil {
					writeFile(t, f, "appeared")
				}
			}
			return nil
		})
		mkdirAll(t, sub)
		be.send(sub, fsnotify.Create)
		assertChange(t, recv(t, w), 0, hashOf(t, f), f)
		none(t, w, time.Hour)
	})
}

// TestUnwatch: a directory a group no longer depends on stops concerning
// it, and its watch is removed once no group needs it.
func TestUnwatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const d = 100 * time.Millisecond
		root := t.TempDir()
		dir, o1, o2, o3 := filepath.Join(root, "dir"), filepath.Join(root, "o1"), filepath.Join(root, "o2"), filepath.Join(root, "o3")
		for _, p := range []string{dir, o1, o2, o3} {
			mkdirAll(t, p)
		}
		writeFile(t, filepath.Join(o1, "f"), "o1")
		writeFile(t, filepath.Join(o1, "g"), "g")
		writeFile(t, filepath.Join(o2, "f"), "o2")
		writeFile(t, filepath.Join(o3, "f"), "o3")
		l1, l2 := filepath.Join(dir, "l1"), filepath.Join(dir, "l2")
		symlink(t, filepath.Join(o1, "f"), l1)
		symlink(t, filepath.Join(o3, "f"), l2)
		w, be := startFake(t,
			Group{Paths: []string{l1}, Debounce: d},
			Group{Paths: []string{filepath.Join(o1, "g")}, Debounce: d},
			Group{Paths: []string{l2}, Debounce: d})

		for _, l := range []string{l1, l2} {
			remove(t, l)
			symlink(t, filepath.Join(o2, "f"), l)
			be.send(l, fsnotify.Create)
		}
		got := map[int]Event{}
		for range 2 {
			ev := recv(t, w)
			got[ev.Group] = ev
		}
		assertChange(t, got[0], 0, hashOf(t, l1), l1)
		assertChange(t, got[2], 2, hashOf(t, l2), l2)
		for p, want := range map[string][2]int{o1: {1, 0}, o2: {1, 0}, o3: {1, 1}} {
			if adds, removes := be.count(p); adds != want[0] || removes != want[1] {
				t.Errorf("%s: added %d, removed %d times, want %d and %d", p, adds, removes, want[0], want[1])
			}
		}

		// o1/f no longer concerns group 0; o1/g still concerns group 1.
		writeFile(t, filepath.Join(o1, "f"), "o1 changed")
		be.send(filepath.Join(o1, "f"), fsnotify.Write)
		none(t, w, time.Hour)
		writeFile(t, filepath.Join(o1, "g"), "g changed")
		be.send(filepath.Join(o1, "g"), fsnotify.Write)
		assertChange(t, recv(t, w), 1, hashOf(t, filepath.Join(o1, "g")), filepath.Join(o1, "g"))
	})
}

// TestRootChildEvent: fsnotify names an entry of "/" "//name"; an event
// about a watched directory right under "/" still marks its watch stale.
func TestRootChildEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "app.conf")
		top := "/" + splitPath(f)[0]
		w, be := startFake(t, Group{Paths: []string{f}, Debounce: 100 * time.Millisecond})
		be.send("/"+top, fsnotify.Rename)
		none(t, w, time.Hour)
		if adds, removes := be.count(top); adds != 2 || removes != 1 {
			t.Errorf("%s: added %d and removed %d times after %q was renamed, want 2 and 1", top, adds, removes, "/"+top)
		}
	})
}
