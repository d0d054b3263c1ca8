package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

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
		c := &socketact.Command{Shim: hupdBin, Path: "/bin/true", Args: []string{"true"}, Sockets: []*os.File{f}}
		p, wait, err := c.Start()
		if err != nil {
			b.Fatal(err)
		}
		if err := wait(); err != nil {
			b.Fatal(err)
		}
		p.Wait()
	}
}

// BenchmarkShimToExec measures from the start of a spawn until the target
// has been exec'd (the shim's status pipe closes): what hupd's spawn costs
// before the child's first instruction.
func BenchmarkShimToExec(b *testing.B) {
	f := benchSocket(b)
	for b.Loop() {
		c := &socketact.Command{Shim: hupdBin, Path: "/bin/true", Args: []string{"true"}, Sockets: []*os.File{f}}
		p, wait, err := c.Start()
		if err != nil {
			b.Fatal(err)
		}
		if err := wait(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p.Wait()
		b.StartTimer()
	}
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

// BenchmarkHupdRSS reports hupd's resident memory (VmRSS) with one child
// (examples/hello) on one socket, after 100 requests through it: the
// figure in the README. It is a measurement, not a timing.
//
//	go test -run '^$' -bench HupdRSS -benchtime 3x ./integration/
func BenchmarkHupdRSS(b *testing.B) {
	for b.Loop() {
		cmd := exec.Command(hupdBin, "run", "--log-format", "json", "--listen", "http=tcp://127.0.0.1:0", "--", helloBin)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		var addr string
		for addr == "" && sc.Scan() {
			var e Event
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg() == "listening" {
				addr = HostPort(e.Str("address"))
			}
		}
		go io.Copy(io.Discard, stderr)
		for range 100 {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		kib, err := vmRSSKiB(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(kib)/1024, "MiB-RSS")
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
}

func vmRSSKiB(pid int) (int, error) {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}
