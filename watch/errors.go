package watch

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLimit is wrapped by the errors that say an inotify limit ran out.
var ErrLimit = errors.New("watch: inotify limit reached")

// limitError explains an inotify error caused by a kernel limit, naming
// the sysctl to raise; other errors are returned unchanged.
func limitError(err error) error {
	switch {
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("%w: too many watches (fs.inotify.max_user_watches = %s%s); raise it (sysctl fs.inotify.max_user_watches=N) or set poll_interval",
			ErrLimit, sysctl("fs/inotify/max_user_watches"), nsLimit("max_inotify_watches"))
	case errors.Is(err, unix.EMFILE):
		return fmt.Errorf("%w: too many inotify instances (fs.inotify.max_user_instances = %s%s) or open files; raise it (sysctl fs.inotify.max_user_instances=N) or set poll_interval",
			ErrLimit, sysctl("fs/inotify/max_user_instances"), nsLimit("max_inotify_instances"))
	}
	return err
}

// nsLimit names the user namespace's own limit when it is the lower one
// (in a container, /proc/sys/user/ holds the limit that applied).
func nsLimit(name string) string {
	v := sysctl("user/" + name)
	if v == "unknown" || v == sysctl("fs/inotify/max_user_"+strings.TrimPrefix(name, "max_inotify_")) {
		return ""
	}
	return ", user." + name + " = " + v
}

func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
