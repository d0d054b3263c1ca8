package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// runApp runs hupd's CLI in this process with args (after "hupd") and
// returns its exit code, stdout and stderr, as main would produce them.
func runApp(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := newApp(&stdout, &stderr).Run(append([]string{"hupd"}, args...))
	code := exitCode(err, &stderr)
	return code, stdout.String(), stderr.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if got != string(want) {
		gl, wl := strings.SplitAfter(got, "\n"), strings.SplitAfter(string(want), "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		at := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end)"
		}
		t.Errorf("%s differs from the output (go test -run '%s$' -update rewrites it) from line %d:\n got %q\nwant %q\nall of it:\n%s",
			path, t.Name(), i+1, at(gl), at(wl), got)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"run", "run", 0}, {"rnu", "run", 1}, {"lisen", "listen", 1},
		{"listen", "lisen", 1}, {"ready", "reayd", 1}, {"abc", "xyz", 3}, {"", "run", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestDurationFlags: the --timeout of reload and upgrade refuses a bare
// number with the form to write (one usage line, exit 2, before any
// control socket is looked for), and a duration flag's value reaches the
// command through c.Duration as a cli.DurationFlag's does.
func TestDurationFlags(t *testing.T) {
	for _, cmd := range []string{"reload", "upgrade"} {
		code, stdout, stderr := runApp(t, cmd, "--control", "/nonexistent/hupd.sock", "--timeout", "5")
		want := "hupd: usage: invalid value \"5\" for flag -timeout: \"5\" is not a duration: write 5s\n"
		if code != 2 || stdout != "" || stderr != want {
			t.Errorf("hupd %s --timeout 5: exit %d, stdout %q, stderr %q; want 2 and %q", cmd, code, stdout, stderr, want)
		}
	}
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{{nil, time.Minute}, {[]string{"--timeout", "1m30s"}, 90 * time.Second}} {
		var got time.Duration
		app := &cli.App{
			Flags:  []cli.Flag{durationFlag("timeout", time.Minute, "")},
			Action: func(c *cli.Context) error { got = c.Duration("timeout"); return nil },
		}
		if err := app.Run(append([]string{"x"}, tc.args...)); err != nil || got != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.args, got, err, tc.want)
		}
	}
}

// TestVersionInfo: hupd version's line and JSON come from the build info:
// the module's version ("dev" for a checkout's "(devel)"), the VCS revision
// (12 digits, "+modified" for uncommitted changes) and its time; without
// VCS information, the version alone.
func TestVersionInfo(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "9c6430a1b2c3d4e5f60718293a4b5c6d7e8f9012"},
		{Key: "vcs.time", Value: "2026-12-07T02:50:00Z"},
	}
	modified := append(slices.Clone(vcs), debug.BuildSetting{Key: "vcs.modified", Value: "true"})
	for _, tc := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{nil, "hupd dev"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "hupd dev"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "hupd v1.2.3"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "hupd dev 9c6430a1b2c3 2026-12-07T02:50:00Z"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: modified}, "hupd dev 9c6430a1b2c3+modified 2026-12-07T02:50:00Z"},
	} {
		v := newVersionInfo(tc.bi)
		if got := v.line(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.bi, got, tc.want)
		}
	}
	v := newVersionInfo(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: modified})
	if v.Revision != vcs[1].Value || !v.Modified || v.Time != vcs[2].Value || v.Module != "(devel)" || v.Go != "go1.26.8" {
		t.Errorf("JSON fields %+v", v)
	}
}

