package integration

import (
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// TestOwnBindHintPythonHTTPServer: Debian's python3 -m http.server told to
// bind the port hupd holds (without --legacy) fails at every start with a
// traceback ending in "[Errno 98] Address already in use", and hupd
// restarts it again and again. hupd says once why, naming the socket,
// quoting the line, and pointing at the socket hand-over and --legacy
// redirect; not again at the later crashes.
func TestOwnBindHintPythonHTTPServer(t *testing.T) {
	t.Parallel()
	python := needTool(t, "/usr/bin/python3", "python3")
	h := StartHupd(t, "run", "--listen", "http=127.0.0.1:0", "--",
		python, "-m", "http.server", "--bind", "127.0.0.1", "{port:http}")
	addr := h.Listening("http")
	h.WaitEvent(logev.RestartingChild, 3, nil) // generation 3 failed too
	h.Sync()
	hints := h.Events(logev.OwnBindHint)
	if len(hints) != 1 {
		t.Fatalf("%d hints after 3 failed starts, want 1:\n%s", len(hints), h.Log())
	}
	e := hints[0]
	if e.Int("gen") != 1 || !strings.Contains(e.Str("output"), "[Errno 98] Address already in use") {
		t.Errorf("hint %v: want generation 1 and python's error", e)
	}
	if e.Str("sockets") != "http="+addr || !strings.HasPrefix(addr, "tcp://127.0.0.1:") {
		t.Errorf("hint names %q; want http=%s", e.Str("sockets"), addr)
	}
	if hint := e.Str("hint"); !strings.Contains(hint, "{fd:NAME}") || !strings.Contains(hint, "LISTEN_FDS") || !strings.Contains(hint, "--legacy redirect") {
		t.Errorf("hint %q does not say how to hand the socket over", hint)
	}
	if n := len(h.Events(logev.ChildExited)); n < 3 {
		t.Errorf("%d exits logged, want 3 at least", n)
	}
	// Its exit status depends on whether a generation was starting or
	// none ran (the backoff) when the stop came: not this test's point.
	h.Stop()
}
