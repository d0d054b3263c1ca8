package integration

import (
	"slices"
	"strings"
	"testing"
)

// TestMultiTextOutputNamesProgram: in text logs, each raw line a program
// of several writes starts with "[NAME] " (JSON records carry
// program=NAME), on stdout and stderr alike, so that two programs' lines
// in one stream can be told apart; with output_prefix, "[NAME gen N pid
// P] ". (Before, the lines came unlabelled.)
func TestMultiTextOutputNamesProgram(t *testing.T) {
	t.Parallel()
	say := func(name string) []string {
		// The trap first: the test stops hupd once it saw the lines, and
		// a TERM before the trap would end sh with 143.
		return []string{"/bin/sh", "-c", "trap 'exit 0' TERM; echo " + name + " on stdout; echo " + name + " on stderr >&2; sleep 60 & wait"}
	}
	app := fleetProgram{name: "app", command: say("app"), ready: "delay:10ms"}
	web := fleetProgram{name: "web", command: say("web"), ready: "delay:10ms", extra: "[program.process]\noutput_prefix = true\n"}
	h := StartHupd(t, "run", "-c", fleetFile(t, app, web), "--log-format", "text")
	stderrHas := func(prefix, rest string) {
		t.Helper()
		h.waitFor("stderr line "+prefix+rest, func() bool {
			return slices.ContainsFunc(h.raw, func(l string) bool { return strings.HasPrefix(l, prefix) && strings.HasSuffix(l, rest) })
		})
	}
	stderrHas("[app] ", "app on stderr")
	stderrHas("[web gen 1 pid ", "] web on stderr")
	// Both programs' stdout lines, in whatever order they came.
	want := []string{"[app] app on stdout", "[web gen 1 pid "}
	for len(want) > 0 {
		l := h.Stdout.Next(t)
		want = slices.DeleteFunc(want, func(w string) bool { return strings.HasPrefix(l, w) })
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
}
