package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Sentinels matched by a *RefusedError.
var (
	ErrNotRegular = errors.New("safefile: not a regular file")
	ErrTooLarge   = errors.New("safefile: file too large")
)

// RefusedError says why a file was not read: what it is instead of a
// regular file, or the limit its size exceeds. Its message names no path.
type RefusedError struct {
	// Kind is what the path named ("fifo", "directory", "character
	// device", …); empty when the file was too large.
	Kind string
	// Limit is the size the file exceeded, in bytes.
	Limit int64
}

func (e *RefusedError) Error() string {
	if e.Kind != "" {
		return "not a regular file (" + e.Kind + ")"
	}
	return "larger than " + Size(e.Limit)
}

// Is matches ErrNotRegular or ErrTooLarge.
func (e *RefusedError) Is(target error) bool {
	if e.Kind != "" {
		return target == ErrNotRegular
	}
	return target == ErrTooLarge
}

// Size formats n bytes for messages: "1 MiB", "16 KiB", "1000 bytes".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// kind names a file type for RefusedError.
func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFLNK:
		return "symlink"
	}
	return fmt.Sprintf("file type %#o", mode&unix.S_IFMT)
}

// OpenFd opens path for reading without blocking and returns the
// descriptor (close-on-exec) and its fstat, which proved it a regular
// file. Errors are *fs.PathError (Op "open"); a refusal wraps a
// *RefusedError. Extra open flags (unix.O_PATH is not allowed) may be
// given in flags.
func OpenFd(path string, flags int) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	// Spares opening a device or a FIFO (which would wake a writer
	// blocked in its open); the fstat below is what decides.
	if err := unix.Stat(path, &st); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, st, &fs.PathError{Op: "open", Path: path, Err: &RefusedError{Kind: kind(st.Mode)}}
	}
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY|flags, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return -1, st, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, st, &fs.PathError{Op: "open", Path: path, Err: &RefusedError{Kind: kind(st.Mode)}}
	}
	return fd, st, nil
}

// Open is OpenFd returning an *os.File.
func Open(path string) (*os.File, unix.Stat_t, error) {
	fd, st, err := OpenFd(path, 0)
	if err != nil {
		return nil, st, err
	}
	return os.NewFile(uintptr(fd), path), st, nil
}

// ReadFile reads the regular file at path, refusing anything else and a
// file larger than limit bytes (checked on the bytes read, not only on
// the size fstat reports: a file may grow, a /proc file reports 0).
// Errors are *fs.PathError.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, st, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: &RefusedError{Limit: limit}}
	}
	data, err := ReadAll(f, limit, st.Size)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	return data, nil
}

// ReadAll reads r to its end, up to limit bytes; more is a *RefusedError
// (ErrTooLarge). hint is the expected size (0 if unknown).
func ReadAll(r io.Reader, limit, hint int64) ([]byte, error) {
	size := min(max(hint, 0), limit) + 1 + 512
	buf := make([]byte, 0, size)
	lr := io.LimitReader(r, limit+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) > limit {
		return nil, &RefusedError{Limit: limit}
	}
	return buf, nil
}
