package control

import (
	"context"
	"errors"
	"testing"

	"github.com/hupd/hupd/supervisor"
)

// fakePlanner is a Handler that plans: it records the content it was
// asked about and answers with plan or err.
type fakePlanner struct {
	fakeControl
	got  chan []byte
	plan supervisor.Plan
	err  error
}

func (f *fakePlanner) Plan(ctx context.Context, data []byte) (supervisor.Plan, error) {
	f.got <- data
	return f.plan, f.err
}

// TestControlPlan: a plan request carries the configuration's content (or
// none: the one hupd runs with) to the Planner and returns its plan; an
// error about the configuration is marked BadConfig, another is not; a
// Handler that cannot plan says so.
func TestControlPlan(t *testing.T) {
	want := supervisor.Plan{NewGeneration: true, Strategy: supervisor.StrategySwap, Differ: []string{"env"}}
	f := &fakePlanner{got: make(chan []byte, 1), plan: want}
	ts := startControl(t, f)
	text := "command = [\"x\"]\n"
	rep := call(t, ts.path, Request{Cmd: CmdPlan, Config: &text})
	if got := recv(t, f.got, "the plan's content"); string(got) != text || !rep.OK || rep.Plan == nil ||
		!rep.Plan.NewGeneration || rep.Plan.Differ[0] != "env" {
		t.Fatalf("plan of %q: %+v", got, rep)
	}
	if rep := call(t, ts.path, Request{Cmd: CmdPlan}); recv(t, f.got, "the plan's content") != nil || !rep.OK {
		t.Fatalf("plan without content: %+v", rep)
	}
	f.err = &ConfigError{Err: errors.New("hupd.toml:3: invalid strategy")}
	if rep := call(t, ts.path, Request{Cmd: CmdPlan}); rep.OK || !rep.BadConfig || rep.Error != "hupd.toml:3: invalid strategy" {
		t.Fatalf("bad configuration: %+v", rep)
	}
	recv(t, f.got, "the plan's content")
	f.err = supervisor.ErrStopping
	if rep := call(t, ts.path, Request{Cmd: CmdPlan}); rep.OK || rep.BadConfig || rep.Error == "" {
		t.Fatalf("stopping: %+v", rep)
	}
	recv(t, f.got, "the plan's content")

	ts2 := startControl(t, &fakeControl{})
	if rep := call(t, ts2.path, Request{Cmd: CmdPlan}); rep.OK || rep.Error != "this hupd cannot plan" {
		t.Fatalf("a handler that cannot plan: %+v", rep)
	}
}
