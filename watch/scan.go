package watch

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hupd/hupd/internal/digest"
	"github.com/hupd/hupd/internal/safefile"
	"golang.org/x/sys/unix"
)

// unwrapPath drops the *fs.PathError around err: callers name the file.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// maxLinks bounds the symlinks followed resolving one path, as the kernel
// does (ELOOP after 40).
const maxLinks = 40

// file is one file a scan found: the name it is hashed under (the path as
// the user sees it, so that a ConfigMap swap to equal bytes hashes equal)
// and the path to read.
type file struct {
	name, path string
}

// names is the set of entry names of one directory that matter to a
// group; nil means every name (a watched tree, a glob).
type names map[string]bool

// scan is the result of walking one group's paths.
type scan struct {
	files []file
	// dirs maps each directory to watch (real path, symlinks resolved) to
	// the names in it that matter.
	dirs map[string]names
	// visited guards tree walks against symlink loops.
	visited map[string]bool
	// refused names the paths given by name that are not regular files
	// or directories (a FIFO, a device): no content, reported once.
	refused []error
}

func newScan() *scan {
	return &scan{dirs: map[string]names{}, visited: map[string]bool{}}
}

// watchName records that name in dir matters; name "" means every name.
func (s *scan) watchName(dir, name string) {
	ns, seen := s.dirs[dir]
	if seen && ns == nil {
		return // every name already
	}
	if name == "" {
		s.dirs[dir] = nil
		return
	}
	if !seen {
		ns = names{}
		s.dirs[dir] = ns
	}
	ns[name] = true
}

// scanPaths walks paths (absolute and clean).
func scanPaths(paths []string) *scan {
	s := newScan()
	for _, p := range paths {
		if hasMeta(p) {
			s.glob(p)
		} else {
			s.path(p, p, true)
		}
	}
	slices.SortFunc(s.files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	s.files = slices.CompactFunc(s.files, func(a, b file) bool { return a.name == b.name })
	return s
}

// path adds what p names: a file, or every file of a directory tree.
// Anything else (a FIFO, a socket, a device) is no content, as in a tree:
// opening a FIFO would block, reading a device might never end. When the
// user named p itself (named), that is recorded in refused, to be
// reported once.
func (s *scan) path(p, name string, named bool) {
	real, ok := s.follow(p)
	if !ok {
		return
	}
	fi, err := os.Stat(real)
	if err != nil {
		return
	}
	switch {
	case fi.IsDir():
		s.tree(real, name)
	case fi.Mode().IsRegular():
		s.files = append(s.files, file{name: name, path: real})
	case named:
		s.refused = append(s.refused, fmt.Errorf("%s: %w: its content is not watched", name, &safefile.RefusedError{Kind: kindOf(fi.Mode())}))
	}
}

// kindOf names a file type that is not a regular file or a directory.
func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "irregular file"
}

// follow resolves p component by component as the kernel would, recording
// the directory and name of every component on the way (and of every
// symlink met), so that a rename, a re-pointed link or the creation of a
// missing component is seen. (A busy ancestor such as /tmp costs a wake-up
// per change in it; the root directory is left out.) It returns the resolved path, or false when p
// does not exist (yet): then the nearest existing ancestor is watched for
// the next component.
func (s *scan) follow(p string) (string, bool) {
	resolved := "/"
	rest := splitPath(p)
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, c)
		fi, err := os.Lstat(next)
		// "/" is watched only for a top-level directory that is missing:
		// nobody replaces /etc, and its events would only wake hupd.
		if resolved != "/" || err != nil {
			s.watchName(resolved, c)
		}
		if err != nil {
			return "", false
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if len(rest) > 0 && !fi.IsDir() {
				return "", false
			}
			resolved = next
			continue
		}
		if links++; links > maxLinks {
			return "", false
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", false
		}
		if filepath.IsAbs(target) {
			resolved = "/"
		}
		rest = append(splitPath(target), rest...)
	}
	return resolved, true
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// tree adds every file under dir (a real path), shown under name.
// Hidden entries and backups are skipped (see Ignored). Symlinks are
// followed: a ConfigMap's visible files are links into "..data".
func (s *scan) tree(dir, name string) {
	if s.visited[dir] {
		return
	}
	s.visited[dir] = true
	s.watchName(dir, "")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if Ignored(e.Name()) {
			continue
		}
		s.entry(filepath.Join(dir, e.Name()), name+"/"+e.Name(), e.Type())
	}
}

