package watch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests run against real inotify. Each operation is followed by a
// handshake on the sentinel file (see rig): an operation that changes the
// content must be reported exactly once, one that does not must not be
// reported at all.

// TestFileReplaced: the ways a single watched file gets new content.
func TestFileReplaced(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		debounce time.Duration
		needs    string // a command the operation runs
		op       func(t *testing.T, f, other string)
		changes  bool
	}{
		{name: "vim", changes: true, op: func(t *testing.T, f, other string) {
			dir := filepath.Dir(f)
			// vim checks that it may create files, writes a swap file,
			// then the new content under a new name and renames it.
			writeFile(t, filepath.Join(dir, "4913"), "")
			remove(t, filepath.Join(dir, "4913"))
			writeFile(t, filepath.Join(dir, "."+filepath.Base(f)+".swp"), "swap")
			writeFile(t, f+".tmp", "two\n")
			rename(t, f+".tmp", f)
			remove(t, filepath.Join(dir, "."+filepath.Base(f)+".swp"))
		}},
		{name: "vim with backup", changes: true, op: func(t *testing.T, f, other string) {
			// backupcopy=no: the original becomes the backup, the new
			// content is a new file.
			rename(t, f, f+"~")
			writeFile(t, f, "two\n")
			remove(t, f+"~")
		}},
		{name: "sed -i", needs: "sed", changes: true, op: func(t *testing.T, f, other string) {
			run(t, "sed", "-i", "s/one/two/", f)
		}},
		{name: "sed -i without a change", needs: "sed", op: func(t *testing.T, f, other string) {
			run(t, "sed", "-i", "s/absent/two/", f)
		}},
		{name: "write in place", changes: true, op: func(t *testing.T, f, other string) {
			writeFile(t, f, "two\n")
		}},
		{name: "cp over", needs: "cp", changes: true, op: func(t *testing.T, f, other string) {
			src := filepath.Join(other, "new.conf")
			writeFile(t, src, "two\n")
			run(t, "cp", src, f)
		}},
		{name: "open O_TRUNC and write", changes: true, op: func(t *testing.T, f, other string) {
			fd, err := os.OpenFile(f, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"tw", "o", "\n"} {
				if _, err := fd.WriteString(s); err != nil {
					t.Fatal(err)
				}
			}
			if err := fd.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "mv from another directory", changes: true, op: func(t *testing.T, f, other string) {
			src := filepath.Join(other, "new.conf")
			writeFile(t, src, "two\n")
			rename(t, src, f)
		}},
		{name: "mv equal content from another directory", op: func(t *testing.T, f, other string) {
			src := filepath.Join(other, "new.conf")
			writeFile(t, src, "one\n")
			rename(t, src, f)
		}},
		{name: "delete", changes: true, op: func(t *testing.T, f, other string) {
			remove(t, f)
		}},
		// The debounce must cover the gap between the deletion and the
		// creation for them to count as one change.
		{name: "delete and re-create", debounce: 250 * time.Millisecond, changes: true, op: func(t *testing.T, f, other string) {
			remove(t, f)
			writeFile(t, f, "two\n")
		}},
		{name: "delete and re-create equal", debounce: 250 * time.Millisecond, op: func(t *testing.T, f, other string) {
			remove(t, f)
			writeFile(t, f, "one\n")
		}},
		{name: "touch", op: func(t *testing.T, f, other string) {
			later := time.Now().Add(time.Minute)
			if err := os.Chtimes(f, later, later); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "chmod", op: func(t *testing.T, f, other string) {
			if err := os.Chmod(f, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "rewrite equal content", op: func(t *testing.T, f, other string) {
			writeFile(t, f, "one\n")
		}},
		{name: "write and write back", op: func(t *testing.T, f, other string) {
			writeFile(t, f, "two\n")
			writeFile(t, f, "one\n")
		}},
		{name: "other files in the directory", op: func(t *testing.T, f, other string) {
			writeFile(t, f+".bak", "two\n")
			writeFile(t, filepath.Join(filepath.Dir(f), "x"), "x")
			rename(t, filepath.Join(filepath.Dir(f), "x"), filepath.Join(filepath.Dir(f), "y"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.needs != "" {
				if _, err := exec.LookPath(tt.needs); err != nil {
					t.Skip(err)
				}
			}
			f := filepath.Join(t.TempDir(), "app.conf")
			writeFile(t, f, "one\n")
			r := newRig(t, Group{Paths: []string{f}, Debounce: tt.debounce})
			tt.op(t, f, t.TempDir())
			if tt.changes {
				r.changed(0, f)
			}
			r.quiet()
		})
	}
}

// run runs a command that must succeed.
func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %q: %v: %s", name, args, err, out)
	}
}

// TestSymlink: a watched path that is a symlink follows its target.
func TestSymlink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		target func(dir, other string) (first, second string) // absolute
		op     func(t *testing.T, link, first, second string)
	}{
		{
			name: "re-pointed in the same directory",
			target: func(dir, other string) (string, string) {
				return filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")
			},
			op: lnSfn,
		},
		{
			name: "re-pointed to another directory",
			target: func(dir, other string) (string, string) {
				return filepath.Join(other, "a.conf"), filepath.Join(other, "b", "b.conf")
			},
			op: lnSfn,
		},
		{
			name: "re-pointed by ln -sfn",
			target: func(dir, other string) (string, string) {
				return filepath.Join(other, "a.conf"), filepath.Join(other, "b.conf")
			},
			op: func(t *testing.T, link, first, second string) {
				if _, err := exec.LookPath("ln"); err != nil {
					t.Skip(err)
				}
				run(t, "ln", "-sfn", second, link)
			},
		},
		{
			name: "target in another directory edited in place",
			target: func(dir, other string) (string, string) {
				return filepath.Join(other, "a.conf"), filepath.Join(other, "a.conf")
			},
			op: func(t *testing.T, link, first, second string) { writeFile(t, first, "edited") },
		},
		{
			name: "target in another directory replaced",
			target: func(dir, other string) (string, string) {
				return filepath.Join(other, "a.conf"), filepath.Join(other, "a.conf")
			},
			op: func(t *testing.T, link, first, second string) {
				writeFile(t, first+".tmp", "replaced")
				rename(t, first+".tmp", first)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, other := t.TempDir(), t.TempDir()
			first, second := tt.target(dir, other)
			mkdirAll(t, filepath.Dir(second))
			writeFile(t, first, "first")
			if second != first {
				writeFile(t, second, "second")
			}
			link := filepath.Join(dir, "app.conf")
			symlink(t, first, link)
			r := newRig(t, Group{Paths: []string{link}})
			tt.op(t, link, first, second)
			r.changed(0, link)
			r.quiet()
			// The watches follow the link's new target.
			target, err := filepath.EvalSymlinks(link)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, target, "third")
			r.changed(0, link)
			r.quiet()
		})
	}
}

