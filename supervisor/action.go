package supervisor

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/hupd/hupd/signals"
)

// Action is what a trigger asks for: a reload with the configured
// strategy (the zero Action), with a given strategy, or the relay of a
// given signal.
type Action struct {
	Strategy Strategy       // "" is the configured strategy
	Signal   syscall.Signal // with StrategySignal: 0 is the configured reload signal
}

// ActionReload is the configured strategy's reload.
var ActionReload = Action{}

// ParseAction parses "reload", "swap", "restart", "signal" or
// "signal:NAME".
func ParseAction(s string) (Action, error) {
	switch s {
	case "", "reload":
		return ActionReload, nil
	case string(StrategySwap), string(StrategyRestart), string(StrategySignal):
		return Action{Strategy: Strategy(s)}, nil
	}
	if name, ok := strings.CutPrefix(s, "signal:"); ok {
		sig, err := signals.Parse(name)
		if err != nil {
			return Action{}, err
		}
		return Action{Strategy: StrategySignal, Signal: sig}, nil
	}
	return Action{}, fmt.Errorf("valid actions are reload, swap, restart, signal, signal:NAME")
}

func (a Action) String() string {
	switch {
	case a.Strategy == "":
		return "reload"
	case a.Strategy == StrategySignal && a.Signal != 0:
		return "signal:" + signals.Name(a.Signal)
	}
	return string(a.Strategy)
}

// rank orders strategies when reloads coalesce: one that starts a new
// generation covers a signal (the new child reads everything afresh), and
// a restart (for programs that cannot run twice) covers a swap.
func rank(s Strategy) int {
	switch s {
	case StrategyRestart:
		return 2
	case StrategySwap:
		return 1
	}
	return 0
}
