package main

import (
	"bytes"
	"path/filepath"
	"testing"
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
	want := map[string]bool{"bare-round-1": true, "hupd-round-1": true, "swap": true, "restart-hupd": true, "restart-naive": true, "legacy": true}
	for _, ph := range r.Phases {
		delete(want, ph.Name)
		for _, l := range ph.Loads {
			if l.Requests == 0 {
				t.Errorf("phase %s: %s load answered nothing", ph.Name, l.Kind)
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
