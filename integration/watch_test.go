package integration

// Watched files end to end: every way a file is commonly changed (editors,
// sed -i, cp, mv, delete and re-create, symlinks, a Kubernetes ConfigMap
// update) leads to exactly one reload whose new generation reads the new
// content, and noise (touch, chmod, equal content) leads to none. The
// child is watch-serve, which prints what it read at start.
//
// Counting reloads exactly: after the operations under test and the
// reloads they should cause, a test changes a sentinel file, watched in
// the same group as the files under test where the actions allow it (so
// that any event the operations left pending would be folded into the
// sentinel's rescan), and waits for the reload the sentinel causes. That change must name the
// sentinel alone, its reload must have the sentinel alone as its cause,
// and it must be reload number N+1. Every wait is on a log event or a line
// the child prints, under the package deadline.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
	"github.com/hupd/hupd/watch"
)

// wtDebounce keeps the tests fast; the cases about bursts choose theirs.
const wtDebounce = "50ms"

// wtHupd is a hupd under test whose child is watch-serve.
type wtHupd struct {
	*Hupd
	ctl     string                // control socket
	reports map[int][]WatchReport // read from stdout, not yet returned, by PID
	nonce   int                   // makes sentinel contents unique
}

// wtStart runs `hupd run ARGS` (with JSON logging) and waits for its
// control socket.
func wtStart(t *testing.T, args ...string) *wtHupd {
	t.Helper()
	h := StartHupd(t, append([]string{"run"}, args...)...)
	return &wtHupd{Hupd: h, ctl: h.WaitEvent(logev.ControlSocket, 1, nil).Str("path"), reports: map[int][]WatchReport{}}
}

// wtStartConf writes conf to DIR/hupd.toml and runs hupd with it.
func wtStartConf(t *testing.T, dir, conf string, flags ...string) (*wtHupd, string) {
	t.Helper()
	path := filepath.Join(dir, "hupd.toml")
	wtWrite(t, path, conf)
	return wtStart(t, append([]string{"-c", path}, flags...)...), path
}

// wtTOML is a hupd.toml whose command is watch-serve with args, followed
// by tables (TOML tables only: [[listen]], [[watch]], [reload]…).
func wtTOML(args []string, tables ...string) string {
	return "command = " + wtList(childCmd("watch-serve", args...)) + "\n" + strings.Join(tables, "")
}

// wtListen is a [[listen]] table.
func wtListen(name, address string) string {
	return fmt.Sprintf("[[listen]]\nname = %q\naddress = %q\n", name, address)
}

// wtHTTP is the [[listen]] table of the socket most tests serve.
var wtHTTP = wtListen("http", "tcp://127.0.0.1:0")

// wtWatch is a [[watch]] table; action and debounce may be "".
func wtWatch(action, debounce string, paths ...string) string {
	s := "[[watch]]\npaths = " + wtList(paths) + "\n"
	if action != "" {
		s += fmt.Sprintf("action = %q\n", action)
	}
	if debounce != "" {
		s += fmt.Sprintf("debounce = %q\n", debounce)
	}
	return s
}

// wtList is a TOML array of strings (the test's strings are plain ASCII,
// where Go's and TOML's quoting agree).
func wtList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// wtWrite replaces path with content the way most programs save a file:
// write a hidden temporary file beside it, then rename it over path.
func wtWrite(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// wtPwrite writes content at the start of path, in one write, without
// truncating it first.
func wtPwrite(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(content), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// wtRun runs an external program (sed, cp, mv, touch, ln), which must
// succeed.
func wtRun(t *testing.T, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%q: %v\n%s", argv, err, out)
	}
}

// wtStrings returns a list field of an event.
func wtStrings(e Event, key string) []string {
	var out []string
	l, _ := e[key].([]any)
	for _, v := range l {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// report returns the next report of pid not returned yet, reading hupd's
// stdout as far as needed.
func (w *wtHupd) report(pid int) WatchReport {
	w.t.Helper()
	for len(w.reports[pid]) == 0 {
		w.readReport()
	}
	r := w.reports[pid][0]
	w.reports[pid] = w.reports[pid][1:]
	return r
}

func (w *wtHupd) readReport() {
	w.t.Helper()
	line := w.Stdout.NextWith(w.t, "watch-serve ")
	var r WatchReport
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "watch-serve ")), &r); err != nil {
		w.t.Fatalf("watch-serve line %q: %v", line, err)
	}
	w.reports[r.PID] = append(w.reports[r.PID], r)
}

// startReport returns generation gen's start report, once it is ready.
func (w *wtHupd) startReport(gen int) WatchReport {
	w.t.Helper()
	pid := w.WaitEvent(logev.ChildReady, 1, swapGen(gen)).Int("pid")
	r := w.report(pid)
	if r.Why != "start" {
		w.t.Fatalf("gen %d (pid %d): first report %+v, want its start", gen, pid, r)
	}
	return r
}

// reads fails the test unless r read content from file.
func (w *wtHupd) reads(r WatchReport, file, content string) {
	w.t.Helper()
	if got, ok := r.Files[file]; !ok || got != content {
		w.t.Fatalf("pid %d (%s) read %s = %q (found: %v), want %q; report %+v", r.PID, r.Why, file, got, ok, content, r)
	}
}

