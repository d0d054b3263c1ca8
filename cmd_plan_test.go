package main

import (
	"bytes"
	"testing"

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
