package health

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// TestMetricsExposition records a history through the hooks and checks
// every sample of the exposition, which must pass the strict reader.
func TestMetricsExposition(t *testing.T) {
	var r recorder
	h := supervisor.Hooks{Started: r.started, Ready: r.ready, Reloaded: r.reloaded}
	h.Started(1, 100)
	h.Ready(1, 100, 30*time.Millisecond)
	h.Reloaded(supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap})
	h.Started(2, 200)
	h.Ready(2, 200, 2*time.Second)
	h.Reloaded(supervisor.ReloadResult{Strategy: supervisor.StrategySwap, Reason: "check failed"})
	h.Reloaded(supervisor.ReloadResult{Strategy: supervisor.StrategySignal, Reason: "no child running"})
	h.Started(3, 300) // not ready yet
	h.Ready(3, 300, 5*time.Minute)

	finished := time.UnixMilli(1_700_000_000_250)
	st := &supervisor.Status{
		Restarts:      3,
		StartFailures: 2,
		ConfigHash:    "0123456789abcdef",
		Generations: []supervisor.GenerationStatus{
			{Gen: 1, State: supervisor.StateDraining, Processes: 1, MemoryBytes: 1 << 20, MemoryPeakBytes: 2 << 20, CPUSeconds: 1.5},
			{Gen: 2, State: supervisor.StateReady, Processes: 4, MemoryBytes: 3 << 20, MemoryPeakBytes: 3 << 20, CPUSeconds: 0.25},
			{Gen: 3, State: supervisor.StateStarting},
		},
		LastReload: &supervisor.ReloadResult{OK: false, Finished: finished},
	}
	text := string(writeMetrics(r.snapshot(), st))
	e, err := parseExposition(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	readySum := (30 * time.Millisecond).Seconds() // added in the same order as the recorder
	readySum += (2 * time.Second).Seconds()
	readySum += (5 * time.Minute).Seconds()
	want := map[string]float64{
		"hupd_up": 1,
		seriesKey("hupd_reloads_total", label{"result", "ok"}, label{"strategy", "swap"}):        1,
		seriesKey("hupd_reloads_total", label{"result", "ok"}, label{"strategy", "signal"}):      0,
		seriesKey("hupd_reloads_total", label{"result", "ok"}, label{"strategy", "restart"}):     0,
		seriesKey("hupd_reloads_total", label{"result", "failed"}, label{"strategy", "swap"}):    1,
		seriesKey("hupd_reloads_total", label{"result", "failed"}, label{"strategy", "signal"}):  1,
		seriesKey("hupd_reloads_total", label{"result", "failed"}, label{"strategy", "restart"}): 0,
		"hupd_generation_starts_total":                                   3,
		"hupd_restarts_total":                                            3,
		"hupd_start_failures":                                            2,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "0.01"}):      0,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "0.05"}):      1,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "0.1"}):       1,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "0.25"}):      1,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "0.5"}):       1,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "1"}):         1,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "2.5"}):       2,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "5"}):         2,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "10"}):        2,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "30"}):        2,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "60"}):        2,
		seriesKey("hupd_ready_seconds_bucket", label{"le", "+Inf"}):      3,
		"hupd_ready_seconds_sum":                                         0.03 + 2.0 + 300,
		"hupd_ready_seconds_count":                                       3,
		"hupd_current_generation":                                        2,
		"hupd_generations":                                               3,
		"hupd_instances":                                                 1, // a hupd of before instances: one
		seriesKey("hupd_config_info", label{"hash", "0123456789abcdef"}): 1,
		"hupd_last_reload_timestamp_seconds":                             1_700_000_000.25,
		"hupd_last_reload_success":                                       0,
	}
	// What each generation uses.
	for _, g := range st.Generations {
		gen := label{"gen", strconv.Itoa(g.Gen)}
		want[seriesKey("hupd_generation_memory_bytes", gen)] = float64(g.MemoryBytes)
		want[seriesKey("hupd_generation_memory_peak_bytes", gen)] = float64(g.MemoryPeakBytes)
		want[seriesKey("hupd_generation_cpu_seconds_total", gen)] = g.CPUSeconds
		want[seriesKey("hupd_generation_processes", gen)] = float64(g.Processes)
	}
	for k, v := range want {
		got, ok := e.series[k]
		if !ok {
			t.Errorf("no series %s", k)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	for k := range e.series {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s", k)
		}
	}
	types := map[string]string{
		"hupd_up": "gauge", "hupd_reloads_total": "counter", "hupd_generation_starts_total": "counter",
		"hupd_restarts_total": "counter", "hupd_start_failures": "gauge", "hupd_ready_seconds": "histogram", "hupd_current_generation": "gauge",
		"hupd_generations": "gauge", "hupd_config_info": "gauge", "hupd_last_reload_timestamp_seconds": "gauge",
		"hupd_last_reload_success": "gauge", "hupd_generation_memory_bytes": "gauge",
		"hupd_generation_memory_peak_bytes": "gauge", "hupd_generation_cpu_seconds_total": "counter",
		"hupd_generation_processes": "gauge", "hupd_instances": "gauge",
	}
	for name, typ := range types {
		if e.types[name] != typ {
			t.Errorf("TYPE of %s is %q, want %q", name, e.types[name], typ)
		}
	}
	for _, name := range e.order {
		if !strings.HasPrefix(name, "hupd_") {
			t.Errorf("family %s lacks the hupd_ prefix", name)
		}
	}
}