// lnSfn re-points link as ln -sfn does: a new link under a temporary name,
// renamed over the old one.
func lnSfn(t *testing.T, link, first, second string) {
	symlink(t, second, link+".tmp")
	rename(t, link+".tmp", link)
}

// TestDirectory: a watched directory is watched with everything under it,
// except hidden files and backups.
func TestDirectory(t *testing.T) {
	t.Parallel()
	v := t.TempDir()
	a, b := filepath.Join(v, "a.conf"), filepath.Join(v, "b.conf")
	writeFile(t, a, "a")
	writeFile(t, b, "b")
	r := newRig(t, Group{Paths: []string{v}})

	writeFile(t, a, "a2")
	r.changed(0, a)
	r.quiet()

	c := filepath.Join(v, "c.conf")
	writeFile(t, c, "c")
	r.changed(0, c)
	r.quiet()

	d := filepath.Join(v, "sub", "deeper", "d.conf")
	mkdirAll(t, filepath.Dir(d))
	writeFile(t, d, "d")
	r.changed(0, d)
	r.quiet()
	writeFile(t, d, "d2")
	r.changed(0, d)
	r.quiet()

	// Ignored: hidden files, vim's swap files, backups, hidden directories.
	writeFile(t, filepath.Join(v, ".a.conf.swp"), "swap")
	writeFile(t, filepath.Join(v, ".hidden"), "h")
	writeFile(t, filepath.Join(v, "a.conf~"), "backup")
	mkdirAll(t, filepath.Join(v, ".git"))
	writeFile(t, filepath.Join(v, ".git", "HEAD"), "ref")
	writeFile(t, filepath.Join(v, "sub", ".d.conf.swp"), "swap")
	r.quiet()

	// Neither a rename to an ignored name and back.
	rename(t, b, filepath.Join(v, ".b.conf.tmp"))
	rename(t, filepath.Join(v, ".b.conf.tmp"), b)
	r.quiet()

	remove(t, b)
	r.changed(0, b)
	r.quiet()

	remove(t, filepath.Join(v, "sub"))
	r.changed(0, d)
	r.quiet()
}

