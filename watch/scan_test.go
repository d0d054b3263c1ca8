package watch

import (
	"crypto/sha256"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/safefile"
)

func TestIgnored(t *testing.T) {
	for name, want := range map[string]bool{
		"app.conf": false, "a~b": false, "~a": false, "a.swp": false,
		".app.conf.swp": true, ".hidden": true, "..data": true, "..2026_11_21_10_00_00.000000001": true,
		"app.conf~": true, "~": true, ".": true,
	} {
		if got := Ignored(name); got != want {
			t.Errorf("Ignored(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestFollowWatchesEveryComponent: the scan of a path through symlinks
// watches the directory of every component, and of every link met.
func TestFollowWatchesEveryComponent(t *testing.T) {
	root := t.TempDir()
	dir, other, real := filepath.Join(root, "dir"), filepath.Join(root, "other"), filepath.Join(root, "real")
	for _, d := range []string{dir, other, real} {
		mkdirAll(t, d)
	}
	target := filepath.Join(real, "app.conf")
	writeFile(t, target, "x")
	symlink(t, filepath.Join(other, "l2"), filepath.Join(dir, "l1")) // absolute
	symlink(t, "../real/./app.conf", filepath.Join(other, "l2"))     // relative
	p := filepath.Join(dir, "l1")

	s := scanPaths([]string{p})
	if want := []file{{name: p, path: target}}; !slices.Equal(s.files, want) {
		t.Fatalf("files %+v, want %+v", s.files, want)
	}
	want := map[string]names{
		dir:   {"l1": true},
		other: {"l2": true},
		real:  {"app.conf": true},
		root:  {"dir": true, "other": true, "real": true},
	}
	for d, ns := range want {
		if !maps.Equal(s.dirs[d], ns) {
			t.Errorf("dirs[%s] = %v, want %v", d, s.dirs[d], ns)
		}
	}
	// Every ancestor of root below "/" is watched for its next component;
	// "/" is not (nobody replaces a top-level directory).
	for d := root; filepath.Dir(d) != "/"; d = filepath.Dir(d) {
		if ns := s.dirs[filepath.Dir(d)]; !ns[filepath.Base(d)] {
			t.Errorf("dirs[%s] = %v, want %s in it", filepath.Dir(d), ns, filepath.Base(d))
		}
	}
	if _, ok := s.dirs["/"]; ok {
		t.Errorf("/ is watched: %v", s.dirs["/"])
	}
	if len(s.dirs) != len(want)+strings.Count(root, "/")-1 {
		t.Errorf("dirs %v: more than the directories of the path's components", s.dirs)
	}
}

// TestFollowMissing: for a path that does not exist (yet), the nearest
// existing ancestor is watched for the next component.
func TestFollowMissing(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "file"), "x")
	tests := []struct {
		path      string
		dir, name string
	}{
		{filepath.Join(root, "a", "b", "c.conf"), root, "a"},
		{filepath.Join(root, "c.conf"), root, "c.conf"},
		{filepath.Join(root, "file", "c.conf"), root, "file"}, // a file where a directory should be
	}
	for _, tt := range tests {
		s := scanPaths([]string{tt.path})
		if len(s.files) != 0 {
			t.Errorf("%s: files %+v", tt.path, s.files)
		}
		if !s.dirs[tt.dir][tt.name] {
			t.Errorf("%s: dirs[%s] = %v, want %s in it", tt.path, tt.dir, s.dirs[tt.dir], tt.name)
		}
		for d := range s.dirs {
			if strings.HasPrefix(d, root+"/") {
				t.Errorf("%s: watches %s, below the nearest existing ancestor", tt.path, d)
			}
		}
	}
}

func TestTree(t *testing.T) {
	v := t.TempDir()
	outside := t.TempDir()
	for _, p := range []string{"a.conf", "sub/b.conf", "sub/deeper/c.conf", ".hidden", "a.conf~", ".git/HEAD", "sub/.b.conf.swp"} {
		mkdirAll(t, filepath.Dir(filepath.Join(v, p)))
		writeFile(t, filepath.Join(v, p), p)
	}
	writeFile(t, filepath.Join(outside, "linked.conf"), "linked")
	symlink(t, filepath.Join(outside, "linked.conf"), filepath.Join(v, "link.conf"))
	symlink(t, outside, filepath.Join(v, "linkdir"))
	symlink(t, "nowhere", filepath.Join(v, "dangling"))

	s := scanPaths([]string{v})
	want := []string{"a.conf", "link.conf", "linkdir/linked.conf", "sub/b.conf", "sub/deeper/c.conf"}
	for i := range want {
		want[i] = filepath.Join(v, want[i])
	}
	if got := fileNames(s); !slices.Equal(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	for _, d := range []string{v, filepath.Join(v, "sub"), filepath.Join(v, "sub", "deeper"), outside} {
		if ns, ok := s.dirs[d]; !ok || ns != nil {
			t.Errorf("dirs[%s] = %v (present: %v), want every name", d, ns, ok)
		}
	}
	if _, ok := s.dirs[filepath.Join(v, ".git")]; ok {
		t.Error("a hidden directory is watched")
	}
}

func TestGlobMatches(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.conf", "b.conf", "x.txt", ".h.conf", "c.conf~", ".h"} {
		writeFile(t, filepath.Join(dir, n), n)
	}
	mkdirAll(t, filepath.Join(dir, "d1"))
	mkdirAll(t, filepath.Join(dir, ".d2"))
	writeFile(t, filepath.Join(dir, "d1", "x.conf"), "")
	writeFile(t, filepath.Join(dir, ".d2", "y.conf"), "")
	tests := []struct {
		pattern string
		want    []string
	}{
		{"*.conf", []string{"a.conf", "b.conf"}},
		{"*", []string{"a.conf", "b.conf", "d1/x.conf", "x.txt"}},
		{".*", []string{".d2/y.conf", ".h", ".h.conf"}},
		{".*.conf", []string{".h.conf"}},
		{"*~", []string{"c.conf~"}},
		{"?.conf", []string{"a.conf", "b.conf"}},
		{"[ab].conf", []string{"a.conf", "b.conf"}},
		{"*/*.conf", []string{"d1/x.conf"}},
		{".*/*.conf", []string{".d2/y.conf"}},
		{"nothing*", nil},
	}
	for _, tt := range tests {
		s := scanPaths([]string{filepath.Join(dir, tt.pattern)})
		var want []string
		for _, w := range tt.want {
			want = append(want, filepath.Join(dir, w))
		}
		if got := fileNames(s); !slices.Equal(got, want) {
			t.Errorf("%s: files %q, want %q", tt.pattern, got, want)
		}
		if ns, ok := s.dirs[dir]; !ok || ns != nil {
			t.Errorf("%s: dirs[%s] = %v (present: %v), want every name", tt.pattern, dir, ns, ok)
		}
	}
	// A glob below a directory that does not exist watches its parent.
	s := scanPaths([]string{filepath.Join(dir, "later", "*.conf")})
	if len(s.files) != 0 || !s.dirs[dir]["later"] {
		t.Errorf("missing base: files %+v, dirs[%s] = %v", s.files, dir, s.dirs[dir])
	}
}

func TestScanSymlinkLoops(t *testing.T) {
	v := t.TempDir()
	symlink(t, "b", filepath.Join(v, "a"))
	symlink(t, "a", filepath.Join(v, "b"))
	symlink(t, "self", filepath.Join(v, "self"))
	mkdirAll(t, filepath.Join(v, "sub"))
	symlink(t, "..", filepath.Join(v, "sub", "up"))
	symlink(t, ".", filepath.Join(v, "sub", "here"))
	writeFile(t, filepath.Join(v, "sub", "app.conf"), "x")
	done := make(chan *scan, 1)
	go func() {
		done <- scanPaths([]string{v, filepath.Join(v, "a"), filepath.Join(v, "self", "x"), filepath.Join(v, "*", "*", "*")})
	}()
	select {
	case s := <-done:
		// The glob matches sub/here/app.conf through the link to "."; the
		// tree walk finds each directory once.
		want := []string{filepath.Join(v, "sub", "app.conf"), filepath.Join(v, "sub", "here", "app.conf")}
		if got := fileNames(s); !slices.Equal(got, want) {
			t.Errorf("files %q, want %q", got, want)
		}
	case <-time.After(deadline):
		t.Fatalf("scan still running after %v", deadline)
	}
}

func TestNotAFileScan(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	symlink(t, fifo, filepath.Join(dir, "link"))
	for _, p := range []string{fifo, filepath.Join(dir, "link"), filepath.Join(dir, "*"), dir, "/dev/null"} {
		if s := scanPaths([]string{p}); len(s.files) != 0 {
			t.Errorf("%s: files %+v, want none", p, s.files)
		}
	}
}

func TestScanDeduplicates(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "app.conf")
	writeFile(t, f, "x")
	s := scanPaths([]string{f, dir, f, filepath.Join(dir, "*.conf")})
	if got := fileNames(s); !slices.Equal(got, []string{f}) {
		t.Errorf("files %q, want %q once", got, f)
	}
}

func TestSums(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, a, "same")
	writeFile(t, b, "same")
	s := &scan{files: []file{{name: "a", path: a}, {name: "b", path: b}}}
	sums, errs := s.sums(nil)
	if len(errs) != 0 || sums["a"] != sums["b"] || len(sums) != 2 {
		t.Fatalf("sums %v, errors %v", sums, errs)
	}
	// The name is part of the hash: equal bytes under another name differ.
	if total(map[string]string{"a": sums["a"]}) == total(map[string]string{"b": sums["a"]}) {
		t.Error("total ignores the names")
	}
	// The path read is not: a ConfigMap's swap to equal bytes is no change.
	s2 := &scan{files: []file{{name: "a", path: b}, {name: "b", path: a}}}
	if sums2, _ := s2.sums(nil); total(sums2) != total(sums) {
		t.Error("total depends on the paths read")
	}
	if len(total(sums)) != 16 {
		t.Errorf("total %q: want 16 hex digits", total(sums))
	}
	if total(nil) != total(map[string]string{}) || total(nil) == total(sums) {
		t.Error("total of nothing")
	}

	// A file that cannot be read (here: a directory) keeps its last sum.
	s3 := &scan{files: []file{{name: "a", path: dir}, {name: "b", path: b}}}
	got, errs := s3.sums(sums)
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "a: ") || !maps.Equal(got, sums) {
		t.Errorf("unreadable with a previous sum: sums %v, errors %v", got, errs)
	}
	got, _ = s3.sums(nil)
	if got["a"] != "unreadable" || got["b"] != sums["b"] {
		t.Errorf("unreadable without a previous sum: sums %v", got)
	}
}

