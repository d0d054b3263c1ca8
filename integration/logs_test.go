package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

func init() {
	// lg-lines: print out-1, out-2, out-3 and "ready PID" on stdout; on
	// each USR1 print "later N" on stdout and a line with a byte that is
	// not UTF-8 on stderr; exit 0 on TERM.
	childModes["lg-lines"] = func([]string) {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM)
		fmt.Print("out-1\nout-2\nout-3\n")
		fmt.Println("ready", os.Getpid())
		for n := 1; ; n++ {
			if <-sigs == syscall.SIGTERM {
				return
			}
			fmt.Println("later", n)
			fmt.Fprintf(os.Stderr, "bad \xff byte %d\n", n)
		}
	}
}

// hupdLogs runs hupd logs with args against h and returns its stdout.
func hupdLogs(t *testing.T, h *Hupd, args ...string) string {
	t.Helper()
	cmd := exec.Command(hupdBin, append([]string{"logs", "--name", "lg"}, args...)...)
	cmd.Env = h.Cmd.Env // the same private runtime directory
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hupd logs %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func startLines(t *testing.T) (*Hupd, int) {
	h := StartHupd(t, append([]string{"run", "--name", "lg", "--"}, childCmd("lg-lines")...)...)
	return h, procReady(t, h)
}

// TestLogsLastLines: hupd logs shows the last lines a generation wrote,
// with their generation, PID and stream, as text or JSON, by generation.
func TestLogsLastLines(t *testing.T) {
	h, pid := startLines(t)
	got := strings.Split(strings.TrimSuffix(hupdLogs(t, h, "-n", "2"), "\n"), "\n")
	want := []string{fmt.Sprintf("gen 1 pid %d stdout: out-3", pid), fmt.Sprintf("gen 1 pid %d stdout: ready %d", pid, pid)}
	if len(got) != 2 || !strings.HasSuffix(got[0], " "+want[0]) || !strings.HasSuffix(got[1], " "+want[1]) {
		t.Fatalf("hupd logs -n 2:\n%s\nwant lines ending in\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", strings.Fields(got[0])[0]); err != nil {
		t.Errorf("line %q does not start with its time: %v", got[0], err)
	}
	if out := hupdLogs(t, h, "--gen", "2"); out != "" {
		t.Fatalf("hupd logs --gen 2 (no such generation): %q, want nothing", out)
	}
	var lines []supervisor.OutputLine
	for _, l := range strings.Split(strings.TrimSuffix(hupdLogs(t, h, "--gen", "1", "-n", "0", "--json"), "\n"), "\n") {
		var ol supervisor.OutputLine
		if err := json.Unmarshal([]byte(l), &ol); err != nil {
			t.Fatalf("hupd logs --json line %q: %v", l, err)
		}
		lines = append(lines, ol)
	}
	if len(lines) != 4 || lines[0].Text != "out-1" || lines[0].Gen != 1 || lines[0].PID != pid || lines[0].Stream != supervisor.StreamStdout {
		t.Fatalf("hupd logs --gen 1 -n 0 --json: %+v, want the 4 lines generation 1 wrote", lines)
	}
}

// TestLogsFollow: hupd logs -f shows a line the child writes after it
// started, and ends when interrupted.
func TestLogsFollow(t *testing.T) {
	h, pid := startLines(t)
	cmd := exec.Command(hupdBin, "logs", "--name", "lg", "-f", "-n", "1", "--json")
	cmd.Env = h.Cmd.Env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan supervisor.OutputLine)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l supervisor.OutputLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
	}()
	next := func() supervisor.OutputLine {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("hupd logs -f ended: %s", stderr.String())
			}
			return l
		case <-time.After(deadline):
			t.Fatalf("no line from hupd logs -f within %s", deadline)
		}
		return supervisor.OutputLine{}
	}
	// The last kept line comes first: hupd follows from then on.
	if l := next(); l.Text != fmt.Sprintf("ready %d", pid) {
		t.Fatalf("first line %+v, want the ready line", l)
	}
	syscall.Kill(pid, syscall.SIGUSR1)
	seen := map[string]string{}
	for len(seen) < 2 {
		l := next()
		seen[l.Stream] = l.Text
	}
	if seen[supervisor.StreamStdout] != "later 1" || seen[supervisor.StreamStderr] != `bad \xff byte 1` {
		t.Fatalf("followed %q, want later 1 on stdout and the escaped line on stderr", seen)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("hupd logs -f after SIGINT: %v: %s", err, stderr.String())
	}
}

