package integration

// Issue 19: the in-place upgrade of a hupd that runs several programs
// (fleetupgrade.go), under a real systemd (fleetsystemd.go: notify,
// notify-reload, the fd store) and with cgroups off for some programs
// beside programs with them (fleetcgroup.go), together.

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/hupd/hupd/internal/logev"
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
// port was refused throughout.
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
		app.Stop(t)
		web.Stop(t)
		sdInheritedEach(t, j, "app", "web")
		if c.Suite.Systemd >= 254 {
			if names := sdFDStoreNames(t, c); !equalSorted(names, []string{"app/http", "web/http"}) {
				t.Errorf("fd store after the restart: %q; want app/http and web/http, once each", names)
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
