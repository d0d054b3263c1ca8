package integration

// hupd under a real systemd (Debian's, booted in systemd-nspawn: see
// nspawn_test.go), with the units exactly as examples/systemd ships them.
// The tests synchronise on systemd's own states (systemctl's exit status,
// systemctl show), each wait bounded by the deadline.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sdUnitCase is a unit as shipped, on the systemd of a suite.
type sdUnitCase struct {
	suite nspawnSuite
	unit  string // file in examples/systemd, installed as app.service
}

// sdAppUnits: app-notify.service (Type=notify, ExecReload=) is the unit for
// systemd before 253, and works on later ones too; app.service
// (Type=notify-reload) needs 253.
var sdAppUnits = []sdUnitCase{
	{suiteBookworm, "app-notify.service"},
	{suiteTrixie, "app.service"},
	{suiteTrixie, "app-notify.service"},
}

// sdAppToml is /etc/hupd/app.toml: hello on 127.0.0.1:8080 (the
// container's own loopback), a reload check the tests can make fail, and
// the fd store. systemd before 254 does not say that the unit has a store
// ($FDSTORE), so there it is fdstore = "yes"; on later ones the default
// ("auto") finds it.
func sdAppToml(suite nspawnSuite) string {
	fdstore := ""
	if suite.Systemd < 254 {
		fdstore = "\n[systemd]\nfdstore = \"yes\"\n"
	}
	return `command = ["/usr/local/bin/myserver", "-grace", "5s"]

[[listen]]
name = "http"
address = "127.0.0.1:8080"

[process]
stop_timeout = "10s"

[reload]
check = ["/usr/bin/test", "-e", "/etc/hupd/reload-ok"]
` + fdstore
}

// sdInstall copies hupd, hello (as /usr/local/bin/myserver, the program
// app-activated.service names) and the given units of examples/systemd
// into the container (units under their own names, except that the file
// of an app unit is installed as app.service), and reloads systemd. At
// cleanup it stops the units, logs their journal if t failed, and removes
// them.
func sdInstall(t *testing.T, c *nspawnContainer, units ...string) {
	t.Helper()
	c.CopyFile(t, hupdBin, "/usr/local/bin/hupd", 0o755)
	c.CopyFile(t, helloBin, "/usr/local/bin/myserver", 0o755)
	c.WriteFile(t, "/etc/hupd/app.toml", []byte(sdAppToml(c.Suite)), 0o644)
	c.WriteFile(t, "/etc/hupd/reload-ok", nil, 0o644)
	var names []string
	for _, u := range units {
		name := u
		if strings.HasPrefix(u, "app") && strings.HasSuffix(u, ".service") && !strings.HasPrefix(u, "app-activated") {
			name = "app.service"
		}
		c.CopyFile(t, filepath.Join("../examples/systemd", u), "/etc/systemd/system/"+name, 0o644)
		names = append(names, name)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		c.Exec(ctx, append([]string{"systemctl", "stop"}, names...)...)
		if t.Failed() {
			args := []string{"journalctl", "--no-pager", "-o", "short-monotonic", "-n", "200"}
			for _, n := range names {
				args = append(args, "-u", n)
			}
			j, _ := c.Exec(ctx, args...)
			t.Logf("journal of %v:\n%s", names, j)
		}
		c.Exec(ctx, append([]string{"systemctl", "reset-failed"}, names...)...)
		for _, n := range names {
			os.Remove(filepath.Join("/proc", strconv.Itoa(c.Leader), "root/etc/systemd/system", n))
		}
		c.Exec(ctx, "systemctl", "daemon-reload")
	})
	c.Run(t, "systemctl", "daemon-reload")
}

// sdProps are the properties the tests read with systemctl show.
var sdProps = "ActiveState,SubState,StatusText,Result,MainPID,NRestarts,Type,ControlGroup"

