package integration

// Issue 19: the in-place upgrade of a hupd that runs several programs
// (fleetupgrade.go), under a real systemd (fleetsystemd.go: notify,
// notify-reload, the fd store) and with cgroups off for some programs
// beside programs with them (fleetcgroup.go), together.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// sdFleetCLI runs hupd's command args in the container against the
// fleet's control socket (the unit's XDG_RUNTIME_DIR) and fails t unless
// it exits 0.
func sdFleetCLI(t *testing.T, c *nspawnContainer, args ...string) string {
	t.Helper()
	return c.Run(t, append([]string{"env", "XDG_RUNTIME_DIR=/run/fleet", "/usr/local/bin/hupd"}, append(args, "--name", "fleet")...)...)
}

// sdFDStoreNames are the names of the fds the fleet's unit has in its fd
// store (systemd-analyze fdstore, systemd 254 and later), one per fd.
func sdFDStoreNames(t *testing.T, c *nspawnContainer) []string {
	t.Helper()
	out := c.Run(t, "systemd-analyze", "fdstore", "--json=short", sdFleetUnit)
	var fds []struct {
		Name string `json:"fdname"`
	}
	if err := json.Unmarshal([]byte(out), &fds); err != nil {
		t.Fatalf("systemd-analyze fdstore: %v: %q", err, out)
	}
	var names []string
	for _, fd := range fds {
		names = append(names, fd.Name)
	}
	return names
}

// sdWaitStatus waits until the fleet's STATUS= matches re and returns the
// unit's properties.
func sdWaitStatus(t *testing.T, c *nspawnContainer, what string, re *regexp.Regexp) map[string]string {
	t.Helper()
	return sdWait(t, c, sdFleetUnit, what, func(p map[string]string) bool { return re.MatchString(p["StatusText"]) })
}

