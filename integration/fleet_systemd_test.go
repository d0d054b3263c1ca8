package integration

// Several programs ([[program]]) in one hupd under a real systemd (see
// nspawn_test.go): hupd speaks for the fleet (READY=1 once every program
// was ready, RELOADING=1/READY=1 around a reload of all, STATUS= per
// program, STOPPING=1, watchdog pings) and keeps every program's sockets in
// the unit's fd store.

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// sdFleetCase is a unit type on the systemd of a suite.
type sdFleetCase struct {
	suite nspawnSuite
	typ   string // notify-reload (253 and later), or notify with ExecReload=
}

// sdFleetCases: notify-reload reloads by SIGHUP to hupd; notify by hupd
// reload (every program) as ExecReload=.
var sdFleetCases = []sdFleetCase{{suiteBookworm, "notify"}, {suiteTrixie, "notify-reload"}}

const sdFleetUnit = "fleet.service"

// sdFleetToml: app on 127.0.0.1:8081 and web, started after it, on
// 127.0.0.1:8082, each socket named http; each generation of web takes a
// second to start (so that a READY=1 said once app alone was ready would
// be seen). systemd before 254 does not say that the unit has a store.
func sdFleetToml(suite nspawnSuite) string {
	return "name = \"fleet\"\n" +
		sdProgramToml("app", "", `"/usr/local/bin/myserver", "-grace", "5s"`, "127.0.0.1:8081") +
		sdProgramToml("web", "app", `"/bin/sh", "-c", "sleep 1; exec /usr/local/bin/myserver -grace 5s"`, "127.0.0.1:8082") +
		sdFleetStore(suite)
}

// sdFleetStore is the [systemd] table systemd before 254 needs for the fd
// store, else "".
func sdFleetStore(suite nspawnSuite) string {
	if suite.Systemd < 254 {
		return "\n[systemd]\nfdstore = \"yes\"\n"
	}
	return ""
}

// sdProgramToml is a [[program]] table: command (TOML array items), a
// socket named http on addr, started after after (if not "").
func sdProgramToml(name, after, command, addr string) string {
	s := fmt.Sprintf("\n[[program]]\nname = %q\n", name)
	if after != "" {
		s += fmt.Sprintf("after = [%q]\n", after)
	}
	return s + fmt.Sprintf("command = [%s]\n[[program.listen]]\nname = \"http\"\naddress = %q\n[program.process]\nstop_timeout = \"10s\"\n", command, addr)
}

// sdFleetInstall installs hupd, hello (as myserver), the fleet's hupd.toml
// and fleet.service of type typ: the fd store, Restart=always, and a
// watchdog of 2s (hupd pings every second while it answers; a missing ping
// kills it and shows in NRestarts).
func sdFleetInstall(t *testing.T, c *nspawnContainer, typ string) {
	t.Helper()
	c.CopyFile(t, hupdBin, "/usr/local/bin/hupd", 0o755)
	c.CopyFile(t, helloBin, "/usr/local/bin/myserver", 0o755)
	c.WriteFile(t, "/etc/hupd/fleet.toml", []byte(sdFleetToml(c.Suite)), 0o644)
	reload := ""
	if typ == "notify" {
		reload = "ExecReload=/usr/local/bin/hupd reload --name fleet\n"
	}
	unit := fmt.Sprintf(`[Unit]
Description=two programs under one hupd

[Service]
Type=%s
%sExecStart=/usr/local/bin/hupd run --name fleet --config /etc/hupd/fleet.toml
KillMode=mixed
TimeoutStopSec=45
WatchdogSec=2
Restart=always
FileDescriptorStoreMax=16
RuntimeDirectory=fleet
Environment=XDG_RUNTIME_DIR=/run/fleet
`, typ, reload)
	c.WriteFile(t, "/etc/systemd/system/"+sdFleetUnit, []byte(unit), 0o644)
	t.Cleanup(func() {
		ctx := context.Background()
		c.Exec(ctx, "systemctl", "stop", sdFleetUnit)
		if t.Failed() {
			j, _ := c.Exec(ctx, "journalctl", "--no-pager", "-o", "short-monotonic", "-n", "300", "-u", sdFleetUnit)
			t.Logf("journal of %s:\n%s", sdFleetUnit, j)
		}
		c.Exec(ctx, "systemctl", "reset-failed", sdFleetUnit)
		c.RemoveFile(t, "/etc/systemd/system/"+sdFleetUnit)
		c.Exec(ctx, "systemctl", "daemon-reload")
	})
	c.Run(t, "systemctl", "daemon-reload")
}

// sdFleetServing matches the fleet's STATUS= while both programs serve.
var sdFleetServing = regexp.MustCompile(`^app: gen (\d+) \(pid (\d+)\)(, last reload failed)?; web: gen (\d+) \(pid (\d+)\)(, last reload failed)?$`)

// sdFleetStatus is what the fleet's STATUS= says of each program.
type sdFleetStatus struct{ AppGen, AppPID, WebGen, WebPID int }

