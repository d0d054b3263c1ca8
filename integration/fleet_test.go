package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// Issue 19, step 2: several programs ([[program]] tables) in one hupd,
// each under a supervisor of its own, with real processes (hello).

// fleetProgram is one [[program]] table of a test's hupd.toml.
type fleetProgram struct {
	name    string
	after   []string
	command []string
	extra   string // more TOML for the program's table (its sub-tables last)
	ready   string // [program.reload] ready; "" is notify
	// strategy is [program.reload] strategy; "" is swap.
	strategy string
	listen   bool // a [[program.listen]] named http on tcp://127.0.0.1:0
}

// tomlStrings writes ss as a TOML array.
func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// startFleet writes a hupd.toml with progs and runs hupd on it.
func startFleet(t *testing.T, progs ...fleetProgram) *Hupd {
	t.Helper()
	return StartHupd(t, "run", "-c", fleetFile(t, progs...))
}

// fleetFile writes a hupd.toml with progs and returns its path.
func fleetFile(t *testing.T, progs ...fleetProgram) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("name = \"fleet\"\n")
	for _, p := range progs {
		fmt.Fprintf(&b, "\n[[program]]\nname = %q\ncommand = %s\n", p.name, tomlStrings(p.command))
		if len(p.after) > 0 {
			fmt.Fprintf(&b, "after = %s\n", tomlStrings(p.after))
		}
		b.WriteString(p.extra)
		if p.listen {
			b.WriteString("[[program.listen]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:0\"\n")
		}
		ready := p.ready
		if ready == "" {
			ready = "notify"
		}
		strategy := p.strategy
		if strategy == "" {
			strategy = "swap"
		}
		fmt.Fprintf(&b, "[program.reload]\nstrategy = %q\nready = %q\n", strategy, ready)
	}
	p := filepath.Join(t.TempDir(), "hupd.toml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ofProgram matches the events about program name.
func ofProgram(name string) func(Event) bool {
	return func(e Event) bool { return e.Str(supervisor.KeyProgram) == name }
}

// ofProgramGen matches the events about generation gen of program name.
func ofProgramGen(name string, gen int) func(Event) bool {
	return func(e Event) bool { return e.Str(supervisor.KeyProgram) == name && e.Int("gen") == gen }
}

// fleetAddr is the address of program name's http socket.
func fleetAddr(h *Hupd, name string) string {
	h.t.Helper()
	return HostPort(h.WaitEvent(logev.Listening, 1, ofProgram(name)).Str("address"))
}

// fleetGet fetches / from addr and returns the PID hello answers with.
func fleetGet(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %q %v", addr, resp.StatusCode, body, err)
	}
	var pid int
	if _, err := fmt.Sscanf(string(body), "pid %d", &pid); err != nil {
		t.Fatalf("GET %s: %q: %v", addr, body, err)
	}
	return pid
}