// entry adds the directory entry at p (shown as name) of type typ.
func (s *scan) entry(p, name string, typ fs.FileMode) {
	switch {
	case typ&fs.ModeSymlink != 0:
		s.path(p, name, false)
	case typ.IsDir():
		s.tree(p, name)
	case typ.IsRegular():
		if p == name {
			p = name // one string, not two: trees of 10,000 files add up
		}
		s.files = append(s.files, file{name: name, path: p})
	}
}

// Ignored reports whether a directory entry is left out of a watched
// tree or a glob's matches: hidden names (editors' swap files, .git,
// Kubernetes' "..data" and "..<timestamp>" entries) and backups ending in
// "~". Name such a file explicitly to watch it.
func Ignored(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~")
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// glob adds the matches of pattern. Every directory a match could appear
// in is watched, so a file created later that matches is seen. As in a
// shell, a wildcard matches a hidden name only if the pattern's element
// starts with ".".
func (s *scan) glob(pattern string) {
	els := splitPath(pattern)
	i := 0
	for i < len(els) && !hasMeta(els[i]) {
		i++
	}
	base := "/" + strings.Join(els[:i], "/")
	type cand struct{ real, name string }
	var cur []cand
	if real, ok := s.follow(base); ok {
		cur = []cand{{real, filepath.Clean(base)}}
	}
	for j := i; j < len(els) && len(cur) > 0; j++ {
		el, last := els[j], j == len(els)-1
		var next []cand
		for _, c := range cur {
			if fi, err := os.Stat(c.real); err != nil || !fi.IsDir() {
				continue
			}
			var matches []string
			if hasMeta(el) {
				s.watchName(c.real, "")
				entries, _ := os.ReadDir(c.real)
				for _, e := range entries {
					if ok, _ := filepath.Match(el, e.Name()); ok && (!Ignored(e.Name()) || skipOK(el, e.Name())) {
						matches = append(matches, e.Name())
					}
				}
			} else {
				matches = []string{el}
			}
			for _, m := range matches {
				name := filepath.Join(c.name, m)
				if last {
					s.path(filepath.Join(c.real, m), name, false)
				} else if real, ok := s.follow(filepath.Join(c.real, m)); ok {
					next = append(next, cand{real, name})
				}
			}
		}
		cur = next
	}
}

// skipOK reports whether pattern element el asks for the ignored name
// explicitly (".*", "*~").
func skipOK(el, name string) bool {
	return strings.HasPrefix(el, ".") == strings.HasPrefix(name, ".") && (strings.HasSuffix(el, "~") || !strings.HasSuffix(name, "~"))
}

// sums hashes the bytes of every scanned file. A file that cannot be
// read keeps the sum it had in prev (a chmod is not a change of content);
// one never read is "unreadable". The errors name the unreadable files.
func (s *scan) sums(prev map[string]string) (map[string]string, []error) {
	return s.sumsCached(prev, nil)
}

// racyMargin is how long before a read a file's ctime must be for a later
// scan to trust that an unchanged stat means unchanged bytes. Timestamps
// are coarse (a jiffy; a second on some filesystems): a write just before
// or during a read may leave ctime as it was, so such a file is read
// again (git's "racy clean" rule).
const racyMargin = time.Second

// cache remembers how each file looked when it was last read, so that a
// rescan of a large tree reads only the files that changed. It is keyed by
// the path read.
type cache map[string]cached

type cached struct {
	sig  statSig
	sum  string
	read int64 // when the read began, Unix ns
}

type statSig struct {
	dev, ino           uint64
	size, mtime, ctime int64
}

func sigOf(st *unix.Stat_t) statSig {
	return statSig{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

// sumsCached is sums, taking from c the sums of files whose stat is
// unchanged since a read that began at least racyMargin after their last
// change. c is updated; nil reads every file.
func (s *scan) sumsCached(prev map[string]string, c cache) (map[string]string, []error) {
	out := make(map[string]string, len(s.files))
	var errs []error
	h := digest.New()
	buf := make([]byte, 32<<10)
	var seen map[string]bool
	if c != nil {
		seen = make(map[string]bool, len(s.files))
	}
	for _, f := range s.files {
		if seen != nil {
			seen[f.path] = true
		}
		sum, err := sumFile(h, f.path, buf, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			if old, ok := prev[f.name]; ok {
				out[f.name] = old
			} else {
				out[f.name] = "unreadable"
			}
			continue
		}
		out[f.name] = sum
	}
	for p := range c {
		if !seen[p] {
			delete(c, p)
		}
	}
	return out, errs
}

// MaxHashSize bounds what is read of one watched file: a larger file is
// known by its first MaxHashSize bytes, its size and its mtime, so that a
// huge file (or one that keeps growing) costs a bounded read; for such a
// file a touch counts as a change.
const MaxHashSize = 16 << 20

// sumFile returns the SHA-256 of the regular file at path (see
// MaxHashSize), from c when c proves it unchanged (see racyMargin).
func sumFile(h hash.Hash, path string, buf []byte, c cache) (string, error) {
	var st unix.Stat_t
	if e, ok := c[path]; ok && unix.Stat(path, &st) == nil {
		if sig := sigOf(&st); e.sig == sig && sig.ctime < e.read-int64(racyMargin) {
			return e.sum, nil
		}
	}
	// Non-blocking, and only a regular file: a FIFO or a device swapped in
	// since the walk must not hang hupd. The stat kept is the one of the
	// file read, taken before the read: a write during the read leaves
	// ctime too recent to be trusted.
	fd, st, err := safefile.OpenFd(path, 0)
	if err != nil {
		return "", unwrapPath(err)
	}
	defer unix.Close(fd)
	sig, read := sigOf(&st), time.Now().UnixNano()
	h.Reset()
	var n64 int64
	for n64 < MaxHashSize {
		n, err := unix.Read(fd, buf[:min(int64(len(buf)), MaxHashSize-n64)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if n == 0 {
			break
		}
		h.Write(buf[:n])
		n64 += int64(n)
	}
	if n64 >= MaxHashSize {
		// Known by its first MaxHashSize bytes, its size and its mtime.
		writeInts(h, uint64(st.Size), uint64(st.Mtim.Nano()))
	}
	sum := string(h.Sum(buf[:0])) // 32 bytes, compared, never shown
	if c != nil {
		c[path] = cached{sig: sig, sum: sum, read: read}
	}
	return sum, nil
}

// total is the hash of a whole group: its files' names and sums in name
// order, shortened for display.
func total(sums map[string]string) string {
	h := digest.New()
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		io.WriteString(h, name)
		h.Write([]byte{0})
		io.WriteString(h, sums[name])
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// diff lists the names whose sums differ between a and b, sorted.
func diff(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// signature is a cheap summary of the scanned files' metadata, for
// polling: when it is unchanged, the content is not read again.
func (s *scan) signature() string {
	h := digest.New()
	for _, f := range s.files {
		io.WriteString(h, f.name)
		if fi, err := os.Stat(f.path); err == nil {
			st, _ := fi.Sys().(*syscall.Stat_t)
			if st != nil {
				writeInts(h, st.Dev, st.Ino, uint64(st.Size), uint64(st.Mtim.Nano()), uint64(st.Ctim.Nano()))
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeInts(w io.Writer, vs ...uint64) {
	var b [8]byte
	for _, v := range vs {
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
		w.Write(b[:])
	}
}

// Hash returns the hash a Group of these paths would have now: the same
// value Watcher reports, computed once, without watching.
func Hash(paths []string) string {
	sums, _ := scanPaths(paths).sums(nil)
	return total(sums)
}

// HashData returns the hash Hash([]string{path}) would return if the
// regular file at path held data: the hash of bytes already read, so that
// what was hashed is exactly what was read (a file read twice may change
// in between). data longer than MaxHashSize is hashed from the file as it
// is now.
func HashData(path string, data []byte) string {
	if int64(len(data)) >= MaxHashSize {
		return Hash([]string{path})
	}
	h := digest.New()
	h.Write(data)
	return total(map[string]string{path: string(h.Sum(nil))})
}
