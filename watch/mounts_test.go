package watch

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnescapeMount(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/etc/app.conf", "/etc/app.conf"},
		{`/tmp/my\040file`, "/tmp/my file"},
		{`/a\011b\012c\134d`, "/a\tb\nc\\d"},
		{`\040\040`, "  "},
		{`/trailing\04`, `/trailing\04`}, // too short to be an escape
		{`/trailing\040`, "/trailing "},
		{`/x\999y`, `/x\999y`}, // not octal
		{`/x\477y`, `/x\477y`}, // above 255
		{`/x\\040`, `/x\ `},
	}
	for _, tt := range tests {
		if got := unescapeMount(tt.in); got != tt.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// escapeMount escapes s as the kernel does in mountinfo.
func escapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			b.WriteString(`\` + string('0'+c>>6) + string('0'+c>>3&7) + string('0'+c&7))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func FuzzUnescapeMount(f *testing.F) {
	for _, s := range []string{"/", "/tmp/my file", "a\\b", "\t\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := unescapeMount(escapeMount(s)); got != s {
			t.Errorf("unescapeMount(%q) = %q, want %q", escapeMount(s), got, s)
		}
		if !strings.Contains(s, `\`) && unescapeMount(s) != s {
			t.Errorf("unescapeMount(%q) changed a string without escapes", s)
		}
	})
}

// TestFileMountsPlain: in the test's own namespace, plain files and
// directories are not file mounts, and "/" is a mount point.
func TestFileMountsPlain(t *testing.T) {
	if !mountPoints()["/"] {
		t.Fatal(`"/" is not among the mount points of /proc/self/mountinfo`)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "app.conf")
	writeFile(t, f, "x")
	if got := FileMounts([]string{f, dir, "/", "/nonexistent", filepath.Join(dir, "*")}); got != nil {
		t.Errorf("FileMounts = %q, want none", got)
	}
}

// TestFileMountsBindMount bind-mounts a file over another in a private
// mount namespace.
func TestFileMountsBindMount(t *testing.T) {
	runHelper(t, "bind-mount", "unshare", "-Urm")
}

// bindMountHelper runs in a mount namespace of its own.
func bindMountHelper() int {
	dir, err := os.MkdirTemp("", "watch-mounts")
	if err != nil {
		return helperFail("%v", err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "source.conf")
	mounted := filepath.Join(dir, "mounted file.conf") // mountinfo escapes the space
	plain := filepath.Join(dir, "plain.conf")
	link := filepath.Join(dir, "link.conf")
	subdir := filepath.Join(dir, "sub")
	for _, p := range []string{src, mounted, plain} {
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			return helperFail("%v", err)
		}
	}
	if err := os.Symlink(mounted, link); err != nil {
		return helperFail("%v", err)
	}
	if err := os.Mkdir(subdir, 0o755); err != nil {
		return helperFail("%v", err)
	}
	for _, m := range [][2]string{{src, mounted}, {dir, subdir}} {
		if err := unix.Mount(m[0], m[1], "", unix.MS_BIND, ""); err != nil {
			return helperCannotRun("mount --bind %s %s: %v", m[0], m[1], err)
		}
		defer unix.Unmount(m[1], unix.MNT_DETACH)
	}
	got := FileMounts([]string{mounted, plain, link, subdir, src, filepath.Join(dir, "*.conf")})
	if want := []string{mounted, link}; !slices.Equal(got, want) {
		return helperFail("FileMounts = %q, want %q", got, want)
	}
	return 0
}
