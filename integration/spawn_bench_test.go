package integration

import (
	"bufio"
	"context"
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
	"time"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
)

// The shim's cost: hupd starts every child as "hupd-shim", which sets
// LISTEN_PID and execs the target. BenchmarkSpawnDirect starts /bin/true
// directly, BenchmarkSpawnShim through hupd's shim with one socket; both
// until it has exited. The difference is what the shim adds per spawn.
//
//	go test -run '^$' -bench Spawn -count 5 ./integration/

func BenchmarkSpawnDirect(b *testing.B) {
	for b.Loop() {
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{Files: []*os.File{nil, nil, nil}})
		if err != nil {
			b.Fatal(err)
		}
		p.Wait()
	}
}

func BenchmarkSpawnShim(b *testing.B) {
	f := benchSocket(b)
	for b.Loop() {
		startShimmed(b, f).Wait()
	}
}

// BenchmarkShimToExec measures from the start of a spawn until the target
// has been exec'd (the shim's status pipe closes): what hupd's spawn costs
// before the child's first instruction.
func BenchmarkShimToExec(b *testing.B) {
	f := benchSocket(b)
	for b.Loop() {
		p := startShimmed(b, f)
		b.StopTimer()
		p.Wait()
		b.StartTimer()
	}
}

// startShimmed starts /bin/true through hupd's shim with socket f and
// returns once it has been exec'd.
func startShimmed(b *testing.B, f *os.File) *os.Process {
	c := &socketact.Command{Shim: hupdBin, Path: "/bin/true", Args: []string{"true"}, Sockets: []*os.File{f}}
	p, wait, err := c.Start()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := wait(); err != nil {
		b.Fatal(err)
	}
	return p
}

func benchSocket(b *testing.B) *os.File {
	sp, err := socketact.ParseListenFlag("tcp://127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ls, err := socketact.Open([]socketact.Spec{sp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { socketact.CloseAll(ls) })
	return ls[0].File
}

// BenchmarkSpawnGeneration is what a generation's cgroup adds to its
// spawn: "cgroup" makes base/gen-N, starts /bin/true through the shim
// straight into it (CLONE_INTO_CGROUP), waits for its exit and retires the
// group (cgroup.kill; the wait for it to be empty and its rmdir run in the
// background, as in hupd); "off" is the same spawn in a process group.
// (Setup moves this process into the base group until Close.)
//
//	go test -run '^$' -bench SpawnGeneration -count 5 ./integration/
func BenchmarkSpawnGeneration(b *testing.B) {
	f := benchSocket(b)
	for _, mode := range contain.Modes {
		b.Run(map[contain.Mode]string{contain.ModeAuto: "cgroup", contain.ModeOff: "off"}[mode], func(b *testing.B) {
			m, _ := contain.Setup(contain.Options{Name: "bench", Mode: mode})
			if mode == contain.ModeAuto && !m.Enabled() {
				b.Skip("no cgroups here:", m.Reason())
			}
			defer m.Close()
			n := 0
			for b.Loop() {
				n++
				grp, err := m.NewGroup(n)
				if err != nil {
					b.Fatal(err)
				}
				c := &socketact.Command{Shim: hupdBin, Path: "/bin/true", Args: []string{"true"}, Sockets: []*os.File{f},
					Sys: &syscall.SysProcAttr{Setpgid: true}}
				if fd := grp.FD(); fd >= 0 {
					c.Sys.UseCgroupFD, c.Sys.CgroupFD = true, fd
				}
				p, wait, err := c.Start()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := wait(); err != nil {
					b.Fatal(err)
				}
				grp.SetLeader(p.Pid)
				p.Wait()
				m.Retire(grp)
			}
		})
	}
}

// BenchmarkSwapContain compares swaps of examples/hello with a cgroup per
// generation and with process groups only (--cgroup off), every 20ms as
// BenchmarkSwap's "every-20ms", and hupd's RSS after them.
//
//	go test -run '^$' -bench SwapContain -benchtime 100x ./integration/
func BenchmarkSwapContain(b *testing.B) {
	for _, mode := range []string{"auto", "off"} {
		b.Run(map[string]string{"auto": "cgroup", "off": "off"}[mode], func(b *testing.B) {
			bh := startBenchHupd(b, "--cgroup", mode)
			defer bh.stop()
			var exec time.Duration
			n := 0
			for b.Loop() {
				b.StopTimer()
				time.Sleep(20 * time.Millisecond) // the time between two reloads, not a synchronisation
				b.StartTimer()
				rep, err := control.Call(context.Background(), bh.control, control.Request{Cmd: control.CmdReload})
				if err != nil || rep.Reload == nil || !rep.Reload.OK {
					b.Fatalf("reload: %v %+v", err, rep)
				}
				exec += time.Duration(rep.Reload.ExecAfter)
				n++
			}
			b.ReportMetric(float64(exec.Microseconds())/float64(n), "µs-trigger-to-exec")
			if kib, err := vmRSSKiB(bh.cmd.Process.Pid); err == nil {
				b.ReportMetric(float64(kib)/1024, "MiB-RSS")
			}
		})
	}
}

// BenchmarkHupdRSS reports hupd's resident memory (VmRSS) with one child
// (examples/hello) on one socket, after 100 requests through it: the
// figure in the README. It is a measurement, not a timing.
//
//	go test -run '^$' -bench HupdRSS -benchtime 5x ./integration/
func BenchmarkHupdRSS(b *testing.B) {
	for b.Loop() {
		bh := startBenchHupd(b)
		for range 100 {
			bh.get(b)
		}
		kib, err := vmRSSKiB(bh.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(kib)/1024, "MiB-RSS")
		// The sentinel: its resident set is mostly hupd's binary, shared
		// with hupd (PSS splits it); its own memory is the anonymous part.
		sen := sentinelOf(b, bh.cmd.Process.Pid)
		for _, m := range []struct{ file, key, unit string }{
			{"status", "VmRSS:", "MiB-sentinel-RSS"},
			{"status", "RssAnon:", "MiB-sentinel-anon"},
			{"smaps_rollup", "Pss:", "MiB-sentinel-PSS"},
		} {
			kib, err := procKiB(sen, m.file, m.key)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(kib)/1024, m.unit)
		}
		bh.stop()
	}
}