// sdShow returns unit's properties.
func sdShow(t *testing.T, c *nspawnContainer, unit string) map[string]string {
	t.Helper()
	out := c.Run(t, "systemctl", "show", "-p", sdProps, unit)
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// sdWait waits until unit's properties satisfy ok (a poll of systemctl
// show, bounded by the deadline; bad, if it returns non-empty, fails at
// once with that reason) and returns them.
func sdWait(t *testing.T, c *nspawnContainer, unit, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	end := time.Now().Add(deadline)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		p := sdShow(t, c, unit)
		if ok(p) {
			return p
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not %s within %v: %v", unit, what, deadline, p)
		}
		<-tick.C
	}
}

// sdServing matches hupd's STATUS= while a generation serves.
var sdServing = regexp.MustCompile(`^serving generation (\d+) \(pid (\d+)\)(?:; last reload (ok|failed) \((\w+)(?:, [^)]*)?\)(.*))?$`)

// sdStatus is a StatusText= that sdServing matched.
type sdStatus struct {
	Gen, PID   int
	LastReload string // "", "ok" or "failed"
	Rest       string // after "(swap)": the reason of a failed reload
}

func sdParseStatus(text string) (sdStatus, bool) {
	m := sdServing.FindStringSubmatch(text)
	if m == nil {
		return sdStatus{}, false
	}
	gen, _ := strconv.Atoi(m[1])
	pid, _ := strconv.Atoi(m[2])
	return sdStatus{Gen: gen, PID: pid, LastReload: m[3], Rest: m[5]}, true
}

// sdWaitServing waits until unit is active/running with hupd's status
// saying a generation after gen serves, and returns that status. It fails
// at once on a status of a failed reload other than before (the status
// before the reload began).
func sdWaitServing(t *testing.T, c *nspawnContainer, unit string, after int, before string) (sdStatus, map[string]string) {
	t.Helper()
	var st sdStatus
	p := sdWait(t, c, unit, fmt.Sprintf("serving a generation after %d", after), func(p map[string]string) bool {
		s, ok := sdParseStatus(p["StatusText"])
		if ok && s.LastReload == "failed" && p["StatusText"] != before {
			t.Fatalf("the reload failed: %v", p)
		}
		st = s
		return ok && s.Gen > after && p["ActiveState"] == "active" && p["SubState"] == "running"
	})
	return st, p
}

// sdGet returns the pid of the hello that answered GET / on port 8080 in
// the container, and the name of its socket.
func sdGet(t *testing.T, c *nspawnContainer) (pid int, name string) {
	t.Helper()
	resp, err := c.HTTPClient().Get("http://127.0.0.1:8080/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d %q %v", resp.StatusCode, b, err)
	}
	pid, name, ok := sdParseHello(string(b))
	if !ok {
		t.Fatalf("GET: %q is not hello's answer", b)
	}
	return pid, name
}

func sdParseHello(body string) (pid int, name string, ok bool) {
	var p, n string
	for _, line := range strings.Split(body, "\n") {
		if v, found := strings.CutPrefix(line, "pid "); found {
			p = v
		}
		if v, found := strings.CutPrefix(line, "name "); found {
			n = v
		}
	}
	pid, err := strconv.Atoi(p)
	return pid, n, err == nil && pid > 0
}

// sdAlive says whether pid (in the container) is alive.
func sdAlive(c *nspawnContainer, pid int) bool {
	_, err := c.Exec(context.Background(), "kill", "-0", strconv.Itoa(pid))
	return err == nil
}

