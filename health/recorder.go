package health

import (
	"fmt"
	"sync"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// readyBuckets are the upper bounds, in seconds, of hupd_ready_seconds.
//
// A histogram rather than a gauge of the last value: reloads come in
// bursts (a rollout, a watched directory changing), and a gauge would show
// only the one before each scrape, while counts per bucket keep every
// start between scrapes, add up across pods, and give the mean from
// _sum/_count. The buckets are fixed and few (memory and output do not
// grow), from a small static binary's tens of milliseconds to the default
// ready timeout of 60s.
var readyBuckets = [...]float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// reloadKey labels hupd_reloads_total.
type reloadKey struct {
	ok       bool
	strategy supervisor.Strategy
}

// recorder holds what the supervisor's hooks report. The hooks run on the
// supervisor's goroutine: each holds mu for a few assignments only.
type recorder struct {
	mu          sync.Mutex
	reloads     map[reloadKey]uint64
	starts      uint64
	readyIn     [len(readyBuckets) + 1]uint64 // per bucket, not cumulative; the last is +Inf
	readyCount  uint64
	readySum    float64
	failedInRow int
	lastFailure string // reason of the last failed reload
	stopped     bool   // hupd began to stop
}

// counts is a copy of a recorder's values, for one scrape.
type counts struct {
	reloads    map[reloadKey]uint64
	starts     uint64
	readyIn    [len(readyBuckets) + 1]uint64
	readyCount uint64
	readySum   float64
}

// hooks are the supervisor hooks that record into r.
func (r *recorder) hooks() supervisor.Hooks {
	return supervisor.Hooks{Started: r.started, Ready: r.ready, Reloaded: r.reloaded, Stopping: r.stopping}
}

func (r *recorder) started(gen, pid int) {
	r.mu.Lock()
	r.starts++
	r.mu.Unlock()
}

func (r *recorder) ready(gen, pid int, after time.Duration) {
	v := after.Seconds()
	i := 0
	for i < len(readyBuckets) && v > readyBuckets[i] {
		i++
	}
	r.mu.Lock()
	r.readyIn[i]++
	r.readyCount++
	r.readySum += v
	r.mu.Unlock()
}

func (r *recorder) reloaded(res supervisor.ReloadResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reloads == nil {
		r.reloads = make(map[reloadKey]uint64)
	}
	r.reloads[reloadKey{res.OK, res.Strategy}]++
	if res.OK {
		r.failedInRow, r.lastFailure = 0, ""
		return
	}
	r.failedInRow++
	r.lastFailure = res.Reason
}

func (r *recorder) stopping() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

// notReady says why /readyz must fail whatever the status says: hupd is
// stopping, or failures (> 0) reloads in a row have failed. "" otherwise.
func (r *recorder) notReady(failures int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.stopped:
		return "stopping"
	case failures > 0 && r.failedInRow >= failures:
		n := "1 reload"
		if r.failedInRow > 1 {
			n = fmt.Sprintf("%d reloads", r.failedInRow)
		}
		return fmt.Sprintf("%s in a row failed; the last: %s", n, r.lastFailure)
	}
	return ""
}

func (r *recorder) snapshot() counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := counts{reloads: make(map[reloadKey]uint64, len(r.reloads)), starts: r.starts, readyIn: r.readyIn,
		readyCount: r.readyCount, readySum: r.readySum}
	for k, v := range r.reloads {
		c.reloads[k] = v
	}
	return c
}
