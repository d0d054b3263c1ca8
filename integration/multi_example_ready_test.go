package integration

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// TestMultiExampleNginxReadiness: examples/multi's readiness for nginx
// waits for the new master itself (a worker of it runs: the probe is given
// its PID). A new nginx.conf with a `listen` on an address in use makes
// the new master retry its bind for about 2.5s and exit: its reload fails
// and the old master serves on, with the same PID. (With the example's
// former delay:500ms, the retrying master counted as ready, the old one
// was told to leave, and then the new one exited.) Once the address is
// free, the next reload succeeds, its new master judged by the probe.
func TestMultiExampleNginxReadiness(t *testing.T) {
	t.Parallel()
	// Reloaded by hupd reload alone, not as nginx.conf is saved.
	dir, port := multiExample(t, "[[program.watch]]\npaths = [\"nginx.conf\"]\n", "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := read("nginx.conf")
	if toml := read("hupd.toml"); !strings.Contains(toml, `"`+dir+`/nginx-ready.sh"`) || strings.Contains(toml, `paths = ["nginx.conf"]`) {
		t.Fatalf("examples/multi/hupd.toml changed: adjust the test:\n%s", toml)
	}
	cfg := filepath.Join(dir, "hupd.toml")
	h := StartHupd(t, "run", "-c", cfg)
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	addr := "127.0.0.1:" + port
	app := func(body string) bool { return strings.HasPrefix(body, "app master ") }
	if body := get(t, "http://"+addr+"/"); !app(body) {
		t.Fatalf("through nginx: %q", body)
	}

	// A second listen on an address in use: nginx retries, then exits.
	line := "listen 127.0.0.1:" + port + ";"
	write("nginx.conf", strings.Replace(conf, line, line+"\n        listen "+busy.Addr().String()+";", 1))
	code, out, errOut := fleetCLI(t, h, "reload", "-c", cfg, "-q", "web")
	if code != 1 || !strings.Contains(errOut, "reload of web failed") {
		t.Fatalf("reload with a busy address: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if n := countEvents(h, logev.ChildReady, "web"); n != 1 {
		t.Fatalf("%d nginx masters counted ready, want only the first", n)
	}
	if got := servingPID(fleetStatus(t, h, "-c", cfg)["web"]); got != webPID || !processAlive(webPID) {
		t.Fatalf("nginx serves with pid %d after the failed reload, want %d", got, webPID)
	}
	if body := get(t, "http://"+addr+"/"); !app(body) {
		t.Fatalf("through the old nginx: %q", body)
	}

	// The address free again: the reload succeeds, once a worker of the
	// new master runs (nginx-ready.sh).
	write("nginx.conf", conf)
	code, out, errOut = fleetCLI(t, h, "reload", "-c", cfg, "-q", "web")
	if code != 0 || !strings.HasPrefix(out, "web: reload ok (swap)") {
		t.Fatalf("reload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if ready := h.WaitEvent(logev.ChildReady, 2, ofProgram("web")); ready.Str(supervisor.KeyReady) != "probe succeeded" || ready.Int("pid") == webPID {
		t.Fatalf("nginx's second master: %v", ready)
	}
	if body := get(t, "http://"+addr+"/"); !app(body) {
		t.Fatalf("through the new nginx: %q", body)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}
