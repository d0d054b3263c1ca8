package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// TestWatchInotifyLimit runs hupd where inotify's watch limit is tiny (a
// user namespace has its own, user.max_inotify_watches) and asks it to
// watch a tree of more directories than that: hupd must refuse to start,
// saying which sysctl to raise, before any child or socket exists.
func TestWatchInotifyLimit(t *testing.T) {
	t.Parallel()
	procNeedRoot(t)
	needTool(t, "unshare")
	if err := exec.Command("unshare", "-Ur", "true").Run(); err != nil {
		t.Skipf("no user namespaces here (unshare -Ur: %v)", err)
	}
	tree := t.TempDir()
	for i := range 10 {
		if err := os.MkdirAll(filepath.Join(tree, fmt.Sprintf("d%d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("unshare", append([]string{"-Ur", "--", "sh", "-c",
		`echo 3 > /proc/sys/user/max_inotify_watches && exec "$@"`, "sh", hupdBin},
		withJSONLog([]string{"run", "--watch", tree, "--listen", "tcp://127.0.0.1:0", "--", helloBin})...)...)
	h := StartHupdCmd(t, cmd)
	if code := h.Wait(); code != 1 {
		t.Fatalf("hupd exited %d, want 1\n%s", code, h.Log())
	}
	out := h.Stderr()
	for _, want := range []string{"hupd: watch " + tree + ": adding a watch on /", "inotify limit reached", "fs.inotify.max_user_watches", "user.max_inotify_watches = 3", "poll_interval"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr does not say %q:\n%s", want, out)
		}
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("the error is not one line:\n%s", out)
	}
	if n := len(h.Events(logev.ChildStarted)) + len(h.Events(logev.Listening)); n != 0 {
		t.Errorf("hupd started a child or a socket before it failed:\n%s", h.Log())
	}
}