// changed waits for the n-th "watched files changed" event and checks
// that it names exactly files.
func (w *wtHupd) changed(n int, files ...string) Event {
	w.t.Helper()
	e := w.WaitEvent(logev.WatchedFilesChanged, n, nil)
	if got := wtStrings(e, "changed"); !slices.Equal(got, files) {
		w.t.Fatalf("change #%d names %q, want %q", n, got, files)
	}
	return e
}

// reloaded waits until n reloads have ended and returns the n-th "reload
// done"; it fails the test if that reload failed.
func (w *wtHupd) reloaded(n int) Event {
	w.t.Helper()
	var found Event
	ok := w.waitFor(fmt.Sprintf("end of reload #%d", n), func() bool {
		seen := 0
		for _, e := range w.events {
			if m := e.Msg(); m == logev.ReloadDone || m == logev.ReloadFailed {
				if seen++; seen == n {
					found = e
					return true
				}
			}
		}
		return false
	})
	if !ok {
		w.t.Fatalf("hupd exited before reload #%d ended", n)
	}
	if found.Msg() != logev.ReloadDone {
		w.t.Fatalf("reload #%d failed: %v", n, found)
	}
	return found
}

// started returns the "reload started" events so far.
func (w *wtHupd) started() []Event { return w.Events(logev.ReloadStarted) }

// status returns hupd's status.
func (w *wtHupd) status() supervisor.Status {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	rep, err := control.Call(ctx, w.ctl, control.Request{Cmd: control.CmdStatus})
	if err != nil || rep.Status == nil {
		w.t.Fatalf("status: %+v, %v", rep, err)
	}
	return *rep.Status
}

// sentinel proves that the operations before it caused exactly reloads
// reloads and left nothing pending (see the top of this file): it writes
// new content to path, waits for the change and the reload it causes, and
// checks that the change names path alone, that the reload is number
// reloads+1 with path alone as its cause, and that the generation it
// started reads the new content. It returns that generation's start
// report (zero after a reload by signal).
func (w *wtHupd) sentinel(path string, reloads int) WatchReport {
	w.t.Helper()
	names := func(e Event) bool { return slices.Contains(wtStrings(e, "changed"), path) }
	causes := func(e Event) bool { return strings.Contains(e.Str("cause"), "changed: "+path) }
	changes, starts := 0, 0
	for _, e := range w.Events(logev.WatchedFilesChanged) {
		if names(e) {
			changes++
		}
	}
	for _, e := range w.started() {
		if causes(e) {
			starts++
		}
	}
	w.nonce++
	content := fmt.Sprintf("sentinel %d\n", w.nonce)
	wtWrite(w.t, path, content)
	e := w.WaitEvent(logev.WatchedFilesChanged, changes+1, names)
	if got := wtStrings(e, "changed"); !slices.Equal(got, []string{path}) {
		w.t.Fatalf("sentinel change names %q, want only %s: the operations before it left a change pending", got, path)
	}
	start := w.WaitEvent(logev.ReloadStarted, starts+1, causes)
	k := slices.IndexFunc(w.started(), func(e Event) bool {
		if causes(e) {
			starts--
		}
		return starts < 0
	})
	if k != reloads || start.Str("cause") != "changed: "+path {
		w.t.Fatalf("the sentinel's reload is number %d, with cause %q; want number %d (the operations under test should cause %d), cause %q; reloads: %v",
			k+1, start.Str("cause"), reloads+1, reloads, "changed: "+path, w.started())
	}
	done := w.reloaded(reloads + 1)
	if got := w.status().Reloads; got != reloads+1 {
		w.t.Fatalf("status: %d reloads after the sentinel's, want %d; reloads: %v", got, reloads+1, w.started())
	}
	if done.Str("strategy") == string(supervisor.StrategySignal) {
		return WatchReport{}
	}
	r := w.report(done.Int("pid"))
	w.reads(r, path, content)
	return r
}

// stop stops hupd, expects exit status 0, and checks that nothing is left
// behind: no child hupd started, no control socket, none of files.
func (w *wtHupd) stop(files ...string) {
	w.t.Helper()
	if code := w.Stop(); code != 0 {
		w.t.Fatalf("hupd exit status %d, want 0", code)
	}
	// Listed once hupd is gone: its whole log is read by then.
	for _, e := range w.Events(logev.ChildStarted) {
		if pid := e.Int("pid"); processAlive(pid) {
			w.t.Errorf("child pid %d still runs after hupd exited", pid)
		}
	}
	for _, f := range append([]string{w.ctl}, files...) {
		assertGone(w.t, f)
	}
}

// checkStatus checks what hupd status says after a watched change that
// started generation gen: the group of paths saw changes changes, its
// hash is the change event's, the last reload names the change, and the
// generation serves with the content hash now in force.
func (w *wtHupd) checkStatus(change Event, gen int, changes int, paths ...string) {
	w.t.Helper()
	st := w.status()
	i := slices.IndexFunc(st.Watches, func(ws supervisor.WatchStatus) bool { return slices.Equal(ws.Paths, paths) })
	if i < 0 {
		w.t.Fatalf("status shows no watch of %q: %+v", paths, st.Watches)
	}
	ws := st.Watches[i]
	if ws.Hash != change.Str("hash") || ws.Changes != changes || ws.LastChange.IsZero() || ws.Error != "" {
		w.t.Fatalf("status of the watch: %+v; want hash %s after %d changes", ws, change.Str("hash"), changes)
	}
	if want := "changed: " + strings.Join(wtStrings(change, "changed"), ", "); st.LastReload == nil || st.LastReload.Cause != want {
		w.t.Fatalf("status last_reload %+v, want cause %q", st.LastReload, want)
	}
	g := slices.IndexFunc(st.Generations, func(g supervisor.GenerationStatus) bool { return g.Gen == gen })
	if len(st.Hash) != 16 || st.ConfigHash != st.Hash || g < 0 || st.Generations[g].ConfigHash != st.Hash {
		w.t.Fatalf("status: hash %q, config_hash %q, generations %+v; want gen %d serving with the hash in force",
			st.Hash, st.ConfigHash, st.Generations, gen)
	}
}

