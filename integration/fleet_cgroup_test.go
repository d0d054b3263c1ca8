package integration

// Several programs, some with cgroups and some without (process.cgroup =
// "off"): see internal/run/fleetcgroup.go.

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// legacyProgram is ct-prefork (a master, three workers in its process
// group and a setsid daemon) with cgroups off.
func legacyProgram(name string) fleetProgram {
	return fleetProgram{name: name, command: childCmd("ct-prefork"), ready: "delay:50ms",
		extra: "[program.process]\ncgroup = \"off\"\nstop_timeout = \"5s\"\n"}
}

// fleetBase waits for hupd's cgroup layout and returns its base, or skips
// t where hupd cannot have cgroups.
func fleetBase(t *testing.T, h *Hupd) string {
	t.Helper()
	h.WaitEvent(logev.ControlSocket, 1, nil) // the containment is logged before
	if evs := h.Events(logev.ContainmentCgroup); len(evs) > 0 {
		return evs[0].Str("cgroup")
	}
	noCgroups(t, "hupd cannot use cgroups here")
	return ""
}

// noCgroupLeft fails t if hupd h, which has exited, said that it left
// cgroups behind, or if base is still there.
func noCgroupLeft(t *testing.T, h *Hupd, base string) {
	t.Helper()
	if evs := h.Events(logev.CgroupsLeftBehind); len(evs) > 0 {
		t.Errorf("cgroups left behind: %v", evs)
	}
	if _, err := os.Stat(base); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("hupd's cgroup %s is left: %v", base, err)
	}
}

// stopWithLegacy stops hupd h (TERM), which runs a legacy program
// (legacyProgram) beside programs with cgroups under base: legacy's master
// dies of the TERM, so hupd exits with its status, 128+SIGTERM. It waits
// until each of pids is gone and fails t if hupd left a cgroup behind
// (noCgroupLeft). Legacy's daemons, which escape, are ended when t ends
// (ctReadPrefork).
func stopWithLegacy(t *testing.T, h *Hupd, base string, pids ...int) {
	t.Helper()
	if code := h.Stop(); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("hupd exited %d, want legacy's %d (its master dies of TERM)", code, 128+int(syscall.SIGTERM))
	}
	for _, pid := range pids {
		waitGone(t, pid)
	}
	noCgroupLeft(t, h, base)
}

// cgroupOf is pid's cgroup2 path (relative to the mount).
func cgroupOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return rest
		}
	}
	t.Fatalf("no cgroup2 line for pid %d: %q", pid, b)
	return ""
}

// TestMultiCgroupMixed: a program with cgroups (app) and one without
// (legacy) side by side: both serve and reload, app's generations in
// prog-app, legacy's processes in hupd's own leaf as process groups;
// TERM stops both (legacy's master dies of it: hupd exits with its
// status) with no cgroup left behind, although the
// daemon legacy's generations left (it escapes, as with cgroups off) was
// in hupd's leaf; it is moved out with hupd.
func TestMultiCgroupMixed(t *testing.T) {
	t.Parallel()
	h := startFleet(t, helloProgram("app"), legacyProgram("legacy"))
	base := fleetBase(t, h)
	g1 := ctReadPrefork(t, h)
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	h.WaitEvent(logev.ChildReady, 1, ofProgram("legacy"))
	if got := fleetGet(t, fleetAddr(h, "app")); got != appPID {
		t.Fatalf("app answered by pid %d, want %d", got, appPID)
	}
	st := fleetStatus(t, h)
	if c := st["app"].Status.Containment; c == nil || c.Mode != supervisor.ContainCgroup || filepath.Base(c.Cgroup) != "prog-app" {
		t.Fatalf("app's containment %+v, want cgroups under prog-app", c)
	}
	if c := st["legacy"].Status.Containment; c == nil || c.Mode == supervisor.ContainCgroup {
		t.Fatalf("legacy's containment %+v, want process groups", c)
	}
	if got, want := cgroupOf(t, g1.daemon), cgroupOf(t, h.Cmd.Process.Pid); got != want || filepath.Base(got) != "supervisor" {
		t.Fatalf("legacy's daemon in %s, hupd in %s: want both in hupd's leaf", got, want)
	}

	fleetOK(t, h, "reload")
	g2 := ctReadPrefork(t, h)
	newApp := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("app", 2)).Int("pid")
	h.WaitEvent(logev.ChildExited, 1, ofProgramGen("app", 1))
	if got := fleetGet(t, fleetAddr(h, "app")); got != newApp {
		t.Fatalf("app answered by pid %d after the reload, want %d", got, newApp)
	}
	for _, pid := range g1.group() {
		waitGone(t, pid)
	}

	stopWithLegacy(t, h, base, append(g2.group(), newApp)...)
	for _, p := range []ctPrefork{g1, g2} {
		if !processAlive(p.daemon) {
			t.Errorf("legacy's daemon %d is gone: without cgroups it escapes", p.daemon)
		}
	}
}

