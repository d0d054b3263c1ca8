package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

// hupd's own health and metrics endpoint (--health, [health]), end to
// end: the children are rd-ctl ones (readiness_test.go), made ready by the
// test over their command socket, and a check command the test makes
// refuse a reload by creating a file.

func init() {
	// hl-check MARKER: a --check command that refuses the reload while
	// MARKER exists.
	childModes["hl-check"] = func(args []string) {
		if _, err := os.Stat(args[0]); err == nil {
			fmt.Println("refused: " + args[0] + " exists")
			os.Exit(1)
		}
	}
}

// hlAddr returns the health endpoint's address that hupd logged.
func hlAddr(h *Hupd) string {
	h.t.Helper()
	return h.WaitEvent(logev.HealthEndpoint, 1, nil).Str("address")
}

// hlClient makes one connection per request: no connection outlives one.
var hlClient = &http.Client{Timeout: deadline, Transport: &http.Transport{DisableKeepAlives: true}}

// hlGet sends method path to the endpoint and returns the status code and
// the body.
func hlGet(t *testing.T, addr, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hlClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// hlExpect checks the answer to GET path: the code, and a body that
// starts with body.
func hlExpect(t *testing.T, addr, path string, code int, body string) {
	t.Helper()
	if c, b := hlGet(t, addr, "GET", path); c != code || !strings.HasPrefix(b, body) {
		t.Fatalf("GET %s: %d %q, want %d %q…", path, c, b, code, body)
	}
}

// hlMetrics scrapes /metrics and returns each sample's value by series as
// written (hupd_reloads_total{result="ok",strategy="swap"}). The format
// itself is checked strictly by the health package's tests.
func hlMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	code, body := hlGet(t, addr, "GET", "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %q", code, body)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics: bad line %q", line)
		}
		if _, dup := m[line[:i]]; dup {
			t.Fatalf("/metrics: %s twice", line[:i])
		}
		m[line[:i]] = v
	}
	return m
}