// TestWatchFileEdits: one watched file changed in each common way. Each
// edit causes exactly one reload, whose new generation reads the new
// content; hupd status shows the change and the hash the new generation
// serves with.
func TestWatchFileEdits(t *testing.T) {
	t.Parallel()
	type setup struct{ dir, file, other string } // other: a directory outside the watched one
	tests := []struct {
		name     string
		debounce string
		// prepare makes file read "one\n" (default: a plain file).
		prepare func(t *testing.T, s setup)
		edit    func(t *testing.T, s setup) // make file read "two\n"
	}{
		{name: "editor writes a temporary file and renames it over", edit: func(t *testing.T, s setup) {
			wtWrite(t, s.file, "two\n")
		}},
		{name: "sed -i", edit: func(t *testing.T, s setup) {
			wtRun(t, "sed", "-i", "s/one/two/", s.file)
		}},
		// A write that is not atomic is seen whole when it takes less
		// than the debounce: under heavy load, a goroutine may well stop
		// for longer than 50ms between two system calls.
		{name: "truncate and write in place", debounce: "300ms", edit: func(t *testing.T, s setup) {
			f, err := os.OpenFile(s.file, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Two writes: the content is only complete after the second.
			if _, err := f.WriteString("tw"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("o\n"); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "cp over", debounce: "300ms", edit: func(t *testing.T, s setup) { // cp truncates, then writes
			src := writeFile(t, s.other, "new.conf", "two\n")
			wtRun(t, "cp", src, s.file)
		}},
		{name: "mv in", edit: func(t *testing.T, s setup) {
			src := writeFile(t, s.other, "new.conf", "two\n")
			wtRun(t, "mv", src, s.file)
		}},
		{
			// Two events a moment apart: within the debounce they are one
			// change. (Apart by more than the debounce, the deletion is a
			// change of its own: a reload with the file missing.)
			name: "delete then create again", debounce: "300ms",
			edit: func(t *testing.T, s setup) {
				if err := os.Remove(s.file); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(s.file, []byte("two\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "symlink re-pointed by a rename",
			prepare: func(t *testing.T, s setup) {
				writeFile(t, s.dir, "one.conf", "one\n")
				writeFile(t, s.dir, "two.conf", "two\n")
				if err := os.Symlink("one.conf", s.file); err != nil {
					t.Fatal(err)
				}
			},
			edit: func(t *testing.T, s setup) {
				tmp := filepath.Join(s.dir, ".app.conf.link")
				if err := os.Symlink("two.conf", tmp); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, s.file); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			// ln -sfn may unlink, then create: two events.
			name: "symlink re-pointed by ln -sfn", debounce: "300ms",
			prepare: func(t *testing.T, s setup) {
				writeFile(t, s.other, "one.conf", "one\n")
				writeFile(t, s.other, "two.conf", "two\n")
				if err := os.Symlink(filepath.Join(s.other, "one.conf"), s.file); err != nil {
					t.Fatal(err)
				}
			},
			edit: func(t *testing.T, s setup) {
				wtRun(t, "ln", "-sfn", filepath.Join(s.other, "two.conf"), s.file)
			},
		},
		{
			// The link stays; its target, in a directory of its own, is
			// saved by an editor.
			name: "symlink target saved elsewhere",
			prepare: func(t *testing.T, s setup) {
				target := writeFile(t, s.other, "real.conf", "one\n")
				if err := os.Symlink(target, s.file); err != nil {
					t.Fatal(err)
				}
			},
			edit: func(t *testing.T, s setup) {
				wtWrite(t, filepath.Join(s.other, "real.conf"), "two\n")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := setup{dir: dir, file: filepath.Join(dir, "app.conf"), other: t.TempDir()}
			if tc.prepare != nil {
				tc.prepare(t, s)
			} else {
				writeFile(t, dir, "app.conf", "one\n")
			}
			sent := writeFile(t, dir, "sentinel", "s0\n")
			debounce := wtDebounce
			if tc.debounce != "" {
				debounce = tc.debounce
			}
			w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{s.file, sent}, wtHTTP, wtWatch("", debounce, s.file, sent)))
			watching := w.WaitEvent(logev.Watching, 1, func(e Event) bool { return e.Str("action") == "reload" })
			if got := wtStrings(watching, "paths"); !slices.Equal(got, []string{s.file, sent}) || watching.Str("how") != "inotify" {
				t.Fatalf("watching %v, want paths %q by inotify", watching, []string{s.file, sent})
			}
			w.reads(w.startReport(1), s.file, "one\n")

			tc.edit(t, s)
			change := w.changed(1, s.file)
			if change.Str("action") != "reload" || change.Str("hash") == watching.Str("hash") {
				t.Fatalf("change %v: want action reload and a hash other than %s", change, watching.Str("hash"))
			}
			done := w.reloaded(1)
			if done.Str("strategy") != string(supervisor.StrategySwap) || done.Int("pid") != w.ChildPID(2) {
				t.Fatalf("reload %v: want a swap to gen 2", done)
			}
			w.reads(w.report(done.Int("pid")), s.file, "two\n")
			w.checkStatus(change, 2, 1, s.file, sent)

			w.sentinel(sent, 1)
			w.stop()
		})
	}
}

// TestWatchDirectory: a watched directory (everything under it) and a
// glob. One file changed, one created later, one in a subdirectory created
// later, one removed: one reload each. Editor swap files, backups and
// names the glob does not match cause none.
func TestWatchDirectory(t *testing.T) {
	t.Parallel()
	for _, glob := range []bool{false, true} {
		name := map[bool]string{false: "directory", true: "glob"}[glob]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			confd := filepath.Join(dir, "conf.d")
			if err := os.Mkdir(confd, 0o755); err != nil {
				t.Fatal(err)
			}
			a := writeFile(t, confd, "a.conf", "a1\n")
			b := writeFile(t, confd, "b.conf", "b1\n")
			sent := writeFile(t, dir, "sentinel", "s0\n")
			watched := confd
			if glob {
				watched = filepath.Join(confd, "*.conf")
			}
			w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{confd, sent}, wtHTTP, wtWatch("", wtDebounce, watched, sent)))
			r := w.startReport(1)
			w.reads(r, a, "a1\n")
			w.reads(r, b, "b1\n")

			// Noise: an editor's swap file, a backup, and (for the glob) a
			// name it does not match.
			writeFile(t, confd, ".b.conf.swp", "swap")
			writeFile(t, confd, "b.conf~", "backup")
			if glob {
				writeFile(t, confd, "notes.txt", "not matched")
			}

			wtWrite(t, b, "b2\n")
			w.changed(1, b)
			w.reads(w.report(w.reloaded(1).Int("pid")), b, "b2\n")

			c := filepath.Join(confd, "c.conf")
			wtWrite(t, c, "c1\n")
			w.changed(2, c)
			w.reads(w.report(w.reloaded(2).Int("pid")), c, "c1\n")

			if err := os.Remove(a); err != nil {
				t.Fatal(err)
			}
			w.changed(3, a)
			if r := w.report(w.reloaded(3).Int("pid")); r.Files[a] != "" || r.Files[c] != "c1\n" {
				t.Fatalf("after removing a.conf, the new generation read %q", r.Files)
			}
			reloads := 3
			if !glob {
				// A subdirectory created later is watched too: its file
				// appears, then changes.
				sub := filepath.Join(confd, "sub")
				if err := os.Mkdir(sub, 0o755); err != nil {
					t.Fatal(err)
				}
				d := filepath.Join(sub, "d.conf")
				wtWrite(t, d, "d1\n")
				w.changed(4, d)
				w.reloaded(4)
				wtWrite(t, d, "d2\n")
				w.changed(5, d)
				w.reloaded(5)
				reloads = 5
			}
			w.sentinel(sent, reloads)
			w.stop()
		})
	}
}

