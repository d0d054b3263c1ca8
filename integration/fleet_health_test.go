package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// TestMultiHealth: one health endpoint ([health] at the top of a file
// with [[program]] tables) for two hello programs: while app's start is
// held before it can be ready, /readyz is 503 naming app, and
// ?program=web says web waits for app; /readyz is 200 once both are ready, ?program=NAME answers for one and 404 for a name no
// program has; /metrics labels every program's samples program="NAME"
// (hupd_up once); web's child killed, its restart held before it can be
// ready, makes /readyz 503 naming web while app's answer stays 200; once
// web is ready again /readyz is 200 and web's restart is in its metrics
// alone. TERM ends hupd with 0.
func TestMultiHealth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gate, appGate, started := filepath.Join(dir, "gate"), filepath.Join(dir, "app-gate"), filepath.Join(dir, "started")
	for _, f := range []string{gate, appGate} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// open lets a program held at fifo f go on.
	open := func(f string) {
		t.Helper()
		g, err := os.OpenFile(f, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		g.WriteString("go\n")
		g.Close()
	}
	app := helloProgram("app")
	app.command = []string{"sh", "-c", "read x < " + appGate + "; exec " + helloBin + " -grace 10s"}
	web := helloProgram("web", "app")
	// Its first start goes straight to hello; a restart waits until the
	// test writes a line to the gate.
	web.command = []string{"sh", "-c", "if [ -e " + started + " ]; then read x < " + gate + "; fi; touch " + started + "; exec " + helloBin + " -grace 10s"}
	p := fleetFile(t, app, web)
	src, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	withHealth := strings.Replace(string(src), "name = \"fleet\"\n", "name = \"fleet\"\n\n[health]\naddress = \"127.0.0.1:0\"\n", 1)
	if err := os.WriteFile(p, []byte(withHealth), 0o644); err != nil {
		t.Fatal(err)
	}
	h := StartHupd(t, "run", "-c", p)
	addr := hlAddr(h)
	h.WaitEvent(logev.ChildStarted, 1, ofProgram("app"))
	h.WaitEvent(logev.ProgramWaiting, 1, ofProgram("web"))
	if code, body := hlGet(t, addr, "GET", "/readyz"); code != 503 || !strings.HasPrefix(body, "program app: ") {
		t.Fatalf("/readyz while app starts: %d %q, want 503 naming app", code, body)
	}
	hlExpect(t, addr, "/readyz?program=web", 503, "program web: waiting for app to be ready\n")
	open(appGate)
	h.WaitEvent(logev.ChildReady, 1, ofProgram("app"))
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")

	hlExpect(t, addr, "/readyz", 200, "ok")
	hlExpect(t, addr, "/readyz?program=web", 200, "ok")
	hlExpect(t, addr, "/readyz?program=app", 200, "ok")
	hlExpect(t, addr, "/readyz?program=db", 404, `no program "db"`)
	hlExpect(t, addr, "/livez", 200, "ok")
	m := hlExpectMetrics(t, addr, map[string]float64{
		"hupd_up": 1,
		`hupd_generation_starts_total{program="app"}`: 1,
		`hupd_generation_starts_total{program="web"}`: 1,
		`hupd_restarts_total{program="app"}`:          0,
		`hupd_restarts_total{program="web"}`:          0,
		`hupd_generations{program="app"}`:             1,
		`hupd_generations{program="web"}`:             1,
		`hupd_generation_starts_total`:                -1,
	})
	for k := range m {
		if k != "hupd_up" && !strings.Contains(k, `{program="app"`) && !strings.Contains(k, `{program="web"`) {
			t.Errorf("/metrics: %s has no program label first", k)
		}
	}
	if m[`hupd_current_generation{program="app"}`] < 1 || m[`hupd_current_generation{program="web"}`] < 1 {
		t.Fatalf("/metrics: current generations app %v, web %v; want each program's", m[`hupd_current_generation{program="app"}`], m[`hupd_current_generation{program="web"}`])
	}

	// web crashes; its restart is held at the gate: not ready.
	syscall.Kill(webPID, syscall.SIGKILL)
	h.WaitEvent(logev.RestartingChild, 1, ofProgram("web"))
	h.WaitEvent(logev.ChildStarted, 2, ofProgram("web"))
	code, body := hlGet(t, addr, "GET", "/readyz")
	if code != 503 || !strings.HasPrefix(body, "program web: ") || strings.Count(body, "\n") != 1 {
		t.Fatalf("/readyz while web restarts: %d %q, want 503 and one line naming web", code, body)
	}
	if code, body := hlGet(t, addr, "GET", "/readyz?program=web"); code != 503 || !strings.HasPrefix(body, "program web: ") {
		t.Fatalf("/readyz?program=web while web restarts: %d %q, want 503 naming web", code, body)
	}
	hlExpect(t, addr, "/readyz?program=app", 200, "ok")

	open(gate)
	h.WaitEvent(logev.ChildReady, 2, ofProgram("web"))
	hlExpect(t, addr, "/readyz", 200, "ok")
	hlExpectMetrics(t, addr, map[string]float64{
		"hupd_up":                                     1,
		`hupd_restarts_total{program="web"}`:          1,
		`hupd_restarts_total{program="app"}`:          0,
		`hupd_generation_starts_total{program="web"}`: 2,
		`hupd_generation_starts_total{program="app"}`: 1,
	})

	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d after TERM, want 0", code)
	}
}