// hlExpectMetrics checks the values of some series; a value of -1 means
// the series must be absent.
func hlExpectMetrics(t *testing.T, addr string, want map[string]float64) map[string]float64 {
	t.Helper()
	m := hlMetrics(t, addr)
	for k, v := range want {
		got, ok := m[k]
		switch {
		case v == -1 && ok:
			t.Errorf("/metrics: %s = %v, want none", k, got)
		case v != -1 && !ok:
			t.Errorf("/metrics: no %s", k)
		case v != -1 && got != v:
			t.Errorf("/metrics: %s = %v, want %v", k, got, v)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func reloadsSeries(result, strategy string) string {
	return fmt.Sprintf("hupd_reloads_total{result=%q,strategy=%q}", result, strategy)
}

// tomlArray writes argv as a TOML array of basic strings.
func tomlArray(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// TestHealthEndpoints runs hupd with [health] address on port 0 and
// failures = 1, and follows /readyz, /livez and /metrics through the first
// start, a swap, a reload the check refuses and a swap again.
func TestHealthEndpoints(t *testing.T) {
	ctl := rdListen(t)
	dir := t.TempDir()
	refuse := filepath.Join(dir, "refuse")
	cfg := filepath.Join(dir, "hupd.toml")
	text := fmt.Sprintf(`command = %s

[[listen]]
name = "http"
address = "tcp://127.0.0.1:0"

[reload]
strategy = "swap"
ready = "notify"
check = %s

[health]
address = "127.0.0.1:0"
failures = 1
`, tomlArray(childCmd("rd-ctl", ctl.path)), tomlArray(childCmd("hl-check", refuse)))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	h := StartHupd(t, "run", "-c", cfg)
	addr := hlAddr(h)
	if e := h.WaitEvent(logev.HealthEndpoint, 1, nil); e.Int("failures") != 1 {
		t.Fatalf("health endpoint logged %v, want failures=1", e)
	}

	// The first generation started and is not ready: hupd is alive, not
	// ready, and the endpoint was there before the child.
	c1 := ctl.accept(t)
	hlOrder(t, h, logev.HealthEndpoint, logev.ChildStarted)
	hlExpect(t, addr, "/readyz", 503, "generation 1 starting: not ready yet\n")
	hlExpect(t, addr, "/livez", 200, "ok\n")
	hlExpectMetrics(t, addr, map[string]float64{
		"hupd_up": 1, "hupd_generation_starts_total": 1, "hupd_current_generation": 0, "hupd_generations": 1,
		"hupd_ready_seconds_count": 0, "hupd_restarts_total": 0, "hupd_last_reload_success": -1,
		reloadsSeries("ok", "swap"): 0, reloadsSeries("failed", "swap"): 0,
	})
	c1.do("notify READY=1", "ok")
	rdReady(h, 1)
	hlExpect(t, addr, "/readyz", 200, "ok\n")
	hlExpectMetrics(t, addr, map[string]float64{"hupd_current_generation": 1, "hupd_ready_seconds_count": 1})

	// A swap: gen 2 ready, gen 1 gone.
	ok1 := hlSwap(t, h, ctl, 2)
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	hlExpect(t, addr, "/readyz", 200, "ok\n")
	hlExpectMetrics(t, addr, map[string]float64{
		reloadsSeries("ok", "swap"): 1, reloadsSeries("failed", "swap"): 0,
		reloadsSeries("ok", "signal"): 0, reloadsSeries("ok", "restart"): 0,
		"hupd_generation_starts_total": 2, "hupd_current_generation": 2, "hupd_generations": 1,
		"hupd_ready_seconds_count": 2, "hupd_restarts_total": 0,
		"hupd_last_reload_success":           1,
		"hupd_last_reload_timestamp_seconds": float64(ok1.Finished.UnixMilli()) / 1e3,
	})

	// The check refuses the next reload: gen 2 serves on, but with
	// failures = 1 the pod is no longer ready; it is alive.
	if err := os.WriteFile(refuse, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := rdReload(t, h)
	if bad.OK || !strings.Contains(bad.Reason, "check failed") {
		t.Fatalf("reload with the check refusing: %+v; want it failed by the check", bad.ReloadResult)
	}
	hlExpect(t, addr, "/readyz", 503, "1 reload in a row failed; the last: check failed")
	hlExpect(t, addr, "/livez", 200, "ok\n")
	hlExpectMetrics(t, addr, map[string]float64{
		reloadsSeries("ok", "swap"): 1, reloadsSeries("failed", "swap"): 1,
		"hupd_generation_starts_total": 2, "hupd_current_generation": 2, "hupd_generations": 1,
		"hupd_last_reload_success":           0,
		"hupd_last_reload_timestamp_seconds": float64(bad.Finished.UnixMilli()) / 1e3,
	})

	// The next good reload makes it ready again.
	if err := os.Remove(refuse); err != nil {
		t.Fatal(err)
	}
	hlSwap(t, h, ctl, 3)
	hlExpect(t, addr, "/readyz", 200, "ok\n")
	hlExpectMetrics(t, addr, map[string]float64{
		reloadsSeries("ok", "swap"): 2, reloadsSeries("failed", "swap"): 1,
		"hupd_generation_starts_total": 3, "hupd_current_generation": 3,
		"hupd_ready_seconds_count": 3, "hupd_last_reload_success": 1,
	})

	// hupd holds the endpoint's socket; no child has it.
	ino := hlListenInode(t, h.Cmd.Process.Pid, addr)
	for gen := 1; gen <= 3; gen++ {
		if pid := h.ChildPID(gen); hlHasSocket(pid, ino) {
			t.Errorf("generation %d (pid %d) holds hupd's health socket", gen, pid)
		}
	}
	rdStop(t, h)
	hlClosed(t, addr)
}

// TestHealthFlag: --health on the command line, with the failures
// threshold off: a refused reload leaves /readyz at 200 and counts in
// /metrics; methods other than GET and HEAD are refused; the endpoint
// closes with hupd.
func TestHealthFlag(t *testing.T) {
	ctl := rdListen(t)
	refuse := filepath.Join(t.TempDir(), "refuse")
	h := StartHupd(t, swapArgs("notify", childCmd("rd-ctl", ctl.path),
		"--health", "127.0.0.1:0", "--check", rdArgv(t, childCmd("hl-check", refuse)))...)
	addr := hlAddr(h)
	ctl.accept(t).do("notify READY=1", "ok")
	rdReady(h, 1)
	hlExpect(t, addr, "/readyz", 200, "ok\n")
	if err := os.WriteFile(refuse, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r := rdReload(t, h); r.OK {
			t.Fatalf("reload with the check refusing: %+v", r.ReloadResult)
		}
	}
	hlExpect(t, addr, "/readyz", 200, "ok\n")
	hlExpect(t, addr, "/livez", 200, "ok\n")
	hlExpectMetrics(t, addr, map[string]float64{
		reloadsSeries("ok", "swap"): 0, reloadsSeries("failed", "swap"): 2,
		"hupd_generation_starts_total": 1, "hupd_current_generation": 1, "hupd_last_reload_success": 0,
	})
	for _, path := range []string{"/livez", "/readyz", "/metrics"} {
		if c, b := hlGet(t, addr, "HEAD", path); c != 200 || b != "" {
			t.Errorf("HEAD %s: %d %q", path, c, b)
		}
		if c, _ := hlGet(t, addr, "POST", path); c != 405 {
			t.Errorf("POST %s: %d, want 405", path, c)
		}
	}
	if c, _ := hlGet(t, addr, "GET", "/"); c != 404 {
		t.Errorf("GET /: %d, want 404", c)
	}
	rdStop(t, h)
	hlClosed(t, addr)
}

// TestHealthReconfig: an edit of [health] while hupd runs is applied
// without a new generation and warned about: the endpoint keeps its
// address and threshold until hupd restarts. The warning compares with
// what runs, not with the previous edit, so an edit back to it is silent.
func TestHealthReconfig(t *testing.T) {
	t.Parallel()
	base := wtTOML([]string{writeFile(t, t.TempDir(), "sentinel", "s0\n")}, wtHTTP)
	w, conf := wtStartConf(t, t.TempDir(), base+"[health]\naddress = \"127.0.0.1:0\"\n")
	addr := hlAddr(w.Hupd)
	pid := w.ChildPID(1)
	w.startReport(1)
	const warning = logev.SettingNeedsRestart
	for i, tc := range []struct {
		health string
		warn   []string // setting now→configured, in order
	}{
		{"[health]\naddress = \"127.0.0.1:1\"\nfailures = 2\n", []string{"health.address 127.0.0.1:0→127.0.0.1:1", "health.failures 0→2"}},
		{"", []string{"health.address 127.0.0.1:0→off"}},
		{"[health]\naddress = \"127.0.0.1:0\"\n", nil},
	} {
		before := len(w.Events(warning))
		wtWrite(t, conf, base+tc.health)
		rcApplied(w, i+1, false, 0, 0)
		var got []string
		for _, e := range w.Events(warning)[before:] {
			got = append(got, e.Str("setting")+" "+e.Str("now")+"→"+e.Str("configured"))
		}
		if !slices.Equal(got, tc.warn) {
			t.Fatalf("edit %d (%q): warnings %q, want %q", i+1, tc.health, got, tc.warn)
		}
		rcOnly(w, pid)
		hlExpect(t, addr, "/livez", 200, "ok\n") // the endpoint as it was
	}
	w.stop()
	hlClosed(t, addr)
}

// hlSwap reloads and makes the new generation gen ready; the reload must
// succeed as a swap.
func hlSwap(t *testing.T, h *Hupd, ctl *rdCtl, gen int) rdReloadResult {
	t.Helper()
	ch := rdReloadAsync(h)
	ctl.accept(t).do("notify READY=1", "ok")
	r := rdWaitReload(t, ch)
	if r.code != 0 || !r.OK || r.Strategy != "swap" || r.NewGen != gen {
		t.Fatalf("reload: exit %d, %+v; want a swap to generation %d", r.code, r.ReloadResult, gen)
	}
	return r
}

// hlOrder fails t unless hupd logged first before then.
func hlOrder(t *testing.T, h *Hupd, first, then string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		switch e.Msg() {
		case first:
			return
		case then:
			t.Fatalf("%q logged before %q", then, first)
		}
	}
	t.Fatalf("%q not logged", first)
}

// hlListenInode returns the inode of the TCP socket that process pid holds
// listening on addr (an IPv4 HOST:PORT). It looks at pid's own fds, through
// dups of them (pidfd_getfd), not at /proc/net/tcp: a read of that file
// can skip entries while tests beside this one open and close sockets.
func hlListenInode(t *testing.T, pid int, addr string) string {
	t.Helper()
	want, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(pidfd)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		ino, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(e.Name())
		fd, err := unix.PidfdGetfd(pidfd, n, 0)
		if err != nil {
			continue // closed meanwhile
		}
		sa, _ := unix.Getsockname(fd)
		listening, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		unix.Close(fd)
		if in4, ok := sa.(*unix.SockaddrInet4); ok && listening == 1 &&
			netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)) == want {
			return strings.TrimSuffix(ino, "]")
		}
	}
	t.Fatalf("process %d holds no socket listening on %s", pid, addr)
	return ""
}

// hlListener returns the inode of the TCP socket listening on addr (an
// IPv4 HOST:PORT) from /proc/net/tcp, and whether there is one.
func hlListener(t *testing.T, addr string) (string, bool) {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ip := ap.Addr().As4()
	// /proc/net/tcp writes the address as the 32-bit number in host
	// (little-endian) order, then the port, in hex.
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port())
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && fs[1] == local && fs[3] == "0A" { // 0A: LISTEN
			return fs[9], true
		}
	}
	return "", false
}

// hlHasSocket reports whether process pid has socket inode ino open.
func hlHasSocket(pid int, ino string) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l == "socket:["+ino+"]" {
			return true
		}
	}
	return false
}

// hlClosed fails t unless nothing listens on addr any more: hupd has exited,
// so its socket is closed. (Not by binding addr again: the port, free now,
// may be the local port of a connection a test running beside this one
// has just made.)
func hlClosed(t *testing.T, addr string) {
	t.Helper()
	if ino, ok := hlListener(t, addr); ok {
		t.Fatalf("health port %s still listened on (socket inode %s) after hupd exited", addr, ino)
	}
}
