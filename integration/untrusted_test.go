package integration

// Files that someone else may control (finding 4 of issue 13): hupd.toml
// and watched files are read only when they are regular files, without
// blocking, and hupd.toml only up to config.MaxFileSize. A refusal is one
// line naming the file; a running hupd logs it and goes on serving.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/internal/logev"
)

// utMkfifo makes a FIFO at path.
func utMkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// utOneShot runs hupd with args in dir under a 1 GiB address-space limit
// (a hupd that reads /dev/zero into memory dies there, with a Go runtime
// crash of many lines, rather than taking the machine's memory) and
// returns its exit code, stderr and how long it took. (Its peak RSS
// cannot be told: a child's ru_maxrss counts the test binary it was
// forked from.)
func utOneShot(t *testing.T, dir string, args ...string) (code int, stderr string, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", `ulimit -v 1048576 && exec "$0" "$@"`, hupdBin}, args...)...)
	cmd.Dir = dir
	var out strings.Builder
	cmd.Stderr = &out
	t0 := time.Now()
	err := cmd.Run()
	took = time.Since(t0)
	if ctx.Err() != nil {
		t.Fatalf("hupd %q did not exit within %s (blocked?); stderr: %q", args, deadline, out.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("hupd %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), took
}

// TestConfigFileNotRegular: hupd run and hupd check refuse at once, with
// exit 2 and one line naming the file and why, a -c path that is a FIFO
// without a writer (it used to block forever), a symlink to /dev/zero (it
// used to read until memory ran out), a directory, and a file larger than
// config.MaxFileSize (64 MB); a file of exactly MaxFileSize, and a symlink
// to a regular file, are read.
func TestConfigFileNotRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	utMkfifo(t, filepath.Join(dir, "fifo.toml"))
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.toml"), 0o755); err != nil {
		t.Fatal(err)
	}
	valid := "command = [" + strconv.Quote(helloBin) + "]\n"
	pad := func(size int) string { // a valid hupd.toml of exactly size bytes
		line := "#" + strings.Repeat("x", 62) + "\n"
		s := valid + strings.Repeat(line, (size-len(valid))/len(line))
		return s + "#" + strings.Repeat("y", size-len(s)-2) + "\n"
	}
	big := pad(64 << 20)
	if err := os.WriteFile(filepath.Join(dir, "big.toml"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	exact := pad(config.MaxFileSize)
	if len(exact) != config.MaxFileSize {
		t.Fatalf("padding: %d bytes", len(exact))
	}
	if err := os.WriteFile(filepath.Join(dir, "exact.toml"), []byte(exact), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "over.toml"), []byte(exact+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("exact.toml", filepath.Join(dir, "link.toml")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, says string }{
		{"fifo.toml", "not a regular file (fifo)"},
		{"zero.toml", "not a regular file (character device)"},
		{"dir.toml", "not a regular file (directory)"},
		{"big.toml", "larger than 1 MiB"},
		{"over.toml", "larger than 1 MiB"},
	} {
		for _, sub := range []string{"run", "check"} {
			code, stderr, took := utOneShot(t, dir, sub, "-c", tc.file)
			if want := "hupd: " + tc.file + ": " + tc.says + "\n"; code != 2 || stderr != want {
				t.Errorf("hupd %s -c %s: exit %d, stderr %q; want 2 and %q", sub, tc.file, code, stderr, want)
			}
			// "At once": no wait on a writer, no read of the content.
			if took > 5*time.Second {
				t.Errorf("hupd %s -c %s: took %s; want an answer at once", sub, tc.file, took)
			}
		}
	}
	for _, f := range []string{"exact.toml", "link.toml"} {
		if code, stderr, _ := utOneShot(t, dir, "check", "-c", f); code != 0 {
			t.Errorf("hupd check -c %s (exactly %d bytes): exit %d, %q; want 0", f, config.MaxFileSize, code, stderr)
		}
	}
}

// TestConfigReplacedRunning: a running hupd whose hupd.toml is replaced
// (renamed over) by a FIFO, then by a symlink to /dev/zero, refuses each
// version, from the watch of hupd.toml, from SIGHUP and from hupd reload,
// naming the file and why, and goes on serving with the same generation;
// SIGTERM then stops it at once with exit 0. It used to block reading the
// FIFO, and then hang at its stop; /dev/zero got it OOM-killed. A valid
// hupd.toml after them is applied.
func TestConfigReplacedRunning(t *testing.T) {
	t.Parallel()
	sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
	tables := []string{wtHTTP, wtWatch("", wtDebounce, sent)}
	dir := t.TempDir()
	w, conf := wtStartConf(t, dir, wtTOML([]string{"-tag", "v1", sent}, tables...))
	pid := w.ChildPID(1)
	w.startReport(1)
	tmp := filepath.Join(dir, ".hupd.toml.tmp")
	notApplied := logev.ConfigNotApplied

	n := 0
	for i, step := range []struct {
		says string
		make func()
	}{
		{"not a regular file (fifo)", func() { utMkfifo(t, tmp) }},
		{"not a regular file (character device)", func() {
			if err := os.Symlink("/dev/zero", tmp); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		step.make()
		if err := os.Rename(tmp, conf); err != nil {
			t.Fatal(err)
		}
		want := conf + ": " + step.says
		// The watch of hupd.toml sees it: it reports the path as a
		// problem, and, when its content is gone (the first time), reads
		// it again, which is refused.
		if i == 0 {
			n++
			if e := w.WaitEvent(notApplied, n, nil); e.Str("error") != want {
				t.Fatalf("watch: error %q, want %q", e.Str("error"), want)
			}
		}
		if e := w.WaitEvent(logev.WatchProblem, i+1, nil); e.Str("error") != want+": its content is not watched" {
			t.Fatalf("watch problem %q, want %q", e.Str("error"), want+": its content is not watched")
		}
		// SIGHUP reads it again.
		w.Signal(syscall.SIGHUP)
		n++
		if e := w.WaitEvent(notApplied, n, nil); e.Str("error") != want {
			t.Fatalf("SIGHUP: error %q, want %q", e.Str("error"), want)
		}
		// So does hupd reload, which fails saying why.
		r := oneShot(t, "", nil, "reload", "--control", w.ctl)
		n++
		if r.code != 1 || !strings.Contains(r.stderr, "hupd.toml not applied, nothing changed: "+want) {
			t.Fatalf("hupd reload: exit %d, stderr %q; want 1 saying %q", r.code, r.stderr, want)
		}
		if st := rcOnly(w, pid); st.ConfigError != want {
			t.Fatalf("status config_error %q, want %q", st.ConfigError, want)
		}
		if body := fetch(t, "tcp", HostPort(w.Listening("http")), "/"); swapPID(body) != pid {
			t.Fatalf("answered %q, want pid %d", body, pid)
		}
	}
	// A valid version is applied again: a new command, a new generation.
	wtWrite(t, conf, wtTOML([]string{"-tag", "v2", sent}, tables...))
	if e := w.WaitEvent(logev.ConfigApplied, 1, nil); e["new_generation"] != true {
		t.Fatalf("%v: want a new generation", e)
	}
	w.reloaded(1)
	// Back to a FIFO: SIGTERM stops hupd at once, with its usual status.
	utMkfifo(t, tmp)
	if err := os.Rename(tmp, conf); err != nil {
		t.Fatal(err)
	}
	w.WaitEvent(notApplied, n+1, nil)
	t0 := time.Now()
	w.stop()
	if took := time.Since(t0); took > 10*time.Second {
		t.Errorf("stop took %s", took)
	}
}

// TestWatchedFileNotRegular: a watched file replaced by a FIFO, then by a
// symlink to /dev/zero, never blocks hupd: the file is gone as content
// (one reload, as for a deleted file), each is reported once as a watch
// problem naming it, and the next real content reloads again.
func TestWatchedFileNotRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sent := writeFile(t, dir, "sentinel", "s0\n")
	f := writeFile(t, dir, "app.conf", "one\n")
	w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{sent}, wtHTTP, wtWatch("swap", wtDebounce, f, sent)))
	w.startReport(1)
	tmp := filepath.Join(dir, ".app.conf.tmp")
	problem := func(n int, says string) {
		t.Helper()
		e := w.WaitEvent(logev.WatchProblem, n, nil)
		if want := f + ": not a regular file (" + says + "): its content is not watched"; e.Str("error") != want {
			t.Fatalf("watch problem %q, want %q", e.Str("error"), want)
		}
	}

	utMkfifo(t, tmp)
	if err := os.Rename(tmp, f); err != nil {
		t.Fatal(err)
	}
	problem(1, "fifo")
	w.changed(1, f)
	w.reloaded(1)

	if err := os.Symlink("/dev/zero", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f); err != nil {
		t.Fatal(err)
	}
	problem(2, "character device")

	wtWrite(t, f, "two\n")
	w.changed(2, f)
	w.reloaded(2)
	w.sentinel(sent, 2)
	if st := w.status(); st.Watches[1].Error != "" {
		t.Errorf("status still shows a watch problem: %+v", st.Watches[1])
	}
	w.stop()
}
