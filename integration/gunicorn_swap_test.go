package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// TestGunicornSwapReadyByNotify: examples/gunicorn. Debian's gunicorn
// takes hupd's socket through LISTEN_FDS and says READY=1 (with a
// STATUS=) on NOTIFY_SOCKET itself, which is what ready = "notify" waits
// for; two swaps of whole gunicorn masters under a new-connection-per-
// request client fail no request (a new master's workers boot after its
// READY=1: clients wait in the shared backlog meanwhile, never refused).
// Saving app.py swaps in the new code; saving a broken one fails the
// reload before the old master is touched (--preload: the master imports
// the app before READY=1).
func TestGunicornSwapReadyByNotify(t *testing.T) {
	t.Parallel()
	needTool(t, "/usr/bin/gunicorn", "gunicorn")
	// The one adjustment: port 0 instead of the example's 8000. gunicorn
	// serves whatever socket it inherits, whatever its own bind says.
	root := copyExample(t, "gunicorn", []string{"hupd.toml", "app.py"}, map[string][][2]string{
		"hupd.toml": {{`address = "tcp://127.0.0.1:8000"`, `address = "tcp://127.0.0.1:0"`}},
	})
	app := filepath.Join(root, "examples", "gunicorn", "app.py")
	h := StartHupdIn(t, root, "examples/gunicorn/hupd.toml")
	addr := HostPort(h.Listening("http"))
	if e := h.WaitEvent(logev.ChildReady, 1, nil); e.Str("ready") != "READY=1" {
		t.Fatalf("%v: want gunicorn's own READY=1", e)
	}
	n, _ := swapsUnderLoad(t, h, "tcp", addr, 2, func(body string) bool {
		return strings.HasPrefix(body, "gunicorn master ") && strings.HasSuffix(body, ": hello v1\n")
	})
	t.Logf("%d requests across two gunicorn swaps", n)

	// Saving app.py: a swap to a master that imported the new code.
	// Once the old master has left, only the new one answers.
	editExample(t, app, `MESSAGE = "hello v1"`, `MESSAGE = "hello v2"`)
	if e := h.WaitEvent(logev.ReloadStarted, 3, nil); !strings.HasPrefix(e.Str("cause"), "changed: ") {
		t.Fatalf("%v: want the reload caused by the edit", e)
	}
	h.WaitEvent(logev.ReloadDone, 3, nil)
	h.WaitEvent(logev.ChildExited, 1, swapGen(3))
	if body := fetch(t, "tcp", addr, "/"); !strings.HasPrefix(body, fmt.Sprintf("gunicorn master %d ", h.ChildPID(4))) || !strings.HasSuffix(body, ": hello v2\n") {
		t.Fatalf("after the swap gunicorn answered %q, want hello v2 from master %d", body, h.ChildPID(4))
	}

	// Saving a broken app.py: the new master fails to import it before
	// READY=1, the reload fails, the old master serves on.
	editExample(t, app, `MESSAGE = "hello v2"`, `MESSAGE = "hello v3`)
	if e := h.WaitEvent(logev.ReloadFailed, 1, nil); !strings.Contains(e.Str("reason"), "before it was ready") || !strings.Contains(e.Str("reason"), "SyntaxError") {
		t.Fatalf("%v: want the reload failed by the new master's SyntaxError", e)
	}
	if body := fetch(t, "tcp", addr, "/"); !strings.HasSuffix(body, ": hello v2\n") {
		t.Fatalf("after the failed reload gunicorn answered %q, want hello v2 still", body)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}