// TestSystemdService runs hupd as a systemd service with the units as
// shipped: start (systemd waits for hupd's READY=1: active/running with
// hupd's status), systemctl reload (a swap: a new pid serves, hupd stays
// the main process), a failing reload (the old generation serves on, the
// status says why; with Type=notify + ExecReload= systemctl reload fails
// too, with notify-reload it cannot), ten systemctl kill -s HUP in a row
// (the signal reaches every process of the unit, hupd's standby shim too:
// each one is a good reload), and systemctl stop (Result=success, nothing
// left in the unit's cgroup).
func TestSystemdService(t *testing.T) {
	for _, tc := range sdAppUnits {
		t.Run(tc.suite.Name+"/"+tc.unit, func(t *testing.T) {
			c := bootedContainer(t, tc.suite)
			sdInstall(t, c, tc.unit)
			const unit = "app.service"

			c.Run(t, "systemctl", "start", unit)
			p := sdShow(t, c, unit)
			wantType := strings.TrimSuffix(strings.TrimPrefix(tc.unit, "app-"), ".service")
			if tc.unit == "app.service" {
				wantType = "notify-reload"
			}
			if p["Type"] != wantType || p["ActiveState"] != "active" || p["SubState"] != "running" {
				t.Fatalf("after systemctl start: %v; want Type=%s active/running", p, wantType)
			}
			st, ok := sdParseStatus(p["StatusText"])
			if !ok || st.Gen != 1 || st.LastReload != "" {
				t.Fatalf("StatusText=%q after the start: want serving generation 1", p["StatusText"])
			}
			hupd := p["MainPID"]
			if pid, name := sdGet(t, c); pid != st.PID || name != "http" {
				t.Fatalf("served by pid %d on %q; the status names pid %d", pid, name, st.PID)
			}

			// A good reload: a new generation serves.
			c.Run(t, "systemctl", "reload", unit)
			good, p := sdWaitServing(t, c, unit, st.Gen, "")
			if good.LastReload != "ok" || good.PID == st.PID || p["MainPID"] != hupd {
				t.Fatalf("after systemctl reload: %v; want a new generation by a good reload, MainPID %s", p, hupd)
			}
			if pid, _ := sdGet(t, c); pid != good.PID {
				t.Fatalf("served by pid %d after the reload; want %d", pid, good.PID)
			}

			// A failing reload: the check fails.
			c.RemoveFile(t, "/etc/hupd/reload-ok")
			_, err := c.Exec(context.Background(), "systemctl", "reload", unit)
			switch {
			case tc.unit == "app.service" && err != nil:
				t.Fatalf("systemctl reload of a Type=notify-reload unit failed: %v (it cannot know)", err)
			case tc.unit != "app.service" && err == nil:
				t.Fatal("systemctl reload succeeded, but the reload failed")
			}
			var failed sdStatus
			p = sdWait(t, c, unit, "reporting the failed reload", func(p map[string]string) bool {
				failed, _ = sdParseStatus(p["StatusText"])
				return failed.LastReload == "failed" && p["ActiveState"] == "active" && p["SubState"] == "running"
			})
			if failed.Gen != good.Gen || failed.PID != good.PID || !strings.HasPrefix(failed.Rest, ": ") || p["MainPID"] != hupd {
				t.Fatalf("after a failed reload: %v; want generation %d (pid %d) serving on, and why", p, good.Gen, good.PID)
			}
			t.Logf("a failed reload's status: %s", p["StatusText"])
			if pid, _ := sdGet(t, c); pid != good.PID {
				t.Fatalf("served by pid %d after the failed reload; want %d", pid, good.PID)
			}
			c.WriteFile(t, "/etc/hupd/reload-ok", nil, 0o644)

			// SIGHUP to every process of the unit, ten times.
			last, lastText := failed, p["StatusText"]
			for i := range 10 {
				c.Run(t, "systemctl", "kill", "-s", "HUP", unit)
				next, p := sdWaitServing(t, c, unit, last.Gen, lastText)
				if next.LastReload != "ok" || p["MainPID"] != hupd || p["NRestarts"] != "0" {
					t.Fatalf("systemctl kill -s HUP #%d: %v; want a good reload by hupd %s", i+1, p, hupd)
				}
				last, lastText = next, p["StatusText"]
			}
			if pid, _ := sdGet(t, c); pid != last.PID {
				t.Fatalf("served by pid %d after the HUPs; want %d", pid, last.PID)
			}

			// Stop: a clean result, nothing left.
			cg := p["ControlGroup"]
			c.Run(t, "systemctl", "stop", unit)
			p = sdShow(t, c, unit)
			if p["ActiveState"] != "inactive" || p["Result"] != "success" {
				t.Fatalf("after systemctl stop: %v; want inactive, Result=success", p)
			}
			for _, pid := range []string{hupd, strconv.Itoa(last.PID)} {
				if n, _ := strconv.Atoi(pid); sdAlive(c, n) {
					t.Errorf("pid %s still runs after the stop", pid)
				}
			}
			sdEmptyCgroup(t, c, cg)
		})
	}
}

