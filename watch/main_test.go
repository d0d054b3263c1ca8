package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// helperEnv makes the test binary a helper process: its value names the
// behaviour (see helpers). The helpers run in namespaces the test itself
// cannot enter (a user namespace with a small inotify limit, a private
// mount namespace).
const helperEnv = "HUPD_TEST_WATCH_HELPER"

// Exit codes of a helper besides 0 (the check passed) and 1 (it failed).
const helperCannot = 3 // the environment cannot run the check; stderr says why

var helpers = map[string]func() int{
	"inotify-limit": inotifyLimitHelper,
	"bind-mount":    bindMountHelper,
}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(1)
		}
		os.Exit(h())
	}
	os.Exit(m.Run())
}

// deadline bounds every wait for an event from real inotify. Only a failing
// test waits that long.
const deadline = 10 * time.Second

// rig is a Watcher on real files. Every group also watches one sentinel
// file, so that replacing the sentinel is a handshake: once a group reports
// the sentinel, it has reported everything that happened before.
type rig struct {
	t        *testing.T
	w        *Watcher
	groups   []Group
	sentinel string
	gen      int
	queue    map[int][]Event
}

// rigDebounce is the debounce of a rig's groups unless set. An operation
// of several steps (a truncate and a write, a rename away and back) is one
// change only if no pause between its steps outlasts the debounce: 20ms
// held on an idle machine, but not under -race with -cpu 1 on a loaded
// one.
const rigDebounce = 100 * time.Millisecond

// newRig starts a Watcher on groups, each with the sentinel added and a
// debounce of rigDebounce unless set.
func newRig(t *testing.T, groups ...Group) *rig {
	t.Helper()
	r := &rig{t: t, sentinel: filepath.Join(t.TempDir(), "sentinel"), queue: map[int][]Event{}}
	writeFile(t, r.sentinel, "gen 0")
	for _, g := range groups {
		g.Paths = append(slices.Clone(g.Paths), r.sentinel)
		if g.Debounce == 0 {
			g.Debounce = rigDebounce
		}
		r.groups = append(r.groups, g)
	}
	// New must not hang on whatever it finds (a symlink loop, a FIFO).
	type result struct {
		w   *Watcher
		err error
	}
	started := make(chan result, 1)
	go func() {
		w, err := New(r.groups)
		started <- result{w, err}
	}()
	var w *Watcher
	select {
	case res := <-started:
		if res.err != nil {
			t.Fatalf("New: %v", res.err)
		}
		w = res.w
	case <-time.After(deadline):
		t.Fatalf("New still scanning after %v", deadline)
	}
	r.w = w
	for i := range r.groups {
		if got, want := w.Hashes()[i], r.hashNow(i); got != want {
			t.Fatalf("group %d: initial hash %s, want %s", i, got, want)
		}
	}
	t.Cleanup(func() {
		w.Close()
		for ev := range w.Events() {
			if ev.Err != nil || ev.Group < 0 {
				t.Errorf("problem after the test: %+v", ev)
			}
		}
	})
	return r
}

// hashNow is the hash group i has now, from a fresh scan.
func (r *rig) hashNow(i int) string {
	r.t.Helper()
	sums, errs := scanPaths(r.groups[i].Paths).sums(nil)
	if len(errs) > 0 {
		r.t.Fatalf("group %d: fresh scan: %v", i, errs)
	}
	return total(sums)
}

// next returns group i's next event. A problem event fails the test.
func (r *rig) next(i int) Event {
	r.t.Helper()
	if q := r.queue[i]; len(q) > 0 {
		r.queue[i] = q[1:]
		return q[0]
	}
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-r.w.Events():
			if !ok {
				r.t.Fatalf("group %d: events closed", i)
			}
			if ev.Err != nil || ev.Group < 0 {
				r.t.Fatalf("unexpected problem: group %d: %v", ev.Group, ev.Err)
			}
			if ev.Group == i {
				return ev
			}
			r.queue[ev.Group] = append(r.queue[ev.Group], ev)
		case <-timer.C:
			r.t.Fatalf("group %d: no event within %v", i, deadline)
		}
	}
}

