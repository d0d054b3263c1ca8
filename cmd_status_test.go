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

// TestStatusShowsSettling: a settling generation's time left is in the
// JSON (settle_left) as a duration string; the text is in
// testdata/out/status-settling.golden.
func TestStatusShowsSettling(t *testing.T) {
	g := supervisor.GenerationStatus{Gen: 1, PID: 100, State: supervisor.StateSettling, SettleLeft: supervisor.Duration(24*time.Second + 600*time.Millisecond)}
	js, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"state":"settling"`; !strings.Contains(string(js), want) || !strings.Contains(string(js), `"settle_left":"24.6s"`) {
		t.Errorf("JSON %s lacks %s and settle_left 24.6s", js, want)
	}
}

// TestLogsInstancesGolden: a line of an instance other than 0 names it
// after its generation ("gen 3.1"), as hupd status does; instance 0 and
// a generation of one instance read as before. --json carries "instance"
// when it is not 0.
func TestLogsInstancesGolden(t *testing.T) {
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	lines := []supervisor.OutputLine{
		{Time: at, Gen: 3, PID: 4301, Stream: supervisor.StreamStdout, Text: "instance 0 listening on fd 3"},
		{Time: at, Gen: 3, PID: 4302, Instance: 1, Stream: supervisor.StreamStdout, Text: "instance 1 listening on fd 3"},
		{Time: at, Gen: 3, PID: 4310, Instance: 12, Stream: supervisor.StreamStderr, Text: "instance 12 crashed"},
		{Time: at, Gen: 4, PID: 4400, Stream: supervisor.StreamStdout, Text: "one instance"},
	}
	var b bytes.Buffer
	for _, asJSON := range []bool{false, true} {
		show := lineShower(&b, asJSON, true)
		for _, l := range lines {
			show(l)
		}
	}
	golden(t, "logs-instances.golden", b.String())
}
