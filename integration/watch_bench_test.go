package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
)

// The watcher's costs, for the README:
//
//	go test -run '^$' -bench WatchRenameToReload -benchtime 50x ./integration/
//	go test -run '^$' -bench Watch10kIdle -benchtime 3x ./integration/
//
// BenchmarkWatchRenameToReload: from a rename over a watched file to the
// reload's start in hupd (its log line's time), less the debounce (1ms),
// with one watched file and with a watched tree of 10,000 files (100
// directories of 100), every one of which is stat'ed again on each change
// (and read again if its stat changed). BenchmarkWatch10kIdle reports
// hupd's RSS and CPU while it watches those 10,000 files.

// watchHupd is hupd run on hupd.toml in dir, with its log as events.
type watchHupd struct {
	cmd    *exec.Cmd
	events chan Event
}

func startWatchHupd(b *testing.B, dir, toml string) *watchHupd {
	b.Helper()
	cfg := filepath.Join(dir, "hupd.toml")
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(hupdBin, "run", "--log-format", "json", "-c", cfg)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+b.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	wh := &watchHupd{cmd: cmd, events: make(chan Event, 1024)}
	go func() {
		defer close(wh.events)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e Event
			if json.Unmarshal(sc.Bytes(), &e) == nil && e["msg"] != nil {
				wh.events <- e
			}
		}
	}()
	wh.wait(b, logev.ChildReady)
	return wh
}

// wait returns the next event msg, skipping others.
func (wh *watchHupd) wait(b *testing.B, msg string) Event {
	b.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case e, ok := <-wh.events:
			if !ok {
				b.Fatalf("hupd exited before %q", msg)
			}
			if e.Msg() == msg {
				return e
			}
		case <-timeout:
			b.Fatalf("no %q within %s", msg, deadline)
		}
	}
}

func (wh *watchHupd) stop() {
	wh.cmd.Process.Signal(syscall.SIGTERM)
	for range wh.events {
	}
	wh.cmd.Wait()
}

// tree writes dirs×files small files under root.
func tree(b *testing.B, root string, dirs, files int) {
	b.Helper()
	for d := range dirs {
		sub := filepath.Join(root, fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range files {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d.conf", f)), []byte(fmt.Sprintf("key = %d\n", d*files+f)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkWatchRenameToReload(b *testing.B) {
	for _, bc := range []struct {
		name        string
		dirs, files int
	}{{"1-file", 0, 0}, {"10k-files", 100, 100}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			conf := filepath.Join(dir, "conf")
			tree(b, conf, bc.dirs, bc.files)
			if err := os.MkdirAll(conf, 0o755); err != nil {
				b.Fatal(err)
			}
			target := filepath.Join(conf, "app.conf")
			watched := conf
			if bc.dirs == 0 {
				watched = target
			}
			if err := os.WriteFile(target, []byte("0"), 0o644); err != nil {
				b.Fatal(err)
			}
			const debounce = time.Millisecond
			// The signal action keeps the child (hello reloads in place on
			// HUP, with RELOADING=1 and READY=1): what is timed is hupd's
			// detection, not a swap.
			wh := startWatchHupd(b, dir, fmt.Sprintf(`command = [%q, "-grace", "1s"]
[[listen]]
address = "tcp://127.0.0.1:0"
[[watch]]
paths = [%q]
action = "signal:HUP"
debounce = %q
`, helloBin, watched, debounce))
			defer wh.stop()
			var lat []time.Duration
			n := 0
			for b.Loop() {
				n++
				tmp := target + ".tmp"
				if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)), 0o644); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if err := os.Rename(tmp, target); err != nil {
					b.Fatal(err)
				}
				e := wh.wait(b, logev.ReloadStarted)
				at, err := time.Parse(time.RFC3339Nano, e.Str("time"))
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, at.Sub(t0)-debounce)
				wh.wait(b, logev.ReloadDone)
			}
			// The median: between reloads the VM's vCPUs go idle, and a
			// wake-up from idle now and then adds milliseconds.
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "µs-rename-to-reload-p50")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds()), "µs-rename-to-reload-p90")
		})
	}
}

func BenchmarkWatch10kIdle(b *testing.B) {
	dir := b.TempDir()
	conf := filepath.Join(dir, "conf")
	tree(b, conf, 100, 100)
	for b.Loop() {
		wh := startWatchHupd(b, dir, fmt.Sprintf(`command = [%q, "-grace", "1s"]
[[listen]]
address = "tcp://127.0.0.1:0"
[[watch]]
paths = [%q]
`, helloBin, conf))
		pid := wh.cmd.Process.Pid
		time.Sleep(3 * time.Second) // startup settles (the runtime returns memory); not a synchronisation
		kib, err := vmRSSKiB(pid)
		if err != nil {
			b.Fatal(err)
		}
		before := cpuTicks(b, pid)
		time.Sleep(5 * time.Second) // the idle period measured
		b.ReportMetric(float64(cpuTicks(b, pid)-before)/5, "ticks/s-idle")
		b.ReportMetric(float64(kib)/1024, "MiB-RSS")
		wh.stop()
	}
}

// cpuTicks is utime+stime of pid in clock ticks.
func cpuTicks(b *testing.B, pid int) int {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}
