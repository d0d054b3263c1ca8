package supervisor

import (
	"log/slog"
	"testing"
	"time"
)

// TestTrimNotPostponed: reloads and exits arriving more often than
// trimAfter must not postpone the memory trim for ever; a burst of them
// would otherwise keep its high-water mark in hupd's RSS until it ends.
func TestTrimNotPostponed(t *testing.T) {
	s := &Supervisor{log: slog.New(slog.DiscardHandler), events: make(chan event, 1), quit: make(chan struct{})}
	defer close(s.quit)
	defer s.cleanup()
	deadline := time.After(10 * trimAfter)
	tick := time.NewTicker(trimAfter / 10)
	defer tick.Stop()
	s.scheduleTrim()
	for {
		select {
		case ev := <-s.events:
			if ev.kind != evTrim {
				t.Fatalf("event %v, want evTrim", ev.kind)
			}
			return
		case <-tick.C:
			s.scheduleTrim() // another reload or exit
		case <-deadline:
			t.Fatalf("no trim %s after the first of a stream of events, one every %s", 10*trimAfter, trimAfter/10)
		}
	}
}
