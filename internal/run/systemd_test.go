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
