package supervisor

import (
	"errors"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := Options{Path: "/bin/true", Args: []string{"true"}}
	for _, s := range []Strategy{"", StrategySignal} {
		o := ok
		o.Reload = s
		if err := o.Validate(); err != nil {
			t.Errorf("strategy %q: %v", s, err)
		}
	}
	for _, s := range []Strategy{StrategySwap, StrategyRestart} {
		o := ok
		o.Reload = s
		if err := o.Validate(); !errors.Is(err, ErrNotImplemented) {
			t.Errorf("strategy %q: %v, want ErrNotImplemented", s, err)
		}
	}
	bad := ok
	bad.Reload = "bluegreen"
	if err := bad.Validate(); err == nil || errors.Is(err, ErrNotImplemented) {
		t.Errorf("unknown strategy: %v", err)
	}
	for _, o := range []Options{{Args: []string{"x"}}, {Path: "/bin/true"}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no command accepted", o)
		}
	}
}
