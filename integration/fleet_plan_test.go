package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// TestMultiPlan: hupd plan against a hupd of several programs says, per
// program, what applying an edit of hupd.toml would do, changing nothing:
// app's env edited is changed with a new generation (swap) keeping its
// socket, web is unchanged, extra added opens its socket, and with web
// removed, web is removed and closes its socket once drained; --json
// gives the same as control.FleetPlan; a file given with -c is planned
// instead of hupd.toml; a file that resolves badly is one line naming
// hupd.toml and its line, exit 2. No program was reloaded. (hupd plan
// was refused with several programs.)
func TestMultiPlan(t *testing.T) {
	t.Parallel()
	app, web, extra := helloProgram("app"), helloProgram("web", "app"), helloProgram("extra", "app")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, web)
	h.WaitEvent(logev.ChildReady, 1, ofProgram("app"))
	h.WaitEvent(logev.ChildReady, 1, ofProgram("web"))
	appAddr := h.WaitEvent(logev.Listening, 1, ofProgram("app")).Str("address")
	webAddr := h.WaitEvent(logev.Listening, 1, ofProgram("web")).Str("address")

	code, out, errOut := fleetCLI(t, h, "plan", "-c", path)
	if code != 0 || out != "nothing to do: the running hupd already runs this configuration\n" {
		t.Fatalf("plan of the file in force: exit %d, stderr %q:\n%s", code, errOut, out)
	}

	app.extra = "[program.process]\nenv = { GREETING = \"edited\" }\n"
	rewriteFleet(t, path, app, web, extra)
	code, out, errOut = fleetCLI(t, h, "plan", "--name", "fleet")
	want := "program app: changed\n" +
		"  new generation: yes (swap), because these differ: env\n" +
		"  sockets:\n" +
		"    keep   http " + appAddr + "\n" +
		"program web: unchanged\n" +
		"program extra: added (it starts once the programs it starts after are ready)\n" +
		"  sockets:\n" +
		"    open   http tcp://127.0.0.1:0\n"
	if code != 0 || out != want {
		t.Fatalf("plan of the edit: exit %d, stderr %q:\n%s\nwant:\n%s", code, errOut, out, want)
	}
	code, out, errOut = fleetCLI(t, h, "plan", "--name", "fleet", "--json")
	var fp control.FleetPlan
	if err := json.Unmarshal([]byte(out), &fp); code != 0 || err != nil || len(fp.Programs) != 3 {
		t.Fatalf("plan --json: exit %d, %v, stderr %q:\n%s", code, err, errOut, out)
	}
	if p := fp.Programs[0]; p.Name != "app" || p.Change != control.ChangeChanged || p.State != control.ProgramRunning || p.Plan == nil || !p.Plan.NewGeneration || len(p.Plan.Keep) != 1 {
		t.Fatalf("plan --json, app: %+v", p)
	}
	if fp.Programs[1].Change != control.ChangeUnchanged || fp.Programs[2].Change != control.ChangeAdded {
		t.Fatalf("plan --json: %+v", fp.Programs)
	}

	// Another file, named with -c (it names the same hupd).
	other := filepath.Join(t.TempDir(), "other.toml")
	rewriteFleet(t, other, app)
	code, out, errOut = fleetCLI(t, h, "plan", "-c", other)
	if code != 0 || !strings.HasPrefix(out, "program app: changed\n") ||
		!strings.HasSuffix(out, "program web: removed (it stops as a stop signal stops it)\n  sockets:\n    close  http "+webAddr+" (once the generations using it have drained)\n") {
		t.Fatalf("plan -c other.toml: exit %d, stderr %q:\n%s", code, errOut, out)
	}

	// A file that resolves badly: one line naming hupd.toml's line.
	bad := fleetProgram{name: "web", after: []string{"nope"}, command: web.command, listen: true}
	rewriteFleet(t, path, app, bad)
	code, out, errOut = fleetCLI(t, h, "plan", "--name", "fleet")
	if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hupd: "+path+":") || !strings.Contains(errOut, "nope") {
		t.Fatalf("plan of a bad edit: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	h.Sync()
	for _, name := range []string{"app", "web"} {
		if n := countEvents(h, logev.ChildStarted, name); n != 1 {
			t.Fatalf("%s started %d children after the plans, want 1", name, n)
		}
	}
	if n := len(h.Events(logev.ProgramsReconfigured)); n != 0 {
		t.Fatalf("a plan applied hupd.toml (%d)", n)
	}
	os.Remove(other)
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiPlanWaiting: the plan of an edit of a program still waiting for
// the programs it starts after says it is changed, not started yet, and
// which of its sockets it keeps, opens and closes at once (it has no
// generation: its supervisor never ran, and planning does not ask it),
// and that its new cgroup mode applies live; nothing is applied. An edit
// of the cgroup mode alone is planned so too, and applied: the program
// starts without a cgroup (before, the plan said "unchanged", or "live"
// with other edits, and the program kept its cgroup).
func TestMultiPlanWaiting(t *testing.T) {
	t.Parallel()
	app, open := gatedProgram(t, "app")
	web := helloProgram("web", "app")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, web)
	webAddr := h.WaitEvent(logev.Listening, 1, ofProgram("web")).Str("address")
	h.WaitEvent(logev.ProgramWaiting, 1, ofProgram("web"))

	web.extra = "[program.process]\nenv = { GREETING = \"edited\" }\ncgroup = \"off\"\n[[program.listen]]\nname = \"admin\"\naddress = \"tcp://127.0.0.1:0\"\n"
	rewriteFleet(t, path, app, web)
	code, out, errOut := fleetCLI(t, h, "plan", "--name", "fleet")
	want := "program app: unchanged\n" +
		"program web: changed\n" +
		"  not started yet: it starts with the new settings\n" +
		"  sockets:\n" +
		"    open   admin tcp://127.0.0.1:0\n" +
		"    keep   http " + webAddr + "\n" +
		"  applies live: process.cgroup\n"
	if code != 0 || out != want {
		t.Fatalf("plan: exit %d, stderr %q:\n%s\nwant:\n%s", code, errOut, out, want)
	}
	h.Sync()
	if n := len(h.Events(logev.ProgramsReconfigured)); n != 0 {
		t.Fatalf("the plan applied hupd.toml (%d)", n)
	}
	// Only the cgroup mode edited: planned, then applied, alike.
	web.extra = "[program.process]\ncgroup = \"off\"\n"
	rewriteFleet(t, path, app, web)
	want = "program app: unchanged\n" +
		"program web: changed\n" +
		"  not started yet: it starts with the new settings\n" +
		"  sockets:\n" +
		"    keep   http " + webAddr + "\n" +
		"  applies live: process.cgroup\n"
	if code, out, errOut := fleetCLI(t, h, "plan", "--name", "fleet"); code != 0 || out != want {
		t.Fatalf("plan of the cgroup mode alone: exit %d, stderr %q:\n%s\nwant:\n%s", code, errOut, out, want)
	}
	fleetOK(t, h, "reload")
	open()
	h.WaitEvent(logev.ChildReady, 1, ofProgram("web"))
	st := fleetStatus(t, h)
	if c := st["app"].Status.Containment; c != nil && c.Mode == supervisor.ContainCgroup {
		// With cgroups here, web's edit took it out of them.
		if c := st["web"].Status.Containment; c == nil || c.Mode != supervisor.ContainProcessGroup {
			t.Fatalf("web, edited to cgroup = \"off\" while it waited, runs with %+v", c)
		}
	} else {
		t.Logf("no cgroups here (app: %+v): web's cgroup mode not checked", c)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiPlanRemovedHoldsSockets: the plan of removing a running program
// lists every socket its supervisor holds: the one an edit added, and the
// one that edit dropped, which its draining generation still uses (it
// ignores TERM); both close once the generations using them have drained.
// (The plan listed the fleet's record of the sockets in force: the dropped
// one was missing.)
func TestMultiPlanRemovedHoldsSockets(t *testing.T) {
	t.Parallel()
	first := filepath.Join(t.TempDir(), "first")
	app := helloProgram("app")
	web := fleetProgram{name: "web", after: []string{"app"}, ready: "delay:10ms", listen: true,
		// Generation 1 ignores TERM: it drains until killed. Those after
		// it stop on TERM.
		command: []string{"/bin/sh", "-c", "if mkdir " + first + " 2>/dev/null; then trap '' TERM; exec sleep 600; fi; trap 'exit 0' TERM; sleep 600 & wait"},
		extra:   "[program.process]\nstop_timeout = \"5m\"\n"}
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, web)
	pid1 := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	httpAddr := h.WaitEvent(logev.Listening, 1, ofProgram("web")).Str("address")

	// http dropped, admin added: a swap, generation 1 drains on http.
	web.listen = false
	web.extra += "[[program.listen]]\nname = \"admin\"\naddress = \"unix://" + filepath.Join(t.TempDir(), "admin.sock") + "\"\n"
	rewriteFleet(t, path, app, web)
	fleetOK(t, h, "reload")
	adminAddr := h.WaitEvent(logev.Listening, 2, ofProgram("web")).Str("address")
	h.WaitEvent(logev.Draining, 1, ofProgram("web"))

	other := filepath.Join(t.TempDir(), "other.toml")
	rewriteFleet(t, other, app)
	code, out, errOut := fleetCLI(t, h, "plan", "--name", "fleet", "-c", other)
	want := "program web: removed (it stops as a stop signal stops it)\n  sockets:\n" +
		"    close  admin " + adminAddr + " (once the generations using it have drained)\n" +
		"    close  http " + httpAddr + " (once the generations using it have drained)\n"
	if code != 0 || !strings.HasSuffix(out, want) {
		t.Fatalf("plan of web's removal: exit %d, stderr %q:\n%s\nwant it to end with:\n%s", code, errOut, out, want)
	}
	if err := syscall.Kill(pid1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.WaitEvent(logev.ChildExited, 1, ofProgram("web"))
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}