// TestMultiSystemdUpgrade: hupd upgrade of a hupd that runs two programs
// under systemd (Type=notify-reload, and Type=notify with ExecReload=),
// with their sockets in the fd store, under load through both ports. The
// unit stays active with the same MainPID, never restarted (the watchdog,
// 2s, went on), and both programs are taken over. A reload of app alone
// then leaves STATUS= naming web's generation 1 as before the upgrade (the
// new image knows what serves), and systemctl reload returns once both
// programs reloaded (RELOADING=1 is said after an upgrade too). The
// upgrade and the reloads store nothing again, and the store holds each
// program's socket once. kill -9 of hupd then: systemd starts it again,
// each program takes its own socket back, and no connection to either
// port was refused throughout, and the restarted hupd (its sockets from
// the store) upgrades and reloads as well.
func TestMultiSystemdUpgrade(t *testing.T) {
	sdFleetRun(t, func(t *testing.T, c *nspawnContainer, typ string) {
		st, p := sdFleetStart(t, c)
		hupd := p["MainPID"]
		app, web := sdStartLoadAt(c, "127.0.0.1:8081"), sdStartLoadAt(c, "127.0.0.1:8082")
		app.WaitServedBy(t, "app's generation 1", func(pid int) bool { return pid == st.AppPID })
		web.WaitServedBy(t, "web's generation 1", func(pid int) bool { return pid == st.WebPID })

		cursor := sdCursor(t, c)
		sdFleetCLI(t, c, "upgrade")
		p = sdShow(t, c, sdFleetUnit)
		if p["ActiveState"] != "active" || p["SubState"] != "running" || p["MainPID"] != hupd || p["NRestarts"] != "0" {
			t.Fatalf("after hupd upgrade: %v; want active/running under hupd %s, never restarted", p, hupd)
		}

		// app alone: web's entry in STATUS= must still be what it was.
		sdFleetCLI(t, c, "reload", "app")
		p = sdWaitStatus(t, c, "app at generation 2", regexp.MustCompile(`^app: gen 2 `))
		mid, ok := sdParseFleetStatus(p["StatusText"])
		if !ok || mid.WebGen != 1 || mid.WebPID != st.WebPID || mid.AppPID == st.AppPID {
			t.Fatalf("after the upgrade and hupd reload app: STATUS=%q; want app at generation 2 and web's generation 1 (pid %d)", p["StatusText"], st.WebPID)
		}
		app.WaitServedBy(t, "app's generation 2", func(pid int) bool { return pid == mid.AppPID })

		c.Run(t, "systemctl", "reload", sdFleetUnit)
		p = sdShow(t, c, sdFleetUnit)
		after, ok := sdParseFleetStatus(p["StatusText"])
		if !ok || after.AppGen != 3 || after.WebGen != 2 || p["SubState"] != "running" || p["MainPID"] != hupd || p["NRestarts"] != "0" {
			t.Fatalf("when systemctl reload returned: %v; want app at generation 3 and web at 2 under hupd %s", p, hupd)
		}
		web.WaitServedBy(t, "web's generation 2", func(pid int) bool { return pid == after.WebPID })

		j := sdJournal(t, c, sdFleetUnit, cursor)
		if l := sdRecords(j, logev.Upgraded); len(l) != 1 {
			t.Errorf("upgraded records: %q; want one", l)
		}
		for _, prog := range []string{"app", "web"} {
			if l := sdRecords(j, logev.ProgramTakenOver, "program="+prog); len(l) != 1 {
				t.Errorf("%s taken over: %q; want once", prog, l)
			}
		}
		if l := sdRecords(j, logev.FDStoreUpdated); len(l) != 0 {
			t.Errorf("the fd store changed with the upgrade or the reloads: %q; want nothing stored again", l)
		}
		if c.Suite.Systemd >= 254 {
			if names := sdFDStoreNames(t, c); !equalSorted(names, []string{"app/http", "web/http"}) {
				t.Errorf("fd store: %q; want app/http and web/http, once each", names)
			}
		}

		var again sdFleetStatus
		j = sdFleetKill9(t, c, hupd, func(status string) bool {
			s, ok := sdParseFleetStatus(status)
			again = s
			return ok
		})
		app.WaitServedBy(t, "app's generation under the new hupd", func(pid int) bool { return pid == again.AppPID })
		web.WaitServedBy(t, "web's generation under the new hupd", func(pid int) bool { return pid == again.WebPID })
		sdInheritedEach(t, j, "app", "web")

		// The restarted hupd, which took its sockets from the store,
		// upgrades and reloads as well, and stores nothing again.
		hupd = sdShow(t, c, sdFleetUnit)["MainPID"]
		cursor = sdCursor(t, c)
		sdFleetCLI(t, c, "upgrade")
		c.Run(t, "systemctl", "reload", sdFleetUnit)
		p = sdShow(t, c, sdFleetUnit)
		last, ok := sdParseFleetStatus(p["StatusText"])
		if !ok || last.AppGen != again.AppGen+1 || last.WebGen != again.WebGen+1 || p["MainPID"] != hupd || p["NRestarts"] != "1" {
			t.Fatalf("the restarted hupd upgraded, then systemctl reload: %v; want both programs one generation on from %+v under hupd %s", p, again, hupd)
		}
		j = sdJournal(t, c, sdFleetUnit, cursor)
		if l := sdRecords(j, logev.FDStoreUpdated); len(l) != 0 {
			t.Errorf("the fd store changed with the second upgrade or its reload: %q", l)
		}
		if l := sdRecords(j, logev.ProgramTakenOver); len(l) != 2 {
			t.Errorf("programs taken over by the second upgrade: %q; want two", l)
		}
		app.Stop(t)
		web.Stop(t)
		if c.Suite.Systemd >= 254 {
			if names := sdFDStoreNames(t, c); !equalSorted(names, []string{"app/http", "web/http"}) {
				t.Errorf("fd store at the end: %q; want app/http and web/http, once each", names)
			}
		}
		c.Run(t, "systemctl", "stop", sdFleetUnit)
		if p := sdShow(t, c, sdFleetUnit); p["ActiveState"] != "inactive" || p["Result"] != "success" {
			t.Fatalf("after systemctl stop: %v; want inactive, Result=success", p)
		}
	})
}