// sdEmptyCgroup fails t if a process is left in the container's cgroup cg
// (in either hierarchy that it may be in).
func sdEmptyCgroup(t *testing.T, c *nspawnContainer, cg string) {
	t.Helper()
	if cg == "" {
		t.Fatal("the unit had no ControlGroup")
	}
	for _, h := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"} {
		out, _ := c.Exec(context.Background(), "cat", filepath.Join(h, cg, "cgroup.procs"))
		if strings.TrimSpace(out) != "" {
			t.Errorf("left in %s%s: %s", h, cg, out)
		}
	}
}

// TestSystemdNotifyReloadNeeds253: systemd 252 does not know
// Type=notify-reload and runs the shipped app.service as Type=simple
// (hence app-notify.service).
func TestSystemdNotifyReloadNeeds253(t *testing.T) {
	c := bootedContainer(t, suiteBookworm)
	sdInstall(t, c, "app.service")
	if p := sdShow(t, c, "app.service"); p["Type"] != "simple" {
		t.Fatalf("systemd %d takes app.service as Type=%s; the README says it does not know notify-reload", c.Suite.Systemd, p["Type"])
	}
}

// sdLoad is a client that connects to an address in the container in a
// loop, one request at a time, and counts what happens.
type sdLoad struct {
	addr    string
	mu      sync.Mutex
	cond    *sync.Cond
	refused int         // connections refused
	lost    int         // connections accepted but not answered
	served  map[int]int // answers by pid
	other   []error
	stop    chan struct{}
	done    chan struct{}
}

func sdStartLoad(c *nspawnContainer) *sdLoad { return sdStartLoadAt(c, "127.0.0.1:8080") }

// sdStartLoadAt is sdStartLoad on addr.
func sdStartLoadAt(c *nspawnContainer, addr string) *sdLoad {
	l := &sdLoad{addr: addr, served: map[int]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			pid, err := sdRequest(c, l.addr)
			l.mu.Lock()
			switch {
			case err == nil:
				l.served[pid]++
			case errors.Is(err, syscall.ECONNREFUSED):
				l.refused++
			case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				l.lost++
			default:
				l.other = append(l.other, err)
			}
			l.cond.Broadcast()
			l.mu.Unlock()
		}
	}()
	return l
}

// sdRequest makes one connection to addr and GET /, and returns who
// answered.
func sdRequest(c *nspawnContainer, addr string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	conn, err := c.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\nHost: app\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	pid, _, ok := sdParseHello(string(b))
	if !ok {
		return 0, fmt.Errorf("answer %q", b)
	}
	return pid, nil
}

// WaitServedBy waits until a pid for which ok holds has answered.
func (l *sdLoad) WaitServedBy(t *testing.T, what string, ok func(pid int) bool) int {
	t.Helper()
	var found int
	if !waitCond(&l.mu, l.cond, func() bool {
		for pid := range l.served {
			if ok(pid) {
				found = pid
				return true
			}
		}
		return false
	}) {
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Fatalf("%s: no answer from %s within %v: %v (refused %d, lost %d, other %v)", l.addr, what, deadline, l.served, l.refused, l.lost, l.other)
	}
	return found
}

// Stop ends the loop and fails t on a refused connection or an error
// other than a lost connection.
func (l *sdLoad) Stop(t *testing.T) {
	t.Helper()
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	total := l.refused + l.lost + len(l.other)
	for _, n := range l.served {
		total += n
	}
	t.Logf("client of %s: %d connections: answered %v, refused %d, lost %d, other errors %d", l.addr, total, l.served, l.refused, l.lost, len(l.other))
	if l.refused != 0 || len(l.other) != 0 {
		t.Errorf("%s: %d connections refused, other errors: %v", l.addr, l.refused, l.other)
	}
}

