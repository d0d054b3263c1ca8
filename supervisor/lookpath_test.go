package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lookDir makes a directory with an executable "prog", a plain file
// "data", a directory "sub" and, in bin/, an executable "tool".
func lookDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"prog": 0o755, "data": 0o644, "bin/tool": 0o755, "noexec/tool": 0o644} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLookPathFound(t *testing.T) {
	dir := lookDir(t)
	t.Setenv("PATH", filepath.Join(dir, "noexec")+":"+filepath.Join(dir, "bin"))
	t.Chdir(dir)
	for _, tc := range []struct {
		name, dir string
		env       []string
		want      string
	}{
		{filepath.Join(dir, "prog"), "", nil, filepath.Join(dir, "prog")},
		{filepath.Join(dir, "prog"), "/elsewhere", nil, filepath.Join(dir, "prog")}, // absolute: dir does not matter
		{"./prog", "", nil, filepath.Join(dir, "prog")},                             // relative to hupd's directory
		{"./prog", dir, nil, filepath.Join(dir, "prog")},                            // relative to the child's directory
		{"../prog", filepath.Join(dir, "sub"), nil, filepath.Join(dir, "prog")},
		{"tool", "", nil, filepath.Join(dir, "bin", "tool")}, // PATH skips the non-executable one
		{"tool", "", []string{"PATH=" + filepath.Join(dir, "bin")}, filepath.Join(dir, "bin", "tool")},
		{"prog", "", []string{"PATH=:/nonexistent"}, filepath.Join(dir, "prog")}, // empty element: "."
	} {
		got, err := LookPath(tc.name, tc.dir, tc.env)
		if err != nil || got != tc.want {
			t.Errorf("LookPath(%q, %q, %q) = %q, %v; want %q", tc.name, tc.dir, tc.env, got, err, tc.want)
		}
	}
}

func TestLookPathErrors(t *testing.T) {
	dir := lookDir(t)
	t.Setenv("PATH", filepath.Join(dir, "bin"))
	t.Chdir(dir)
	for _, tc := range []struct {
		name, dir string
		env       []string
		code      int
		says      string
	}{
		{"", "", nil, 127, "empty command"},
		{filepath.Join(dir, "missing"), "", nil, 127, "no such file"},
		{"./missing", "", nil, 127, "no such file"},
		{"./prog", filepath.Join(dir, "sub"), nil, 127, "no such file"}, // relative to the child's dir, not hupd's
		{"missing", "", nil, 127, "not found in PATH"},
		{"prog", "", nil, 127, "not found in PATH"}, // a bare name is not looked up in "."
		{filepath.Join(dir, "data"), "", nil, 126, "permission denied"},
		{"./sub", "", nil, 126, "is a directory"},
		{"tool", "", []string{"PATH=" + filepath.Join(dir, "noexec")}, 126, "permission denied"}, // found, cannot run
		{"tool", "", []string{"PATH=/nonexistent"}, 127, "not found in PATH"},                    // env PATH wins over hupd's
	} {
		_, err := LookPath(tc.name, tc.dir, tc.env)
		var nf *NotFoundError
		if !errors.As(err, &nf) {
			t.Errorf("LookPath(%q, %q, %q) = %v, want a *NotFoundError", tc.name, tc.dir, tc.env, err)
			continue
		}
		if nf.Code != tc.code || nf.Name != tc.name || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("LookPath(%q, %q, %q): code %d name %q %q; want %d %q", tc.name, tc.dir, tc.env, nf.Code, nf.Name, err, tc.code, tc.says)
		}
		if want := `command "` + tc.name + `": `; !strings.HasPrefix(err.Error(), want) || strings.ContainsRune(err.Error(), '\n') {
			t.Errorf("message %q: want one line starting %q", err, want)
		}
	}
}