// wtAtomicWrite updates a Kubernetes volume the way the kubelet's
// AtomicWriter does: the files go into a new timestamped directory, a
// "..data_tmp" link to it is renamed over "..data", the visible names are
// links into "..data" (created once), and the old directory is removed.
func wtAtomicWrite(t *testing.T, vol string, files map[string]string) {
	t.Helper()
	ts, err := os.MkdirTemp(vol, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ts, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(vol, "..data")
	old, _ := os.Readlink(data)
	if err := os.Symlink(filepath.Base(ts), filepath.Join(vol, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(vol, "..data_tmp"), data); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if _, err := os.Lstat(filepath.Join(vol, name)); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(vol, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(vol, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWatchKubernetesConfigMap: a ConfigMap volume updated as the kubelet
// does it, watched as the file its program reads and as the whole volume.
// An update with equal content causes no reload; one that changes
// app.conf causes exactly one, whose generation reads the new content.
func TestWatchKubernetesConfigMap(t *testing.T) {
	t.Parallel()
	for _, whole := range []bool{false, true} {
		name := map[bool]string{false: "file", true: "volume"}[whole]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			vol := filepath.Join(dir, "config")
			if err := os.Mkdir(vol, 0o755); err != nil {
				t.Fatal(err)
			}
			app := filepath.Join(vol, "app.conf")
			v1 := map[string]string{"app.conf": "one\n", "other.conf": "other\n"}
			wtAtomicWrite(t, vol, v1)
			sent := writeFile(t, dir, "sentinel", "s0\n")
			watched := app
			if whole {
				watched = vol
			}
			w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{app, sent}, wtHTTP, wtWatch("", wtDebounce, watched, sent)))
			w.reads(w.startReport(1), app, "one\n")

			// The same content again, twice: nothing to reload.
			wtAtomicWrite(t, vol, v1)
			wtAtomicWrite(t, vol, v1)

			wtAtomicWrite(t, vol, map[string]string{"app.conf": "two\n", "other.conf": "other\n"})
			w.changed(1, app)
			w.reads(w.report(w.reloaded(1).Int("pid")), app, "two\n")
			if ents, _ := filepath.Glob(filepath.Join(vol, "..2*")); len(ents) != 1 {
				t.Fatalf("timestamped directories %q, want one", ents)
			}
			w.sentinel(sent, 1)
			w.stop()
		})
	}
}

// TestWatchNoise: what changes metadata but not content causes no reload:
// touch, chmod, a rewrite with the same bytes (in place, by rename, by
// sed -i), a sibling file created and removed.
func TestWatchNoise(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := writeFile(t, dir, "app.conf", "one\n")
	sent := writeFile(t, dir, "sentinel", "s0\n")
	w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{app, sent}, wtHTTP, wtWatch("", wtDebounce, app, sent)))
	w.reads(w.startReport(1), app, "one\n")

	wtRun(t, "touch", app)
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(app, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(app, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(app, 0o644); err != nil {
		t.Fatal(err)
	}
	// Equal bytes written over the old ones (a truncation first would
	// make the file empty for a moment: a real change, if a rescan saw it).
	wtPwrite(t, app, "one\n")
	wtWrite(t, app, "one\n")
	wtRun(t, "sed", "-i", "s/one/one/", app)
	bak := writeFile(t, dir, "app.conf.bak", "backup")
	if err := os.Remove(bak); err != nil {
		t.Fatal(err)
	}

	w.sentinel(sent, 0)
	if n := len(w.Events(logev.WatchedFilesChanged)); n != 1 {
		t.Fatalf("%d changes seen, want only the sentinel's", n)
	}
	w.stop()
}

// TestWatchWriteStream: 1000 writes over about a second. A constant
// stream of events holds a rescan back by ten debounces at most; with a
// debounce of 400ms that bound is 4s, so the stream makes one change, two
// if it ends just after the bound, more only on a machine so loaded that
// the stream outlasts it. The generation that starts after the last change
// reads the final content.
func TestWatchWriteStream(t *testing.T) {
	t.Parallel()
	const maxWait = 10 * 400 * time.Millisecond
	dir := t.TempDir()
	app := writeFile(t, dir, "app.conf", "n=0\n")
	sent := writeFile(t, dir, "sentinel", "s0\n")
	w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{app, sent}, wtHTTP, wtWatch("", "400ms", app, sent)))
	w.reads(w.startReport(1), app, "n=0\n")

	tick := time.NewTicker(time.Millisecond)
	began := time.Now()
	for i := 1; i <= 1000; i++ {
		<-tick.C
		if err := os.WriteFile(app, []byte(fmt.Sprintf("n=%d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()
	took := time.Since(began)
	// The change that reports the final content is the last one. Changes
	// are a debounce apart at least: each has its reload to itself.
	final := watch.Hash([]string{app, sent})
	e := w.WaitEvent(logev.WatchedFilesChanged, 1, func(e Event) bool { return e.Str("hash") == final })
	n := len(w.Events(logev.WatchedFilesChanged))
	if got := wtStrings(e, "changed"); !slices.Equal(got, []string{app}) || n < 1 || n > 2+int(took/maxWait) {
		t.Fatalf("stream of %s: %d changes, the last naming %q; want 1 or 2 naming %s", took, n, got, app)
	}
	w.reads(w.report(w.reloaded(n).Int("pid")), app, "n=1000\n")
	t.Logf("1000 writes in %s: %d reloads", took.Round(time.Millisecond), n)
	w.sentinel(sent, n)
	w.stop()
}

// TestWatchMissingPath: a watched file whose directory does not exist yet.
// Created later (directories and file): one reload. The whole tree removed:
// one reload, the file missing. Created again (the new directories may
// reuse the old inode numbers): one reload.
func TestWatchMissingPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	top := filepath.Join(dir, "a")
	app := filepath.Join(top, "b", "c", "app.conf")
	sent := writeFile(t, dir, "sentinel", "s0\n")
	w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{app, sent}, wtHTTP, wtWatch("", wtDebounce, app, sent)))
	if r := w.startReport(1); !slices.Equal(r.Missing, []string{app}) {
		t.Fatalf("gen 1 report %+v: want %s missing", r, app)
	}
	create := func(content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(app), 0o755); err != nil {
			t.Fatal(err)
		}
		wtWrite(t, app, content)
	}
	create("one\n")
	w.changed(1, app)
	w.reads(w.report(w.reloaded(1).Int("pid")), app, "one\n")

	if err := os.RemoveAll(top); err != nil {
		t.Fatal(err)
	}
	w.changed(2, app)
	if r := w.report(w.reloaded(2).Int("pid")); !slices.Equal(r.Missing, []string{app}) {
		t.Fatalf("after removing %s: report %+v, want %s missing", top, r, app)
	}

	create("two\n")
	w.changed(3, app)
	w.reads(w.report(w.reloaded(3).Int("pid")), app, "two\n")
	w.sentinel(sent, 3)
	w.stop()
}

