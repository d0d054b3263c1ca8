package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/safefile"
	"golang.org/x/sys/unix"
)

func TestReadPidfile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if pid, err := readPidfile(write("ok", " 4242\n")); err != nil || pid != 4242 {
		t.Fatalf("ok: %d %v", pid, err)
	}
	for name, body := range map[string]string{"empty": "", "text": "pid=12\n", "zero": "0\n", "negative": "-5\n", "two": "12 13\n"} {
		if pid, err := readPidfile(write(name, body)); err == nil || !strings.Contains(err.Error(), "not a PID") {
			t.Errorf("%s: %d %v, want not a PID", name, pid, err)
		}
	}
	if _, err := readPidfile(write("big", strings.Repeat("1", pidfileLimit+1))); !errors.Is(err, safefile.ErrTooLarge) {
		t.Errorf("big: %v, want ErrTooLarge", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readPidfile(fifo); !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("fifo: %v, want ErrNotRegular", err)
	}
	if _, err := readPidfile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v, want ErrNotExist", err)
	}
}

func TestEnvironHas(t *testing.T) {
	t.Setenv("HUPD_FORKING_TEST", "x") // not in /proc/self/environ: set after exec
	env, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		t.Skip(err)
	}
	vars := strings.Split(strings.TrimRight(string(env), "\x00"), "\x00")
	if len(vars) == 0 || vars[0] == "" {
		t.Skip("empty environment")
	}
	for _, kv := range []string{vars[0], vars[len(vars)-1]} {
		if ok, err := environHas(os.Getpid(), kv); !ok || err != nil {
			t.Errorf("%q: %v %v, want found", kv, ok, err)
		}
	}
	// A prefix or a suffix of a variable is not the variable.
	first := vars[0]
	for _, kv := range []string{first[:len(first)-1], first[1:], "HUPD_FORKING_TEST=x"} {
		if ok, _ := environHas(os.Getpid(), kv); ok {
			t.Errorf("%q found", kv)
		}
	}
}
