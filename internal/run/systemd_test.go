package run

import (
	"testing"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// TestReloadBudget: the time a reload asks the service manager for
// (EXTEND_TIMEOUT_USEC) covers hupd's own bounds: one start for a swap
// (all instances at once however many), a check as long again, the old
// generation's stop for a restart, and for a rolling swap a start and a
// stop per step plus the restart of the old instances after a failure.
func TestReloadBudget(t *testing.T) {
	const ready, stop = time.Minute, 30 * time.Second
	o := func(instances, rolling int, check bool) supervisor.Options {
		o := supervisor.Options{Instances: instances, Rolling: rolling, StopTimeout: stop}
		o.Ready.Timeout = ready
		if check {
			o.Check = []string{"true"}
		}
		return o
	}
	for _, tc := range []struct {
		o    supervisor.Options
		st   supervisor.Strategy
		want time.Duration
	}{
		{o(0, 0, false), supervisor.StrategySwap, ready},
		{o(8, 0, false), supervisor.StrategySwap, ready},
		{o(1, 1, false), supervisor.StrategySwap, ready},
		{o(4, 4, false), supervisor.StrategySwap, ready},
		{o(0, 0, true), supervisor.StrategySwap, 2 * ready},
		{o(0, 0, false), supervisor.StrategyRestart, ready + stop},
		{o(4, 4, false), supervisor.StrategyRestart, ready + stop},
		{o(4, 1, false), supervisor.StrategySwap, 4*ready + 4*stop + ready},
		{o(5, 2, false), supervisor.StrategySwap, 3*ready + 3*stop + ready},
		{o(5, 2, true), supervisor.StrategySwap, 4*ready + 3*stop + ready},
		{o(4, 1, false), supervisor.StrategySignal, ready},
	} {
		if got := reloadBudget(tc.o, tc.st); got != tc.want+budgetMargin {
			t.Errorf("instances %d, rolling %d, check %v, %s: %s, want %s", tc.o.Instances, tc.o.Rolling, len(tc.o.Check) > 0, tc.st, got, tc.want+budgetMargin)
		}
	}
}

// TestSystemdResumedKeepsLastReload: a single program's hupd that took
// over from a previous image (an in-place upgrade) names in its next
// STATUS= the generation that serves and how the last reload went, as
// that image's STATUS= did after the reload (Upgrade.Last), and says no
// READY=1 again.
func TestSystemdResumedKeepsLastReload(t *testing.T) {
	s, m := newFleetSystemd(t)
	started := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		last supervisor.ReloadResult
		want string
	}{
		{supervisor.ReloadResult{OK: false, Strategy: supervisor.StrategySwap, Reason: "not ready in time", NewGen: 4},
			"STATUS=serving generation 3 (pid 30); last reload failed (swap): not ready in time"},
		{supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategyRestart, NewGen: 3, NewPID: 30, Started: started, Finished: started.Add(1500 * time.Millisecond)},
			"STATUS=serving generation 3 (pid 30); last reload ok (restart, 1.5s)"},
	} {
		// The previous image's STATUS= after the reload.
		before := &systemd{n: s.sd.n, log: s.sd.log, ready: true, gen: 3, pid: 30}
		before.hooks().Reloaded(tc.last)
		m.want("before the upgrade", tc.want)

		up := &supervisor.Upgrade{Gens: []supervisor.GenState{{Num: 3, PID: 30, State: supervisor.StateReady}}, Last: &tc.last}
		after := &systemd{n: s.sd.n, log: s.sd.log}
		after.resumed(up)
		after.hooks().Ready(3, 30, 0) // its generation restarted after a crash, say
		m.want("after the upgrade", tc.want)
	}
}