// equalSorted reports whether a and b hold the same strings, as many
// times each.
func equalSorted(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	n := map[string]int{}
	for _, s := range a {
		n[s]++
	}
	for _, s := range b {
		n[s]--
	}
	for _, v := range n {
		if v != 0 {
			return false
		}
	}
	return true
}

// cgMixedUpgraded starts app (hello, cgroups) and legacy (ct-prefork,
// cgroup = "off"), upgrades hupd with hupd upgrade, and checks that the
// upgrade kept every PID (both programs' generations, legacy's workers)
// and each program's containment (app's generation in prog-app, legacy's
// processes in hupd's leaf). It returns hupd, its cgroup base, legacy's
// generation 1 and app's PID.
func cgMixedUpgraded(t *testing.T) (h *Hupd, base string, legacy ctPrefork, app int) {
	t.Helper()
	h = startFleet(t, helloProgram("app"), legacyProgram("legacy"))
	base = fleetBase(t, h)
	legacy = ctReadPrefork(t, h)
	app = h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	h.WaitEvent(logev.ChildReady, 1, ofProgram("legacy"))
	before := fleetPIDs(fleetStatus(t, h))
	appCG := cgroupOf(t, app)
	fleetOK(t, h, "upgrade")
	h.WaitEvent(logev.Upgraded, 1, nil)
	st := fleetStatus(t, h)
	if after := fleetPIDs(st); !reflect.DeepEqual(after, before) {
		t.Fatalf("generations' PIDs after the upgrade: %v, before: %v", after, before)
	}
	for _, pid := range append(legacy.group(), app) {
		if !processAlive(pid) {
			t.Fatalf("pid %d gone with the upgrade", pid)
		}
	}
	if c := st["app"].Status.Containment; c == nil || c.Mode != supervisor.ContainCgroup || filepath.Base(c.Cgroup) != "prog-app" {
		t.Fatalf("app's containment after the upgrade %+v, want cgroups under prog-app", c)
	}
	if c := st["legacy"].Status.Containment; c == nil || c.Mode == supervisor.ContainCgroup {
		t.Fatalf("legacy's containment after the upgrade %+v, want process groups", c)
	}
	if got := cgroupOf(t, app); got != appCG {
		t.Fatalf("app's generation in %s after the upgrade, in %s before", got, appCG)
	}
	if got, want := cgroupOf(t, legacy.master), cgroupOf(t, h.Cmd.Process.Pid); got != want {
		t.Fatalf("legacy's master in %s, hupd in %s after the upgrade: want both in hupd's leaf", got, want)
	}
	return h, base, legacy, app
}

// TestMultiCgroupMixedUpgrade: hupd upgrade of a hupd running a program
// with cgroups (app) beside one without (legacy): every PID is kept, each
// program keeps its containment; then each program reloads (app's new
// generation in a new cgroup below prog-app, legacy's in hupd's leaf), and
// TERM stops both with no cgroup left behind (the new image closes app's
// cgroup as a program's, hupd's as its own).
func TestMultiCgroupMixedUpgrade(t *testing.T) {
	t.Parallel()
	h, base, g1, app1 := cgMixedUpgraded(t)
	fleetOK(t, h, "reload", "app")
	app2 := h.WaitEvent(logev.ChildReady, 1, ofProgramGen("app", 2)).Int("pid")
	// gen-2 or, when the old image's standby of that number was
	// discarded at the upgrade, a new name of it (gen-2.N).
	if cg := cgroupOf(t, app2); filepath.Base(filepath.Dir(cg)) != "prog-app" || !strings.HasPrefix(filepath.Base(cg), "gen-2") {
		t.Fatalf("app's generation 2 in %s, want prog-app/gen-2", cg)
	}
	waitGone(t, app1)
	fleetOK(t, h, "reload", "legacy")
	g2 := ctReadPrefork(t, h)
	h.WaitEvent(logev.ChildReady, 1, ofProgramGen("legacy", 2))
	for _, pid := range g1.group() {
		waitGone(t, pid)
	}
	if got, want := cgroupOf(t, g2.master), cgroupOf(t, h.Cmd.Process.Pid); got != want {
		t.Fatalf("legacy's generation 2 in %s, hupd in %s: want both in hupd's leaf", got, want)
	}
	if got := fleetGet(t, fleetAddr(h, "app")); got != app2 {
		t.Fatalf("app answered by pid %d, want %d", got, app2)
	}
	stopWithLegacy(t, h, base, append(g2.group(), app2)...)
}

