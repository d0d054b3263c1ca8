package integration

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
)

// TestMultiNeverStarted: a program that never starts (the program it
// starts after ended, ignored, before it was ready) answers hupd status as
// ended, its sockets close at once (a client is refused, not queued for
// nobody), a reload of every program leaves it out and succeeds, and hupd
// stops cleanly leaving no socket file.
func TestMultiNeverStarted(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "web.sock")
	app := fleetProgram{name: "app", command: childCmd("exit", "4"),
		extra: "on_exit = \"ignore\"\n[program.restart]\npolicy = \"never\"\n"}
	web := helloProgram("web", "app")
	web.extra = "[[program.listen]]\nname = \"u\"\naddress = \"unix://" + sock + "\"\n"
	h := startFleet(t, app, web, helloProgram("other"))
	h.WaitEvent(logev.ProgramNotStarted, 1, ofProgram("web"))
	h.WaitEvent(logev.ChildReady, 1, ofProgram("other"))
	if st := fleetStatus(t, h); st["web"].State != control.ProgramEnded || st["web"].Status != nil || st["other"].State != control.ProgramRunning {
		t.Fatalf("status: web %+v, other %q", st["web"], st["other"].State)
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		t.Fatalf("a never-started program's socket accepts connections")
	}
	fleetOK(t, h, "reload", "-q")
	if code, _, errOut := fleetCLI(t, h, "scale", "--name", "fleet", "--program", "web", "2"); code == 0 {
		t.Fatalf("scale of a program that never started: exit 0 (%s)", errOut)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d after TERM, want 0 (app's 4 is ignored)", code)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("the never-started program's socket file is left: %v", err)
	}
}

// TestMultiReloadTimeout: hupd reload --timeout with several programs
// exits 3 ("the reload goes on") when the wait ends first, as it does for
// one program, not 1.
func TestMultiReloadTimeout(t *testing.T) {
	t.Parallel()
	// A program that says nothing on NOTIFY_SOCKET: ready 3 s after it starts.
	slow := fleetProgram{name: "slow", command: []string{"sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"}, ready: "delay:3s"}
	h := startFleet(t, slow, helloProgram("web"))
	h.WaitEvent(logev.ChildReady, 1, ofProgram("slow"))
	code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet", "-q", "--timeout", "200ms", "slow")
	if code != 3 {
		t.Fatalf("reload --timeout 200ms of a program 3 s to ready: exit %d, want 3: %s%s", code, out, errOut)
	}
	h.WaitEvent(logev.ChildReady, 1, ofProgramGen("slow", 2))
}

// TestMultiNeverStartedFixedByEdit: a program that never started (the
// program it starts after ended first) starts once an edit of hupd.toml
// fixes that program: an edit replaces a program that never ran.
func TestMultiNeverStartedFixedByEdit(t *testing.T) {
	t.Parallel()
	app := fleetProgram{name: "app", command: childCmd("exit", "4"),
		extra: "on_exit = \"ignore\"\n[program.restart]\npolicy = \"never\"\n"}
	web := helloProgram("web", "app")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, web, helloProgram("other"))
	h.WaitEvent(logev.ProgramNotStarted, 1, ofProgram("web"))
	fixed := helloProgram("app")
	fixed.extra = app.extra
	rewriteFleet(t, path, fixed, web, helloProgram("other"))
	fleetOK(t, h, "reload", "-q")
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	// Its socket is a new one (the one it never used closed): port 0 again.
	if got := fleetGet(t, HostPort(fleetStatus(t, h)["web"].Status.Listeners[0].Address)); got != webPID {
		t.Fatalf("web answered by pid %d, want %d", got, webPID)
	}
}