// TestWatchActions: what a group's action does.
func TestWatchActions(t *testing.T) {
	t.Parallel()

	// signal:USR1 relays SIGUSR1 to the serving generation, which reads
	// its files again in place: no new generation, and the generation's
	// content hash is the new one.
	t.Run("signal", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		app := writeFile(t, dir, "app.conf", "one\n")
		sent := writeFile(t, dir, "sentinel", "s0\n")
		w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{app, sent}, wtHTTP,
			wtWatch("signal:USR1", wtDebounce, app), wtWatch("", wtDebounce, sent)))
		pid := w.ChildPID(1)
		w.reads(w.startReport(1), app, "one\n")

		wtWrite(t, app, "two\n")
		if e := w.changed(1, app); e.Str("action") != "signal:USR1" {
			t.Fatalf("change %v: want action signal:USR1", e)
		}
		done := w.reloaded(1)
		sent1 := w.WaitEvent(logev.ReloadSignalSent, 1, nil)
		if done.Str("strategy") != "signal" || done.Int("pid") != pid || sent1.Str("signal") != "USR1" || sent1.Int("pid") != pid {
			t.Fatalf("reload %v, signal %v: want USR1 relayed to pid %d", done, sent1, pid)
		}
		r := w.report(pid)
		if r.Why != "USR1" {
			t.Fatalf("pid %d reported %+v, want a read after USR1", pid, r)
		}
		w.reads(r, app, "two\n")
		st := w.status()
		if len(st.Generations) != 1 || st.Generations[0].PID != pid || st.ConfigHash != st.Hash || st.Generations[0].ConfigHash != st.Hash {
			t.Fatalf("status after the signal: hash %s, config_hash %s, generations %+v; want gen 1 (pid %d) alone, with the new hash",
				st.Hash, st.ConfigHash, st.Generations, pid)
		}
		if n := len(w.Events(logev.ChildStarted)); n != 1 {
			t.Fatalf("%d generations started, want 1", n)
		}
		w.sentinel(sent, 1)
		w.stop()
	})

	// restart stops the old generation before the new one starts.
	t.Run("restart", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		app := writeFile(t, dir, "app.conf", "one\n")
		sent := writeFile(t, dir, "sentinel", "s0\n")
		w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{app, sent}, wtHTTP, wtWatch("restart", wtDebounce, app, sent)))
		w.reads(w.startReport(1), app, "one\n")

		wtWrite(t, app, "two\n")
		w.changed(1, app)
		done := w.reloaded(1)
		if done.Str("strategy") != "restart" {
			t.Fatalf("reload %v: want a restart", done)
		}
		if exited, started := swapEventIndex(w.Hupd, logev.ChildExited, 1, swapGen(1)), swapEventIndex(w.Hupd, logev.ChildStarted, 1, swapGen(2)); exited < 0 || exited > started {
			t.Fatalf("gen 1 exited at log line %d, gen 2 started at %d: want gen 1 gone first", exited, started)
		}
		w.reads(w.report(done.Int("pid")), app, "two\n")
		w.sentinel(sent, 1)
		if st := w.started(); st[1].Str("strategy") != "restart" {
			t.Fatalf("sentinel's reload %v: want a restart", st[1])
		}
		w.stop()
	})

	// Two groups, swap and signal:USR1, change at the same time while
	// nothing else happens. Observed: two reloads, in either order (the
	// first starts at once, the second queues behind it): one swap, one
	// signal; one new generation; USR1 relayed once. The generation that
	// serves in the end has read both changes.
	t.Run("swap and signal while idle", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		a := writeFile(t, dir, "a.conf", "a1\n")
		b := writeFile(t, dir, "b.conf", "b1\n")
		sent := writeFile(t, dir, "sentinel", "s0\n")
		w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{a, b, sent}, wtHTTP,
			wtWatch("swap", wtDebounce, a), wtWatch("signal:USR1", wtDebounce, b), wtWatch("", wtDebounce, sent)))
		w.startReport(1)

		wtWrite(t, a, "a2\n")
		wtWrite(t, b, "b2\n")
		w.WaitEvent(logev.WatchedFilesChanged, 1, func(e Event) bool { return slices.Equal(wtStrings(e, "changed"), []string{a}) })
		w.WaitEvent(logev.WatchedFilesChanged, 1, func(e Event) bool { return slices.Equal(wtStrings(e, "changed"), []string{b}) })
		w.reloaded(2)
		var strategies []string
		for _, e := range w.started() {
			strategies = append(strategies, e.Str("strategy"))
		}
		slices.Sort(strategies)
		if !slices.Equal(strategies, []string{"signal", "swap"}) {
			t.Fatalf("reload strategies %q, want one swap and one signal", strategies)
		}
		if n, sigs := len(w.Events(logev.ChildStarted)), w.Events(logev.ReloadSignalSent); n != 2 || len(sigs) != 1 || sigs[0].Str("signal") != "USR1" {
			t.Fatalf("%d generations started, signals sent %v; want 2 and one USR1", n, sigs)
		}
		r := w.report(w.ChildPID(2))
		w.reads(r, a, "a2\n")
		w.reads(r, b, "b2\n")
		w.sentinel(sent, 2)
		w.stop()
	})

	// The same two groups change while a swap is in progress: both wait,
	// and merge into one reload, a swap, which covers the signal (the new
	// generation reads everything afresh): USR1 is never sent.
	t.Run("swap covers signal when both wait", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		a := writeFile(t, dir, "a.conf", "a1\n")
		b := writeFile(t, dir, "b.conf", "b1\n")
		sent := writeFile(t, dir, "sentinel", "s0\n")
		ctl := t.TempDir()
		hold := filepath.Join(ctl, "hold")
		args := []string{"-hold-if", hold, "-release", ctl, a, b, sent}
		tables := []string{wtHTTP, wtWatch("swap", wtDebounce, a), wtWatch("signal:USR1", wtDebounce, b), wtWatch("", wtDebounce, sent)}
		confDir := t.TempDir()
		w, conf := wtStartConf(t, confDir, wtTOML(args, tables...))
		w.startReport(1)

		// Reload 1, a swap whose new generation holds back its READY=1.
		writeFile(t, ctl, "hold", "")
		wtWrite(t, a, "a2\n")
		w.changed(1, a)
		pid2 := w.ChildPID(2)

		// a and b change while it runs.
		wtWrite(t, a, "a3\n")
		wtWrite(t, b, "b2\n")
		w.WaitEvent(logev.WatchedFilesChanged, 2, func(e Event) bool { return slices.Equal(wtStrings(e, "changed"), []string{a}) })
		w.WaitEvent(logev.WatchedFilesChanged, 1, func(e Event) bool { return slices.Equal(wtStrings(e, "changed"), []string{b}) })
		// Both requests reach the supervisor before anything reconf does
		// next; a comment added to hupd.toml is such a thing, and shows
		// in the log.
		wtWrite(t, conf, wtTOML(args, tables...)+"# barrier\n")
		if e := w.WaitEvent(logev.ConfigApplied, 1, nil); e["new_generation"] != false {
			t.Fatalf("%v: a comment needs no new generation", e)
		}

		if err := os.Remove(hold); err != nil {
			t.Fatal(err)
		}
		writeFile(t, ctl, fmt.Sprintf("release-%d", pid2), "")
		w.reloaded(2)
		st := w.started()
		if len(st) != 2 || st[1].Str("strategy") != "swap" ||
			!strings.Contains(st[1].Str("cause"), "changed: "+a) || !strings.Contains(st[1].Str("cause"), "changed: "+b) {
			t.Fatalf("reloads started: %v; want the second a swap for both changes", st)
		}
		r := w.report(w.ChildPID(3))
		w.reads(r, a, "a3\n")
		w.reads(r, b, "b2\n")
		if sigs := w.Events(logev.ReloadSignalSent); len(sigs) != 0 {
			t.Fatalf("signals sent: %v; the swap covers them", sigs)
		}
		w.sentinel(sent, 2)
		w.stop()
	})
}

