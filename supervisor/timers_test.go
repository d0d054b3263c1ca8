package supervisor

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
)

// A timer event that was already queued when its timer was re-armed must
// not act: a WATCHDOG=1 just in time, or a restart rescheduled.
func TestStaleTimerEventsIgnored(t *testing.T) {
	var logs bytes.Buffer
	s, err := New(Options{Path: "/bin/true", Args: []string{"true"}}, nil, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	g := &generation{num: 1, pid: 1 << 30, state: StateReady, proc: &os.Process{Pid: -1}, watchdogDur: time.Hour}
	s.gens = []*generation{g}
	s.armWatchdog(g) // seq 1: imagine it fired and its event is queued
	s.armWatchdog(g) // seq 2: a WATCHDOG=1 arrived meanwhile
	defer g.watchdog.Stop()
	s.onEvent(event{kind: evWatchdog, gen: g, seq: 1})
	if strings.Contains(logs.String(), logev.WatchdogTimeout) {
		t.Fatalf("a stale watchdog event killed the generation:\n%s", logs.String())
	}
	s.onEvent(event{kind: evWatchdog, gen: g, seq: 2})
	if !strings.Contains(logs.String(), logev.WatchdogTimeout) {
		t.Fatalf("the current watchdog event was ignored:\n%s", logs.String())
	}

	s.scheduleRestart(0, "test") // seq 1
	s.restartT.Stop()
	s.scheduleRestart(0, "test") // seq 2
	defer s.restartT.Stop()
	s.onEvent(event{kind: evRestart, seq: 1})
	if s.restartT == nil || s.restarts != 0 {
		t.Fatal("a stale restart event started a generation")
	}
}
