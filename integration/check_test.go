package integration

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// oneShotResult is how a short hupd command ended.
type oneShotResult struct {
	code           int
	stdout, stderr string
}

// oneShot runs hupd with args in dir, with env added to the test's
// environment, and waits for it to exit: the commands these tests run must
// end on their own, within the deadline.
func oneShot(t *testing.T, dir string, env []string, args ...string) oneShotResult {
	t.Helper()
	return oneShotStack(t, dir, env, 0, args...)
}

// oneShotStack is oneShot with hupd's RLIMIT_STACK set to stackKiB (0:
// the test's own).
func oneShotStack(t *testing.T, dir string, env []string, stackKiB int, args ...string) oneShotResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, hupdBin, args...)
	if stackKiB > 0 {
		cmd = exec.CommandContext(ctx, "sh", append([]string{"-c", `ulimit -s "$1" && shift && exec "$0" "$@"`, hupdBin, strconv.Itoa(stackKiB)}, args...)...)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("hupd %q did not exit within %s; stderr:\n%s", args, deadline, stderr.String())
	}
	res := oneShotResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("hupd %q: %v", args, err)
	}
	return res
}

// TestCheckExamples runs `hupd check -c` on every examples/*.toml from the
// directory that holds the built hello example (the examples run
// ./hello), expects exit 0 and the effective configuration on stdout, and
// checks that this output is itself a configuration check accepts. Run
// from a directory without ./hello, check must fail with 127 and say so:
// the examples' comments promise exactly that.
func TestCheckExamples(t *testing.T) {
	paths, err := filepath.Glob("../examples/*.toml")
	if err != nil || len(paths) < 2 {
		t.Fatalf("examples: %q, %v; want hupd.toml and minimal.toml at least", paths, err)
	}
	helloDir := filepath.Dir(helloBin)
	if filepath.Base(helloBin) != "hello" {
		t.Fatalf("the examples run ./hello; the built example is %s", helloBin)
	}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(p), func(t *testing.T) {
			r := oneShot(t, helloDir, nil, "check", "-c", abs)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("hupd check -c %s: exit %d, stderr:\n%s", p, r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, `command = ["./hello"`) || !strings.Contains(r.stdout, "[[listen]]") {
				t.Fatalf("check printed no effective configuration:\n%s", r.stdout)
			}
			effective := filepath.Join(t.TempDir(), "effective.toml")
			if err := os.WriteFile(effective, []byte(r.stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			if r2 := oneShot(t, helloDir, nil, "check", "-c", effective); r2.code != 0 || r2.stdout != r.stdout {
				t.Fatalf("check of check's own output: exit %d, stderr %q, output changed: %v", r2.code, r2.stderr, r2.stdout != r.stdout)
			}

			r = oneShot(t, t.TempDir(), nil, "check", "-c", abs)
			if r.code != 127 || r.stderr != "hupd: command \"./hello\": no such file\n" {
				t.Fatalf("without ./hello: exit %d, stderr %q; want 127 naming ./hello", r.code, r.stderr)
			}
		})
	}
}