// problem asserts that group i's next event is a problem saying msg.
func (r *rig) problem(i int, msg string) {
	r.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-r.w.Events():
			if !ok {
				r.t.Fatalf("group %d: events closed", i)
			}
			if ev.Group != i {
				r.queue[ev.Group] = append(r.queue[ev.Group], ev)
				continue
			}
			if ev.Err == nil || ev.Err.Error() != msg {
				r.t.Fatalf("group %d: event %+v, want the problem %q", i, ev, msg)
			}
			return
		case <-timer.C:
			r.t.Fatalf("group %d: no problem reported within %v", i, deadline)
		}
	}
}

// changed asserts that group i's next event lists exactly names and
// carries the hash of the content now on disk.
func (r *rig) changed(i int, names ...string) Event {
	r.t.Helper()
	ev := r.next(i)
	slices.Sort(names)
	if !slices.Equal(ev.Changed, names) {
		r.t.Fatalf("group %d: changed %q, want %q", i, ev.Changed, names)
	}
	if want := r.hashNow(i); ev.Hash != want {
		r.t.Fatalf("group %d: hash %s, want %s (content now on disk)", i, ev.Hash, want)
	}
	return ev
}

// quiet replaces the sentinel and asserts that the next event of every
// group lists only the sentinel: nothing else changed since the last event.
func (r *rig) quiet() {
	r.t.Helper()
	r.gen++
	r.setSentinel(fmt.Sprintf("gen %d", r.gen))
	for i := range r.groups {
		r.changed(i, r.sentinel)
	}
}

// setSentinel gives the sentinel content by a rename, never by a write in
// place: the groups that have not reported the previous step may still be
// rescanning, and a rescan that reads a file truncated and not yet written
// reports it so (then the content once written). Nothing tells it from an
// empty file: readers see the truncation before the kernel queues its
// event or moves the ctime. Under load, group 1 reported an empty sentinel.
func (r *rig) setSentinel(content string) {
	r.t.Helper()
	tmp := filepath.Join(filepath.Dir(r.sentinel), ".sentinel.tmp") // a name no group watches
	writeFile(r.t, tmp, content)
	rename(r.t, tmp, r.sentinel)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mkdirAll(t testing.TB, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func rename(t testing.TB, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func remove(t testing.TB, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
}

// fileNames lists the names a scan of paths found.
func fileNames(s *scan) []string {
	var out []string
	for _, f := range s.files {
		out = append(out, f.name)
	}
	return out
}

// helperFail reports a helper's failure and returns its exit code.
func helperFail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	return 1
}

// helperCannotRun says why the environment cannot run a helper's check.
func helperCannotRun(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	return helperCannot
}

// runHelper runs helper name in the test binary, prefixed by the command
// that enters its namespace (such as unshare -Ur). It skips the test when
// the prefix cannot run here or the helper says the environment cannot
// run its check.
func runHelper(t *testing.T, name string, prefix ...string) {
	t.Helper()
	if _, err := exec.LookPath(prefix[0]); err != nil {
		t.Skipf("%s: %v", prefix[0], err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	probe := exec.CommandContext(ctx, prefix[0], append(slices.Clone(prefix[1:]), "true")...)
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("%q does not work here: %v: %s", strings.Join(prefix, " "), err, bytes.TrimSpace(out))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, prefix[0], append(slices.Clone(prefix[1:]), exe, "-test.run=^$")...)
	// Under -race, a process waits a second before it exits, for reports
	// from other goroutines; the helper has none.
	cmd.Env = append(os.Environ(), helperEnv+"="+name, "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	msg := strings.TrimSpace(string(out))
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Logf("helper %s: %s", name, msg)
	case errors.As(err, &exit) && exit.ExitCode() == helperCannot:
		t.Skipf("helper %s cannot run its check here: %s", name, msg)
	default:
		t.Fatalf("helper %s: %v: %s", name, err, msg)
	}
}