// TestCompletionScripts: hupd completion writes a script for each shell:
// bash's is valid bash (bash -n) and zsh's and fish's pass their shells'
// syntax check where those are installed; bash and zsh ask hupd through
// its completion hook, fish's names every visible command. An unknown or
// missing shell is a usage error.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, stdout, stderr := runApp(t, "completion", shell)
		if code != 0 || stderr != "" || stdout == "" {
			t.Fatalf("hupd completion %s: exit %d, stderr %q, %d bytes", shell, code, stderr, len(stdout))
		}
		switch shell {
		case "bash", "zsh":
			if !strings.Contains(stdout, "--generate-bash-completion") {
				t.Errorf("%s script does not ask hupd:\n%s", shell, stdout)
			}
		case "fish":
			for _, c := range visibleCommands(newApp(io.Discard, io.Discard).Commands) {
				if !strings.Contains(stdout, "-a '"+c+"'") {
					t.Errorf("fish script does not offer %q:\n%s", c, stdout)
				}
			}
			if strings.Contains(stdout, "`") {
				t.Errorf("fish script shows the help's backquotes")
			}
		}
		sh, err := exec.LookPath(shell)
		if err != nil {
			if shell == "bash" || os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (CI installs zsh and fish)", shell)
			}
			t.Logf("%s is not installed: its script's syntax is not checked", shell)
			continue
		}
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(stdout)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, out)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		if code, stdout, stderr := runApp(t, args...); code != 2 || stdout != "" || !strings.HasPrefix(stderr, "hupd: usage: completion: ") {
			t.Errorf("hupd %s: exit %d, stdout %q, stderr %q; want a usage error", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

// TestManPage: hupd man writes a manual page generated from the
// definitions: its .TH header, a subsection per visible command and every
// flag of run, in ASCII, which groff renders without a warning (where
// groff is installed).
func TestManPage(t *testing.T) {
	code, page, stderr := runApp(t, "man")
	if code != 0 || stderr != "" {
		t.Fatalf("hupd man: exit %d, stderr %q", code, stderr)
	}
	if !strings.HasPrefix(page, ".TH HUPD 8 ") {
		t.Errorf("no .TH header:\n%s", page)
	}
	for _, c := range visibleCommands(newApp(io.Discard, io.Discard).Commands) {
		if !strings.Contains(page, "\n.SS \"hupd "+c+" ") && !strings.Contains(page, "\n.SS \"hupd "+c+"\"\n") {
			t.Errorf("no subsection for command %s", c)
		}
	}
	if strings.Contains(page, "hupd man") {
		t.Error("the hidden command man is in the page")
	}
	for _, f := range runFlags() {
		if n := f.Names()[0]; !strings.Contains(page, "\n\\fB"+strings.ReplaceAll("--"+n, "-", `\-`)+`\fR`) {
			t.Errorf("flag --%s is not in the page", n)
		}
	}
	for i, r := range page {
		if r >= 0x80 {
			t.Fatalf("non-ASCII %q at byte %d", r, i)
		}
	}
	groffCheck(t, page)
}

// TestManPageRender pins the roff that manPage writes for a small app
// that has every case: escapes (a dash, a backslash, a leading dot, a
// character beyond ASCII), paragraphs and an indented example in a
// description, placeholders, a default the usage does not give, hidden
// flags and commands, a subcommand (go test -run TestManPageRender
// -update rewrites the file).
func TestManPageRender(t *testing.T) {
	app := &cli.App{
		Name:    "tool",
		Version: "1.2",
		Usage:   "does things \u2013 fast",
		Description: `Runs things.
Second line of the same paragraph.

Examples:
   tool serve -p 8 --dry
     .indented more, a back\slash

.A line that begins with a dot.`,
		Commands: []*cli.Command{
			{
				Name: "serve", Usage: "serve things", ArgsUsage: "[-- COMMAND [ARG...]]",
				Description: "Serves until stopped.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "read `FILE`"},
					&cli.IntFlag{Name: "procs", Aliases: []string{"p"}, Value: 3, Usage: "run `N` processes"},
					&cli.StringFlag{Name: "mode", Value: "auto", Usage: "the mode (default auto)"},
					&cli.StringFlag{Name: "plain", Usage: "a value without a placeholder"},
					&cli.BoolFlag{Name: "dry", Usage: "only say what would run"},
					&cli.BoolFlag{Name: "secret", Hidden: true, Usage: "not shown"},
				},
			},
			{Name: "internal", Hidden: true, Usage: "not shown"},
			{
				Name: "db", Usage: "database commands",
				Subcommands: []*cli.Command{
					{Name: "migrate", Usage: "migrate it", ArgsUsage: "VERSION"},
					{Name: "drop", Hidden: true, Usage: "not shown"},
				},
			},
		},
	}
	page := manPage(app)
	golden(t, "man-render.golden", page)
	groffCheck(t, page)
}

// groffCheck renders page with groff and fails on any warning, where
// groff is installed (CI installs it).
func groffCheck(t *testing.T, page string) {
	t.Helper()
	groff, err := exec.LookPath("groff")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("groff is not installed (Debian package groff-base; CI installs it)")
		}
		t.Skip("groff is not installed: the page is not rendered")
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff -man: %v\n%s", err, out)
	}
}

// TestHelpGolden pins the help of hupd, hupd run, hupd reload, hupd rollback and hupd scale, placeholders
// included (go test -run TestHelpGolden -update rewrites the files).
func TestHelpGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		args []string
	}{
		{"help.golden", []string{"--help"}},
		{"help-run.golden", []string{"run", "--help"}},
		{"help-reload.golden", []string{"reload", "--help"}},
		{"help-rollback.golden", []string{"rollback", "--help"}},
		{"help-scale.golden", []string{"scale", "--help"}},
	} {
		code, stdout, stderr := runApp(t, tc.args...)
		if code != 0 || stderr != "" {
			t.Fatalf("hupd %s: exit %d, stderr %q", strings.Join(tc.args, " "), code, stderr)
		}
		golden(t, tc.file, stdout)
	}
}

// TestUpgradeProtocol: the hidden "hupd upgrade-protocol" prints the state
// format this binary reads, unchanged, and with "programs" that it takes
// several programs over: what a running hupd asks of a new binary.
func TestUpgradeProtocol(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"upgrade-protocol"}, "hupd-upgrade 1\n"},
		{[]string{"upgrade-protocol", "programs"}, "hupd-upgrade 1 programs\n"},
		{[]string{"upgrade-protocol", "other"}, "hupd-upgrade 1\n"},
	} {
		if code, out, errOut := runApp(t, tc.args...); code != 0 || out != tc.want || errOut != "" {
			t.Errorf("hupd %v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
