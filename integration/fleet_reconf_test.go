package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// Issue 19: edits of hupd.toml apply per program while hupd runs: a
// changed program reloads alone, an added one starts, a removed one stops,
// and an invalid file changes nothing.

// startFleetFile writes a hupd.toml with progs, runs hupd on it with args
// and returns hupd and the file's path.
func startFleetFile(t *testing.T, args []string, progs ...fleetProgram) (*Hupd, string) {
	t.Helper()
	path := fleetFile(t, progs...)
	return StartHupd(t, append([]string{"run", "-c", path}, args...)...), path
}

// rewriteFleet writes a hupd.toml with progs over path.
func rewriteFleet(t *testing.T, path string, progs ...fleetProgram) {
	t.Helper()
	data, err := os.ReadFile(fleetFile(t, progs...))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// environ is process pid's environment.
func environ(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\x00")
}

// countEvents counts the events msg of program name.
func countEvents(h *Hupd, msg, name string) int {
	n := 0
	for _, e := range h.Events(msg) {
		if ofProgram(name)(e) {
			n++
		}
	}
	return n
}

// TestMultiEditChangeOne: an edit of one program's env applied by hupd
// reload reloads that program alone: it swaps to a generation with the
// new environment, serving on the socket it had, while the other keeps
// its PID and counts no reload; then an edit of the other applied by
// SIGHUP reloads that one alone.
func TestMultiEditChangeOne(t *testing.T) {
	t.Parallel()
	app, web := helloProgram("app"), helloProgram("web", "app")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, web)
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	webAddr, appAddr := fleetAddr(h, "web"), fleetAddr(h, "app")

	web.extra = "[program.process]\nenv = { GREETING = \"edited\" }\n"
	rewriteFleet(t, path, app, web)
	code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet")
	if code != 0 || !strings.Contains(out, "web: reload ok (swap): gen 1 pid") || !strings.Contains(out, "app: not reloaded: unchanged in hupd.toml\n") {
		t.Fatalf("hupd reload: exit %d, stderr %q:\n%s", code, errOut, out)
	}
	newWeb := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("web", 2)).Int("pid")
	if newWeb == webPID || !strings.Contains(strings.Join(environ(t, newWeb), "\n"), "GREETING=edited") {
		t.Fatalf("web's gen 2 (pid %d, gen 1 %d) lacks GREETING=edited", newWeb, webPID)
	}
	h.WaitEvent(logev.ChildExited, 1, ofProgramGen("web", 1))
	if got := fleetGet(t, webAddr); got != newWeb {
		t.Fatalf("web's socket answered by pid %d, want gen 2's %d", got, newWeb)
	}
	st := fleetStatus(t, h)
	if servingPID(st["app"]) != appPID || st["app"].Status.Reloads != 0 || !processAlive(appPID) {
		t.Fatalf("app after web's edit: serving pid %d (want %d), %d reloads", servingPID(st["app"]), appPID, st["app"].Status.Reloads)
	}
	h.Sync()
	if n := countEvents(h, logev.ChildStarted, "app"); n != 1 {
		t.Fatalf("app started %d children, want 1", n)
	}

	// SIGHUP applies the next edit: app's alone.
	app.extra = "[program.process]\nenv = { GREETING = \"app\" }\n"
	rewriteFleet(t, path, app, web)
	h.Signal(syscall.SIGHUP)
	newApp := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("app", 2)).Int("pid")
	h.WaitEvent(logev.ChildExited, 1, ofProgramGen("app", 1))
	if got := fleetGet(t, appAddr); got != newApp {
		t.Fatalf("app's socket answered by pid %d, want gen 2's %d", got, newApp)
	}
	if got := servingPID(fleetStatus(t, h)["web"]); got != newWeb {
		t.Fatalf("web serves with pid %d after app's edit, want %d", got, newWeb)
	}
	h.Sync()
	if n := countEvents(h, logev.ChildStarted, "web"); n != 2 {
		t.Fatalf("web started %d children, want 2", n)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiEditAddRemove: a program added to hupd.toml starts (after the
// one it names) and serves on a socket of its own; one removed stops, its
// socket refuses connections afterwards, its end does not stop hupd
// (on_exit is stop-all), and it leaves status; the others keep their PIDs.
func TestMultiEditAddRemove(t *testing.T) {
	t.Parallel()
	app, web, extra := helloProgram("app"), helloProgram("web", "app"), helloProgram("extra", "app")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, web)
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	webAddr := fleetAddr(h, "web")

	rewriteFleet(t, path, app, web, extra)
	code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet")
	if code != 0 || !strings.Contains(out, "extra: added by hupd.toml") {
		t.Fatalf("hupd reload (extra added): exit %d, stderr %q:\n%s", code, errOut, out)
	}
	extraPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("extra")).Int("pid")
	extraAddr := fleetAddr(h, "extra")
	if extraAddr == webAddr || extraAddr == fleetAddr(h, "app") {
		t.Fatalf("extra listens on %s, another program's address", extraAddr)
	}
	if got := fleetGet(t, extraAddr); got != extraPID {
		t.Fatalf("extra's socket answered by pid %d, want %d", got, extraPID)
	}
	st := fleetStatus(t, h)
	if len(st) != 3 || servingPID(st["app"]) != appPID || servingPID(st["web"]) != webPID || servingPID(st["extra"]) != extraPID {
		t.Fatalf("status after adding extra: %+v", st)
	}

	rewriteFleet(t, path, app, extra)
	code, out, errOut = fleetCLI(t, h, "reload", "--name", "fleet")
	if code != 0 || strings.Contains(out, "web") {
		t.Fatalf("hupd reload (web removed): exit %d, stderr %q:\n%s", code, errOut, out)
	}
	h.WaitEvent(logev.ProgramRemoving, 1, ofProgram("web"))
	h.WaitEvent(logev.ProgramRemoved, 1, ofProgram("web"))
	if processAlive(webPID) {
		t.Fatalf("web's pid %d runs after its removal", webPID)
	}
	if c, err := net.Dial("tcp", webAddr); err == nil {
		c.Close()
		t.Fatalf("web's socket %s accepts connections after its removal", webAddr)
	}
	st = fleetStatus(t, h) // hupd runs on
	if _, ok := st["web"]; ok || len(st) != 2 || servingPID(st["app"]) != appPID || servingPID(st["extra"]) != extraPID {
		t.Fatalf("status after removing web: %+v", st)
	}
	if got := fleetGet(t, extraAddr); got != extraPID {
		t.Fatalf("extra's socket answered by pid %d, want %d", got, extraPID)
	}
	h.Sync()
	if n := len(h.Events(logev.StoppingPrograms)); n != 0 {
		t.Fatalf("web's removal stopped every program (%d)", n)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiEditInvalid: an invalid edit (after naming no program) changes
// nothing: hupd reload reports it and exits non-zero, SIGHUP reloads
// nothing, and every program keeps its PID; once the file is fixed, the
// next reload applies it.
func TestMultiEditInvalid(t *testing.T) {
	t.Parallel()
	app, web := helloProgram("app"), helloProgram("web", "app")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, web)
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")

	bad := web
	bad.after = []string{"nope"}
	bad.extra = "[program.process]\nenv = { GREETING = \"edited\" }\n"
	rewriteFleet(t, path, app, bad)
	code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet")
	if code == 0 || out != "" || !strings.Contains(errOut, "hupd.toml not applied, nothing changed") || !strings.Contains(errOut, `"nope"`) || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("hupd reload (invalid): exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if e := h.WaitEvent(logev.ConfigNotApplied, 1, nil); !strings.Contains(e.Str("error"), `"nope"`) {
		t.Fatalf("config not applied: %v", e)
	}
	h.Signal(syscall.SIGHUP)
	h.WaitEvent(logev.ReloadRefusedInvalid, 1, nil)
	st := fleetStatus(t, h)
	if servingPID(st["app"]) != appPID || servingPID(st["web"]) != webPID || st["app"].Status.Reloads+st["web"].Status.Reloads != 0 {
		t.Fatalf("an invalid edit changed something: %+v", st)
	}

	rewriteFleet(t, path, app, web) // back to what runs: nothing to apply
	code, out, errOut = fleetCLI(t, h, "reload", "--name", "fleet", "web")
	if code != 0 || !strings.HasPrefix(out, "web: reload ok") {
		t.Fatalf("hupd reload web: exit %d, stderr %q:\n%s", code, errOut, out)
	}
	if got := servingPID(fleetStatus(t, h)["app"]); got != appPID {
		t.Fatalf("app serves with pid %d, want %d", got, appPID)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiEditWatched: with watch_config (the default), saving hupd.toml
// applies it: a program added starts and serves, without a reload.
func TestMultiEditWatched(t *testing.T) {
	t.Parallel()
	app, extra := helloProgram("app"), helloProgram("extra", "app")
	h, path := startFleetFile(t, nil, app)
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	h.WaitEvent(logev.Watching, 1, nil)

	rewriteFleet(t, path, app, extra)
	h.WaitEvent(logev.ProgramsReconfigured, 1, nil)
	extraPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("extra")).Int("pid")
	if got := fleetGet(t, fleetAddr(h, "extra")); got != extraPID {
		t.Fatalf("extra's socket answered by pid %d, want %d", got, extraPID)
	}
	if got := servingPID(fleetStatus(t, h)["app"]); got != appPID {
		t.Fatalf("app serves with pid %d, want %d", got, appPID)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiEditHealth: the one health endpoint follows the edits: a
// removed program no longer counts (/readyz 200 once it ended, 404 for
// its name), an added one does (?program=NAME 200 once it is ready).
func TestMultiEditHealth(t *testing.T) {
	t.Parallel()
	app, web, extra := helloProgram("app"), helloProgram("web", "app"), helloProgram("extra")
	withHealth := func(path string) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(src), "name = \"fleet\"\n", "name = \"fleet\"\n\n[health]\naddress = \"127.0.0.1:0\"\n", 1)
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := fleetFile(t, app, web)
	withHealth(path)
	h := StartHupd(t, "run", "-c", path, "--watch-config=false")
	addr := hlAddr(h)
	h.WaitEvent(logev.ChildReady, 1, ofProgram("web"))
	hlExpect(t, addr, "/readyz", 200, "ok")

	rewriteFleet(t, path, app, extra)
	withHealth(path)
	fleetOK(t, h, "reload")
	h.WaitEvent(logev.ProgramRemoved, 1, ofProgram("web"))
	h.WaitEvent(logev.ChildReady, 1, ofProgram("extra"))
	hlExpect(t, addr, "/readyz?program=web", 404, `no program "web"`)
	hlExpect(t, addr, "/readyz?program=extra", 200, "ok")
	hlExpect(t, addr, "/readyz", 200, "ok")
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiEditAddressInUse: an edit whose new address for web is in use
// is applied to app (its env) and refused for web, which serves on as it
// was: hupd reload says so and exits 1. Once the address is free, the next
// reload applies web's part: it serves on the new address.
func TestMultiEditAddressInUse(t *testing.T) {
	t.Parallel()
	app, web := helloProgram("app"), helloProgram("web", "app")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, web)
	h.WaitEvent(logev.ChildReady, 1, ofProgram("app"))
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	webAddr := fleetAddr(h, "web")

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	app.extra = "[program.process]\nenv = { GREETING = \"app\" }\n"
	web.listen = false
	web.extra = "[[program.listen]]\nname = \"http\"\naddress = \"tcp://" + taken.Addr().String() + "\"\n"
	rewriteFleet(t, path, app, web)
	code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet")
	if code != 1 || !strings.Contains(errOut, "hupd.toml applied but for: program web: ") || !strings.Contains(errOut, taken.Addr().String()) {
		t.Fatalf("hupd reload (web's address in use): exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	newApp := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("app", 2)).Int("pid")
	if !strings.Contains(strings.Join(environ(t, newApp), "\n"), "GREETING=app") {
		t.Fatalf("app's gen 2 lacks GREETING=app")
	}
	if got := fleetGet(t, webAddr); got != webPID {
		t.Fatalf("web's socket answered by pid %d, want %d (unchanged)", got, webPID)
	}

	taken.Close()
	code, out, errOut = fleetCLI(t, h, "reload", "--name", "fleet")
	if code != 0 || !strings.Contains(out, "web: reload ok") || !strings.Contains(out, "app: not reloaded") {
		t.Fatalf("hupd reload (address free): exit %d, stderr %q:\n%s", code, errOut, out)
	}
	newWeb := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("web", 2)).Int("pid")
	if got := fleetGet(t, taken.Addr().String()); got != newWeb {
		t.Fatalf("web's new address answered by pid %d, want gen 2's %d", got, newWeb)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// gatedProgram is a hello program that waits, before it execs hello,
// until open is called (a line on a fifo): until then it is not ready,
// and a program after it waits.
func gatedProgram(t *testing.T, name string) (p fleetProgram, open func()) {
	t.Helper()
	gate := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	p = helloProgram(name)
	p.command = []string{"sh", "-c", "read x < " + gate + "; exec " + helloBin + " -grace 10s"}
	return p, func() {
		t.Helper()
		g, err := os.OpenFile(gate, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		g.WriteString("go\n")
		g.Close()
	}
}

// TestMultiEditWaiting: an edit of a program that waits for the programs
// it starts after is applied before it starts (the reload of every program
// says it is not running, which is no failure): once app is ready, web
// starts with its new environment, on its socket as first bound.
func TestMultiEditWaiting(t *testing.T) {
	t.Parallel()
	app, open := gatedProgram(t, "app")
	web := helloProgram("web", "app")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, web)
	webAddr := fleetAddr(h, "web")
	h.WaitEvent(logev.ProgramWaiting, 1, ofProgram("web"))

	web.extra = "[program.process]\nenv = { GREETING = \"edited\" }\n"
	rewriteFleet(t, path, app, web)
	code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet")
	if code != 0 || out != "app: not reloaded: unchanged in hupd.toml\nweb: not reloaded: it is not running (waiting)\n" || errOut != "" {
		t.Fatalf("hupd reload (web waiting): exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	open()
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	if !strings.Contains(strings.Join(environ(t, webPID), "\n"), "GREETING=edited") {
		t.Fatalf("web (pid %d) started without its edited environment", webPID)
	}
	if got := fleetGet(t, webAddr); got != webPID {
		t.Fatalf("web's socket answered by pid %d, want %d", got, webPID)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}
