package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
)

// Issue 19: hupd upgrade (and SIGUSR2) with several programs: one exec for
// every program, each keeping its sockets and generations.

// ok is the number of requests l had answered so far.
func (l *swapLoad) ok() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res.OK
}

// fleetPIDs are the PIDs of every program's generations (instances
// included), by program.
func fleetPIDs(st map[string]control.ProgramReply) map[string][]int {
	out := map[string][]int{}
	for name, p := range st {
		if p.Status == nil {
			continue
		}
		for _, g := range p.Status.Generations {
			if len(g.Instances) == 0 {
				out[name] = append(out[name], g.PID)
			}
			for _, in := range g.Instances {
				out[name] = append(out[name], in.PID)
			}
		}
		slices.Sort(out[name])
	}
	return out
}

// fleetUpgradeFile is app (two instances) and web (after app, watching
// conf), both hello on a socket of their own.
func fleetUpgradeFile(t *testing.T, conf string) string {
	app, web := helloProgram("app"), helloProgram("web", "app")
	app.extra = "[program.process]\ninstances = 2\n"
	web.extra = "[[program.watch]]\npaths = [" + strconv.Quote(conf) + "]\ndebounce = \"20ms\"\n"
	return fleetFile(t, app, web)
}

// startFleetUpgrade runs bin on fleetUpgradeFile and waits for both
// programs to serve.
func startFleetUpgrade(t *testing.T, bin, conf string) *Hupd {
	t.Helper()
	if err := os.WriteFile(conf, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := StartHupdCmd(t, exec.Command(bin, withJSONLog([]string{"run", "-c", fleetUpgradeFile(t, conf)})...))
	h.WaitEvent(logev.ChildReady, 2, ofProgram("app"))
	h.WaitEvent(logev.ChildReady, 1, ofProgram("web"))
	h.WaitEvent(logev.Watching, 1, ofProgram("web"))
	return h
}

// TestMultiUpgradeUnderLoad: hupd upgrade of a hupd that runs two programs
// (app with two instances, web with a watch), under load through both
// (clients with a new connection per request and keep-alive ones), with
// the new version renamed over hupd's binary: no request fails; hupd's
// PID and every child's PID are the same; status shows both programs'
// generations, upgraded once, in the new version, and nothing of the
// hand-over is left open. Then both programs reload (web by its watch,
// app by hupd reload) and scale (web to 2, app to 3), SIGUSR2 upgrades again, and the sentinel,
// taken over, still guards both: kill -9 of hupd ends every child.
func TestMultiUpgradeUnderLoad(t *testing.T) {
	t.Parallel()
	v2, _ := upgradeBins(t)
	bin := linkedHupd(t)
	conf := filepath.Join(t.TempDir(), "web.conf")
	h := startFleetUpgrade(t, bin, conf)
	sentinel := sentinelPID(t, h)
	before := fleetStatus(t, h)
	pids := fleetPIDs(before)
	if len(pids["app"]) != 2 || len(pids["web"]) != 1 {
		t.Fatalf("before the upgrade: %v", pids)
	}
	appLoad := swapStartLoad(t, fleetAddr(h, "app"), 2, 2)
	webLoad := swapStartLoad(t, fleetAddr(h, "web"), 2, 2)
	appLoad.waitOK(t, 20, 0)
	webLoad.waitOK(t, 20, 0)

	renameOver(t, v2, bin)
	code, out, errOut := fleetCLI(t, h, "upgrade", "--name", "fleet")
	want := "upgrade ok: hupd pid " + strconv.Itoa(h.Cmd.Process.Pid) + " now runs 2.0-upgrade-test (was "
	if code != 0 || !strings.HasPrefix(out, want) || !strings.HasSuffix(out, ", 2 generation(s) kept\n") {
		t.Fatalf("hupd upgrade: exit %d: %q %q, want it to start %q and keep 2", code, out, errOut, want)
	}
	if e := h.WaitEvent(logev.Upgraded, 1, nil); e.Int("programs") != 2 || e.Int("upgrades") != 1 {
		t.Fatalf("%v", e)
	}
	for _, name := range []string{"app", "web"} {
		h.WaitEvent(logev.ProgramTakenOver, 1, ofProgram(name))
	}
	if e := h.WaitEvent(logev.SentinelTakenOver, 1, nil); e.Int("pid") != sentinel {
		t.Fatalf("upgraded: %v, want sentinel %d", e, sentinel)
	}
	// Served across the exec, by both.
	appLoad.waitOK(t, appLoad.ok()+20, 0)
	webLoad.waitOK(t, webLoad.ok()+20, 0)
	after := fleetStatus(t, h)
	if got := fleetPIDs(after); !slices.Equal(got["app"], pids["app"]) || !slices.Equal(got["web"], pids["web"]) {
		t.Fatalf("generations %v after the upgrade, want the same %v", got, pids)
	}
	for _, name := range []string{"app", "web"} {
		st := after[name].Status
		if after[name].State != control.ProgramRunning || st.PID != h.Cmd.Process.Pid || st.Version != "2.0-upgrade-test" || st.Upgrades != 1 {
			t.Fatalf("%s after the upgrade: %s pid %d version %q upgrades %d", name, after[name].State, st.PID, st.Version, st.Upgrades)
		}
	}
	if bad := leftovers(t, h.Cmd.Process.Pid); len(bad) > 0 {
		t.Errorf("left open by the upgrade: %v", bad)
	}

	// Both programs go on: web reloads on its watch, app on hupd reload,
	// and web scales.
	if err := os.WriteFile(conf, []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	newWeb := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("web", 2)).Int("pid")
	fleetOK(t, h, "reload", "app")
	h.WaitEvent(logev.ChildReady, 2, ofProgramGen("app", 2))
	if code, out, errOut := fleetCLI(t, h, "scale", "--name", "fleet", "--program", "web", "2"); code != 0 || !strings.HasPrefix(out, "scaled generation 2 from 1 to 2 instances") {
		t.Fatalf("hupd scale --program web 2: exit %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := fleetCLI(t, h, "scale", "--name", "fleet", "--program", "app", "3"); code != 0 || !strings.HasPrefix(out, "scaled generation 2 from 2 to 3 instances") {
		t.Fatalf("hupd scale --program app 3: exit %d: %s%s", code, out, errOut)
	}
	webLoad.waitOK(t, webLoad.ok()+20, newWeb)

	h.Signal(syscall.SIGUSR2)
	if e := h.WaitEvent(logev.Upgraded, 2, nil); e.Int("upgrades") != 2 {
		t.Fatalf("%v", e)
	}
	h.WaitEvent(logev.ControlSocket, 3, nil) // the third image's, listening
	appLoad.waitOK(t, appLoad.ok()+20, 0)
	webLoad.waitOK(t, webLoad.ok()+20, 0)
	swapNoFailures(t, appLoad.Stop(), 40)
	swapNoFailures(t, webLoad.Stop(), 40)

	final := fleetPIDs(fleetStatus(t, h))
	if len(final["app"]) != 3 || len(final["web"]) != 2 {
		t.Fatalf("after the second upgrade: %v", final)
	}
	kill9Gone(t, h, append(slices.Concat(final["app"], final["web"]), sentinel)...)
}

// TestMultiUpgradeRefused: a binary that is not a hupd, one that speaks
// the upgrade protocol but cannot take several programs over (an older
// hupd), and one that passes the checks but cannot take the state over
// (it goes back to the previous binary) all leave both programs serving
// under the old image, under load, with the same PIDs; the old image
// reloads both afterwards.
func TestMultiUpgradeRefused(t *testing.T) {
	t.Parallel()
	_, failing := upgradeBins(t)
	dir := t.TempDir()
	// An older hupd: it answers the upgrade protocol's plain version
	// whatever it is asked.
	src := filepath.Join(dir, "old.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hupd-upgrade 1\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "hupd-old")
	if out, err := exec.Command("go", "build", "-o", old, src).CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", old, err, out)
	}
	truth, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	h := startFleetUpgrade(t, hupdBin, filepath.Join(dir, "web.conf"))
	pids := fleetPIDs(fleetStatus(t, h))
	appLoad := swapStartLoad(t, fleetAddr(h, "app"), 2, 1)
	webLoad := swapStartLoad(t, fleetAddr(h, "web"), 2, 1)
	for _, tc := range []struct{ bin, says string }{
		{truth, "hupd: upgrade failed, hupd goes on as it was: " + truth + ` speaks "", this hupd "hupd-upgrade 1 programs": not compatible` + "\n"},
		{old, "hupd: upgrade failed, hupd goes on as it was: " + old + ` cannot take over several programs ([[program]]): it speaks "hupd-upgrade 1", not "hupd-upgrade 1 programs"` + "\n"},
		{failing, "hupd: upgrade failed: the new binary could not take over; the previous one took its state back (see hupd's log)\n"},
	} {
		code, out, errOut := fleetCLI(t, h, "upgrade", "--name", "fleet", "--binary", tc.bin)
		if code != 1 || out != "" || errOut != tc.says {
			t.Errorf("upgrade to %s: exit %d, stdout %q, stderr %q; want 1 and %q", tc.bin, code, out, errOut, tc.says)
		}
	}
	if e := h.WaitEvent(logev.UpgradeTakeOverFailed, 1, nil); !strings.Contains(e.Str("error"), "this-binary-refuses-to-take-over") {
		t.Fatalf("%v", e)
	}
	st := fleetStatus(t, h)
	if got := fleetPIDs(st); !slices.Equal(got["app"], pids["app"]) || !slices.Equal(got["web"], pids["web"]) {
		t.Fatalf("generations %v after the refused upgrades, want the same %v", got, pids)
	}
	for _, name := range []string{"app", "web"} {
		if s := st[name].Status; !s.RolledBack || s.Version == "failing" || s.Upgrades != 1 {
			t.Fatalf("%s after the rollback: rolled back %v version %q upgrades %d", name, s.RolledBack, s.Version, s.Upgrades)
		}
	}
	appLoad.waitOK(t, appLoad.ok()+20, 0)
	webLoad.waitOK(t, webLoad.ok()+20, 0)
	fleetOK(t, h, "reload")
	swapNoFailures(t, appLoad.Stop(), 20)
	swapNoFailures(t, webLoad.Stop(), 20)
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiUpgradeWhileWaiting: while a program waits for the program it
// starts after to be ready, hupd upgrade is refused in one line, and
// nothing changed.
func TestMultiUpgradeWhileWaiting(t *testing.T) {
	t.Parallel()
	// Never ready: it says nothing on its notify socket.
	slow := fleetProgram{name: "slow", command: []string{"sleep", "3600"}}
	h := startFleet(t, slow, helloProgram("web", "slow"))
	h.WaitEvent(logev.ProgramWaiting, 1, ofProgram("web"))
	pid := h.WaitEvent(logev.ChildStarted, 1, ofProgram("slow")).Int("pid")
	code, out, errOut := fleetCLI(t, h, "upgrade", "--name", "fleet")
	if want := "hupd: upgrade failed, hupd goes on as it was: program web waits for slow to be ready: try again once it runs\n"; code != 1 || out != "" || errOut != want {
		t.Fatalf("hupd upgrade: exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, want)
	}
	st := fleetStatus(t, h)
	if st["web"].State != control.ProgramWaiting || st["slow"].Status == nil || len(st["slow"].Status.Generations) != 1 ||
		st["slow"].Status.Generations[0].PID != pid || st["slow"].Status.Upgrades != 0 {
		t.Fatalf("after the refused upgrade: %+v", st)
	}
	if code := h.Stop(); code != 143 {
		t.Fatalf("hupd exited %d, want 143 (sleep ends by the TERM)", code)
	}
}

// TestMultiUpgradeEndedStaysEnded: a program that ended with on_exit
// "ignore" (exit 3) stays ended across the upgrade, not run again, and
// its code still counts: when the last program (ignored too) ends, hupd
// exits with the first non-zero code of them, once's 3.
func TestMultiUpgradeEndedStaysEnded(t *testing.T) {
	t.Parallel()
	const ignored = "on_exit = \"ignore\"\n[program.restart]\npolicy = \"never\"\n"
	once := onceProgram(ignored)
	web := helloProgram("web")
	web.extra = ignored
	h := startFleet(t, web, once)
	h.WaitEvent(logev.ProgramEnded, 1, ofProgram("once"))
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	if code, out, errOut := fleetCLI(t, h, "upgrade", "--name", "fleet"); code != 0 || !strings.HasSuffix(out, ", 1 generation(s) kept\n") {
		t.Fatalf("hupd upgrade: exit %d: %q %q", code, out, errOut)
	}
	h.WaitEvent(logev.Upgraded, 1, nil)
	h.WaitEvent(logev.ProgramStaysEnded, 1, ofProgram("once"))
	st := fleetStatus(t, h)
	if st["once"].State != control.ProgramEnded || st["web"].State != control.ProgramRunning || servingPID(st["web"]) != webPID {
		t.Fatalf("after the upgrade: once %q, web %q pid %d (want %d)", st["once"].State, st["web"].State, servingPID(st["web"]), webPID)
	}
	if got := fleetGet(t, fleetAddr(h, "web")); got != webPID {
		t.Fatalf("web answered by pid %d, want %d", got, webPID)
	}
	h.Sync()
	if n := len(h.Events(logev.ProgramStarting)); n != 2 {
		t.Fatalf("%d programs started, want web and once once each", n)
	}
	if err := syscall.Kill(webPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := h.Wait(); code != 3 {
		t.Fatalf("hupd exited %d, want once's 3 (nothing left to run, every end ignored)", code)
	}
}

// TestMultiUpgradeSentinel: the sentinel, taken over, guards both
// programs' generations after the upgrade: web (after app) reloads after
// it, and kill -9 of hupd then ends app's pre-fork generation handed over,
// workers included (the parent-death signal reaches the master only), and
// web's new one.
func TestMultiUpgradeSentinel(t *testing.T) {
	t.Parallel()
	h := startFleet(t, preforkProgram("app"), preforkProgram("web", "app"))
	app := sentReadPrefork(t, h)
	sentinel := sentinelPID(t, h)
	h.WaitEvent(logev.ChildReady, 1, ofProgram("web"))
	sentReadPrefork(t, h) // web's generation 1
	fleetOK(t, h, "upgrade")
	h.WaitEvent(logev.Upgraded, 1, nil)
	fleetOK(t, h, "reload", "web")
	web := sentReadPrefork(t, h)
	h.WaitEvent(logev.ChildExited, 1, ofProgramGen("web", 1))
	kill9Ends(t, h, sentinel, map[string]*sentPrefork{"app's generation": app, "web's generation 2": web})
}

// TestMultiUpgradeUnappliedConfig: while hupd.toml on disk is not the
// version in force (edited, not applied: --watch-config=false), hupd
// upgrade is refused in one line and nothing changes; once hupd reload
// applied it, the upgrade goes through and the new image runs it.
func TestMultiUpgradeUnappliedConfig(t *testing.T) {
	t.Parallel()
	app, web := helloProgram("app"), helloProgram("web", "app")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, web)
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	h.WaitEvent(logev.ChildReady, 1, ofProgram("web"))
	web.extra = "[program.process]\nenv = { EDITED = \"1\" }\n"
	rewriteFleet(t, path, app, web)
	code, out, errOut := fleetCLI(t, h, "upgrade", "--name", "fleet")
	if want := "hupd: upgrade failed, hupd goes on as it was: " + path + " is not the version in force (edited since): apply it with hupd reload, or undo the edit, then upgrade\n"; code != 1 || out != "" || errOut != want {
		t.Fatalf("hupd upgrade: exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, want)
	}
	fleetOK(t, h, "reload")
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("web", 2)).Int("pid")
	fleetOK(t, h, "upgrade")
	h.WaitEvent(logev.Upgraded, 1, nil)
	st := fleetStatus(t, h)
	if servingPID(st["app"]) != appPID || servingPID(st["web"]) != webPID {
		t.Fatalf("after the upgrade: app %d web %d, want %d and %d", servingPID(st["app"]), servingPID(st["web"]), appPID, webPID)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiUpgradePID1: as PID 1 of a PID namespace (no sentinel), SIGUSR2
// upgrades hupd with both programs: each is taken over, and TERM then
// stops both, exit 0.
func TestMultiUpgradePID1(t *testing.T) {
	h, hupdPID := procUnshare(t, "run", "-c", fleetFile(t, helloProgram("app"), helloProgram("web", "app")))
	app := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	web := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	procKill(t, hupdPID, syscall.SIGUSR2)
	if e := h.WaitEvent(logev.Upgraded, 1, nil); e.Int("programs") != 2 {
		t.Fatalf("%v", e)
	}
	for name, pid := range map[string]int{"app": app, "web": web} {
		if e := h.WaitEvent(logev.ProgramTakenOver, 1, ofProgram(name)); e.Int("generations") != 1 {
			t.Fatalf("%s: %v", name, e)
		}
		if got := fleetGet(t, fleetAddr(h, name)); got != pid {
			t.Fatalf("%s answered by pid %d after the upgrade, want %d", name, got, pid)
		}
	}
	procKill(t, hupdPID, syscall.SIGTERM)
	if code := h.Wait(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}
