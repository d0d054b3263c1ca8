package main

import (
	"bytes"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// TestPlanText: how hupd plan prints a plan: nothing to do; a swap with
// sockets opened, kept (with new options) and closed after draining, live
// settings and one that waits for a restart; a change without a new
// generation. A name with a control character is shown escaped.
func TestPlanText(t *testing.T) {
	var b bytes.Buffer
	for _, p := range []supervisor.Plan{
		{Keep: []supervisor.PlanSocket{{Name: "http", Address: "tcp://127.0.0.1:8080"}}},
		{
			NewGeneration: true, Strategy: supervisor.StrategySwap, Differ: []string{"command", "env", "sockets"},
			Open:    []supervisor.PlanSocket{{Name: "admin", Address: "unix:///run/app/admin.sock"}},
			Keep:    []supervisor.PlanSocket{{Name: "http", Address: "tcp://127.0.0.1:8080", Changed: []string{"backlog", "mode"}}},
			Close:   []supervisor.PlanSocket{{Name: "old\x1b", Address: "tcp://127.0.0.1:9090", Draining: true}, {Name: "gone", Address: "tcp://127.0.0.1:9091"}},
			Live:    []string{"stop", "log.level", "watch"},
			Restart: []supervisor.PlanSetting{{Setting: "health.address", Now: "127.0.0.1:9000", Configured: "off"}},
		},
		{Live: []string{"ready"}},
	} {
		printPlan(&b, p)
		b.WriteString("--\n")
	}
	golden(t, "plan.golden", b.String())
}

// TestPlanInstancesText: an edit of instances scales the serving
// generation live (no reload), one of rolling counts from the next
// reload; with a new generation, it starts the new number and swaps with
// the new rolling. plan.golden is unchanged.
func TestPlanInstancesText(t *testing.T) {
	var b bytes.Buffer
	for _, p := range []supervisor.Plan{
		{Live: []string{"instances"}},
		{Live: []string{"rolling", "stop"}},
		{Live: []string{"instances", "rolling"}},
		{NewGeneration: true, Strategy: supervisor.StrategySwap, Differ: []string{"args"}, Live: []string{"instances", "rolling"}},
	} {
		printPlan(&b, p)
		b.WriteString("--\n")
	}
	golden(t, "plan-instances.golden", b.String())
}

// TestPlanFleetText: how hupd plan prints the plan of a hupd of several
// programs: a line per program, in start order then the removed ones:
// changed (and, indented, what a single program's plan says: a new
// generation and its sockets; a program waiting to start: its sockets; an
// ended one: that nothing runs, not "the running one goes on"),
// unchanged, added (started anew when it had ended) with the sockets it
// opens, removed with those it closes; then hupd's own settings. A plan
// that changes nothing says so once.
func TestPlanFleetText(t *testing.T) {
	var b bytes.Buffer
	http := supervisor.PlanSocket{Name: "http", Address: "tcp://127.0.0.1:8080"}
	for _, p := range []control.FleetPlan{
		{Programs: []control.ProgramPlan{{Name: "app", Change: control.ChangeUnchanged, State: control.ProgramRunning}, {Name: "web", Change: control.ChangeUnchanged, State: control.ProgramRunning}}},
		{
			Programs: []control.ProgramPlan{
				{Name: "app", Change: control.ChangeChanged, State: control.ProgramRunning, Plan: &supervisor.Plan{
					NewGeneration: true, Strategy: supervisor.StrategySwap, Differ: []string{"env"},
					Keep: []supervisor.PlanSocket{{Name: "app", Address: "unix:///run/app.sock", Changed: []string{"mode"}}},
					Live: []string{"restart", "watch"},
				}},
				{Name: "web", Change: control.ChangeUnchanged, State: control.ProgramRunning},
				{Name: "worker", Change: control.ChangeChanged, State: control.ProgramRunning, Plan: &supervisor.Plan{Live: []string{"after"},
					Restart: []supervisor.PlanSetting{{Setting: "process.cgroup", Now: "auto", Configured: "off"}}}},
				{Name: "late", Change: control.ChangeChanged, State: control.ProgramWaiting, Plan: &supervisor.Plan{
					Open: []supervisor.PlanSocket{{Name: "late", Address: "tcp://127.0.0.1:8082"}}, Close: []supervisor.PlanSocket{{Name: "late", Address: "tcp://127.0.0.1:8081"}}}},
				{Name: "extra\x1b", Change: control.ChangeAdded, Plan: &supervisor.Plan{NewGeneration: true, Open: []supervisor.PlanSocket{http}}},
				{Name: "cron", Change: control.ChangeAdded, State: control.ProgramEnded, Plan: &supervisor.Plan{NewGeneration: true}},
				{Name: "batch", Change: control.ChangeChanged, State: control.ProgramEnded, Plan: &supervisor.Plan{Live: []string{"on_exit", "watch"}}},
				{Name: "old", Change: control.ChangeRemoved, State: control.ProgramRunning, Plan: &supervisor.Plan{Close: []supervisor.PlanSocket{{Name: "old", Address: "tcp://127.0.0.1:9090", Draining: true}}}},
				{Name: "done", Change: control.ChangeRemoved, State: control.ProgramEnded, Plan: &supervisor.Plan{}},
			},
			Live:    []string{"log.level"},
			Restart: []supervisor.PlanSetting{{Setting: "health.address", Now: "127.0.0.1:9000", Configured: "off"}},
		},
	} {
		printFleetPlan(&b, p)
		b.WriteString("--\n")
	}
	golden(t, "plan-fleet.golden", b.String())
}