// TestLogsJSONEveryLine: with --log-format json every line hupd writes,
// on stderr and stdout, is a JSON record, the child's output included;
// every record names the service; durations are Go duration strings.
func TestLogsJSONEveryLine(t *testing.T) {
	h, pid := startLines(t)
	syscall.Kill(pid, syscall.SIGUSR1)
	ev := h.WaitEvent(logev.ChildOutput, 1, func(e Event) bool { return e.Str(supervisor.KeyStream) == supervisor.StreamStderr })
	if ev.Str(supervisor.KeyOutput) != `bad \xff byte 1` || ev.Int(supervisor.KeyGen) != 1 || ev.Int(supervisor.KeyPID) != pid || ev.Str("time") == "" {
		t.Fatalf("child output record %v, want gen 1 pid %d and the escaped line", ev, pid)
	}
	if l := h.Stdout.Next(t); l != "later 1" {
		t.Fatalf("next stdout record carries %q, want later 1", l)
	}
	h.Signal(syscall.SIGTERM)
	procWait(t, h, 0)
	if raw := h.RawStderr(); len(raw) > 0 {
		t.Errorf("lines of hupd's stderr that are not JSON: %q", raw)
	}
	if raw := h.Stdout.RawLines(); len(raw) > 0 {
		t.Errorf("lines of hupd's stdout that are not JSON: %q", raw)
	}
	h.mu.Lock()
	events := h.events
	h.mu.Unlock()
	for _, e := range events {
		if e.Str(supervisor.KeyName) != "lg" {
			t.Errorf("record without the service's name: %v", e)
		}
	}
	started := h.Events(logev.ChildStarted)
	if len(started) == 0 {
		t.Fatal("no child started record")
	}
	if _, err := time.ParseDuration(started[0].Str(supervisor.KeyAfter)); err != nil {
		t.Errorf("child started after %v: not a Go duration string: %v", started[0][supervisor.KeyAfter], err)
	}
}

// TestLogsJSONChildLinesAtErrorLevel: --log-level is hupd's own level; a
// program's output lines are written as records whatever it is, as they
// are in text mode.
func TestLogsJSONChildLinesAtErrorLevel(t *testing.T) {
	h := StartHupdCmd(t, exec.Command(hupdBin, append([]string{"run", "--log-format", "json", "--log-level", "error", "--name", "lg", "--"}, childCmd("lg-lines")...)...))
	pid := procReady(t, h)
	syscall.Kill(pid, syscall.SIGUSR1)
	ev := h.WaitEvent(logev.ChildOutput, 1, func(e Event) bool { return e.Str(supervisor.KeyStream) == supervisor.StreamStderr })
	if ev.Str(supervisor.KeyOutput) != `bad \xff byte 1` || ev.Int(supervisor.KeyPID) != pid {
		t.Fatalf("child output record %v, want pid %d and the escaped line", ev, pid)
	}
	if n := len(h.Events(logev.ChildStarted)); n != 0 {
		t.Errorf("%d child started records at --log-level error", n)
	}
	h.Signal(syscall.SIGTERM)
	procWait(t, h, 0)
}

// TestLogsKeptAcrossUpgrade: the lines hupd keeps are the same after an
// in-place upgrade, with their time and stream, those of a generation
// that has exited included (generation 1, swapped out by a reload, and
// its line that is not UTF-8).
func TestLogsKeptAcrossUpgrade(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--name", "lg", "--reload", "swap", "--ready", "delay:10ms", "--"}, childCmd("lg-lines")...)...)
	pid := procReady(t, h)
	h.WaitEvent(logev.ChildReady, 1, nil)
	syscall.Kill(pid, syscall.SIGUSR1)
	h.WaitEvent(logev.ChildOutput, 1, func(e Event) bool { return e.Str(supervisor.KeyStream) == supervisor.StreamStderr })
	if out, code := hupdCtl(t, h, "reload", "--name", "lg"); code != 0 {
		t.Fatalf("reload: exit %d %s", code, out)
	}
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int(supervisor.KeyGen) == 1 })
	procReady(t, h) // generation 2's last line: kept before it is written
	before := hupdLogs(t, h, "-n", "0", "--json")
	if n := strings.Count(before, `"gen":1,`); n != 6 {
		t.Fatalf("generation 1 has %d lines kept before the upgrade, want 6:\n%s", n, before)
	}
	if out, code := hupdCtl(t, h, "upgrade", "--name", "lg"); code != 0 {
		t.Fatalf("upgrade: exit %d %s", code, out)
	}
	if after := hupdLogs(t, h, "-n", "0", "--json"); after != before {
		t.Fatalf("kept lines after the upgrade:\n%s\nwant as before it:\n%s", after, before)
	}
	h.Signal(syscall.SIGTERM)
	procWait(t, h, 0)
}
