package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// TestPrintableChildText: what a child wrote reaches the operator's
// terminal escaped: its STATUS= in hupd status cannot carry an escape
// sequence (here one that would retitle the terminal and clear the screen).
func TestPrintableChildText(t *testing.T) {
	evil := "ok\x1b]0;owned\x07\x1b[2J\r"
	var b bytes.Buffer
	printStatus(&b, &supervisor.Status{Name: "x", Generations: []supervisor.GenerationStatus{{Gen: 1, PID: 2, StatusText: evil}}}, time.Now())
	if strings.ContainsAny(b.String(), "\x1b\x07\r") {
		t.Fatalf("control characters reach the terminal: %q", b.String())
	}
	if !strings.Contains(b.String(), `"ok\x1b]0;owned\a\x1b[2J\r"`) {
		t.Errorf("status text not shown escaped: %q", b.String())
	}
	for _, s := range []string{"serving", "ready: 3 workers, ünïcode", ""} {
		if got := printable(s); got != s {
			t.Errorf("printable(%q) = %q, want it unchanged", s, got)
		}
	}
}

// TestStatusShowsFailedStarts: the failed starts counted against the start
// limit are shown once there are any, with the limit.
func TestStatusShowsFailedStarts(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, &supervisor.Status{Name: "x", PID: 7, Strategy: supervisor.StrategySwap, Restarts: 2, StartLimit: "5/10s", StartFailures: 3}, time.Now())
	if first, _, _ := strings.Cut(b.String(), "\n"); first != "hupd x (pid 7), strategy swap, 0 reloads, 2 restarts, 3 failed starts (start limit 5/10s)" {
		t.Errorf("first line %q", first)
	}
	b.Reset()
	printStatus(&b, &supervisor.Status{Name: "x", PID: 7, Strategy: supervisor.StrategySwap, StartLimit: "5/10s"}, time.Now())
	if strings.Contains(b.String(), "failed starts") {
		t.Errorf("failed starts shown when there are none: %q", b.String())
	}
}

// TestLogsTextGolden: hupd logs' text lines, a child's control characters
// escaped when the output is a terminal and as written otherwise.
func TestLogsTextGolden(t *testing.T) {
	at := time.Date(2026, 12, 7, 3, 31, 32, 512e6, time.UTC)
	lines := []supervisor.OutputLine{
		{Time: at, Gen: 2, PID: 4242, Stream: supervisor.StreamStdout, Text: "listening on fd 3"},
		{Time: at.Add(time.Millisecond), Gen: 2, PID: 4242, Stream: supervisor.StreamStderr, Text: "OSError: [Errno 98] Address already in use"},
		{Time: at.Add(2 * time.Millisecond), Gen: 3, PID: 4250, Stream: supervisor.StreamStderr, Text: "evil \x1b]0;owned\x07 \\xff"},
		{Time: at.Add(3 * time.Millisecond), Gen: 1, PID: 4200, Text: "handed over by an upgrade"},
	}
	var b bytes.Buffer
	show := lineShower(&b, false, true)
	for _, l := range lines {
		show(l)
	}
	golden(t, "logs.golden", b.String())
	b.Reset()
	show = lineShower(&b, false, false)
	show(lines[2])
	if !strings.Contains(b.String(), "\x1b") {
		t.Errorf("not a terminal: the line as written, got %q", b.String())
	}
}

// TestStatusShowsSettling: a generation kept settling after a swap shows
// its state and the time left of its window, in the text (rounded) and in
// the JSON (settle_left); others show no time left.
func TestStatusShowsSettling(t *testing.T) {
	st := &supervisor.Status{Name: "x", PID: 7, Strategy: supervisor.StrategySwap, Generations: []supervisor.GenerationStatus{
		{Gen: 1, PID: 100, State: supervisor.StateSettling, SettleLeft: supervisor.Duration(24*time.Second + 600*time.Millisecond)},
		{Gen: 2, PID: 200, State: supervisor.StateReady},
		{Gen: 3, PID: 300, State: supervisor.StateSettling, SettleLeft: supervisor.Duration(1234 * time.Millisecond)},
	}}
	var b bytes.Buffer
	printStatus(&b, st, time.Now())
	rows := map[string]string{}
	for _, line := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(line); len(f) > 3 {
			rows[f[0]] = strings.Join(f[2:], " ")
		}
	}
	for gen, want := range map[string]string{"1": "settling (25s left) ", "2": "ready ", "3": "settling (1.2s left) "} {
		if !strings.HasPrefix(rows[gen], want) {
			t.Errorf("gen %s: %q, want the state %q", gen, rows[gen], want)
		}
	}
	if strings.Count(b.String(), "left)") != 2 {
		t.Errorf("time left shown for a generation that is not settling:\n%s", b.String())
	}
	js, err := json.Marshal(st.Generations[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := `"state":"settling"`; !strings.Contains(string(js), want) || !strings.Contains(string(js), `"settle_left":"24.6s"`) {
		t.Errorf("JSON %s lacks %s and settle_left 24.6s", js, want)
	}
}