// TestMultiCgroupMixedUpgradeKill9: after an upgrade of a hupd running a
// program with cgroups beside one without, kill -9 of hupd: the sentinel,
// taken over, ends both, app's generation by its cgroup and legacy's by
// its process group, and then itself.
func TestMultiCgroupMixedUpgradeKill9(t *testing.T) {
	t.Parallel()
	h, _, g, app := cgMixedUpgraded(t)
	sentinel := sentinelPID(t, h)
	kill9Gone(t, h, append(g.group(), app, sentinel)...)
	syscall.Kill(g.daemon, syscall.SIGKILL)
}

// TestMultiCgroupOffUpgradeThenAdded: a hupd whose programs all had
// cgroups off (none laid out) is upgraded, and an edit of hupd.toml then
// adds a program with cgroups: the new image lays them out then, as the
// old one would have, the new program runs in a cgroup of its own, and
// the exit leaves none behind.
func TestMultiCgroupOffUpgradeThenAdded(t *testing.T) {
	t.Parallel()
	h, base, g, appPID := cgOffThenAdded(t, true)
	if got := cgroupOf(t, appPID); filepath.Base(filepath.Dir(got)) != "prog-app" {
		t.Fatalf("app's generation in %s, want below prog-app", got)
	}
	for _, pid := range g.group() {
		if !processAlive(pid) {
			t.Fatalf("legacy's pid %d gone", pid)
		}
	}
	stopWithLegacy(t, h, base, append(g.group(), appPID)...)
}

// sdWatchdogPings waits until systemd has seen n more watchdog pings of
// the fleet's unit (WatchdogTimestampMonotonic moved n times).
func sdWatchdogPings(t *testing.T, c *nspawnContainer, n int) {
	t.Helper()
	ping := func() string {
		return strings.TrimSpace(c.Run(t, "systemctl", "show", "-P", "WatchdogTimestampMonotonic", sdFleetUnit))
	}
	last := ping()
	for i := range n {
		prev := last
		sdWait(t, c, sdFleetUnit, fmt.Sprintf("pinged (#%d)", i+1), func(map[string]string) bool {
			last = ping()
			return last != prev && last != "0"
		})
	}
}

