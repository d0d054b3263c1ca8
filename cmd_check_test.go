package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// twoProgramsTOML is a two-program hupd.toml: nginx-like "web" in front of
// "app" on a unix socket, web first in the file but started after app.
const twoProgramsTOML = `name = "shop"

[log]
level = "debug"

[[program]]
name = "web"
after = ["app"]
command = ["sh", "-c", "exec sleep 1000"]

[[program.listen]]
name = "http"
address = "127.0.0.1:8080"

[program.process]
stop_signal = "QUIT"
handoff = ["nginx"]

[program.reload]
ready = "delay:500ms"

[[program.watch]]
paths = ["web.conf"]

[[program]]
name = "app"
on_exit = "ignore"
command = ["sh", "-c", "exec sleep 1000"]

[[program.listen]]
name = "app"
address = "/run/shop/app.sock"

[program.process]
instances = 2

[program.reload]
ready = "notify"

[program.restart]
policy = "always"
`

// multiFile writes data as DIR/hupd.toml, DIR a new directory written as
// $DIR in tr, and returns its path.
func multiFile(t *testing.T, tr *transcript, data string) string {
	t.Helper()
	dir := t.TempDir()
	tr.subst = append(tr.subst, dir, "$DIR")
	p := filepath.Join(dir, "hupd.toml")
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckMultiGolden pins what hupd check prints for a file with two
// [[program]] tables (hupd's settings, then each program's effective
// table in start order under "# program NAME").
func TestCheckMultiGolden(t *testing.T) {
	tr := &transcript{}
	p := multiFile(t, tr, twoProgramsTOML)
	fmt.Fprintf(&tr.b, "-- $DIR/hupd.toml --\n%s\n", twoProgramsTOML)
	tr.note("hupd-wide settings, then each program in start order: app, then web (after app)")
	tr.run(t, "check", "-c", p)
	tr.note("hupd-wide flags apply")
	tr.run(t, "check", "-c", p, "--name", "store", "--log-format", "json")
	golden(t, "out/check-multi.golden", tr.b.String())
}

// TestRunMultiRefused: what hupd run once refused with several programs
// ([systemd] fdstore = "yes") runs: the programs start (without a service
// manager, one line says that nothing is stored); a bad file gets the
// error hupd check gives, exit 2, with nothing started.
func TestRunMultiRefused(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	dir := t.TempDir()
	marker := filepath.Join(dir, "started")
	src := fmt.Sprintf("[[program]]\nname = \"a\"\ncommand = [\"sh\", \"-c\", \"touch %s\"]\n\n[[program]]\nname = \"b\"\ncommand = [\"sh\", \"-c\", \"touch %s\"]\n", marker, marker)
	p := filepath.Join(dir, "hupd.toml")
	if err := os.WriteFile(p, []byte("[systemd]\nfdstore = \"yes\"\n"+src), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runApp(t, "run", "-c", p); code != 0 || !strings.Contains(stderr, logev.FDStoreNoManager) {
		t.Fatalf("hupd run with fdstore = \"yes\": exit %d, stderr %q; want 0 and %q", code, stderr, logev.FDStoreNoManager)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("no program was started: %v", err)
	}
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(p, []byte(src+"after = [\"c\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, checkErr := runApp(t, "check", "-c", p)
	code, _, stderr := runApp(t, "run", "-c", p)
	if code != 2 || stderr != checkErr || !strings.Contains(stderr, `program "b" after = "c"`) {
		t.Fatalf("hupd run of a bad file: exit %d, stderr %q; want 2 and hupd check's %q", code, stderr, checkErr)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("a program of the bad file was started: %v", err)
	}
}

// TestCheckMultiBadInputGolden pins hupd check's one-line error, exit 2,
// for each mistake of a multi-program file, and checks that hupd run says
// the same.
func TestCheckMultiBadInputGolden(t *testing.T) {
	const web = "[[program]]\nname = \"web\"\ncommand = [\"sh\"]\n"
	const app = "[[program]]\nname = \"app\"\ncommand = [\"sh\"]\n"
	tr := &transcript{}
	for _, tc := range []struct {
		note, toml string
		args       []string
	}{
		{"a per-program setting at the top level: the two forms mixed", "command = [\"sh\"]\n\n" + web, nil},
		{"a table of the single form at the top level", web + "\n[process]\nstop_signal = \"QUIT\"\n", nil},
		{"a program without a name", web + app + "[[program]]\ncommand = [\"sh\"]\n", nil},
		{"a name that cannot name a cgroup", "[[program]]\nname = \"../web\"\ncommand = [\"sh\"]\n", nil},
		{"two programs of one name", web + app + web, nil},
		{"after names no program", web + "after = [\"db\"]\n" + app, nil},
		{"a cycle in after", web + "after = [\"app\"]\n" + app + "after = [\"web\"]\n", nil},
		{"one socket file for two programs, however written", web + "[[program.listen]]\naddress = \"/run/shop/app.sock\"\n" + app + "[[program.listen]]\naddress = \"unix:///run/shop//app.sock\"\n", nil},
		{"one TCP address for two programs", web + "[[program.listen]]\naddress = \":8080\"\n" + app + "[[program.listen]]\naddress = \"tcp://:8080\"\n", nil},
		{"one abstract name for two programs", web + "[[program.listen]]\naddress = \"@shop\"\n" + app + "[[program.listen]]\naddress = \"@shop\"\n", nil},
		{"on_exit not one of its values", web + "on_exit = \"restart\"\n", nil},
		{"a program without a command", web + "[[program]]\nname = \"app\"\n\n[program.process]\nstop_signal = \"QUIT\"\n", nil},
		{"a bad address in a program", web + "[[program.listen]]\naddress = \"tcp://:http\"\n", nil},
		{"a bad duration in a program", web + app + "\n[program.restart]\nmax_delay = \"soon\"\n", nil},
		{"an unknown key in a program's table", web + "\n[program.process]\nstop_sigal = \"QUIT\"\n", nil},
		{"a per-program flag", web, []string{"--listen", ":8080"}},
		{"a command after --", web, []string{"--", "./server"}},
	} {
		p := multiFile(t, tr, tc.toml)
		tr.note(tc.note)
		fmt.Fprintf(&tr.b, "-- $DIR/hupd.toml --\n%s", tc.toml)
		args := append([]string{"check", "-c", p}, tc.args...)
		tr.run(t, args...)
		code, stdout, stderr := runApp(t, args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s: hupd check: exit %d, stdout %q, stderr %q; want 2 and one line", tc.note, code, stdout, stderr)
		}
		args[0] = "run"
		if rc, rout, rerr := runApp(t, args...); rc != code || rout != "" || rerr != stderr {
			t.Errorf("%s: hupd run: exit %d, stdout %q, stderr %q; want hupd check's %d, %q", tc.note, rc, rout, rerr, code, stderr)
		}
	}
	golden(t, "out/check-multi-bad-input.golden", tr.b.String())
}