// TestSystemdKill9: kill -9 of hupd under Restart=, with hupd keeping its
// socket in the unit's fd store: systemd starts hupd again with the
// socket, and a client connecting in a loop meanwhile is never refused;
// the new hupd's child answers the connections that waited.
func TestSystemdKill9(t *testing.T) {
	for _, tc := range []sdUnitCase{sdAppUnits[0], sdAppUnits[1]} {
		t.Run(tc.suite.Name+"/"+tc.unit, func(t *testing.T) {
			c := bootedContainer(t, tc.suite)
			sdInstall(t, c, tc.unit)
			const unit = "app.service"
			c.Run(t, "systemctl", "start", unit)
			p := sdShow(t, c, unit)
			st, ok := sdParseStatus(p["StatusText"])
			if !ok || p["SubState"] != "running" {
				t.Fatalf("after the start: %v", p)
			}
			hupd := p["MainPID"]

			l := sdStartLoad(c)
			l.WaitServedBy(t, "generation 1", func(pid int) bool { return pid == st.PID })
			c.Run(t, "systemctl", "kill", "--kill-who=main", "-s", "KILL", unit)
			var after sdStatus
			sdWait(t, c, unit, "restarted by systemd", func(p map[string]string) bool {
				s, ok := sdParseStatus(p["StatusText"])
				after = s
				return ok && p["MainPID"] != hupd && p["NRestarts"] == "1" && p["ActiveState"] == "active" && p["SubState"] == "running"
			})
			l.WaitServedBy(t, "the restarted hupd's child", func(pid int) bool { return pid == after.PID })
			l.Stop(t)
			if sdAlive(c, st.PID) {
				t.Errorf("the killed hupd's child %d still runs", st.PID)
			}

			c.Run(t, "systemctl", "stop", unit)
			if p := sdShow(t, c, unit); p["ActiveState"] != "inactive" || p["Result"] != "success" {
				t.Fatalf("after systemctl stop: %v; want inactive, Result=success", p)
			}
		})
	}
}

// TestSystemdSocketActivated: the shipped socket unit and its service.
// Nothing runs until the first connection; that connection starts hupd,
// whose child gets systemd's socket under its FileDescriptorName=
// (LISTEN_FDNAMES=http) and answers it. A restart of the service under
// load refuses nothing (the socket belongs to the .socket unit).
func TestSystemdSocketActivated(t *testing.T) {
	for _, suite := range []nspawnSuite{suiteBookworm, suiteTrixie} {
		t.Run(suite.Name, func(t *testing.T) {
			c := bootedContainer(t, suite)
			sdInstall(t, c, "app-activated.socket", "app-activated.service")
			const unit = "app-activated.service"
			c.Run(t, "systemctl", "start", "app-activated.socket")
			if p := sdShow(t, c, unit); p["ActiveState"] != "inactive" {
				t.Fatalf("the service runs before a connection: %v", p)
			}
			pid, name := sdGet(t, c)
			p := sdShow(t, c, unit)
			if p["ActiveState"] != "active" || name != "http" {
				t.Fatalf("after the first connection: %v, socket %q", p, name)
			}
			env := c.Run(t, "cat", fmt.Sprintf("/proc/%d/environ", pid))
			if !strings.Contains("\x00"+env, "\x00LISTEN_FDNAMES=http\x00") || !strings.Contains("\x00"+env, "\x00LISTEN_FDS=1\x00") {
				t.Fatalf("the child's environment: %q; want LISTEN_FDS=1, LISTEN_FDNAMES=http", strings.ReplaceAll(env, "\x00", " "))
			}

			l := sdStartLoad(c)
			l.WaitServedBy(t, "the first hupd's child", func(p int) bool { return p == pid })
			c.Run(t, "systemctl", "restart", unit)
			l.WaitServedBy(t, "the restarted hupd's child", func(p int) bool { return p != pid })
			l.Stop(t)

			c.Run(t, "systemctl", "stop", unit, "app-activated.socket")
			if p := sdShow(t, c, unit); p["ActiveState"] != "inactive" || p["Result"] != "success" {
				t.Fatalf("after systemctl stop: %v; want inactive, Result=success", p)
			}
		})
	}
}

