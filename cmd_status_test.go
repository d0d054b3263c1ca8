package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hupd/hupd/supervisor"
)

// TestPrintableChildText: what a child wrote reaches the operator's
// terminal escaped: its STATUS= in hupd status cannot carry an escape
// sequence (here one that would retitle the terminal and clear the screen).
func TestPrintableChildText(t *testing.T) {
	evil := "ok\x1b]0;owned\x07\x1b[2J\r"
	var b bytes.Buffer
	printStatus(&b, &supervisor.Status{Name: "x", Generations: []supervisor.GenerationStatus{{Gen: 1, PID: 2, StatusText: evil}}})
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
	printStatus(&b, &supervisor.Status{Name: "x", PID: 7, Strategy: supervisor.StrategySwap, Restarts: 2, StartLimit: "5/10s", StartFailures: 3})
	if first, _, _ := strings.Cut(b.String(), "\n"); first != "hupd x (pid 7), strategy swap, 0 reloads, 2 restarts, 3 failed starts (start limit 5/10s)" {
		t.Errorf("first line %q", first)
	}
	b.Reset()
	printStatus(&b, &supervisor.Status{Name: "x", PID: 7, Strategy: supervisor.StrategySwap, StartLimit: "5/10s"})
	if strings.Contains(b.String(), "failed starts") {
		t.Errorf("failed starts shown when there are none: %q", b.String())
	}
}
