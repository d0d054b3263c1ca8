package control

import (
	"os"
	"testing"
)

func TestDefaultPath(t *testing.T) {
	for _, tc := range []struct {
		name, xdg string
		euid      int
		want      string
	}{
		{"web", "/run/user/1000", 1000, "/run/user/1000/hupd/web.sock"},
		{"web", "/run/user/0", 0, "/run/user/0/hupd/web.sock"},
		{"web", "", 0, "/run/hupd/web.sock"},
		{"web", "", 1000, "/tmp/hupd-1000/web.sock"},
		{"", "", 0, "/run/hupd/hupd.sock"},
		{"../../etc/passwd", "", 0, "/run/hupd/_._.._etc_passwd.sock"},
		{".hidden", "", 0, "/run/hupd/_hidden.sock"},
		{"a b/c\x00é", "", 0, "/run/hupd/a_b_c__.sock"},
		{"My-app_2.v1", "", 0, "/run/hupd/My-app_2.v1.sock"},
	} {
		if got := defaultPath(tc.name, tc.xdg, tc.euid, "/tmp"); got != tc.want {
			t.Errorf("defaultPath(%q, %q, %d) = %q, want %q", tc.name, tc.xdg, tc.euid, got, tc.want)
		}
	}
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/42")
	if got := DefaultPath("x"); got != "/run/user/42/hupd/x.sock" {
		t.Errorf("DefaultPath with XDG_RUNTIME_DIR = %q", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if got, want := DefaultPath("x"), defaultPath("x", "", os.Geteuid(), os.TempDir()); got != want {
		t.Errorf("DefaultPath without XDG_RUNTIME_DIR = %q, want %q", got, want)
	}
}