// TestCheckMultiExample runs `hupd check -c examples/multi/hupd.toml`
// from the repository root, with stand-ins for nginx and gunicorn first
// on PATH (neither runs): exit 0, both programs under their headings in
// start order (the app, then nginx), an output check accepts again, and
// neither started (TestMultiExampleNginxGunicorn runs it for real).
func TestCheckMultiExample(t *testing.T) {
	bin := t.TempDir()
	marker := filepath.Join(bin, "started")
	for _, name := range []string{"nginx", "gunicorn"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	r := oneShot(t, root, env, "check", "-c", "examples/multi/hupd.toml")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("hupd check: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	app, web := strings.Index(r.stdout, "\n# program app\n[[program]]\n"), strings.Index(r.stdout, "\n# program web\n[[program]]\n")
	if app < 0 || web < app || !strings.Contains(r.stdout, `address = "unix:///tmp/hupd-multi-app.sock"`) {
		t.Fatalf("hupd check printed no app then web:\n%s", r.stdout)
	}
	effective := filepath.Join(t.TempDir(), "effective.toml")
	if err := os.WriteFile(effective, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if r2 := oneShot(t, root, env, "check", "-c", effective); r2.code != 0 || r2.stdout != r.stdout {
		t.Fatalf("check of check's own output: exit %d, stderr %q, output changed: %v", r2.code, r2.stderr, r2.stdout != r.stdout)
	}

	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("hupd check started nginx or gunicorn: %v", err)
	}
}

// updateGolden rewrites the golden files of these tests from what hupd
// prints: go test -run TestCheckShortAddresses -update-golden.
var updateGolden = flag.Bool("update-golden", false, "rewrite the golden files from hupd's output")

// shortAddressesTOML names its sockets in every short form, a URL last.
const shortAddressesTOML = `name = "web"
command = ["sh", "-c", "exec sleep 1000"]

[[listen]]
name = "http"
address = ":8080"

[[listen]]
name = "local"
address = "127.0.0.1:8081"

[[listen]]
name = "v6"
address = "[::1]:8082"

[[listen]]
address = "8083"

[[listen]]
name = "named"
address = "localhost:8084"

[[listen]]
name = "admin"
address = "/run/web/admin.sock"
mode = "0660"

[[listen]]
name = "ctl"
address = "@web-ctl"

[[listen]]
name = "dns"
address = "udp://127.0.0.1:5353"
`

// TestCheckShortAddresses: `hupd check` of a configuration that names its
// sockets in the short forms (HOST:PORT, :PORT, [IPV6]:PORT, PORT,
// /path, @name) prints each [[listen]] address as its URL
// (testdata/check-short-addresses.golden), and its whole output is the
// same, byte for byte, as for the configuration that writes those URLs and
// for the same sockets given as --listen flags.
func TestCheckShortAddresses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := oneShot(t, dir, nil, "check", "-c", write("short.toml", shortAddressesTOML))
	if short.code != 0 || short.stderr != "" {
		t.Fatalf("hupd check: exit %d, stderr:\n%s", short.code, short.stderr)
	}
	// The [[listen]] tables: the rest is every other setting's default.
	start, end := strings.Index(short.stdout, "[[listen]]"), strings.Index(short.stdout, "\n[process]")
	if start < 0 || end < start {
		t.Fatalf("no [[listen]] tables before [process] in:\n%s", short.stdout)
	}
	got := short.stdout[start : end+1]
	golden := filepath.Join("testdata", "check-short-addresses.golden")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("hupd check printed\n%s\nwant (%s)\n%s", got, golden, want)
	}

	urls := shortAddressesTOML
	for _, r := range [][2]string{
		{`":8080"`, `"tcp://:8080"`}, {`"127.0.0.1:8081"`, `"tcp://127.0.0.1:8081"`}, {`"[::1]:8082"`, `"tcp://[::1]:8082"`},
		{`"8083"`, `"tcp://:8083"`}, {`"localhost:8084"`, `"tcp://localhost:8084"`},
		{`"/run/web/admin.sock"`, `"unix:///run/web/admin.sock"`}, {`"@web-ctl"`, `"unix://@web-ctl"`},
	} {
		if !strings.Contains(urls, r[0]) {
			t.Fatalf("%s not in the configuration", r[0])
		}
		urls = strings.Replace(urls, r[0], r[1], 1)
	}
	if long := oneShot(t, dir, nil, "check", "-c", write("urls.toml", urls)); long.code != 0 || long.stdout != short.stdout {
		t.Errorf("the URL forms: exit %d, stderr %q, output:\n%s\nwant the short forms' output:\n%s", long.code, long.stderr, long.stdout, short.stdout)
	}

	// The same sockets as flags, but for the socket file's mode (TOML only).
	flags := oneShot(t, dir, nil, "check", "-c", write("nolisten.toml", "name = \"web\"\n"), "--listen", "http=:8080", "--listen", "local=127.0.0.1:8081",
		"--listen", "v6=[::1]:8082", "--listen", "8083", "--listen", "named=localhost:8084", "--listen", "admin=/run/web/admin.sock",
		"--listen", "ctl=@web-ctl", "--listen", "dns=udp://127.0.0.1:5353", "--", "sh", "-c", "exec sleep 1000")
	if want := strings.Replace(short.stdout, "  mode = \"0660\"\n", "", 1); flags.code != 0 || flags.stdout != want {
		t.Errorf("--listen: exit %d, stderr %q, output:\n%s\nwant:\n%s", flags.code, flags.stderr, flags.stdout, want)
	}
}