func TestDiff(t *testing.T) {
	a := map[string]string{"same": "1", "changed": "1", "gone": "1"}
	b := map[string]string{"same": "1", "changed": "2", "new": "1"}
	if got, want := diff(a, b), []string{"changed", "gone", "new"}; !slices.Equal(got, want) {
		t.Errorf("diff = %q, want %q", got, want)
	}
	if got := diff(a, a); got != nil {
		t.Errorf("diff of equal sums = %q", got)
	}
}

func TestSignature(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "app.conf")
	writeFile(t, f, "one")
	sig := func() string { return scanPaths([]string{dir}).signature() }
	s0 := sig()
	if sig() != s0 {
		t.Fatal("signature differs without a change")
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(f, later, later); err != nil {
		t.Fatal(err)
	}
	s1 := sig()
	if s1 == s0 {
		t.Error("signature ignores a touch")
	}
	writeFile(t, filepath.Join(dir, "b.conf"), "")
	if sig() == s1 {
		t.Error("signature ignores a new empty file")
	}
}

// TestFollowMissingTopLevel: "/" is watched only for a missing top-level
// directory, so that its creation is seen.
func TestFollowMissingTopLevel(t *testing.T) {
	s := scanPaths([]string{"/hupd-no-such-dir/a.conf"})
	if want := (names{"hupd-no-such-dir": true}); len(s.dirs) != 1 || !maps.Equal(s.dirs["/"], want) {
		t.Fatalf("dirs = %v, want / for hupd-no-such-dir only", s.dirs)
	}
}

