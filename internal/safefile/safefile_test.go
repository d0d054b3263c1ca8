package safefile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const limit = 1 << 20

// readQuickly runs ReadFile(path, limit) and fails the test if it does not
// return within a few seconds (a FIFO without a writer would block).
func readQuickly(t *testing.T, path string) ([]byte, error) {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		b, err := ReadFile(path, limit)
		ch <- res{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("ReadFile(%s) blocked", path)
		return nil, nil
	}
}

func TestReadFileRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), limit+1), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero-link")))
	must(t, os.Symlink(fifo, filepath.Join(dir, "fifo-link")))
	for _, tc := range []struct {
		path string
		is   error
		msg  string
	}{
		{fifo, ErrNotRegular, "not a regular file (fifo)"},
		{filepath.Join(dir, "fifo-link"), ErrNotRegular, "not a regular file (fifo)"},
		{"/dev/zero", ErrNotRegular, "not a regular file (character device)"},
		{filepath.Join(dir, "zero-link"), ErrNotRegular, "not a regular file (character device)"},
		{dir, ErrNotRegular, "not a regular file (directory)"},
		{big, ErrTooLarge, "larger than 1 MiB"},
	} {
		b, err := readQuickly(t, tc.path)
		if !errors.Is(err, tc.is) || b != nil {
			t.Errorf("%s: %d bytes, error %v; want %v", tc.path, len(b), err, tc.is)
			continue
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != tc.path || pe.Err.Error() != tc.msg {
			t.Errorf("%s: error %q, want a PathError saying %q", tc.path, err, tc.msg)
		}
	}
	if _, err := readQuickly(t, filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReadFileAccepts(t *testing.T) {
	dir := t.TempDir()
	exact := filepath.Join(dir, "exact")
	want := bytes.Repeat([]byte("y"), limit)
	must(t, os.WriteFile(exact, want, 0o600))
	must(t, os.Symlink(exact, filepath.Join(dir, "link")))
	must(t, os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600))
	for _, p := range []string{exact, filepath.Join(dir, "link")} {
		b, err := readQuickly(t, p)
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", p, len(b), err, len(want))
		}
	}
	if b, err := readQuickly(t, filepath.Join(dir, "empty")); err != nil || len(b) != 0 {
		t.Errorf("empty: %q, %v", b, err)
	}
}

// TestReadAllGrows: a file that reports no size (as /proc files do) or
// grows after the fstat is still capped on the bytes read.
func TestReadAllGrows(t *testing.T) {
	r := strings.NewReader(strings.Repeat("z", 100))
	if _, err := ReadAll(r, 99, 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("101 bytes, limit 99: %v", err)
	}
	r = strings.NewReader(strings.Repeat("z", 100))
	if b, err := ReadAll(r, 100, 10); err != nil || len(b) != 100 {
		t.Errorf("100 bytes, limit 100: %d, %v", len(b), err)
	}
	// /dev/zero read through ReadAll directly stops at the limit.
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := ReadAll(f, 1<<16, 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("/dev/zero: %v", err)
	}
}

// TestOpenFd: the descriptor of a regular file is close-on-exec.
func TestOpenFd(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	must(t, os.WriteFile(p, []byte("a"), 0o600))
	fd, st, err := OpenFd(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if st.Size != 1 {
		t.Errorf("size %d", st.Size)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd flags %#x, %v: want close-on-exec", flags, err)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{1 << 20: "1 MiB", 16 << 20: "16 MiB", 128 << 10: "128 KiB", 1000: "1000 bytes", 1<<20 + 1: "1048577 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
