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