// BenchmarkSwap measures blue/green swaps of examples/hello: ns/op is the
// whole reload as "hupd reload" sees it, and the metrics are hupd's own
// share of each swap (trigger to the new child's exec; READY=1's arrival
// to the old child's stop signal) and the child's time to READY=1.
// "back-to-back" leaves no time between reloads, so each new generation
// starts cold; "every-20ms" gives hupd the time to start the next standby
// shim between reloads, as it has between real-world reloads. (Longer gaps
// measure this VM's vCPU wake-up from idle more than hupd.)
//
//	go test -run '^$' -bench Swap -benchtime 100x ./integration/
func BenchmarkSwap(b *testing.B) {
	for _, bc := range []struct {
		name string
		gap  time.Duration
	}{{"back-to-back", 0}, {"every-20ms", 20 * time.Millisecond}} {
		b.Run(bc.name, func(b *testing.B) {
			bh := startBenchHupd(b)
			defer bh.stop()
			var exec, handover, ready time.Duration
			n := 0
			for b.Loop() {
				if bc.gap > 0 {
					b.StopTimer()
					time.Sleep(bc.gap) // the time between two reloads, not a synchronisation
					b.StartTimer()
				}
				rep, err := control.Call(context.Background(), bh.control, control.Request{Cmd: control.CmdReload})
				if err != nil || rep.Reload == nil || !rep.Reload.OK {
					b.Fatalf("reload: %v %+v", err, rep)
				}
				exec += time.Duration(rep.Reload.ExecAfter)
				handover += time.Duration(rep.Reload.HandoverTook)
				ready += time.Duration(rep.Reload.ReadyAfter)
				n++
			}
			b.ReportMetric(float64(exec.Microseconds())/float64(n), "µs-trigger-to-exec")
			b.ReportMetric(float64(handover.Microseconds())/float64(n), "µs-ready-to-stop")
			b.ReportMetric(float64(ready.Microseconds())/float64(n), "µs-child-ready")
		})
	}
}

type benchHupd struct {
	cmd     *exec.Cmd
	addr    string
	control string
}

// startBenchHupd runs hupd with examples/hello on one socket and returns
// once it listens and its control socket is up.
func startBenchHupd(b *testing.B, flags ...string) *benchHupd {
	b.Helper()
	args := append(append([]string{"run", "--log-format", "json", "--listen", "http=tcp://127.0.0.1:0"}, flags...), "--", helloBin, "-grace", "5s")
	cmd := exec.Command(hupdBin, args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+b.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	bh := &benchHupd{cmd: cmd}
	sc := bufio.NewScanner(stderr)
	for (bh.addr == "" || bh.control == "") && sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e.Msg() {
		case logev.Listening:
			bh.addr = HostPort(e.Str("address"))
		case logev.ControlSocket:
			bh.control = e.Str("path")
		}
	}
	go io.Copy(io.Discard, stderr)
	return bh
}

// benchClient opens a connection per request, so that stopping hello does
// not wait out its grace for idle keep-alive clients.
var benchClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func (bh *benchHupd) get(b *testing.B) {
	resp, err := benchClient.Get("http://" + bh.addr + "/")
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func (bh *benchHupd) stop() {
	bh.cmd.Process.Signal(syscall.SIGTERM)
	bh.cmd.Wait()
}

func vmRSSKiB(pid int) (int, error) { return procKiB(pid, "status", "VmRSS:") }

// procKiB reads the "KEY: N kB" line key of /proc/PID/file.
func procKiB(pid int, file, key string) (int, error) {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/%s", key, pid, file)
}

// sentinelOf returns the PID of hupd's sentinel: its child named
// hupd-sentinel.
func sentinelOf(b *testing.B, hupd int) int {
	b.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", hupd))
	for _, f := range tasks {
		kids, _ := os.ReadFile(f)
		for _, k := range strings.Fields(string(kids)) {
			pid, _ := strconv.Atoi(k)
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.HasPrefix(string(comm), "hupd-sentinel\x00") {
				return pid
			}
		}
	}
	b.Fatalf("hupd %d has no sentinel child", hupd)
	return 0
}

// BenchmarkStandbyExec measures a spawn through a standby shim that is
// already up (hupd keeps one ready between reloads): from the exec request
// to the target's exec.
func BenchmarkStandbyExec(b *testing.B) {
	f := benchSocket(b)
	for b.Loop() {
		b.StopTimer()
		c := &socketact.Command{Shim: hupdBin, Path: "/bin/true", Args: []string{"true"}, Sockets: []*os.File{f}, Env: []string{"PATH=/usr/bin:/bin"}}
		sb, err := c.Prestart()
		if err != nil {
			b.Fatal(err)
		}
		waitIdle(b, sb.Process.Pid)
		b.StartTimer()
		if _, err := sb.Exec(c); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		sb.Process.Wait()
		b.StartTimer()
	}
}

// waitIdle waits until pid's threads are all asleep (the standby shim is
// blocked reading its spec).
func waitIdle(b *testing.B, pid int) {
	b.Helper()
	for range 2000 {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Fatal(err)
		}
		if f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:])); len(f) > 0 && f[0] == "S" {
			if wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid)); len(wchan) > 0 {
				return
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.Fatal("standby never went idle")
}
