package run

import (
	"strings"
	"testing"

	"github.com/hupd/hupd/config"
)

// TestDiffers: a program differs when what runs differs (its command's
// environment, a socket), not when only where it is written (lines added
// above it), its after, its on_exit or its watches change.
func TestDiffers(t *testing.T) {
	const base = `name = "fleet"

[[program]]
name = "app"
command = ["true"]
[[program.listen]]
address = "tcp://127.0.0.1:8080"

[[program]]
name = "web"
command = ["false"]
`
	resolve := func(src string) *config.ResolvedMulti {
		t.Helper()
		c, err := config.Parse("/etc/hupd.toml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.ResolveMulti()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	was := resolve(base)
	for _, tc := range []struct {
		what, src string
		differs   bool
	}{
		{"the same", base, false},
		{"lines above", "# a comment\n\n" + strings.Replace(base, `name = "web"`, "# web\nname = \"web\"", 1), false},
		{"after and on_exit", strings.Replace(base, "command = [\"true\"]\n", "command = [\"true\"]\nafter = [\"web\"]\non_exit = \"ignore\"\n", 1), false},
		{"a watch", strings.Replace(base, "command = [\"true\"]\n", "command = [\"true\"]\n[[program.watch]]\npaths = [\"/etc/app.conf\"]\n", 1), false},
		{"its env", strings.Replace(base, "[[program.listen]]", "[program.process]\nenv = { A = \"1\" }\n[[program.listen]]", 1), true},
		{"its socket", strings.Replace(base, "8080", "8081", 1), true},
		{"its command", strings.Replace(base, `["true"]`, `["true", "-v"]`, 1), true},
	} {
		if (tc.src == base) != (tc.what == "the same") {
			t.Fatalf("%s: the edit changed nothing", tc.what)
		}
		now := resolve(tc.src)
		if got := differs(was.Program("app"), now.Program("app")); got != tc.differs {
			t.Errorf("%s: app differs %v, want %v", tc.what, got, tc.differs)
		}
		if differs(was.Program("web"), now.Program("web")) {
			t.Errorf("%s: web differs", tc.what)
		}
	}
}