// TestWatchPoll: --watch with --watch-poll detects changes without inotify
// (hupd holds no inotify instance).
func TestWatchPoll(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := writeFile(t, dir, "app.conf", "one\n")
	sent := writeFile(t, dir, "sentinel", "s0\n")
	w := wtStart(t, append([]string{"--listen", "http=tcp://127.0.0.1:0", "--watch", app, "--watch", sent, "--watch-poll", "100ms", "--"},
		childCmd("watch-serve", app, sent)...)...)
	if e := w.WaitEvent(logev.Watching, 1, nil); !slices.Equal(wtStrings(e, "paths"), []string{app, sent}) || e.Str("how") != "poll every 100ms" {
		t.Fatalf("watching %v: want both paths polled every 100ms", e)
	}
	w.reads(w.startReport(1), app, "one\n")
	if n := wtInotifyFDs(t, w.Cmd.Process.Pid); n != 0 {
		t.Fatalf("hupd holds %d inotify instances, want none when every group polls", n)
	}

	// In place, one write of the same size: only the times tell.
	wtPwrite(t, app, "two\n")
	change := w.changed(1, app)
	w.reads(w.report(w.reloaded(1).Int("pid")), app, "two\n")
	w.checkStatus(change, 2, 1, app, sent)
	if st := w.status(); st.Watches[0].Poll != supervisor.Duration(100*time.Millisecond) {
		t.Fatalf("status watch %+v: want poll_interval 100ms", st.Watches[0])
	}
	w.sentinel(sent, 1)
	w.stop()
}

