package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

	n, workers := swapsUnderLoad(t, h, "unix", sock, 3, func(body string) bool { return strings.HasPrefix(body, "nginx worker ") })
	if len(workers) < 2 {
		t.Fatalf("answered by %d nginx workers across three swaps, want several", len(workers))
	}
	t.Logf("%d requests across three swaps, answered by %d nginx workers", n, len(workers))
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

// TestNginxSignalWithCheck: nginx reloads in place (strategy signal: HUP to
// its master) after `nginx -t` passed as the check command; an edit is
// picked up, and a broken edit is refused with nginx's own error as the
// reason while the running configuration keeps serving.
func TestNginxSignalWithCheck(t *testing.T) {
	t.Parallel()
	nginx := needTool(t, "nginx", "/usr/sbin/nginx")
	dir := t.TempDir()
	sock := filepath.Join(dir, "http.sock")
	conf := filepath.Join(dir, "nginx.conf")
	write := func(body string) {
		writeFile(t, dir, "nginx.conf", fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s;
	server {
		listen unix:%[2]s;
		location / { %[3]s }
	}
}
`, dir, sock, body))
	}
	write(`return 200 "v1\n";`)
	h := StartHupd(t, "run", "--handoff", "nginx", "--reload", "signal", "--check", nginx+" -t -c "+conf+" -e stderr",
		"--listen", "http=unix://"+sock, "--ready", "delay:100ms", "--stop-signal", "QUIT", "--", nginx, "-c", conf, "-e", "stderr")
	h.WaitEvent("child ready", 1, nil)
	get := func() string { return fetch(t, "unix", sock, "/") }
	if body := get(); body != "v1\n" {
		t.Fatalf("nginx answered %q, want v1", body)
	}
	reload := func() (string, error) {
		cmd := exec.Command(hupdBin, "reload")
		cmd.Env = h.Cmd.Env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	write(`return 200 "v2\n";`)
	if out, err := reload(); err != nil || !strings.HasPrefix(out, "reload ok (signal)") {
		t.Fatalf("reload: %v: %s", err, out)
	}
	// The master starts new workers and asks the old ones to finish: ask
	// until a new one answers; until then only an old one may.
	for body := get(); body != "v2\n"; body = get() {
		if body != "v1\n" {
			t.Fatalf("after the reload nginx answered %q", body)
		}
	}

	write(`retrun 200 "v3\n";`)
	out, err := reload()
	if err == nil || !strings.Contains(out, "check failed") || !strings.Contains(out, `unknown directive "retrun" in `+conf) {
		t.Fatalf("broken config: %v: %s; want the reload refused with nginx's error", err, out)
	}
	// An old worker that has not left yet may still answer v1.
	if body := get(); body != "v2\n" && body != "v1\n" {
		t.Fatalf("after the refused reload nginx answered %q, want the configuration in force", body)
	}
	if n := len(h.Events("reload signal sent")); n != 1 {
		t.Fatalf("HUP sent %d times, want once (the broken config never reaches nginx)", n)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}