// TestSumCapped: of a file larger than MaxHashSize only the first
// MaxHashSize bytes are read, with its size and mtime: a change beyond
// them is seen through the mtime; and /dev/zero behind a symlink, named
// directly, is refused at once rather than read forever.
func TestSumCapped(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	mtime := time.Unix(1_700_000_000, 0)
	for _, p := range []string{a, b} {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		// Sparse: the size costs no disk.
		if err := f.Truncate(MaxHashSize + 4096); err != nil {
			t.Fatal(err)
		}
		if p == b {
			f.WriteAt([]byte("differs past the cap"), MaxHashSize+10)
		}
		f.Close()
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 32<<10)
	sum := func(p string) string {
		t.Helper()
		s, err := sumFile(sha256.New(), p, buf, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if sum(a) != sum(b) {
		t.Errorf("files equal in their first MaxHashSize bytes, size and mtime hash differently")
	}
	if err := os.Chtimes(b, mtime, mtime.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if sum(a) == sum(b) {
		t.Errorf("a large file whose mtime changed hashes the same")
	}
	symlink(t, "/dev/zero", filepath.Join(dir, "zero"))
	if _, err := sumFile(sha256.New(), filepath.Join(dir, "zero"), buf, nil); !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("/dev/zero: %v, want ErrNotRegular", err)
	}
}

// TestHashData: the hash of bytes read is the hash Hash gives the file
// holding them, through a symlink too, and differs from another content's.
func TestHashData(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hupd.toml")
	data := []byte("name = \"x\"\n")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := HashData(p, data), Hash([]string{p}); got != want {
		t.Fatalf("HashData = %s, Hash = %s", got, want)
	}
	if HashData(p, []byte("name = \"y\"\n")) == Hash([]string{p}) {
		t.Fatal("HashData of other bytes equals the file's Hash")
	}
	link := filepath.Join(dir, "link.toml")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if got, want := HashData(link, data), Hash([]string{link}); got != want {
		t.Fatalf("through a symlink: HashData = %s, Hash = %s", got, want)
	}
}