func sdParseFleetStatus(text string) (sdFleetStatus, bool) {
	m := sdFleetServing.FindStringSubmatch(text)
	if m == nil || m[3] != "" || m[6] != "" {
		return sdFleetStatus{}, false
	}
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	return sdFleetStatus{n(m[1]), n(m[2]), n(m[4]), n(m[5])}, true
}

// sdGetAt returns the pid of the hello that answered GET / on addr in the
// container.
func sdGetAt(t *testing.T, c *nspawnContainer, addr string) int {
	t.Helper()
	pid, err := sdRequest(c, addr)
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	return pid
}

// sdRecords are the lines of journal (hupd's text records) with message
// msg and every one of attrs.
func sdRecords(journal, msg string, attrs ...string) []string {
	var out []string
	for _, line := range strings.Split(journal, "\n") {
		if !strings.Contains(line, "msg="+strconv.Quote(msg)) && !strings.Contains(line, "msg="+msg+" ") {
			continue
		}
		ok := true
		for _, a := range attrs {
			ok = ok && strings.Contains(line, " "+a)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// sdFleetRun runs test on each of sdFleetCases, with the fleet installed.
func sdFleetRun(t *testing.T, test func(t *testing.T, c *nspawnContainer, typ string)) {
	for _, tc := range sdFleetCases {
		t.Run(tc.suite.Name+"/"+tc.typ, func(t *testing.T) {
			c := bootedContainer(t, tc.suite)
			sdFleetInstall(t, c, tc.typ)
			test(t, c, tc.typ)
		})
	}
}

// sdFleetStart starts the fleet's unit: when systemctl start returns, the
// unit must be active/running with both programs at generation 1.
func sdFleetStart(t *testing.T, c *nspawnContainer) (sdFleetStatus, map[string]string) {
	t.Helper()
	c.Run(t, "systemctl", "start", sdFleetUnit)
	p := sdShow(t, c, sdFleetUnit)
	st, ok := sdParseFleetStatus(p["StatusText"])
	if p["ActiveState"] != "active" || p["SubState"] != "running" || !ok || st.AppGen != 1 || st.WebGen != 1 {
		t.Fatalf("after systemctl start: %v; want active/running with both programs at generation 1", p)
	}
	return st, p
}

// sdFleetKill9 kills hupd (MainPID hupd) with SIGKILL, waits until systemd
// has started it again and its status satisfies serving, and returns the
// unit's journal from the kill on.
func sdFleetKill9(t *testing.T, c *nspawnContainer, hupd string, serving func(status string) bool) string {
	t.Helper()
	cursor := sdCursor(t, c)
	c.Run(t, "systemctl", "kill", "--kill-who=main", "-s", "KILL", sdFleetUnit)
	sdWait(t, c, sdFleetUnit, "restarted by systemd", func(p map[string]string) bool {
		return p["MainPID"] != hupd && p["NRestarts"] == "1" && p["ActiveState"] == "active" && p["SubState"] == "running" && serving(p["StatusText"])
	})
	return sdJournal(t, c, sdFleetUnit, cursor)
}

// sdInheritedEach fails t unless journal (a restarted hupd's) says that
// each of progs inherited its socket from the store, and that the store
// held nothing else.
func sdInheritedEach(t *testing.T, journal string, progs ...string) {
	t.Helper()
	for _, prog := range progs {
		if l := sdRecords(journal, logev.Listening, "program="+prog, "inherited=true"); len(l) != 1 {
			t.Errorf("the restarted hupd's %s: %q; want its socket inherited from the store", prog, l)
		}
	}
	if l := sdRecords(journal, logev.InheritedClosed); len(l) != 0 {
		t.Errorf("stored sockets no program took: %q", l)
	}
}

// TestMultiSystemdService: a Type=notify(-reload) unit running two
// programs. systemctl start returns once both are ready (web, after app,
// takes a second): the status then lists both serving; systemctl reload
// reloads both and returns once both reloads ended (both have a new
// generation, hupd stays the main process); systemctl stop stops web
// before app and ends with Result=success and nothing left in the unit's
// cgroup; the watchdog (2s) never fired.
func TestMultiSystemdService(t *testing.T) {
	sdFleetRun(t, func(t *testing.T, c *nspawnContainer, typ string) {
		st, p := sdFleetStart(t, c)
		if p["Type"] != typ {
			t.Fatalf("Type=%s, want %s", p["Type"], typ)
		}
		hupd := p["MainPID"]
		if pid := sdGetAt(t, c, "127.0.0.1:8081"); pid != st.AppPID {
			t.Fatalf("app's port served by pid %d; the status names %d", pid, st.AppPID)
		}
		if pid := sdGetAt(t, c, "127.0.0.1:8082"); pid != st.WebPID {
			t.Fatalf("web's port served by pid %d; the status names %d", pid, st.WebPID)
		}

		c.Run(t, "systemctl", "reload", sdFleetUnit)
		p = sdShow(t, c, sdFleetUnit)
		after, ok := sdParseFleetStatus(p["StatusText"])
		if !ok || after.AppGen != 2 || after.WebGen != 2 || p["SubState"] != "running" || p["MainPID"] != hupd {
			t.Fatalf("when systemctl reload returned: %v; want both programs at generation 2 under hupd %s", p, hupd)
		}
		if pid := sdGetAt(t, c, "127.0.0.1:8082"); pid != after.WebPID || pid == st.WebPID {
			t.Fatalf("web's port served by pid %d after the reload; want %d", pid, after.WebPID)
		}

		cg := p["ControlGroup"]
		cursor := sdCursor(t, c)
		c.Run(t, "systemctl", "stop", sdFleetUnit)
		p = sdShow(t, c, sdFleetUnit)
		if p["ActiveState"] != "inactive" || p["Result"] != "success" || p["NRestarts"] != "0" {
			t.Fatalf("after systemctl stop: %v; want inactive, Result=success, never restarted", p)
		}
		ends := sdRecords(sdJournal(t, c, sdFleetUnit, cursor), logev.ProgramEnded)
		if len(ends) != 2 || !strings.Contains(ends[0], " program=web") || !strings.Contains(ends[1], " program=app") {
			t.Fatalf("programs ended: %q; want web, then app", ends)
		}
		sdEmptyCgroup(t, c, cg)
	})
}

// TestMultiSystemdKill9: kill -9 of a hupd running two programs whose
// sockets (both named http) are in the unit's fd store: systemd starts
// hupd again (Restart=always) with the sockets, each program takes its
// own back (by name and port: the restarted hupd inherits both, and each
// port is answered by that program's new generation), and clients
// connecting to both ports meanwhile are never refused.
func TestMultiSystemdKill9(t *testing.T) {
	sdFleetRun(t, func(t *testing.T, c *nspawnContainer, _ string) {
		st, p := sdFleetStart(t, c)
		app, web := sdStartLoadAt(c, "127.0.0.1:8081"), sdStartLoadAt(c, "127.0.0.1:8082")
		app.WaitServedBy(t, "app's generation 1", func(pid int) bool { return pid == st.AppPID })
		web.WaitServedBy(t, "web's generation 1", func(pid int) bool { return pid == st.WebPID })

		var again sdFleetStatus
		j := sdFleetKill9(t, c, p["MainPID"], func(status string) bool {
			s, ok := sdParseFleetStatus(status)
			again = s
			return ok
		})
		app.WaitServedBy(t, "app's generation under the new hupd", func(pid int) bool { return pid == again.AppPID })
		web.WaitServedBy(t, "web's generation under the new hupd", func(pid int) bool { return pid == again.WebPID })
		app.Stop(t)
		web.Stop(t)
		for _, pid := range []int{st.AppPID, st.WebPID} {
			if sdAlive(c, pid) {
				t.Errorf("the killed hupd's child %d still runs", pid)
			}
		}
		sdInheritedEach(t, j, "app", "web")

		c.Run(t, "systemctl", "stop", sdFleetUnit)
		if p := sdShow(t, c, sdFleetUnit); p["ActiveState"] != "inactive" || p["Result"] != "success" {
			t.Fatalf("after systemctl stop: %v; want inactive, Result=success", p)
		}
	})
}

// sdEditAppExtra edits the fleet's hupd.toml to app and extra (added, on
// 127.0.0.1:8083; web removed), runs systemctl reload and waits until
// STATUS= names app and extra, the unit running. It returns the unit's
// properties then and the pattern of that STATUS=.
func sdEditAppExtra(t *testing.T, c *nspawnContainer) (map[string]string, *regexp.Regexp) {
	t.Helper()
	c.WriteFile(t, "/etc/hupd/fleet.toml", []byte("name = \"fleet\"\n"+
		sdProgramToml("app", "", `"/usr/local/bin/myserver", "-grace", "5s"`, "127.0.0.1:8081")+
		sdProgramToml("extra", "", `"/usr/local/bin/myserver", "-grace", "5s"`, "127.0.0.1:8083")+
		sdFleetStore(c.Suite)), 0o644)
	c.Run(t, "systemctl", "reload", sdFleetUnit)
	appExtra := regexp.MustCompile(`^app: gen \d+ \(pid \d+\); extra: gen 1 \(pid \d+\)$`)
	p := sdWait(t, c, sdFleetUnit, "serving app and extra", func(p map[string]string) bool {
		return appExtra.MatchString(p["StatusText"]) && p["SubState"] == "running"
	})
	return p, appExtra
}

// TestMultiSystemdStoreEdit: edits of hupd.toml keep the fd store in step
// with the programs: a program added (extra, on 127.0.0.1:8083) has its
// socket stored, one removed (web) has its socket taken out. After a
// kill -9, the restarted hupd inherits extra's socket and app's, and is
// handed nothing of web's.
func TestMultiSystemdStoreEdit(t *testing.T) {
	sdFleetRun(t, func(t *testing.T, c *nspawnContainer, _ string) {
		sdFleetStart(t, c)
		p, appExtra := sdEditAppExtra(t, c)
		j := sdFleetKill9(t, c, p["MainPID"], appExtra.MatchString)
		sdInheritedEach(t, j, "app", "extra")
	})
}