// wtInotifyFDs counts the inotify instances process pid holds.
func wtInotifyFDs(t *testing.T, pid int) int {
	t.Helper()
	n := 0
	for _, target := range swapFDs(t, pid) {
		if target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// TestWatchUnixSocketFilesRemoved: a hupd with a unix socket and a watch
// reloads on a change and, when it stops, leaves no child, no control
// socket and no socket file behind.
func TestWatchUnixSocketFilesRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := writeFile(t, dir, "app.conf", "one\n")
	sent := writeFile(t, dir, "sentinel", "s0\n")
	sock := filepath.Join(sockDir(t), "app.sock")
	w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{app, sent}, wtHTTP, wtListen("local", "unix://"+sock), wtWatch("", wtDebounce, app, sent)))
	pid1 := w.ChildPID(1)
	if r := w.startReport(1); !slices.Equal(r.Names, []string{"http", "local"}) {
		t.Fatalf("gen 1 names %q", r.Names)
	}
	if body := fetch(t, "unix", sock, "/"); swapPID(body) != pid1 {
		t.Fatalf("unix socket answered %q, want pid %d", body, pid1)
	}
	wtWrite(t, app, "two\n")
	w.changed(1, app)
	pid2 := w.reloaded(1).Int("pid")
	w.reads(w.report(pid2), app, "two\n")
	w.WaitEvent(logev.ChildExited, 1, swapGen(1))
	if body := fetch(t, "unix", sock, "/"); swapPID(body) != pid2 {
		t.Fatalf("unix socket answered %q, want pid %d", body, pid2)
	}
	lstatSocket(t, sock)
	w.sentinel(sent, 1)
	w.stop(sock)
	if _, err := os.Stat(filepath.Dir(w.ctl)); err == nil {
		if ents, _ := os.ReadDir(filepath.Dir(w.ctl)); len(ents) != 0 {
			t.Errorf("left in the control socket's directory: %v", ents)
		}
	}
}

