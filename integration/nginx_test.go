package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestNginxSwapInheritsSockets: whole nginx masters (Debian's nginx, run
// with "daemon off") swap blue/green on hupd's socket, which each one takes
// from NGINX="3;" (--handoff nginx) instead of binding it; the old master
// leaves on QUIT, nginx's graceful stop. A client making a new connection
// per request throughout three swaps sees no failure, and the socket file
// outlives every master (nginx does not unlink an inherited socket).
func TestNginxSwapInheritsSockets(t *testing.T) {
	t.Parallel()
	nginx := needTool(t, "nginx", "/usr/sbin/nginx")
	dir := t.TempDir()
	sock := filepath.Join(dir, "http.sock")
	conf := writeFile(t, dir, "nginx.conf", fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path %[1]s;
	server {
		listen unix:%[2]s;
		location / { return 200 "nginx worker $pid\n"; }
	}
}
`, dir, sock))
	h := StartHupd(t, "run", "--handoff", "nginx", "--listen", "http=unix://"+sock, "--ready", "delay:200ms",
		"--stop-signal", "QUIT", "--", nginx, "-c", conf, "-e", "stderr")
	h.WaitEvent("child ready", 1, nil)

	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	var ok, failed atomic.Int64
	var mu sync.Mutex
	workers := map[string]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get("http://nginx/")
			if err != nil {
				failed.Add(1)
				t.Errorf("request: %v", err)
				continue
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(body), "nginx worker ") {
				failed.Add(1)
				t.Errorf("answer %d %q, %v", resp.StatusCode, body, err)
				continue
			}
			ok.Add(1)
			mu.Lock()
			workers[strings.TrimSpace(string(body))] = true
			mu.Unlock()
		}
	}()
	for i := range 3 {
		cmd := exec.Command(hupdBin, "reload")
		cmd.Env = h.Cmd.Env // the same private runtime directory
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "reload ok (swap)") {
			t.Fatalf("reload %d: %v: %s", i+1, err, out)
		}
		// The old master is gone before the next swap: each swap is
		// served across by a real hand-over, not by a leftover.
		h.WaitEvent("child exited", 1, swapGen(i+1))
	}
	close(stop)
	<-done
	if failed.Load() != 0 || ok.Load() == 0 || len(workers) < 2 {
		t.Fatalf("%d requests ok, %d failed, answered by %d workers; want 0 failed across three swaps", ok.Load(), failed.Load(), len(workers))
	}
	t.Logf("%d requests across three swaps, answered by %d nginx workers", ok.Load(), len(workers))
	if n := strings.Count(h.Stderr(), `using inherited sockets from "3;"`); n != 4 {
		t.Fatalf("%d nginx masters said they use the inherited socket, want 4:\n%s", n, h.Stderr())
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("socket file after three swaps: %v", err)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket file after hupd's exit: %v", err)
	}
}