// TestMultiSystemdUpgradeThenEdit: after an upgrade by SIGUSR2 (systemctl
// kill --kill-who=main), the new image pings
// the watchdog (three pings seen, never restarted), and an edit of
// hupd.toml that adds a program (extra) and removes one (web) keeps the
// fd store in step from what the previous image stored: extra's socket
// stored, web's removed, app's left alone. kill -9 then: the restarted
// hupd inherits app's and extra's sockets and nothing of web's.
func TestMultiSystemdUpgradeThenEdit(t *testing.T) {
	sdFleetRun(t, func(t *testing.T, c *nspawnContainer, _ string) {
		_, p := sdFleetStart(t, c)
		hupd := p["MainPID"]
		cursor := sdCursor(t, c)
		// SIGUSR2 to hupd alone, as systemd sends signals.
		c.Run(t, "systemctl", "kill", "--kill-who=main", "-s", "USR2", sdFleetUnit)
		sdWait(t, c, sdFleetUnit, "upgraded", func(map[string]string) bool {
			return len(sdRecords(sdJournal(t, c, sdFleetUnit, cursor), logev.Upgraded)) == 1
		})
		sdWatchdogPings(t, c, 3)
		if p := sdShow(t, c, sdFleetUnit); p["MainPID"] != hupd || p["NRestarts"] != "0" || p["SubState"] != "running" {
			t.Fatalf("after the upgrade and three pings: %v; want hupd %s running, never restarted", p, hupd)
		}

		p, appExtra := sdEditAppExtra(t, c)
		if p["MainPID"] != hupd {
			t.Fatalf("after the edit: %v; want hupd %s", p, hupd)
		}
		j := sdJournal(t, c, sdFleetUnit, cursor)
		if l := sdRecords(j, logev.FDStoreUpdated); len(l) != 1 || !strings.Contains(l[0], ` stored=[extra/http] removed=[web/http]`) {
			t.Errorf("fd store updates after the upgrade: %q; want extra/http stored and web/http removed, once", l)
		}
		if c.Suite.Systemd >= 254 {
			if names := sdFDStoreNames(t, c); !equalSorted(names, []string{"app/http", "extra/http"}) {
				t.Errorf("fd store: %q; want app/http and extra/http, once each", names)
			}
		}
		j = sdFleetKill9(t, c, hupd, appExtra.MatchString)
		sdInheritedEach(t, j, "app", "extra")
	})
}

// sdHoldCheck is a [program.reload] check that blocks while the fifo
// /run/hold-reload exists, until the test writes to it (sdRelease).
const sdHoldCheck = "[program.reload]\ncheck = [\"/bin/sh\", \"-c\", \"[ -p /run/hold-reload ] && read x < /run/hold-reload; exit 0\"]\n"