// TestGlob: a glob's matches are the files it matches at each scan.
func TestGlob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.conf"), "a")
	r := newRig(t,
		Group{Paths: []string{filepath.Join(dir, "*.conf")}},
		Group{Paths: []string{filepath.Join(dir, ".*")}})

	b := filepath.Join(dir, "b.conf")
	writeFile(t, b, "b")
	r.changed(0, b)
	r.quiet()

	writeFile(t, filepath.Join(dir, "x.txt"), "x")
	writeFile(t, filepath.Join(dir, "b.conf~"), "backup")
	r.quiet()

	// A hidden file does not match "*", but does match ".*".
	h := filepath.Join(dir, ".h.conf")
	writeFile(t, h, "h")
	r.changed(1, h)
	r.quiet()

	// A match in a directory that does not exist yet.
	r2 := newRig(t, Group{Paths: []string{filepath.Join(dir, "later", "*", "*.conf")}})
	l := filepath.Join(dir, "later", "x", "l.conf")
	mkdirAll(t, filepath.Dir(l))
	writeFile(t, l, "l")
	r2.changed(0, l)
	r2.quiet()
}

// TestConfigMap mimics the kubelet's AtomicWriter: the files live in a
// directory named after the time of the update, "..data" links to it, and
// the visible files link into "..data". An update writes a new directory
// and swaps "..data" in one rename.
func TestConfigMap(t *testing.T) {
	t.Parallel()
	v := t.TempDir()
	app := filepath.Join(v, "app.conf")
	gen := 1
	tsDir := func(gen int) string { return fmt.Sprintf("..2026_11_21_10_00_00.%09d", gen) }
	mkdirAll(t, filepath.Join(v, tsDir(gen)))
	writeFile(t, filepath.Join(v, tsDir(gen), "app.conf"), "v1")
	symlink(t, tsDir(gen), filepath.Join(v, "..data"))
	symlink(t, filepath.Join("..data", "app.conf"), app)

	update := func(content string) {
		t.Helper()
		old := tsDir(gen)
		gen++
		mkdirAll(t, filepath.Join(v, tsDir(gen)))
		writeFile(t, filepath.Join(v, tsDir(gen), "app.conf"), content)
		symlink(t, tsDir(gen), filepath.Join(v, "..data_tmp"))
		rename(t, filepath.Join(v, "..data_tmp"), filepath.Join(v, "..data"))
		remove(t, filepath.Join(v, old))
	}

	// The debounce must outlast any pause between the steps of an
	// update: a rescan between the rename of "..data" and the removal of
	// the old directory may follow the old link and find its file gone.
	const d = 250 * time.Millisecond
	r := newRig(t, Group{Paths: []string{v}, Debounce: d}, Group{Paths: []string{app}, Debounce: d})
	for i, content := range []string{"v2", "v3"} {
		update(content)
		r.changed(0, app)
		r.changed(1, app)
		r.quiet()
		if got := readFile(t, app); got != content {
			t.Fatalf("update %d: %s reads %q, want %q", i, app, got, content)
		}
	}
	update("v3")
	r.quiet()
}

// TestBurst: a file written a thousand times in a row is reported once,
// or twice when the writing outlasts MaxWait, and ends with the last
// content.
func TestBurst(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "app.conf")
	writeFile(t, f, "start")
	r := newRig(t, Group{Paths: []string{f}, Debounce: 200 * time.Millisecond})
	began := time.Now()
	pauses, last := 0, began
	for i := range 1000 {
		writeFile(t, f, fmt.Sprintf("write %d", i))
		// A pause that nears the debounce (the writer descheduled on a
		// loaded machine) may end a burst: that change is legitimate.
		now := time.Now()
		if now.Sub(last) > 100*time.Millisecond {
			pauses++
		}
		last = now
	}
	took := time.Since(began)
	final := r.hashNow(0)
	// MaxWait (10×200ms) forces a rescan during the writes at most once
	// per MaxWait, and one follows them: two at most, when the writes take
	// less than MaxWait and never pause (they take a few hundred ms;
	// seconds under -race on a loaded machine).
	most := 2 + int(took/(10*200*time.Millisecond)) + pauses
	for n := 1; ; n++ {
		ev := r.next(0)
		if !slices.Equal(ev.Changed, []string{f}) {
			t.Fatalf("change %d lists %q", n, ev.Changed)
		}
		if ev.Hash == final {
			t.Logf("%d changes for 1000 writes in %v", n, took)
			break
		}
		if n == most {
			t.Fatalf("change %d (writes took %v, %d pauses): hash %s, not the final content's %s", n, took, pauses, ev.Hash, final)
		}
	}
	r.quiet()
}