// TestSystemdWatchdog: hupd pings WATCHDOG=1 at half WatchdogSec=, which
// systemd records (WatchdogTimestamp=) and which keeps it from killing
// hupd. The shipped units set 20 s; a drop-in shortens it to 1 s here, so
// that pings come every half second: the test waits for two, each after
// the one before, and hupd still runs, never restarted.
func TestSystemdWatchdog(t *testing.T) {
	for _, tc := range sdAppUnits[:2] {
		t.Run(tc.suite.Name+"/"+tc.unit, func(t *testing.T) {
			c := bootedContainer(t, tc.suite)
			sdInstall(t, c, tc.unit)
			const unit = "app.service"
			dropin := "/etc/systemd/system/app.service.d/watchdog.conf"
			c.WriteFile(t, dropin, []byte("[Service]\nWatchdogSec=1s\n"), 0o644)
			t.Cleanup(func() { os.Remove(filepath.Join("/proc", strconv.Itoa(c.Leader), "root", dropin)) })
			c.Run(t, "systemctl", "daemon-reload")
			c.Run(t, "systemctl", "start", unit)
			hupd := sdShow(t, c, unit)["MainPID"]
			ping := func() string {
				return strings.TrimSpace(c.Run(t, "systemctl", "show", "-P", "WatchdogTimestampMonotonic", unit))
			}
			last := ping()
			for i := range 2 {
				prev := last
				sdWait(t, c, unit, fmt.Sprintf("pinged (#%d)", i+1), func(map[string]string) bool {
					last = ping()
					return last != prev && last != "0"
				})
			}
			if p := sdShow(t, c, unit); p["MainPID"] != hupd || p["NRestarts"] != "0" || p["SubState"] != "running" {
				t.Fatalf("after the pings: %v; want hupd %s running, never restarted", p, hupd)
			}
		})
	}
}

// sdHoldToml is an app.toml whose reloads and stop wait for the test: the
// reload check, and the child on its stop signal, each block while a fifo
// (/run/hold-reload, /run/hold-stop) exists, until the test writes to it
// (sdRelease), so that systemd's state in between is there to be read.
// The child is a shell, ready once it runs (ready_command), not hello:
// what is under test is hupd's own messages to systemd.
const sdHoldToml = `command = ["/bin/sh", "-c", "trap '[ -p /run/hold-stop ] && read x < /run/hold-stop; kill $p; exit 0' TERM; sleep infinity & p=$!; wait $p"]

[[listen]]
name = "http"
address = "127.0.0.1:8080"

[process]
stop_timeout = "60s"

[reload]
ready_command = ["/bin/true"]
check = ["/bin/sh", "-c", "[ -p /run/hold-reload ] && read x < /run/hold-reload; exit 0"]
`

// sdCursor is the journal's cursor now: sdJournal reads what comes after.
func sdCursor(t *testing.T, c *nspawnContainer) string {
	t.Helper()
	out := c.Run(t, "journalctl", "-n", "0", "--show-cursor", "--no-pager")
	_, cur, ok := strings.Cut(out, "-- cursor: ")
	if !ok {
		t.Fatalf("journalctl --show-cursor: %q", out)
	}
	return strings.TrimSpace(cur)
}

// sdJournal returns unit's journal after cursor (systemd's lines about it
// and its processes' output), once journald has written everything it got.
func sdJournal(t *testing.T, c *nspawnContainer, unit, cursor string) string {
	t.Helper()
	c.Run(t, "journalctl", "--sync")
	return c.Run(t, "journalctl", "--no-pager", "-o", "cat", "-u", unit, "--after-cursor", cursor)
}

