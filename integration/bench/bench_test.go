package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hupd/hupd/integration/bench/loadgen"
)

// TestShort runs the suite in -short mode, as CI does: a few seconds per
// scenario, checking correctness only (0 failed requests through hupd,
// every reload done, every idle connection drained), never timings. It
// fails on any goal the short mode checks.
//
//	go test -run TestShort -v ./integration/bench/
func TestShort(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the benchmark suite's short mode still takes about 30 s")
	}
	out := filepath.Join(t.TempDir(), "short.json")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"-short", "-out", out}, &stdout, &stderr)
	t.Logf("table:\n%s", stdout.String())
	if code != 0 {
		t.Fatalf("bench -short exited %d:\n%s", code, stderr.String())
	}
	r, err := readReport(out)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || len(r.missed()) > 0 {
		t.Fatalf("goals missed: %+v", r.missed())
	}
	// Every load ran and was answered: a scenario cannot pass by doing
	// nothing.
	want := map[string]bool{"bare-round-1": true, "hupd-round-1": true, "swap": true, "restart-hupd": true, "restart-naive": true, "legacy": true,
		"steer-off": true, "steer-on": true, "instances-n1-round-1": true, "instances-n2-round-1": true, "instances-swap": true}
	for _, ph := range r.Phases {
		delete(want, ph.Name)
		for _, l := range ph.Loads {
			if l.Requests == 0 {
				t.Errorf("phase %s: %s load answered nothing", ph.Name, l.Kind)
			}
		}
		if ph.Name != "steer-off" && ph.Name != "steer-on" {
			continue
		}
		// Scenario 8 swapped and timed every old generation to its exit.
		if len(ph.Reloads) == 0 {
			t.Errorf("phase %s: no swaps", ph.Name)
		}
		for i, rl := range ph.Reloads {
			if rl.OldGen == 0 || rl.OldStopMS <= 0 || rl.OldExitMS < rl.OldStopMS {
				t.Errorf("phase %s, swap %d: old generation %d stop signal after %.2f ms, exit after %.2f ms", ph.Name, i+1, rl.OldGen, rl.OldStopMS, rl.OldExitMS)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("phases missing from the result: %v", want)
	}
}

// TestWriteCreatesDir: -out DIR/results.json works when DIR does not
// exist yet (issue 15, item 9), as -plots DIR always did.
func TestWriteCreatesDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "results.json")
	if err := (&Report{Mode: "short"}).write(path); err != nil {
		t.Fatal(err)
	}
	r, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != "short" {
		t.Fatalf("read back mode %q, want short", r.Mode)
	}
}

// TestSteerRows: scenario 8's goal is 0 failed new-connection requests
// with --steer, checked in every mode; failures without steering, and
// keep-alive failures on either side (the program's own drain), are
// reported beside it and never fail the run.
func TestSteerRows(t *testing.T) {
	side := func(name string, steer bool, kaFailed, ncFailed int64) *steerSide {
		res := make([]*loadgen.Result, 2)
		res[kaIdx] = &loadgen.Result{Kind: loadgen.KeepAlive, Clients: 16, Requests: 1000, Failed: kaFailed, ByClass: map[string]int64{"eof": kaFailed}}
		res[ncIdx] = &loadgen.Result{Kind: loadgen.NewConn, Clients: 4, Requests: 500, Failed: ncFailed, ByClass: map[string]int64{"reset": ncFailed}}
		rs := make([]Reload, 4)
		for i := range rs {
			rs[i] = Reload{OK: true, TookMS: 10, OldGen: i + 1, OldStopMS: 12, OldExitMS: 20}
		}
		return &steerSide{name: name, steer: steer, res: res, reloads: rs}
	}
	for _, tc := range []struct {
		name            string
		onNC, offNC, ka int64
		ok              bool
	}{
		{"steering loses nothing new", 0, 7, 64, true},
		{"a new connection failed with --steer", 1, 7, 64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{}
			steerRows(rep, shortSettings(), side("steer-off", false, tc.ka, tc.offNC), side("steer-on", true, tc.ka, tc.onNC))
			missed := rep.missed()
			if ok := len(missed) == 0; ok != tc.ok {
				t.Fatalf("goals missed: %+v; want ok %v", missed, tc.ok)
			}
			var goal, kaRow *Row
			for i, row := range rep.Rows {
				if row.Scenario != sc8 {
					t.Fatalf("row %q under scenario %q", row.Measure, row.Scenario)
				}
				switch {
				case strings.HasPrefix(row.Measure, "failed, new-conn"):
					goal = &rep.Rows[i]
				case strings.HasPrefix(row.Measure, "failed, keep-alive"):
					kaRow = &rep.Rows[i]
				}
			}
			if goal == nil || !goal.Checked || goal.Goal != "0 with --steer" {
				t.Fatalf("new-conn failures row: %+v; want the goal 0 with --steer, checked", goal)
			}
			if want := "7 (reset 7) | "; !strings.HasPrefix(goal.Value, want) {
				t.Errorf("new-conn failures %q; want it to start with the side without steering, %q", goal.Value, want)
			}
			if kaRow == nil || kaRow.Goal != "" || kaRow.Value != "64 (eof 64) | 64 (eof 64)" {
				t.Errorf("keep-alive failures row: %+v; want both sides' 64, reported without a goal", kaRow)
			}
		})
	}
}
