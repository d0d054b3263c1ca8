package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// multiExample copies examples/multi (hupd.toml, nginx.conf, app.py,
// nginx-ready.sh) into a private directory, on a free port, and returns
// the directory and the port; it skips t without nginx or gunicorn.
// hupd.toml and nginx.conf are moved to the directory and the port (their
// admin address to port 0), with the pairs of replace (old, new) replaced
// in them too.
func multiExample(t *testing.T, replace ...string) (dir, port string) {
	t.Helper()
	needTool(t, "/usr/sbin/nginx", "nginx")
	needTool(t, "/usr/bin/gunicorn", "gunicorn")
	dir = t.TempDir()
	// nginx's workers (www-data) reach the app's socket in dir.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port = strconv.Itoa(fixedPort(t, "tcp"))
	move := strings.NewReplacer(append([]string{"127.0.0.1:8080", "127.0.0.1:" + port, `address = "127.0.0.1:9901"`, `address = "127.0.0.1:0"`,
		"/tmp/hupd-multi-app.sock", filepath.Join(dir, "app.sock"),
		`"examples/multi/"`, `"` + dir + `/"`, `"examples/multi"`, `"` + dir + `"`, `"examples/multi/nginx-ready.sh"`, `"` + dir + `/nginx-ready.sh"`},
		replace...)...)
	for _, name := range []string{"hupd.toml", "nginx.conf", "app.py", "nginx-ready.sh"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "multi", name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "hupd.toml" || name == "nginx.conf" {
			b = []byte(move.Replace(string(b)))
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, port
}

// TestMultiExampleNginxGunicorn runs examples/multi as shipped (but on a
// free port and in a private directory): Debian's nginx in front of
// gunicorn on a unix socket hupd holds, under one hupd. The app answers
// through nginx; three reloads of the app under a new-connection client
// through nginx fail nothing and leave nginx's PID as it was; a reload of
// every program too; its health endpoint says both are ready; TERM stops
// nginx, then the app, and hupd exits 0.
func TestMultiExampleNginxGunicorn(t *testing.T) {
	t.Parallel()
	dir, port := multiExample(t)
	h := StartHupd(t, "run", "-c", filepath.Join(dir, "hupd.toml"))
	h.WaitEvent(logev.ChildReady, 1, ofProgram("app"))
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	app := func(body string) bool {
		return strings.HasPrefix(body, "app master ") && strings.HasSuffix(body, ": hello v1\n")
	}
	addr := "127.0.0.1:" + port
	if body := get(t, "http://"+addr+"/"); !app(body) {
		t.Fatalf("through nginx: %q", body)
	}
	// Its one health endpoint: both ready, each program's samples.
	hl := hlAddr(h)
	hlExpect(t, hl, "/readyz", 200, "ok")
	hlExpect(t, hl, "/readyz?program=app", 200, "ok")
	hlExpectMetrics(t, hl, map[string]float64{"hupd_up": 1, `hupd_generations{program="web"}`: 1, `hupd_generations{program="app"}`: 1})
	l := startLoad(t, "tcp", addr, app, false)
	for i := range 3 {
		code, out, errOut := fleetCLI(t, h, "reload", "-c", filepath.Join(dir, "hupd.toml"), "-q", "app")
		if code != 0 || !strings.HasPrefix(out, "app: reload ok (swap)") {
			l.stop()
			t.Fatalf("reload app %d: exit %d: %s%s", i+1, code, out, errOut)
		}
		h.WaitEvent(logev.ChildExited, 1, ofProgramGen("app", i+1))
	}
	n, _, masters := l.finish("3 reloads of the app")
	t.Logf("%d requests through nginx across 3 reloads of the app, answered by %d masters and workers", n, len(masters))
	if got := servingPID(fleetStatus(t, h, "-c", filepath.Join(dir, "hupd.toml"))["web"]); got != webPID {
		t.Fatalf("nginx serves with pid %d after the app's reloads, want %d", got, webPID)
	}
	code, out, errOut := fleetCLI(t, h, "reload", "-c", filepath.Join(dir, "hupd.toml"), "-q")
	if code != 0 || !strings.Contains(out, "app: reload ok (swap)") || !strings.Contains(out, "web: reload ok (swap)") {
		t.Fatalf("reload of both: exit %d: %s%s", code, out, errOut)
	}
	if body := get(t, "http://"+addr+"/"); !app(body) {
		t.Fatalf("through the new nginx: %q", body)
	}
	h.Signal(syscall.SIGTERM)
	if code := h.Wait(); code != 0 {
		t.Fatalf("hupd exited %d after TERM", code)
	}
	if ended := h.Events(logev.ProgramEnded); len(ended) != 2 || ended[0].Str("program") != "web" || ended[1].Str("program") != "app" {
		t.Fatalf("programs ended in the order %v, want web then app", ended)
	}
}