// TestMetricsWithoutStatus: when the supervisor does not answer, the
// counters still go out, with hupd_up 0 and none of the status gauges.
func TestMetricsWithoutStatus(t *testing.T) {
	var r recorder
	r.started(1, 1)
	text := string(writeMetrics(r.snapshot(), nil))
	e, err := parseExposition(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if e.series["hupd_up"] != 0 || e.series["hupd_generation_starts_total"] != 1 {
		t.Errorf("hupd_up %v, starts %v; want 0, 1", e.series["hupd_up"], e.series["hupd_generation_starts_total"])
	}
	for _, name := range []string{"hupd_restarts_total", "hupd_start_failures", "hupd_current_generation", "hupd_generations", "hupd_config_info",
		"hupd_last_reload_timestamp_seconds", "hupd_last_reload_success"} {
		if _, ok := e.types[name]; ok {
			t.Errorf("%s present without a status", name)
		}
	}
}

// TestMetricsNoReloadYet: before any reload, the last reload's gauges are
// absent rather than a misleading 0, and every counter series is there.
func TestMetricsNoReloadYet(t *testing.T) {
	var r recorder
	text := string(writeMetrics(r.snapshot(), &supervisor.Status{}))
	e, err := parseExposition(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if _, ok := e.types["hupd_last_reload_success"]; ok {
		t.Error("hupd_last_reload_success before any reload")
	}
	n := 0
	for k, v := range e.series {
		if strings.HasPrefix(k, "hupd_reloads_total{") {
			n++
			if v != 0 {
				t.Errorf("%s = %v", k, v)
			}
		}
	}
	if n != 2*len(supervisor.Strategies) {
		t.Errorf("%d hupd_reloads_total series, want one per result and strategy", n)
	}
	if e.series[seriesKey("hupd_config_info", label{"hash", ""})] != 1 || e.series["hupd_current_generation"] != 0 {
		t.Errorf("config_info or current_generation wrong:\n%s", text)
	}
}

// TestMetricsEscaping: label values and HELP text are escaped so that the
// reader gets them back as they were.
func TestMetricsEscaping(t *testing.T) {
	hash := "a\"b\\c\nd"
	text := string(writeMetrics(counts{}, &supervisor.Status{ConfigHash: hash}))
	e, err := parseExposition(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if e.series[seriesKey("hupd_config_info", label{"hash", hash})] != 1 {
		t.Errorf("hash %q not read back:\n%s", hash, text)
	}
	var x expo
	x.family("x", "gauge", "back\\slash and\nnewline")
	x.sample("x", 1)
	if got := x.b.String(); !strings.HasPrefix(got, "# HELP x back\\\\slash and\\nnewline\n") {
		t.Errorf("HELP not escaped: %q", got)
	}
	if _, err := parseExposition(x.b.String()); err != nil {
		t.Error(err)
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1: "1", 0.25: "0.25", 1_700_000_000.25: "1700000000.25", 60: "60"} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestMetricsInstances: with generations of several instances, hupd
// scrapes say how many each runs (hupd_instances) and, per instance
// (labels gen and instance), whether it has a process, its restarts (a
// crash loop of one instance), memory, peak, CPU and processes; the
// exposition passes the strict reader (unique label sets, HELP and TYPE
// first). Without such a generation, no instance family is written.
func TestMetricsInstances(t *testing.T) {
	in := func(i, pid, restarts int, mem uint64, cpu float64) supervisor.InstanceStatus {
		return supervisor.InstanceStatus{Index: i, PID: pid, State: supervisor.StateReady, Restarts: restarts, Processes: min(pid, 1),
			MemoryBytes: mem, MemoryPeakBytes: 2 * mem, CPUSeconds: cpu}
	}
	st := &supervisor.Status{Instances: 3, Rolling: 1, Generations: []supervisor.GenerationStatus{
		{Gen: 4, State: supervisor.StateDraining, Instances: []supervisor.InstanceStatus{in(0, 400, 0, 1<<20, 1.5), in(1, 401, 0, 2<<20, 2.5)}},
		{Gen: 5, State: supervisor.StateReady, Instances: []supervisor.InstanceStatus{in(0, 500, 0, 3<<20, 0.25), in(1, 501, 1, 4<<20, 0.5), in(2, 0, 2, 0, 0)}},
	}}
	text := string(writeMetrics(counts{}, st))
	e, err := parseExposition(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if e.series["hupd_instances"] != 3 {
		t.Errorf("hupd_instances = %v, want 3", e.series["hupd_instances"])
	}
	n := 0
	for _, g := range st.Generations {
		for _, in := range g.Instances {
			ls := []label{{"gen", strconv.Itoa(g.Gen)}, {"instance", strconv.Itoa(in.Index)}}
			up := 1.0
			if in.PID == 0 {
				up = 0
			}
			for name, want := range map[string]float64{
				"hupd_instance_up": up, "hupd_instance_restarts_total": float64(in.Restarts),
				"hupd_instance_memory_bytes": float64(in.MemoryBytes), "hupd_instance_memory_peak_bytes": float64(in.MemoryPeakBytes),
				"hupd_instance_cpu_seconds_total": in.CPUSeconds, "hupd_instance_processes": float64(in.Processes),
			} {
				n++
				k := seriesKey(name, ls...)
				if got, ok := e.series[k]; !ok || got != want {
					t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
				}
			}
		}
	}
	got := 0
	for k := range e.series {
		if strings.HasPrefix(k, "hupd_instance_") {
			got++
		}
	}
	if got != n {
		t.Errorf("%d instance series, want %d:\n%s", got, n, text)
	}
	for name, typ := range map[string]string{"hupd_instances": "gauge", "hupd_instance_up": "gauge", "hupd_instance_restarts_total": "counter",
		"hupd_instance_memory_bytes": "gauge", "hupd_instance_memory_peak_bytes": "gauge", "hupd_instance_cpu_seconds_total": "counter",
		"hupd_instance_processes": "gauge"} {
		if e.types[name] != typ {
			t.Errorf("TYPE of %s is %q, want %q", name, e.types[name], typ)
		}
	}

	// One instance per generation: no instance family.
	text = string(writeMetrics(counts{}, &supervisor.Status{Instances: 1, Generations: []supervisor.GenerationStatus{{Gen: 1, State: supervisor.StateReady}}}))
	if e, err = parseExposition(text); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	for name := range e.types {
		if strings.HasPrefix(name, "hupd_instance_") {
			t.Errorf("%s without instances", name)
		}
	}
}

// TestMetricsInstanceTwiceByIndex: while an instance a scale down stopped
// still drains, the one started in its place is listed beside it (status
// lists both): the exposition has one series per index, the new one's.
func TestMetricsInstanceTwiceByIndex(t *testing.T) {
	st := &supervisor.Status{Instances: 2, Generations: []supervisor.GenerationStatus{{Gen: 1, State: supervisor.StateReady, Instances: []supervisor.InstanceStatus{
		{Index: 0, PID: 10, State: supervisor.StateReady},
		{Index: 1, PID: 11, State: supervisor.StateDraining, Restarts: 7},
		{Index: 1, PID: 12, State: supervisor.StateReady, Restarts: 1},
	}}}}
	text := string(writeMetrics(counts{}, st))
	e, err := parseExposition(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if got := e.series[seriesKey("hupd_instance_restarts_total", label{"gen", "1"}, label{"instance", "1"})]; got != 1 {
		t.Fatalf("instance 1's restarts %v, want the new one's 1:\n%s", got, text)
	}
}
