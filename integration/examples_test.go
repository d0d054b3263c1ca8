package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// copyExample copies files (paths under examples/NAME) into a new
// temporary directory laid out like the repository, DIR/examples/NAME/…,
// and returns DIR. The examples are written to be run from the
// repository's root: their relative paths hold when hupd starts in DIR.
// A file's content passes through its edits first, each a pair {old, new}
// in which old must occur exactly once, so that an example that changes
// under a test's adjustment fails the test instead of being run unadjusted.
func copyExample(t *testing.T, name string, files []string, edits map[string][][2]string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("..", "examples", name, f))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, e := range edits[f] {
			s = replaceOnce(t, f, s, e[0], e[1])
		}
		dst := filepath.Join(root, "examples", name, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for f := range edits {
		if !slices.Contains(files, f) {
			t.Fatalf("edits for %s, which is not copied", f)
		}
	}
	return root
}

// replaceOnce replaces old, which must occur exactly once in s (the
// content of file), by new.
func replaceOnce(t *testing.T, file, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("%s holds %q %d times, want once: the example changed, adjust the test", file, old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// editExample replaces old by new in a copied example's file the way an
// editor saves: the new content is written aside and renamed over it, so
// that hupd's watch never reads a half-written file.
func editExample(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(replaceOnce(t, filepath.Base(path), string(b), old, new)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// StartHupdIn runs `hupd run -c config` (config relative to dir, as in
// the examples' walk-throughs) with dir as hupd's working directory; it
// adds JSON logging at debug level, as StartHupd does.
func StartHupdIn(t *testing.T, dir, config string, args ...string) *Hupd {
	t.Helper()
	cmd := exec.Command(hupdBin, withJSONLog(append([]string{"run", "-c", config}, args...))...)
	cmd.Dir = dir
	return StartHupdCmd(t, cmd)
}

// hupdReload runs `hupd reload` against h and returns its combined output.
func hupdReload(h *Hupd) (string, error) {
	cmd := exec.Command(hupdBin, "reload")
	cmd.Env = h.Cmd.Env // the same private runtime directory
	out, err := cmd.CombinedOutput()
	return string(out), err
}