// TestMissingPath: a path whose directories do not exist yet.
func TestMissingPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "a", "b", "c.conf")
	r := newRig(t, Group{Paths: []string{f}})
	mkdirAll(t, filepath.Dir(f))
	r.quiet() // directories alone are no content
	writeFile(t, f, "c")
	r.changed(0, f)
	r.quiet()
	writeFile(t, f, "c2")
	r.changed(0, f)
	r.quiet()

	r2 := newRig(t, Group{Paths: []string{filepath.Join(dir, "x", "y", "z.conf")}})
	mkdirAll(t, filepath.Join(dir, "x", "y"))
	writeFile(t, filepath.Join(dir, "x", "y", "z.conf"), "z")
	r2.changed(0, filepath.Join(dir, "x", "y", "z.conf"))
	r2.quiet()
}

// TestDirectoryReplaced: the directory of a watched file is replaced by
// another under the same name; the watch must follow. ext4 gives a
// directory created right after one was deleted the same inode number,
// so that the inode number alone cannot tell.
func TestDirectoryReplaced(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		debounce time.Duration
		op       func(t *testing.T, d string)
		changes  bool
	}{
		{name: "deleted and created again", debounce: 250 * time.Millisecond, changes: true, op: func(t *testing.T, d string) {
			remove(t, d)
			mkdirAll(t, d)
			writeFile(t, filepath.Join(d, "c.conf"), "two")
		}},
		{name: "deleted and created again equal", debounce: 250 * time.Millisecond, op: func(t *testing.T, d string) {
			remove(t, d)
			mkdirAll(t, d)
			writeFile(t, filepath.Join(d, "c.conf"), "one")
		}},
		{name: "renamed away and back", op: func(t *testing.T, d string) {
			rename(t, d, d+".old")
			rename(t, d+".old", d)
		}},
		{name: "renamed away, replaced", changes: true, op: func(t *testing.T, d string) {
			rename(t, d, d+".old")
			mkdirAll(t, d+".new")
			writeFile(t, filepath.Join(d+".new", "c.conf"), "two")
			rename(t, d+".new", d)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := filepath.Join(t.TempDir(), "d")
			f := filepath.Join(d, "c.conf")
			mkdirAll(t, d)
			writeFile(t, f, "one")
			var before syscall.Stat_t
			if err := syscall.Stat(d, &before); err != nil {
				t.Fatal(err)
			}
			r := newRig(t, Group{Paths: []string{f}, Debounce: tt.debounce})
			tt.op(t, d)
			var after syscall.Stat_t
			if err := syscall.Stat(d, &after); err != nil {
				t.Fatal(err)
			}
			t.Logf("inode %d, then %d", before.Ino, after.Ino)
			if tt.changes {
				r.changed(0, f)
			}
			r.quiet()
			// The new directory is watched.
			writeFile(t, f, "three")
			r.changed(0, f)
			r.quiet()
		})
	}
}

// TestSymlinkLoops: loops neither hang nor crash a scan, and the rest of
// the tree is still watched.
func TestSymlinkLoops(t *testing.T) {
	t.Parallel()
	v := t.TempDir()
	symlink(t, "b", filepath.Join(v, "a"))
	symlink(t, "a", filepath.Join(v, "b"))
	symlink(t, "self", filepath.Join(v, "self"))
	mkdirAll(t, filepath.Join(v, "sub"))
	symlink(t, "..", filepath.Join(v, "sub", "up"))
	symlink(t, v, filepath.Join(v, "sub", "root"))
	f := filepath.Join(v, "sub", "app.conf")
	writeFile(t, f, "one")

	r := newRig(t, Group{Paths: []string{v}}, Group{Paths: []string{filepath.Join(v, "a"), filepath.Join(v, "sub", "up", "sub", "up", "b")}})
	writeFile(t, f, "two")
	r.changed(0, f)
	r.quiet()
	// Breaking the loop makes the looping paths real files.
	remove(t, filepath.Join(v, "b"))
	writeFile(t, filepath.Join(v, "b"), "b")
	r.changed(0, filepath.Join(v, "a"), filepath.Join(v, "b"))
	r.changed(1, filepath.Join(v, "a"), filepath.Join(v, "sub", "up", "sub", "up", "b"))
	r.quiet()
}