// fleetCLI runs a hupd client command against h and returns its exit
// code, stdout and stderr.
func fleetCLI(t *testing.T, h *Hupd, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(hupdBin, args...)
	cmd.Env = h.Cmd.Env // the same private runtime directory
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// fleetOK runs hupd's client command args against h's fleet (--name
// fleet added) and fails t unless it exits 0.
func fleetOK(t *testing.T, h *Hupd, args ...string) {
	t.Helper()
	code, out, errOut := fleetCLI(t, h, append(args[:len(args):len(args)], "--name", "fleet")...)
	if code != 0 {
		t.Fatalf("hupd %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
	}
}

// fleetStatus is every program's status (hupd status --json) of the hupd
// which names (--name fleet when none).
func fleetStatus(t *testing.T, h *Hupd, which ...string) map[string]control.ProgramReply {
	t.Helper()
	if which == nil {
		which = []string{"--name", "fleet"}
	}
	code, out, errOut := fleetCLI(t, h, append(append([]string{"status"}, which...), "--json")...)
	if code != 0 {
		t.Fatalf("hupd status --json: exit %d: %s", code, errOut)
	}
	var st struct {
		Programs []control.ProgramReply `json:"programs"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("hupd status --json: %v: %s", err, out)
	}
	m := map[string]control.ProgramReply{}
	for _, p := range st.Programs {
		m[p.Name] = p
	}
	return m
}

// servingPID is the PID of the ready generation of a program's status.
func servingPID(p control.ProgramReply) int {
	if p.Status == nil {
		return 0
	}
	for _, g := range p.Status.Generations {
		if g.State == "ready" {
			return g.PID
		}
	}
	return 0
}

// helloProgram is hello serving on an http socket of its own.
func helloProgram(name string, after ...string) fleetProgram {
	return fleetProgram{name: name, after: after, command: []string{helloBin, "-grace", "10s"}, listen: true}
}

// onceProgram is "once", after web: it exits 3 as soon as it runs; extra
// is more TOML for its table.
func onceProgram(extra string) fleetProgram {
	return fleetProgram{name: "once", after: []string{"web"}, command: childCmd("exit", "3"), ready: "delay:10ms", extra: extra}
}

// TestMultiServeAfterAndStop: two hello programs serve, each on its own
// socket, with their records marked program=NAME; "web" (after = ["app"])
// starts only once "app" is ready, app taking a moment (ready =
// hello after sleeping 300ms); TERM stops web first, then app once web has ended, and
// hupd exits 0.
func TestMultiServeAfterAndStop(t *testing.T) {
	t.Parallel()
	app := helloProgram("app")
	app.command = []string{"sh", "-c", "sleep 0.3; exec " + helloBin + " -grace 10s"}
	h := startFleet(t, helloProgram("web", "app"), app)
	webAddr, appAddr := fleetAddr(h, "web"), fleetAddr(h, "app")
	if webAddr == appAddr {
		t.Fatalf("both programs on %s", webAddr)
	}
	webPID := h.WaitEvent(logev.ChildStarted, 1, ofProgram("web")).Int("pid")
	appPID := h.WaitEvent(logev.ChildStarted, 1, ofProgram("app")).Int("pid")
	if got := fleetGet(t, webAddr); got != webPID {
		t.Fatalf("web's socket answered by pid %d, want web's %d", got, webPID)
	}
	if got := fleetGet(t, appAddr); got != appPID {
		t.Fatalf("app's socket answered by pid %d, want app's %d", got, appPID)
	}
	// The order: app starts, web waits; app is ready; then web starts.
	waiting := swapEventIndex(h, logev.ProgramWaiting, 1, ofProgram("web"))
	appReady := swapEventIndex(h, logev.ChildReady, 1, ofProgram("app"))
	webStarting := swapEventIndex(h, logev.ProgramStarting, 1, ofProgram("web"))
	webChild := swapEventIndex(h, logev.ChildStarted, 1, ofProgram("web"))
	if !(waiting < appReady && appReady < webStarting && webStarting < webChild) {
		t.Fatalf("web waiting at %d, app ready at %d, web starting at %d, web's child at %d: want that order", waiting, appReady, webStarting, webChild)
	}
	if d := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Dur("after"); d < 300e6 {
		t.Fatalf("app ready after %s, want at least its 300ms", d)
	}

	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d after TERM, want 0", code)
	}
	webStop := swapEventIndex(h, logev.ProgramStopping, 1, ofProgram("web"))
	webEnded := swapEventIndex(h, logev.ProgramEnded, 1, ofProgram("web"))
	appStop := swapEventIndex(h, logev.ProgramStopping, 1, ofProgram("app"))
	if !(webStop < webEnded && webEnded < appStop) {
		t.Fatalf("web stopping at %d, ended at %d, app stopping at %d: want reverse start order", webStop, webEnded, appStop)
	}
	for _, pid := range []int{webPID, appPID} {
		if processAlive(pid) {
			t.Fatalf("pid %d still runs after hupd exited", pid)
		}
	}
}

// TestMultiHUPReloadsAll: SIGHUP reloads every program: each swaps to a
// new generation, which serves on that program's socket.
func TestMultiHUPReloadsAll(t *testing.T) {
	t.Parallel()
	h := startFleet(t, helloProgram("app"), helloProgram("web", "app"))
	h.WaitEvent(logev.ChildReady, 1, ofProgram("web"))
	h.Signal(syscall.SIGHUP)
	for _, name := range []string{"app", "web"} {
		pid := h.WaitEvent(logev.ChildReady, 1, ofProgramGen(name, 2)).Int("pid")
		h.WaitEvent(logev.ChildExited, 1, ofProgramGen(name, 1))
		if got := fleetGet(t, fleetAddr(h, name)); got != pid {
			t.Fatalf("%s's socket answered by pid %d after SIGHUP, want gen 2's %d", name, got, pid)
		}
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiOnExitStopAll: a program with restart policy never that exits
// 3 (on_exit = "stop-all", the default) stops the other, and hupd exits
// 3.
func TestMultiOnExitStopAll(t *testing.T) {
	t.Parallel()
	once := onceProgram("[program.restart]\npolicy = \"never\"\n")
	h := startFleet(t, helloProgram("web"), once)
	webPID := h.WaitEvent(logev.ChildStarted, 1, ofProgram("web")).Int("pid")
	if code := h.Wait(); code != 3 {
		t.Fatalf("hupd exited %d, want once's 3", code)
	}
	h.WaitEvent(logev.StoppingPrograms, 1, func(e Event) bool { return e.Str(supervisor.KeyProgram) == "once" })
	h.WaitEvent(logev.ProgramStopping, 1, ofProgram("web"))
	h.WaitEvent(logev.ChildExited, 1, ofProgram("web"))
	if processAlive(webPID) {
		t.Fatalf("web's pid %d still runs", webPID)
	}
}

// TestMultiOnExitIgnore: with on_exit = "ignore", the program that ended
// leaves the other running; hupd exits once TERM has stopped it, with 0:
// the ignored program's exit does not decide hupd's code.
func TestMultiOnExitIgnore(t *testing.T) {
	t.Parallel()
	once := onceProgram("on_exit = \"ignore\"\n[program.restart]\npolicy = \"never\"\n")
	h := startFleet(t, helloProgram("web"), once)
	h.WaitEvent(logev.ProgramEnded, 1, ofProgram("once"))
	webPID := h.WaitEvent(logev.ChildStarted, 1, ofProgram("web")).Int("pid")
	if got := fleetGet(t, fleetAddr(h, "web")); got != webPID {
		t.Fatalf("web answered by pid %d, want %d", got, webPID)
	}
	st := fleetStatus(t, h)
	if st["once"].State != control.ProgramEnded || st["web"].State != control.ProgramRunning {
		t.Fatalf("states: once %q, web %q", st["once"].State, st["web"].State)
	}
	h.Sync()
	if n := len(h.Events(logev.ProgramStopping)); n != 0 {
		t.Fatalf("%d programs asked to stop before TERM", n)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0 (web stopped cleanly; once's 3 is ignored)", code)
	}
}

// TestMultiCrashRestartsOnlyIt: a program whose child is killed is
// restarted by its own supervisor; the other's child runs on, the same
// PID.
func TestMultiCrashRestartsOnlyIt(t *testing.T) {
	t.Parallel()
	h := startFleet(t, helloProgram("app"), helloProgram("web", "app"))
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	syscall.Kill(webPID, syscall.SIGKILL)
	h.WaitEvent(logev.RestartingChild, 1, ofProgram("web"))
	newWeb := h.WaitEvent(logev.ChildReady, 2, ofProgram("web")).Int("pid")
	if newWeb == webPID {
		t.Fatalf("web not restarted: pid %d", newWeb)
	}
	if got := fleetGet(t, fleetAddr(h, "web")); got != newWeb {
		t.Fatalf("web answered by pid %d, want the restarted %d", got, newWeb)
	}
	st := fleetStatus(t, h)
	if got := servingPID(st["app"]); got != appPID || st["app"].Status.Restarts != 0 {
		t.Fatalf("app serves with pid %d (restarts %d), want %d untouched", got, st["app"].Status.Restarts, appPID)
	}
	h.Sync()
	if n := len(h.Events(logev.RestartingChild)); n != 1 {
		t.Fatalf("%d restarts, want web's one", n)
	}
}

// TestMultiReloadOneUnderLoad: `hupd reload web` swaps web only, under a
// client making a new connection per request to web: none fails; app's
// child keeps its PID. `hupd reload` with no name reloads both.
func TestMultiReloadOneUnderLoad(t *testing.T) {
	t.Parallel()
	h := startFleet(t, helloProgram("app"), helloProgram("web", "app"))
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	h.WaitEvent(logev.ChildReady, 1, ofProgram("web"))
	l := startLoad(t, "tcp", fleetAddr(h, "web"), func(body string) bool { return strings.HasPrefix(body, "pid ") }, false)
	for i := range 3 {
		code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet", "-q", "web")
		if code != 0 || !strings.HasPrefix(out, "web: reload ok (swap)") || strings.Count(out, "\n") != 1 {
			l.stop()
			t.Fatalf("reload web %d: exit %d: %s%s", i+1, code, out, errOut)
		}
		h.WaitEvent(logev.ChildExited, 1, ofProgramGen("web", i+1))
	}
	l.finish("3 reloads of web")
	st := fleetStatus(t, h)
	if got := servingPID(st["app"]); got != appPID || st["app"].Status.Reloads != 0 {
		t.Fatalf("app serves with pid %d after %d reloads, want %d and none", got, st["app"].Status.Reloads, appPID)
	}
	if st["web"].Status.Reloads != 3 {
		t.Fatalf("web: %d reloads, want 3", st["web"].Status.Reloads)
	}
	code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet", "-q")
	if code != 0 || !strings.HasPrefix(out, "app: reload ok (swap)") || !strings.Contains(out, "\nweb: reload ok (swap)") {
		t.Fatalf("reload of every program: exit %d: %s%s", code, out, errOut)
	}
}

// TestMultiControl: hupd status shows each program under a heading (one
// program when named; --json an object with a "programs" array); an
// unknown program name is a one-line error, exit 2; scale, rollback and
// logs act on the program --program names (and are refused without one);
// the refused requests change nothing. (Upgrades: fleet_upgrade_test.go.)
func TestMultiControl(t *testing.T) {
	t.Parallel()
	h := startFleet(t, helloProgram("app"), helloProgram("web", "app"))
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")

	code, out, errOut := fleetCLI(t, h, "status", "--name", "fleet")
	a, w := strings.Index(out, "== program app (running) ==\nhupd fleet"), strings.Index(out, "\n== program web (running) ==\nhupd fleet")
	if code != 0 || a != 0 || w < 0 || !strings.Contains(out[:w], strconv.Itoa(appPID)) || !strings.Contains(out[w:], strconv.Itoa(webPID)) {
		t.Fatalf("hupd status: exit %d, stderr %q:\n%s", code, errOut, out)
	}
	code, out, _ = fleetCLI(t, h, "status", "--name", "fleet", "web")
	if code != 0 || !strings.HasPrefix(out, "== program web (running) ==\n") || strings.Contains(out, "program app") {
		t.Fatalf("hupd status web: exit %d:\n%s", code, out)
	}
	st := fleetStatus(t, h)
	if len(st) != 2 || servingPID(st["app"]) != appPID || servingPID(st["web"]) != webPID {
		t.Fatalf("hupd status --json: %+v", st)
	}

	for _, args := range [][]string{{"status", "nope"}, {"reload", "web", "nope"}} {
		code, out, errOut := fleetCLI(t, h, append([]string{args[0], "--name", "fleet"}, args[1:]...)...)
		if want := "hupd: unknown program \"nope\": hupd runs app, web\n"; code != 2 || out != "" || errOut != want {
			t.Fatalf("hupd %s: exit %d, stdout %q, stderr %q; want 2 and %q", strings.Join(args, " "), code, out, errOut, want)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"scale", "2"}, 2, "hupd: scale: hupd runs several programs: name one program (--program NAME)\n"},
		{[]string{"rollback"}, 2, "hupd: rollback: hupd runs several programs: name one program (--program NAME)\n"},
		{[]string{"logs"}, 2, "hupd: logs: hupd runs several programs: name one program (--program NAME)\n"},
		{[]string{"logs", "--program", "nope"}, 2, "hupd: unknown program \"nope\": hupd runs app, web\n"},
		{[]string{"rollback", "--program", "web"}, 1, "hupd: rollback failed: no generation is settling: nothing to roll back to\n"},
	} {
		code, out, errOut := fleetCLI(t, h, append([]string{tc.args[0], "--name", "fleet"}, tc.args[1:]...)...)
		if code != tc.code || out != "" || errOut != tc.says {
			t.Fatalf("hupd %s: exit %d, stdout %q, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, out, errOut, tc.code, tc.says)
		}
	}
	// logs --program shows that program's lines only.
	code, out, errOut = fleetCLI(t, h, "logs", "--name", "fleet", "--program", "app", "-n", "0")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("hello: pid %d serving", appPID)) || strings.Contains(out, fmt.Sprintf("pid %d", webPID)) {
		t.Fatalf("hupd logs --program app: exit %d, stderr %q:\n%s", code, errOut, out)
	}
	st = fleetStatus(t, h)
	if servingPID(st["app"]) != appPID || servingPID(st["web"]) != webPID || st["app"].Status.Reloads+st["web"].Status.Reloads != 0 {
		t.Fatalf("a refused request changed something: %+v", st)
	}
	code, out, errOut = fleetCLI(t, h, "scale", "--name", "fleet", "--program", "web", "2")
	if code != 0 || !strings.HasPrefix(out, "scaled generation 1 from 1 to 2 instances") {
		t.Fatalf("hupd scale --program web 2: exit %d: %s%s", code, out, errOut)
	}
	st = fleetStatus(t, h)
	if st["web"].Status.Instances != 2 || st["app"].Status.Instances != 1 || servingPID(st["app"]) != appPID {
		t.Fatalf("after scaling web to 2: web %d instances, app %d (pid %d)", st["web"].Status.Instances, st["app"].Status.Instances, servingPID(st["app"]))
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}

// TestMultiIsolation: the two programs' generations, numbered alike, do
// not collide: each program's notify sockets are in a directory of its own
// in the runtime directory (notify@NAME/gen-1.sock), its generations in a
// cgroup of its own (base/prog-NAME/gen-N) when hupd has cgroups.
func TestMultiIsolation(t *testing.T) {
	t.Parallel()
	h := startFleet(t, helloProgram("app"), helloProgram("web", "app"))
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	rt := supervisor.RuntimeDirFor(h.WaitEvent(logev.ControlSocket, 1, nil).Str("path"))
	for _, name := range []string{"app", "web"} {
		if _, err := os.Stat(filepath.Join(rt, "notify@"+name, "gen-1.sock")); err != nil {
			t.Fatalf("%s's notify socket: %v", name, err)
		}
	}
	st := fleetStatus(t, h)
	for _, name := range []string{"app", "web"} {
		c := st[name].Status.Containment
		if c == nil || c.Mode != supervisor.ContainCgroup {
			t.Logf("%s: no cgroups here (%+v)", name, c)
			continue
		}
		if filepath.Base(c.Cgroup) != "prog-"+name {
			t.Fatalf("%s's generations under %s, want a prog-%s of their own", name, c.Cgroup, name)
		}
		if _, err := os.Stat(filepath.Join(c.Cgroup, "gen-1")); err != nil {
			t.Fatalf("%s's gen 1 cgroup: %v", name, err)
		}
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
	waitGone(t, appPID)
	waitGone(t, webPID)
}

// TestMultiSentinelBoth: each program's sentinel registrations are its
// own although both number their generations from 1: kill -9 of hupd ends
// both programs' pre-fork generations, workers included (the parent-death
// signal reaches only the masters), not only the one registered last.
func TestMultiSentinelBoth(t *testing.T) {
	t.Parallel()
	h := startFleet(t, preforkProgram("app"), preforkProgram("web"))
	a, b := sentReadPrefork(t, h), sentReadPrefork(t, h)
	sentinel := sentinelPID(t, h)
	kill9Ends(t, h, sentinel, map[string]*sentPrefork{"first program's generation": a, "second program's generation": b})
}

// preforkProgram is a pre-fork server (a master and two workers) on an
// http socket of its own, stopped by USR1.
func preforkProgram(name string, after ...string) fleetProgram {
	return fleetProgram{name: name, after: after, command: childCmd("prefork", "2"), ready: "delay:10ms", listen: true,
		extra: "[program.process]\nstop_signal = \"USR1\"\n"}
}

// kill9Gone kills hupd h (SIGKILL), waits for it, and waits until each
// of pids is gone.
func kill9Gone(t *testing.T, h *Hupd, pids ...int) {
	t.Helper()
	if err := h.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.Wait()
	for _, pid := range pids {
		waitGone(t, pid)
	}
}

// kill9Ends kills hupd (SIGKILL) and waits for every process of each
// pre-fork generation of gens (by what it is) and for the sentinel to
// have ended.
func kill9Ends(t *testing.T, h *Hupd, sentinel int, gens map[string]*sentPrefork) {
	t.Helper()
	kill9Gone(t, h)
	for what, p := range gens {
		p.waitEnded(t, what, p.group())
	}
	waitGone(t, sentinel)
}

// TestMultiPID1: as PID 1 of a PID namespace, hupd runs both programs,
// forwards a signal it gives no meaning (USR1) to both, and reaps the
// orphans each program's child abandons; TERM stops both, exit 0.
func TestMultiPID1(t *testing.T) {
	orphans := func(name string) fleetProgram {
		return fleetProgram{name: name, command: childCmd("proc-orphans", "2", "0"), ready: "delay:10ms"}
	}
	h, hupdPID := procUnshare(t, "run", "-c", fleetFile(t, orphans("a"), orphans("b")))
	h.WaitEvent(logev.ChildStarted, 1, ofProgram("a"))
	h.WaitEvent(logev.ChildStarted, 1, ofProgram("b"))
	var released []int
	for range 2 {
		released = append(released, procPIDs(t, h.Stdout.NextWith(t, "orphans"), "orphans")...)
	}
	if len(released) != 4 {
		t.Fatalf("orphans %v, want 2 of each program", released)
	}
	procKill(t, hupdPID, syscall.SIGUSR1) // to hupd, not unshare: each child releases its orphans
	for _, p := range released {
		e := h.WaitEvent(logev.OrphanReaped, 1, func(e Event) bool { return e.Int("pid") == p })
		if e.Str("status") != "exit status 7" {
			t.Fatalf("reaped orphan %v: want exit status 7", e)
		}
	}
	procKill(t, hupdPID, syscall.SIGTERM)
	if code := h.Wait(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
	for _, name := range []string{"a", "b"} {
		h.WaitEvent(logev.ProgramEnded, 1, ofProgram(name))
	}
}

// TestMultiAfterNeverReady: a program that ends before it was ready
// (on_exit = "ignore") leaves the program that starts after it never
// started, said once; with nothing left to run, hupd exits with the code
// of the program that ended.
func TestMultiAfterNeverReady(t *testing.T) {
	t.Parallel()
	app := fleetProgram{name: "app", command: childCmd("exit", "4"),
		extra: "on_exit = \"ignore\"\n[program.restart]\npolicy = \"never\"\n"}
	h := startFleet(t, app, helloProgram("web", "app"))
	if code := h.Wait(); code != 4 {
		t.Fatalf("hupd exited %d, want app's 4", code)
	}
	h.WaitEvent(logev.ProgramNotStarted, 1, ofProgram("web"))
	if n := len(h.Events(logev.ProgramStarting)); n != 1 {
		t.Fatalf("%d programs started, want app alone", n)
	}
	if n := len(h.Events(logev.ChildStarted)); n != 1 {
		t.Fatalf("%d children started, want app's one", n)
	}
}

// TestMultiWatch: each program's [[program.watch]] acts on that program
// alone: a file only web watches reloads web, app's child keeps its PID;
// a file both watch reloads each of them.
func TestMultiWatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	shared, own := filepath.Join(dir, "shared.conf"), filepath.Join(dir, "web.conf")
	for _, p := range []string{shared, own} {
		if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	watchTOML := func(paths ...string) string {
		return "[[program.watch]]\npaths = " + tomlStrings(paths) + "\ndebounce = \"20ms\"\n"
	}
	app, web := helloProgram("app"), helloProgram("web", "app")
	app.extra, web.extra = watchTOML(shared), watchTOML(shared, own)
	h := startFleet(t, app, web)
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	h.WaitEvent(logev.ChildReady, 1, ofProgram("web"))
	h.WaitEvent(logev.Watching, 1, ofProgram("app"))
	h.WaitEvent(logev.Watching, 1, ofProgram("web"))

	if err := os.WriteFile(own, []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.WaitEvent(logev.WatchedFilesChanged, 1, ofProgram("web"))
	h.WaitEvent(logev.ChildReady, 1, ofProgramGen("web", 2))
	h.Sync()
	if n := len(h.Events(logev.WatchedFilesChanged)); n != 1 {
		t.Fatalf("%d watched changes after web.conf's edit, want web's one", n)
	}
	if got := servingPID(fleetStatus(t, h)["app"]); got != appPID {
		t.Fatalf("app serves with pid %d after web's reload, want %d", got, appPID)
	}

	if err := os.WriteFile(shared, []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	newApp := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("app", 2)).Int("pid")
	newWeb := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("web", 3)).Int("pid")
	h.WaitEvent(logev.ChildExited, 1, ofProgramGen("app", 1))
	if got := fleetGet(t, fleetAddr(h, "app")); got != newApp {
		t.Fatalf("app answered by pid %d, want gen 2's %d", got, newApp)
	}
	h.WaitEvent(logev.ChildExited, 1, ofProgramGen("web", 2))
	if got := fleetGet(t, fleetAddr(h, "web")); got != newWeb {
		t.Fatalf("web answered by pid %d, want gen 3's %d", got, newWeb)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}
