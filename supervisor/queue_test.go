package supervisor

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hupd/hupd/socketact"
)

// These tests check that code running on Run's goroutine never waits for
// room in the event queue: only Run empties it, so such a wait would hang
// hupd.

// fullQueue returns a supervisor whose event queue is full, as it is when
// a child floods its notify socket faster than Run handles the datagrams.
func fullQueue(t *testing.T) *Supervisor {
	t.Helper()
	s := &Supervisor{log: slog.New(slog.DiscardHandler), events: make(chan event, 64), quit: make(chan struct{})}
	for len(s.events) < cap(s.events) {
		s.events <- event{kind: evTrim}
	}
	t.Cleanup(func() { close(s.quit) }) // frees a blocked post
	return s
}

// mustReturn fails t when f blocks: Run's goroutine posting to its own
// queue would wait for itself forever.
func mustReturn(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked on Run's own full event queue: hupd would hang", what)
	}
}

// TestWatchdogTriggerFullQueue: WATCHDOG=trigger is handled on Run's
// goroutine; it must not wait for room in the queue that only Run empties.
func TestWatchdogTriggerFullQueue(t *testing.T) {
	s := fullQueue(t)
	g := &generation{num: 1, pid: os.Getpid(), state: StateReady, proc: &os.Process{Pid: -1}}
	m := socketact.NotifyMessage{PID: os.Getpid(), UID: os.Getuid(), GID: os.Getgid(), Verified: true,
		Fields: map[string]string{socketact.NotifyWatchdog: "trigger"}}
	g.pid = 1 << 30 // above any pid_max: killGroup must hit nothing
	m.PID = g.pid
	mustReturn(t, "onNotify(WATCHDOG=trigger)", func() { s.onNotify(g, m, time.Now(), mainVet{}) })
}

// TestCheckStartFailureFullQueue: a check command that cannot start is
// reported on Run's goroutine; that must not wait for queue room either.
func TestCheckStartFailureFullQueue(t *testing.T) {
	s := fullQueue(t)
	s.opts = Options{Check: []string{"/nonexistent/hupd-check"}}
	tx := &reloadTx{strategy: StrategySwap, checking: true}
	s.tx = tx
	mustReturn(t, "runCheck", func() { s.runCheck(tx) })
}