// sdRelease lets a waiter on the fifo go on (opening it blocks until the
// waiter has it open too), and removes it.
func sdRelease(t *testing.T, c *nspawnContainer, fifo string) {
	t.Helper()
	c.Run(t, "sh", "-c", "echo > "+fifo)
	c.RemoveFile(t, fifo)
}

// TestSystemdSignalsToHupd signals hupd itself (its MainPID, not through
// systemctl), so that what systemd does is the doing of hupd's messages
// alone; each step is held by the test (see sdHoldToml) while systemd's
// state is read.
//
// SIGHUP: hupd reloads and says RELOADING=1, which takes the unit from
// running to reloading (SubState reload before systemd 253, reload-notify
// from 253, Type=notify as well as notify-reload) with no reload job
// queued, and at hupd's READY=1 back to running; systemd writes nothing
// about it to the journal (its Reloading/Reloaded lines are a job's).
// Under notify-reload a systemctl reload is checked too: systemd sends
// SIGHUP and waits in reload-signal for a RELOADING=1 whose
// MONOTONIC_USEC= is not before its signal, and only such a message takes
// it to reload-notify (without one, or with an older one, systemd 257
// stays in reload-signal, and says nothing in the journal).
//
// SIGTERM: hupd says STOPPING=1, and systemd takes the unit to
// deactivating (stop-sigterm) while hupd still runs and drains, with no
// stop job queued; hupd then exits 0 and the unit ends inactive/dead with
// Result=success, not restarted (Restart=on-failure), nothing left in its
// cgroup.
func TestSystemdSignalsToHupd(t *testing.T) {
	for _, tc := range sdAppUnits {
		t.Run(tc.suite.Name+"/"+tc.unit, func(t *testing.T) {
			c := bootedContainer(t, tc.suite)
			sdInstall(t, c, tc.unit)
			c.WriteFile(t, "/etc/hupd/app.toml", []byte(sdHoldToml), 0o644)
			const unit = "app.service"
			c.Run(t, "systemctl", "start", unit)
			p := sdShow(t, c, unit)
			st, ok := sdParseStatus(p["StatusText"])
			if !ok || p["SubState"] != "running" {
				t.Fatalf("after the start: %v", p)
			}
			hupd, cg := p["MainPID"], p["ControlGroup"]
			t.Cleanup(func() {
				// Whatever still waits on a hold goes on (opening a fifo
				// read-write does not block), before the unit is stopped.
				c.Exec(context.Background(), "sh", "-c", "for f in /run/hold-reload /run/hold-stop; do [ -p $f ] && exec 3<>$f; rm -f $f; done")
			})
			noJob := func(when string) {
				t.Helper()
				if jobs := c.Run(t, "systemctl", "list-jobs", "--no-legend", unit); strings.TrimSpace(jobs) != "" {
					t.Fatalf("%s: a job for the unit: %s", when, jobs)
				}
			}
			// systemd's own lines about the unit (hupd's are key=value).
			sdLines := func(cursor string) []string {
				var out []string
				for _, l := range strings.Split(sdJournal(t, c, unit, cursor), "\n") {
					if l != "" && !strings.HasPrefix(l, "time=") {
						out = append(out, l)
					}
				}
				return out
			}
			reloadState := "reload-notify"
			if tc.suite.Systemd < 253 {
				reloadState = "reload"
			}

			// SIGHUP to hupd: running → reloading → running.
			cursor := sdCursor(t, c)
			c.Run(t, "mkfifo", "/run/hold-reload")
			c.Run(t, "sh", "-c", "kill -HUP "+hupd)
			p = sdWait(t, c, unit, "reloading on hupd's RELOADING=1", func(p map[string]string) bool {
				return p["ActiveState"] == "reloading"
			})
			t.Logf("while hupd reloads on its SIGHUP: %s/%s, %q", p["ActiveState"], p["SubState"], p["StatusText"])
			if p["SubState"] != reloadState || p["MainPID"] != hupd || !strings.HasPrefix(p["StatusText"], "reloading") {
				t.Fatalf("while hupd reloads: %v; want reloading/%s, hupd %s saying reloading", p, reloadState, hupd)
			}
			noJob("while hupd reloads")
			sdRelease(t, c, "/run/hold-reload")
			st, p = sdWaitServing(t, c, unit, st.Gen, "")
			if st.LastReload != "ok" || p["MainPID"] != hupd || p["NRestarts"] != "0" {
				t.Fatalf("after the SIGHUP: %v; want a good reload by hupd %s", p, hupd)
			}
			if l := sdLines(cursor); len(l) != 0 {
				t.Errorf("systemd's journal about a reload hupd began: %q; want nothing (no job)", l)
			}

			// systemctl reload under notify-reload: systemd's SIGHUP,
			// hupd's RELOADING=1 with MONOTONIC_USEC=.
			if tc.suite.Systemd >= 253 && p["Type"] == "notify-reload" {
				cursor := sdCursor(t, c)
				c.Run(t, "mkfifo", "/run/hold-reload")
				c.Run(t, "systemctl", "--no-block", "reload", unit)
				p = sdWait(t, c, unit, "acknowledging hupd's RELOADING=1 (reload-notify)", func(p map[string]string) bool {
					return p["SubState"] == "reload-notify"
				})
				if !strings.HasPrefix(p["StatusText"], "reloading") || p["MainPID"] != hupd {
					t.Fatalf("while systemctl reload: %v; want hupd %s saying reloading", p, hupd)
				}
				sdRelease(t, c, "/run/hold-reload")
				st, p = sdWaitServing(t, c, unit, st.Gen, "")
				if st.LastReload != "ok" || p["MainPID"] != hupd {
					t.Fatalf("after systemctl reload: %v; want a good reload by hupd %s", p, hupd)
				}
				l := sdLines(cursor)
				if len(l) != 2 || !strings.HasPrefix(l[0], "Reloading app.service") || !strings.HasPrefix(l[1], "Reloaded app.service") {
					t.Errorf("systemd's journal about systemctl reload: %q; want Reloading, Reloaded", l)
				}
			}

			// SIGTERM to hupd: STOPPING=1 → deactivating → inactive.
			cursor = sdCursor(t, c)
			c.Run(t, "mkfifo", "/run/hold-stop")
			c.Run(t, "sh", "-c", "kill -TERM "+hupd)
			p = sdWait(t, c, unit, "deactivating on hupd's STOPPING=1", func(p map[string]string) bool {
				return p["ActiveState"] == "deactivating"
			})
			t.Logf("while hupd stops on its SIGTERM: %s/%s, %q", p["ActiveState"], p["SubState"], p["StatusText"])
			if p["SubState"] != "stop-sigterm" || p["MainPID"] != hupd || p["StatusText"] != "stopping" {
				t.Fatalf("while hupd stops: %v; want deactivating/stop-sigterm, hupd %s saying stopping", p, hupd)
			}
			noJob("while hupd stops")
			sdRelease(t, c, "/run/hold-stop")
			p = sdWait(t, c, unit, "stopped", func(p map[string]string) bool {
				return p["ActiveState"] != "deactivating"
			})
			if p["ActiveState"] != "inactive" || p["SubState"] != "dead" || p["Result"] != "success" || p["NRestarts"] != "0" {
				t.Fatalf("after hupd's stop: %v; want inactive/dead, Result=success, not restarted", p)
			}
			if l := sdLines(cursor); len(l) != 1 || l[0] != "app.service: Deactivated successfully." {
				t.Errorf("systemd's journal about a stop hupd began: %q; want only: app.service: Deactivated successfully.", l)
			}
			for _, pid := range []string{hupd, strconv.Itoa(st.PID)} {
				if n, _ := strconv.Atoi(pid); sdAlive(c, n) {
					t.Errorf("pid %s still runs after the stop", pid)
				}
			}
			sdEmptyCgroup(t, c, cg)
		})
	}
}