// TestMultiSystemdUpgradeDuringReload: while systemctl reload is in flight
// (app's reload check held by the test; SIGHUP under notify-reload, hupd
// reload as ExecReload= under notify), hupd upgrade is refused in one line
// naming the reload and nothing changes: the reload goes on and ends with
// both programs at generation 2 under the same hupd, READY=1 said (the
// unit running again). The upgrade then goes through, a reload after it
// too, and the upgraded hupd's stop leaves no cgroup behind.
func TestMultiSystemdUpgradeDuringReload(t *testing.T) {
	sdFleetRun(t, func(t *testing.T, c *nspawnContainer, _ string) {
		c.WriteFile(t, "/etc/hupd/fleet.toml", []byte("name = \"fleet\"\n"+
			sdProgramToml("app", "", `"/usr/local/bin/myserver", "-grace", "5s"`, "127.0.0.1:8081")+sdHoldCheck+
			sdProgramToml("web", "app", `"/usr/local/bin/myserver", "-grace", "5s"`, "127.0.0.1:8082")+
			sdFleetStore(c.Suite)), 0o644)
		st, p := sdFleetStart(t, c)
		hupd := p["MainPID"]
		t.Cleanup(func() {
			// A check still held goes on (opening a fifo read-write does
			// not block), before the unit is stopped.
			c.Exec(context.Background(), "sh", "-c", "[ -p /run/hold-reload ] && exec 3<>/run/hold-reload; rm -f /run/hold-reload")
		})
		c.Run(t, "mkfifo", "/run/hold-reload")
		c.Run(t, "systemctl", "reload", "--no-block", sdFleetUnit)
		sdWait(t, c, sdFleetUnit, "reloading", func(p map[string]string) bool { return p["ActiveState"] == "reloading" })

		out := c.Run(t, "sh", "-c", "XDG_RUNTIME_DIR=/run/fleet /usr/local/bin/hupd upgrade --name fleet 2>&1; echo exit=$?")
		want := "hupd: upgrade failed, hupd goes on as it was: a reload is in progress: try again when it is over\nexit=1\n"
		if out != want {
			t.Fatalf("hupd upgrade while systemctl reload is in flight: %q; want %q", out, want)
		}
		sdRelease(t, c, "/run/hold-reload")
		p = sdWait(t, c, sdFleetUnit, "reloaded", func(p map[string]string) bool {
			s, ok := sdParseFleetStatus(p["StatusText"])
			return ok && s.AppGen == 2 && s.WebGen == 2 && p["ActiveState"] == "active" && p["SubState"] == "running"
		})
		if p["MainPID"] != hupd || p["NRestarts"] != "0" {
			t.Fatalf("after the reload: %v; want hupd %s, never restarted", p, hupd)
		}
		if jobs := c.Run(t, "systemctl", "list-jobs", "--no-legend", sdFleetUnit); strings.TrimSpace(jobs) != "" {
			t.Fatalf("a job for the unit after the reload: %s", jobs)
		}
		after, _ := sdParseFleetStatus(p["StatusText"])
		if after.AppPID == st.AppPID || after.WebPID == st.WebPID {
			t.Fatalf("after the reload: %q; want new generations of both", p["StatusText"])
		}

		sdFleetCLI(t, c, "upgrade")
		if p := sdShow(t, c, sdFleetUnit); p["MainPID"] != hupd || p["StatusText"] != fmt.Sprintf("app: gen 2 (pid %d); web: gen 2 (pid %d)", after.AppPID, after.WebPID) {
			t.Fatalf("after the upgrade: %v; want hupd %s and the same status", p, hupd)
		}
		c.Run(t, "systemctl", "reload", sdFleetUnit)
		p = sdShow(t, c, sdFleetUnit)
		if s, ok := sdParseFleetStatus(p["StatusText"]); !ok || s.AppGen != 3 || s.WebGen != 3 {
			t.Fatalf("systemctl reload after the upgrade: %+v; want both programs at generation 3", s)
		}

		// The upgraded hupd's stop: each program's cgroup closed as a
		// program's, nothing left behind.
		cursor := sdCursor(t, c)
		c.Run(t, "systemctl", "stop", sdFleetUnit)
		if p := sdShow(t, c, sdFleetUnit); p["ActiveState"] != "inactive" || p["Result"] != "success" {
			t.Fatalf("after systemctl stop: %v; want inactive, Result=success", p)
		}
		if l := sdRecords(sdJournal(t, c, sdFleetUnit, cursor), logev.CgroupsLeftBehind); len(l) != 0 {
			t.Errorf("the upgraded hupd's stop: %q", l)
		}
		sdEmptyCgroup(t, c, p["ControlGroup"])
	})
}

// TestMultiCgroupMixedRemovedUpgradeAdded: app (cgroups) beside legacy
// (cgroup = "off"); an edit removes app, leaving only programs with
// cgroups off; hupd is upgraded, and an edit adds app back. The new image
// keeps the cgroups the old one laid out (handed over) and does not lay
// them out again from inside its own leaf: app's generation runs in
// base/prog-app, no second layout appears below hupd's leaf, and the exit
// leaves no cgroup behind.
func TestMultiCgroupMixedRemovedUpgradeAdded(t *testing.T) {
	t.Parallel()
	app, legacy := helloProgram("app"), legacyProgram("legacy")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app, legacy)
	base := fleetBase(t, h)
	g := ctReadPrefork(t, h)
	app1 := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	h.WaitEvent(logev.ChildReady, 1, ofProgram("legacy"))
	rewriteFleet(t, path, legacy)
	fleetOK(t, h, "reload")
	h.WaitEvent(logev.ProgramRemoved, 1, ofProgram("app"))
	waitGone(t, app1)
	fleetOK(t, h, "upgrade")
	h.WaitEvent(logev.Upgraded, 1, nil)
	rewriteFleet(t, path, legacy, app)
	fleetOK(t, h, "reload")
	app2 := h.WaitEvent(logev.ChildReady, 2, ofProgram("app")).Int("pid")
	if c := fleetStatus(t, h)["app"].Status.Containment; c == nil || c.Mode != supervisor.ContainCgroup || filepath.Dir(c.Cgroup) != base {
		t.Fatalf("app, added back after the upgrade: containment %+v, want cgroups under %s", c, base)
	}
	if got := cgroupOf(t, app2); filepath.Base(filepath.Dir(got)) != "prog-app" || !strings.HasSuffix(filepath.Dir(filepath.Dir(got)), filepath.Base(base)) {
		t.Fatalf("app's generation in %s, want below %s/prog-app", got, base)
	}
	if n := len(h.Events(logev.ContainmentCgroup)); n != 1 {
		t.Fatalf("hupd's cgroups laid out %d times, want once (before the upgrade)", n)
	}
	stopWithLegacy(t, h, base, append(g.group(), app2)...)
}

