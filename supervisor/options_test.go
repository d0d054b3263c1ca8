package supervisor

import (
	"testing"
)

func TestValidate(t *testing.T) {
	ok := Options{Path: "/bin/true", Args: []string{"true"}}
	for _, s := range []Strategy{"", StrategySignal, StrategySwap, StrategyRestart} {
		o := ok
		o.Reload = s
		if err := o.Validate(); err != nil {
			t.Errorf("strategy %q: %v", s, err)
		}
	}
	bad := ok
	bad.Reload = "bluegreen"
	if err := bad.Validate(); err == nil {
		t.Error("unknown strategy accepted")
	}
	bad = ok
	bad.Output = "tee"
	if err := bad.Validate(); err == nil {
		t.Error("unknown output accepted")
	}
	for _, o := range []Options{{Args: []string{"x"}}, {Path: "/bin/true"}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no command accepted", o)
		}
	}
}

func TestDefaultStrategy(t *testing.T) {
	if s := DefaultStrategy(0); s != StrategySignal {
		t.Errorf("no sockets: %s", s)
	}
	if s := DefaultStrategy(2); s != StrategySwap {
		t.Errorf("sockets: %s", s)
	}
}

func TestParseReadiness(t *testing.T) {
	for in, want := range map[string]string{
		"auto": "auto", "notify": "notify", "delay:1.5s": "delay:1.5s",
		"exec:curl -fsS http://127.0.0.1/": "exec:curl -fsS http://127.0.0.1/",
	} {
		r, err := ParseReadiness(in)
		if err != nil || r.String() != want {
			t.Errorf("ParseReadiness(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, in := range []string{"", "ready", "delay", "delay:x", "delay:-1s", "exec:", "notify:1", "auto:x"} {
		if _, err := ParseReadiness(in); err == nil {
			t.Errorf("ParseReadiness(%q) accepted", in)
		}
	}
}
