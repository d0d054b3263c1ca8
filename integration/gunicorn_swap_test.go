package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
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
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}}}
	var ok, failed atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get("http://gunicorn/")
			if err != nil {
				failed.Add(1)
				t.Errorf("request: %v", err)
				continue
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !strings.HasPrefix(string(body), "gunicorn master ") {
				failed.Add(1)
				t.Errorf("answer %q, %v", body, err)
				continue
			}
			ok.Add(1)
		}
	}()
	for i := range 2 {
		cmd := exec.Command(hupdBin, "reload")
		cmd.Env = h.Cmd.Env
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "reload ok (swap)") {
			t.Fatalf("reload %d: %v: %s", i+1, err, out)
		}
		h.WaitEvent("child exited", 1, swapGen(i+1))
	}
	close(stop)
	<-done
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d requests ok, %d failed across two swaps", ok.Load(), failed.Load())
	}
	t.Logf("%d requests across two gunicorn swaps", ok.Load())
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}