// TestMultiSystemdEndedLeavesStore: under systemd with the fd store, a
// program that ends for good while hupd goes on (once: on_exit "ignore",
// never restarted, exit 3) leaves the store: hupd stored both programs'
// sockets at its start and takes once's out when it ends, so the store
// holds app's alone (systemd-analyze fdstore, systemd 254 and later), and
// still after an upgrade, whose new image keeps it so.
func TestMultiSystemdEndedLeavesStore(t *testing.T) {
	sdFleetRun(t, func(t *testing.T, c *nspawnContainer, _ string) {
		cursor := sdCursor(t, c)
		c.WriteFile(t, "/etc/hupd/fleet.toml", []byte("name = \"fleet\"\n"+
			sdProgramToml("app", "", `"/usr/local/bin/myserver", "-grace", "5s"`, "127.0.0.1:8081")+
			"\n[[program]]\nname = \"once\"\nafter = [\"app\"]\non_exit = \"ignore\"\ncommand = [\"/bin/sh\", \"-c\", \"exit 3\"]\n"+
			"[[program.listen]]\nname = \"http\"\naddress = \"127.0.0.1:8082\"\n[program.restart]\npolicy = \"never\"\n"+
			"[program.reload]\nready = \"delay:10ms\"\n"+
			sdFleetStore(c.Suite)), 0o644)
		c.Run(t, "systemctl", "start", sdFleetUnit)
		p := sdWaitStatus(t, c, "app serving, once ended", regexp.MustCompile(`^app: gen 1 \(pid \d+\); once: ended$`))
		hupd := p["MainPID"]
		wantUpdates := func(what string, want ...string) {
			t.Helper()
			var got []string
			for _, l := range sdRecords(sdJournal(t, c, sdFleetUnit, cursor), logev.FDStoreUpdated) {
				i := strings.Index(l, " stored=")
				if i < 0 {
					t.Fatalf("fd store updated without stored=: %q", l)
				}
				got = append(got, l[i+1:])
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: fd store updates %q; want %q", what, got, want)
			}
		}
		stored := `stored="[app/http once/http]" removed=[]`
		wantUpdates("once ended", stored, "stored=[] removed=[once/http]")
		if c.Suite.Systemd >= 254 {
			if names := sdFDStoreNames(t, c); !equalSorted(names, []string{"app/http"}) {
				t.Errorf("fd store once once ended: %q; want app/http alone", names)
			}
		}
		sdFleetCLI(t, c, "upgrade")
		if p := sdShow(t, c, sdFleetUnit); p["MainPID"] != hupd || p["NRestarts"] != "0" || p["SubState"] != "running" {
			t.Fatalf("after the upgrade: %v; want hupd %s running, never restarted", p, hupd)
		}
		// The new image takes once's name out again, should the previous
		// one have left it.
		wantUpdates("upgraded", stored, "stored=[] removed=[once/http]", "stored=[] removed=[once/http]")
		if c.Suite.Systemd >= 254 {
			if names := sdFDStoreNames(t, c); !equalSorted(names, []string{"app/http"}) {
				t.Errorf("fd store after the upgrade: %q; want app/http alone", names)
			}
		}
	})
}