// TestWatchRelativePaths: a relative path in a [[watch]] table is relative
// to hupd.toml's directory; one given to --watch, to the directory hupd
// starts in. The flag's paths form one more group.
func TestWatchRelativePaths(t *testing.T) {
	t.Parallel()
	confDir, cwd := t.TempDir(), t.TempDir()
	app := writeFile(t, confDir, "app.conf", "one\n")
	flagged := writeFile(t, cwd, "flag.conf", "f1\n")
	sent := writeFile(t, confDir, "sentinel", "s0\n")
	conf := filepath.Join(confDir, "hupd.toml")
	wtWrite(t, conf, wtTOML([]string{app, flagged, sent}, wtHTTP, wtWatch("", wtDebounce, "app.conf", "./sentinel")))
	cmd := exec.Command(hupdBin, withJSONLog([]string{"run", "-c", conf, "--watch", "flag.conf"})...)
	cmd.Dir = cwd
	h := StartHupdCmd(t, cmd)
	w := &wtHupd{Hupd: h, ctl: h.WaitEvent(logev.ControlSocket, 1, nil).Str("path"), reports: map[int][]WatchReport{}}
	for i, want := range [][]string{{conf}, {app, sent}, {flagged}} {
		if got := wtStrings(w.WaitEvent(logev.Watching, i+1, nil), "paths"); !slices.Equal(got, want) {
			t.Fatalf("watching #%d: %q, want %q", i+1, got, want)
		}
	}
	w.startReport(1)
	wtWrite(t, app, "two\n")
	w.changed(1, app)
	w.reads(w.report(w.reloaded(1).Int("pid")), app, "two\n")
	wtWrite(t, flagged, "f2\n")
	w.changed(2, flagged)
	w.reads(w.report(w.reloaded(2).Int("pid")), flagged, "f2\n")
	w.sentinel(sent, 2)
	w.stop()
}

// TestWatchFileMountWarning: a watched file that is a mount point of its
// own (docker -v FILE, a Kubernetes subPath) never sees its source
// replaced; hupd says so when it starts watching it.
func TestWatchFileMountWarning(t *testing.T) {
	t.Parallel()
	procNeedRoot(t)
	needTool(t, "unshare")
	dir := t.TempDir()
	src := writeFile(t, t.TempDir(), "source.conf", "one\n")
	app := writeFile(t, dir, "app.conf", "")
	sent := writeFile(t, dir, "sentinel", "s0\n")
	conf := filepath.Join(t.TempDir(), "hupd.toml")
	wtWrite(t, conf, wtTOML([]string{app, sent}, wtHTTP, wtWatch("", wtDebounce, app, sent)))
	// hupd runs in a mount namespace of its own, where app.conf is a bind
	// mount of source.conf.
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--",
		"sh", "-c", `mount --bind "$1" "$2" && shift 2 && exec "$@"`, "sh", src, app, hupdBin},
		withJSONLog([]string{"run", "-c", conf})...)...)
	h := StartHupdCmd(t, cmd)
	w := &wtHupd{Hupd: h, ctl: h.WaitEvent(logev.ControlSocket, 1, nil).Str("path"), reports: map[int][]WatchReport{}}
	warn := w.WaitEvent(logev.WatchMountPoint, 1, nil)
	if warn.Str("path") != app || warn.Str("level") != "WARN" {
		t.Fatalf("%v: want a warning naming %s", warn, app)
	}
	w.Sync() // every watched file is looked at before hupd opens its control socket
	if n := len(w.Events(warn.Msg())); n != 1 {
		t.Fatalf("%d warnings, want one (the sentinel is a plain file)", n)
	}
	w.reads(w.startReport(1), app, "one\n")
	w.sentinel(sent, 0)
	w.stop()
}

// within waits up to d (a bound shorter than the package deadline) for
// an event msg; it reports whether one came.
func (w *wtHupd) within(d time.Duration, msg string) bool {
	timer := time.AfterFunc(d, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	start := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if slices.ContainsFunc(w.events, func(e Event) bool { return e.Msg() == msg }) {
			return true
		}
		select {
		case <-w.done:
			return false
		default:
		}
		if time.Since(start) >= d {
			return false
		}
		w.cond.Wait()
	}
}

// TestWatchNamedPipe: a watched path that is a named pipe (or any file
// that is not a regular one) has no content to hash: hupd must not block
// reading it. It starts its child and serves, and stops on TERM. (hupd
// used to open and read every watched file: it hung at start, before its
// signal handling, and SIGTERM did not stop it.)
func TestWatchNamedPipe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sent := writeFile(t, dir, "sentinel", "s0\n")
	w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{sent}, wtHTTP, wtWatch("", wtDebounce, fifo, sent)))
	// Well within the package deadline: hupd starts in milliseconds.
	if !w.within(5*time.Second, logev.ChildStarted) {
		t.Fatalf("no child started within 5s: hupd is stuck hashing the named pipe %s (stack of its threads: /proc/%d/task/*/stack)", fifo, w.Cmd.Process.Pid)
	}
	w.startReport(1)
	w.sentinel(sent, 0)
	w.stop()
}
