package watch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLimitInUserNamespace runs New under a real inotify limit: in a new
// user namespace the limit user.max_inotify_watches is the namespace's
// own, and its owner may lower it.
func TestLimitInUserNamespace(t *testing.T) {
	runHelper(t, "inotify-limit", "unshare", "-Ur", "sh", "-c",
		`echo 5 > /proc/sys/user/max_inotify_watches && exec "$0" "$@"`)
}

// inotifyLimitHelper runs with user.max_inotify_watches = 5.
func inotifyLimitHelper() int {
	dir, err := os.MkdirTemp("", "watch-limit")
	if err != nil {
		return helperFail("%v", err)
	}
	defer os.RemoveAll(dir)
	for i := range 20 {
		if err := os.Mkdir(filepath.Join(dir, fmt.Sprint(i)), 0o755); err != nil {
			return helperFail("%v", err)
		}
	}
	file := filepath.Join(dir, "app.conf")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		return helperFail("%v", err)
	}

	// Is the limit in force here?
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return helperCannotRun("inotify_init1: %v", err)
	}
	n, err := 0, error(nil)
	for ; n < 20 && err == nil; n++ {
		_, err = unix.InotifyAddWatch(fd, filepath.Join(dir, fmt.Sprint(n)), unix.IN_CREATE)
	}
	unix.Close(fd)
	if !errors.Is(err, unix.ENOSPC) {
		return helperCannotRun("user.max_inotify_watches = 5 is not enforced: %d watches added, last error %v", n, err)
	}

	// A file needs a watch on each of its path's directories: few enough.
	w, err := New([]Group{{Paths: []string{file}}})
	if err != nil {
		return helperFail("New on %s (%d directories deep): %v", file, strings.Count(file, "/"), err)
	}
	w.Close()

	w, err = New([]Group{{Paths: []string{file}}, {Paths: []string{dir}}})
	if err == nil {
		w.Close()
		return helperFail("New watched a tree of 20 directories with user.max_inotify_watches = 5")
	}
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "fs.inotify.max_user_watches") {
		return helperFail("New: %q, want ErrLimit naming fs.inotify.max_user_watches", err)
	}
	fmt.Printf("New: %v\n", err)
	return 0
}