// TestNotAFile: a FIFO (or a device) at a watched path is no content; a
// scan that opened it would block (or read forever).
func TestNotAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "tree", "link")
	mkdirAll(t, filepath.Dir(link))
	symlink(t, fifo, link)
	r := newRig(t, Group{Paths: []string{fifo}}, Group{Paths: []string{filepath.Dir(link)}}, Group{Paths: []string{filepath.Join(dir, "fi*")}})
	// Named by itself, it is reported once; in a tree or a glob it is
	// silently no content.
	r.problem(0, fifo+": not a regular file (fifo): its content is not watched")
	// Replaced by a file: that is content.
	remove(t, fifo)
	writeFile(t, fifo, "file")
	r.changed(0, fifo)
	r.changed(1, link)
	r.changed(2, fifo)
	r.quiet()
	// Replaced (renamed over) by a FIFO again, then by a link to
	// /dev/zero: the file is gone, each is reported once, nothing hangs;
	// and a real file after them is content again.
	tmp := filepath.Join(dir, ".tmp")
	if err := syscall.Mkfifo(tmp, 0o644); err != nil {
		t.Fatal(err)
	}
	rename(t, tmp, fifo)
	r.problem(0, fifo+": not a regular file (fifo): its content is not watched")
	r.changed(0, fifo)
	r.changed(1, link)
	r.changed(2, fifo)
	symlink(t, "/dev/zero", tmp)
	rename(t, tmp, fifo)
	r.problem(0, fifo+": not a regular file (character device): its content is not watched")
	r.quiet()
	writeFile(t, tmp, "file again")
	rename(t, tmp, fifo)
	r.changed(0, fifo)
	r.changed(1, link)
	r.changed(2, fifo)
	r.quiet()
}

// TestUnreadable: a file that cannot be read keeps its last known content
// and is reported as a problem, once.
// Root reads any file: as root, the test runs itself as nobody.
func TestUnreadable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		runAsNobody(t, "^TestUnreadable$")
		return
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "app.conf")
	writeFile(t, f, "one")
	r := newRig(t, Group{Paths: []string{f}})
	if err := os.Chmod(f, 0); err != nil {
		t.Fatal(err)
	}
	var ev Event
	select {
	case ev = <-r.w.Events():
	case <-time.After(deadline):
		t.Fatalf("no problem reported within %v", deadline)
	}
	if ev.Group != 0 || ev.Err == nil || !strings.Contains(ev.Err.Error(), f) || ev.Hash != "" {
		t.Fatalf("event %+v, want a problem naming %s", ev, f)
	}
	// The same problem is not reported again, and the file counts with
	// its last content.
	r.setSentinel("unreadable")
	if ev := r.next(0); !slices.Equal(ev.Changed, []string{r.sentinel}) {
		t.Fatalf("changed %q, want only the sentinel", ev.Changed)
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	r.quiet()
}

// nobody is the uid and gid runAsNobody runs a test as.
const nobody = 65534

// runAsNobody runs the tests that match pattern as uid nobody, from a copy
// of the test binary that nobody may execute.
func runAsNobody(t *testing.T, pattern string) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "watch-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "watch.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run="+pattern, "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") || strings.Contains(string(out), "--- SKIP") {
		t.Fatalf("as uid %d: %v\n%s", nobody, err, out)
	}
	t.Logf("as uid %d:\n%s", nobody, out)
}

// TestPollWriteDuringInitialScan: a polled file written while New reads the
// group's content at start must be reported. New took the metadata
// signature that polling compares against after reading the content, so
// a write in between was in the signature but not in the hash: no poll
// ever saw a difference, and the change was never reported.
func TestPollWriteDuringInitialScan(t *testing.T) {
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
