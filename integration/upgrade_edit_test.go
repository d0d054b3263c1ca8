package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// A hupd.toml saved in the instant between an upgrade's last check that
// the file is the version in force and the exec: the new image takes over
// what ran, resolved from the version in force that the state carries,
// then applies the file as an edit (as hupd reload or the watcher would).
// hupd-editseam is built with run.editSuffix: right before its exec, it
// renames hupd.toml+editSuffix, when there is one, over hupd.toml.

// editSuffix is the suffix hupd-editseam is built with.
const editSuffix = ".at-exec"

var (
	editSeamOnce sync.Once
	editSeam     string
	editSeamErr  error
)

// editSeamBin builds hupd-editseam once.
func editSeamBin(t *testing.T) string {
	t.Helper()
	editSeamOnce.Do(func() {
		editSeam = filepath.Join(filepath.Dir(hupdBin), "hupd-editseam")
		cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-ldflags",
			"-X github.com/hupd/hupd/internal/run.editSuffix="+editSuffix, "-o", editSeam, "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			editSeamErr = &buildError{editSeam, err, string(out)}
		}
	})
	if editSeamErr != nil {
		t.Fatal(editSeamErr)
	}
	return editSeam
}

// editAtExec writes data as the hupd.toml (path) the next upgrade's exec
// puts in place.
func editAtExec(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+editSuffix, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fleetFileData is the content of a hupd.toml with progs.
func fleetFileData(t *testing.T, progs ...fleetProgram) []byte {
	t.Helper()
	data, err := os.ReadFile(fleetFile(t, progs...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMultiUpgradeEditAtExec: hupd.toml replaced right before an upgrade's
// exec, with app (swap) and web (strategy signal), three upgrades in a row:
// (a) an invalid file: the upgrade goes through, app and web go on serving
// with the same PIDs, the file is refused in one log line, and hupd reload
// says why; (b) web's command changed: web is replaced (a new PID), not
// only signalled; (c) a program added: it starts. Before, (a) made the
// new image exit (every child with it) and (b) only signalled web.
func TestMultiUpgradeEditAtExec(t *testing.T) {
	t.Parallel()
	bin := editSeamBin(t)
	app, web := helloProgram("app"), helloProgram("web", "app")
	web.strategy = "signal"
	path := fleetFile(t, app, web)
	h := StartHupdCmd(t, exec.Command(bin, withJSONLog([]string{"run", "-c", path, "--watch-config=false"})...))
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	appAddr, webAddr := fleetAddr(h, "app"), fleetAddr(h, "web")

	// (a) An invalid file.
	bad := web
	bad.after = []string{"nope"}
	editAtExec(t, path, fleetFileData(t, app, bad))
	fleetOK(t, h, "upgrade")
	h.WaitEvent(logev.Upgraded, 1, nil)
	h.WaitEvent(logev.ConfigChangedDuringUpgrade, 1, nil)
	if e := h.WaitEvent(logev.ConfigNotApplied, 1, nil); !strings.Contains(e.Str("error"), `"nope"`) {
		t.Fatalf("config not applied: %v", e)
	}
	if got, want := [2]int{fleetGet(t, appAddr), fleetGet(t, webAddr)}, [2]int{appPID, webPID}; got != want {
		t.Fatalf("after the upgrade with an invalid hupd.toml: app and web answer by %v, want %v", got, want)
	}
	code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet")
	if code == 0 || out != "" || !strings.Contains(errOut, "hupd.toml not applied, nothing changed") || !strings.Contains(errOut, `"nope"`) {
		t.Fatalf("hupd reload (invalid): exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The take-over's record and the reload's: the reload's answer may
	// reach the client before hupd's log line does, so wait for it.
	h.WaitEvent(logev.ConfigNotApplied, 2, nil)
	rewriteFleet(t, path, app, web) // back to what runs, applied: upgrades go through again
	fleetOK(t, h, "reload")
	st := fleetStatus(t, h)
	if servingPID(st["app"]) != appPID || servingPID(st["web"]) != webPID {
		t.Fatalf("after the invalid edit was undone: app %d web %d, want %d and %d", servingPID(st["app"]), servingPID(st["web"]), appPID, webPID)
	}

	// (b) web's command changed: strategy signal only signals web at a
	// reload, but a new command needs a new process.
	edited := web
	edited.command = []string{helloBin, "-grace", "9s"}
	editAtExec(t, path, fleetFileData(t, app, edited))
	fleetOK(t, h, "upgrade")
	h.WaitEvent(logev.Upgraded, 2, nil)
	h.WaitEvent(logev.ConfigChangedDuringUpgrade, 2, nil)
	newWeb := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("web", 2)).Int("pid")
	h.WaitEvent(logev.ChildExited, 1, ofProgramGen("web", 1)) // the old one no longer accepts
	if newWeb == webPID || fleetGet(t, webAddr) != newWeb {
		t.Fatalf("web after its command changed: pid %d (before %d), answers by %d", newWeb, webPID, fleetGet(t, webAddr))
	}
	if got := fleetGet(t, appAddr); got != appPID {
		t.Fatalf("app, unchanged, answers by %d, want %d", got, appPID)
	}

	// (c) A program added.
	extra := helloProgram("extra")
	editAtExec(t, path, fleetFileData(t, app, edited, extra))
	fleetOK(t, h, "upgrade")
	h.WaitEvent(logev.Upgraded, 3, nil)
	h.WaitEvent(logev.ConfigChangedDuringUpgrade, 3, nil)
	extraPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("extra")).Int("pid")
	if got := fleetGet(t, fleetAddr(h, "extra")); got != extraPID {
		t.Fatalf("extra answers by %d, want %d", got, extraPID)
	}
	st = fleetStatus(t, h)
	if servingPID(st["app"]) != appPID || servingPID(st["web"]) != newWeb {
		t.Fatalf("after extra was added: app %d web %d, want %d and %d", servingPID(st["app"]), servingPID(st["web"]), appPID, newWeb)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestUpgradeEditAtExec: one program, an invalid hupd.toml replaced right
// before the upgrade's exec: the upgrade goes through, the generation
// goes on serving, the file is refused in one log line, and hupd reload
// says why. Before, the new image could not resolve it and exited, its
// child with it.
func TestUpgradeEditAtExec(t *testing.T) {
	t.Parallel()
	bin := editSeamBin(t)
	cfg := filepath.Join(t.TempDir(), "hupd.toml")
	body := func(timeout string) []byte {
		return []byte("command = [\"" + helloBin + "\"]\n[[listen]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:0\"\n[process]\nstop_timeout = \"" + timeout + "\"\n")
	}
	if err := os.WriteFile(cfg, body("10s"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := StartHupdCmd(t, exec.Command(bin, withJSONLog([]string{"run", "-c", cfg, "--watch-config=false"})...))
	pid := h.WaitEvent(logev.ChildReady, 1, nil).Int("pid")
	addr := HostPort(h.WaitEvent(logev.Listening, 1, nil).Str("address"))
	editAtExec(t, cfg, body("soon"))
	if out, code := hupdCtl(t, h, "upgrade"); code != 0 {
		t.Fatalf("upgrade: %d %s", code, out)
	}
	h.WaitEvent(logev.Upgraded, 1, nil)
	h.WaitEvent(logev.ConfigChangedDuringUpgrade, 1, nil)
	if e := h.WaitEvent(logev.ConfigNotApplied, 1, nil); !strings.Contains(e.Str("error"), "soon") {
		t.Fatalf("config not applied: %v", e)
	}
	if got := fleetGet(t, addr); got != pid {
		t.Fatalf("after the upgrade, answered by pid %d, want %d", got, pid)
	}
	out, code := hupdCtl(t, h, "reload")
	if code == 0 || !strings.Contains(out, "soon") {
		t.Fatalf("hupd reload (invalid): exit %d %q", code, out)
	}
	if err := os.WriteFile(cfg, body("10s"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := hupdCtl(t, h, "reload"); code != 0 {
		t.Fatalf("reload once undone: %d %s", code, out)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}
