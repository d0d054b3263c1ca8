package supervisor

import (
	"context"
	"time"
)

// Scale sets how many instances the serving generation runs (see
// Options.Instances) and every later one starts with, without a reload: up
// by starting instances of the serving generation with its settings, down
// by stopping the highest-numbered ones. It answers once the new instances
// are ready (or one failed: those it started are stopped, and the number
// stays as it was) or the old ones are told to stop, or when ctx ends.
func (s *Supervisor) Scale(ctx context.Context, n int) ScaleResult {
	now := time.Now()
	if err := ValidInstances(n); err != nil {
		return ScaleResult{To: n, Reason: err.Error(), Started: now, Finished: now}
	}
	reply := make(chan ScaleResult, 1)
	select {
	case s.reqs <- request{scale: &scaleRequest{n: n, reply: reply}}:
	case <-s.quit:
		return ScaleResult{To: n, Reason: "hupd is not running", Started: now, Finished: now}
	case <-ctx.Done():
		return ScaleResult{To: n, Reason: "the caller gave up before the scale started: nothing was changed", Started: now, Finished: now}
	}
	ctx, cancel := WaitContext(ctx)
	defer cancel()
	select {
	case r := <-reply:
		return r
	case <-s.quit:
		return ScaleResult{To: n, Reason: "hupd stopped during the scale", Started: now, Finished: time.Now()}
	case <-ctx.Done():
		return ScaleResult{To: n, Reason: "timed out waiting for the scale; it goes on", Started: now, Finished: time.Now(), TimedOut: true}
	}
}

// scaleRequest asks Run for n instances.
type scaleRequest struct {
	n     int
	reply chan<- ScaleResult
}

// scale is Scale on Run's goroutine.
func (s *Supervisor) scale(r *scaleRequest) {
	now := time.Now()
	r.reply <- ScaleResult{To: r.n, Reason: "scaling is not built yet", Started: now, Finished: now}
}