// TestMultiCgroupMixedKill9: kill -9 of hupd with a program in cgroups and
// one without: the sentinel ends both, by cgroup and by process group.
func TestMultiCgroupMixedKill9(t *testing.T) {
	t.Parallel()
	h := startFleet(t, helloProgram("app"), legacyProgram("legacy"))
	fleetBase(t, h)
	g := ctReadPrefork(t, h)
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	h.WaitEvent(logev.ChildReady, 1, ofProgram("legacy"))
	sentinel := sentinelPID(t, h)
	kill9Gone(t, h, append(g.group(), appPID, sentinel)...)
}

// TestMultiCgroupAddedByEdit: a hupd whose programs all had cgroups off
// (none laid out) lays them out when an edit of hupd.toml adds a program
// with cgroups, as a start with it would have: the new program's
// generations get cgroups of their own, and the exit (with legacy's
// status) leaves none behind.
func TestMultiCgroupAddedByEdit(t *testing.T) {
	t.Parallel()
	h, base, g, appPID := cgOffThenAdded(t, false)
	stopWithLegacy(t, h, base, append(g.group(), appPID)...)
}

// cgOffThenAdded starts hupd with legacy alone (legacyProgram: cgroups
// off) and, with upgrade, upgrades it (hupd upgrade); it checks that no
// cgroup was laid out, then adds app (hello, cgroups) by an edit of
// hupd.toml and hupd reload, and checks that app runs in a cgroup under
// hupd's base, not in process groups for the others' setting (it skips t
// where hupd cannot have cgroups). It returns hupd, its base, legacy's
// generation and app's PID.
func cgOffThenAdded(t *testing.T, upgrade bool) (h *Hupd, base string, legacy ctPrefork, app int) {
	t.Helper()
	prog := legacyProgram("legacy")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, prog)
	legacy = ctReadPrefork(t, h)
	h.WaitEvent(logev.ChildReady, 1, ofProgram("legacy"))
	if upgrade {
		fleetOK(t, h, "upgrade")
		h.WaitEvent(logev.Upgraded, 1, nil)
	}
	if evs := h.Events(logev.ContainmentCgroup); len(evs) > 0 {
		t.Fatalf("cgroups laid out with every program off: %v", evs)
	}
	rewriteFleet(t, path, prog, helloProgram("app"))
	fleetOK(t, h, "reload")
	app = h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	if c := fleetStatus(t, h)["app"].Status.Containment; c != nil && c.Mode != supervisor.ContainCgroup && strings.Contains(c.Reason, "(off)") {
		t.Fatalf("the added app has process groups for the others' setting: %+v", c)
	}
	base = fleetBase(t, h)
	if c := fleetStatus(t, h)["app"].Status.Containment; c == nil || c.Mode != supervisor.ContainCgroup || filepath.Dir(c.Cgroup) != base {
		t.Fatalf("the added app's containment %+v, want cgroups under %s", c, base)
	}
	return h, base, legacy, app
}

// TestMultiCgroupEndedReplaced: a program that ended (on_exit = "ignore")
// and comes back by an edit of hupd.toml with cgroups off runs as process
// groups: it does not keep the cgroup its namesake with cgroups had.
func TestMultiCgroupEndedReplaced(t *testing.T) {
	t.Parallel()
	once := fleetProgram{name: "once", command: childCmd("exit", "3"), ready: "delay:10s", // never ready
		extra: "on_exit = \"ignore\"\n[program.restart]\npolicy = \"never\"\n"}
	web := helloProgram("web")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, web, once)
	fleetBase(t, h)
	h.WaitEvent(logev.ProgramEnded, 1, ofProgram("once"))
	once.command, once.ready, once.listen = []string{helloBin}, "notify", true
	once.extra = "on_exit = \"ignore\"\n[program.process]\ncgroup = \"off\"\n"
	rewriteFleet(t, path, web, once)
	fleetOK(t, h, "reload")
	pid := h.WaitEvent(logev.ChildReady, 1, ofProgram("once")).Int("pid")
	if c := fleetStatus(t, h)["once"].Status.Containment; c == nil || c.Mode == supervisor.ContainCgroup {
		t.Fatalf("once, back with cgroups off: containment %+v, want process groups", c)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
	waitGone(t, pid)
	if evs := h.Events(logev.CgroupsLeftBehind); len(evs) > 0 {
		t.Errorf("cgroups left behind: %v", evs)
	}
}
