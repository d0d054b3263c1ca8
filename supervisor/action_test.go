package supervisor

import (
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseAction(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Action
		str  string
	}{
		{"", ActionReload, "reload"},
		{"reload", ActionReload, "reload"},
		{"swap", Action{Strategy: StrategySwap}, "swap"},
		{"restart", Action{Strategy: StrategyRestart}, "restart"},
		{"signal", Action{Strategy: StrategySignal}, "signal"},
		{"signal:HUP", Action{Strategy: StrategySignal, Signal: unix.SIGHUP}, "signal:HUP"},
		{"signal:SIGUSR2", Action{Strategy: StrategySignal, Signal: unix.SIGUSR2}, "signal:USR2"},
		{"signal:10", Action{Strategy: StrategySignal, Signal: unix.SIGUSR1}, "signal:USR1"},
	} {
		got, err := ParseAction(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("ParseAction(%q) = %+v (%q), %v; want %+v (%q)", tc.in, got, got.String(), err, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"bounce", "signal:", "signal:HUPP", "Swap", "signal:0"} {
		if _, err := ParseAction(bad); err == nil {
			t.Errorf("ParseAction(%q) accepted", bad)
		} else if strings.ContainsAny(err.Error(), "\n") {
			t.Errorf("ParseAction(%q): error not one line: %v", bad, err)
		}
	}
}

func TestPlanAndMerge(t *testing.T) {
	s := &Supervisor{opts: Options{Reload: StrategySignal, ReloadSignal: unix.SIGHUP}}
	hup := s.plan(ActionReload, "SIGHUP")
	if hup.strategy != StrategySignal || !reflect.DeepEqual(hup.signals, []syscall.Signal{unix.SIGHUP}) {
		t.Fatalf("configured reload: %+v", hup)
	}
	usr1 := s.plan(Action{Strategy: StrategySignal, Signal: unix.SIGUSR1}, "cert")
	both := merge(hup, usr1)
	if both.strategy != StrategySignal || !reflect.DeepEqual(both.signals, []syscall.Signal{unix.SIGHUP, unix.SIGUSR1}) {
		t.Fatalf("two signals merge into both, in order: %+v", both)
	}
	if again := merge(both, hup); len(again.signals) != 2 {
		t.Fatalf("a signal queued twice is sent once: %+v", again)
	}
	swap := s.plan(Action{Strategy: StrategySwap}, "conf")
	for _, p := range []plan{merge(both, swap), merge(swap, both)} {
		if p.strategy != StrategySwap || p.signals != nil {
			t.Fatalf("a swap covers signals: %+v", p)
		}
	}
	restart := s.plan(Action{Strategy: StrategyRestart}, "r")
	for _, p := range []plan{merge(swap, restart), merge(restart, swap), merge(restart, hup)} {
		if p.strategy != StrategyRestart {
			t.Fatalf("a restart covers a swap and a signal: %+v", p)
		}
	}
	if p := merge(merge(hup, swap), usr1); !reflect.DeepEqual(p.causes, []string{"SIGHUP", "conf", "cert"}) {
		t.Fatalf("causes: %v", p.causes)
	}
}
