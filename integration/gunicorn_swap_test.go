package integration

import (
	"strings"
	"testing"
)

// TestGunicornSwapReadyByNotify: Debian's gunicorn takes hupd's socket
// through LISTEN_FDS and says READY=1 (with a STATUS=) on NOTIFY_SOCKET
// itself, which is what --ready notify waits for; two swaps of whole
// gunicorn masters under a new-connection-per-request client fail no
// request (a new master's workers may boot after its READY=1: clients
// wait in the shared backlog meanwhile, never refused).
func TestGunicornSwapReadyByNotify(t *testing.T) {
	t.Parallel()
	gunicorn := needTool(t, "/usr/bin/gunicorn", "gunicorn")
	dir := t.TempDir()
	writeFile(t, dir, "app.py", gunicornApp)
	conf := writeFile(t, dir, "gunicorn_conf.py", gunicornConf)
	h := StartHupd(t, "run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "notify", "--ready-timeout", "20s",
		"--", gunicorn, "--config", conf, "--chdir", dir, "app:app")
	addr := HostPort(h.Listening("http"))
	if e := h.WaitEvent("child ready", 1, nil); e.Str("ready") != "READY=1" {
		t.Fatalf("%v: want gunicorn's own READY=1", e)
	}
	n, _ := swapsUnderLoad(t, h, "tcp", addr, 2, func(body string) bool { return strings.HasPrefix(body, "gunicorn master ") })
	t.Logf("%d requests across two gunicorn swaps", n)
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}
