package integration

import (
	"bytes"
	"context"
	"errors"
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
