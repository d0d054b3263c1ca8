package health

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/hupd/hupd/supervisor"
)

// contentType is the Prometheus text exposition format's, version 0.0.4.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// Metric names.
const (
	metricUp           = "hupd_up"
	metricReloads      = "hupd_reloads_total"
	metricStarts       = "hupd_generation_starts_total"
	metricRestarts     = "hupd_restarts_total"
	metricStartFails   = "hupd_start_failures"
	metricReady        = "hupd_ready_seconds"
	metricCurrent      = "hupd_current_generation"
	metricGenerations  = "hupd_generations"
	metricConfig       = "hupd_config_info"
	metricLastReload   = "hupd_last_reload_timestamp_seconds"
	metricLastReloadOK = "hupd_last_reload_success"
	metricGenMemory    = "hupd_generation_memory_bytes"
	metricGenPeak      = "hupd_generation_memory_peak_bytes"
	metricGenCPU       = "hupd_generation_cpu_seconds_total"
	metricGenProcs     = "hupd_generation_processes"
	metricInstances    = "hupd_instances"
	metricInstMemory   = "hupd_instance_memory_bytes"
	metricInstPeak     = "hupd_instance_memory_peak_bytes"
	metricInstCPU      = "hupd_instance_cpu_seconds_total"
	metricInstProcs    = "hupd_instance_processes"
	metricInstRestarts = "hupd_instance_restarts_total"
	metricInstUp       = "hupd_instance_up"
)

// writeMetrics renders the counters c and, when st is not nil, the gauges
// of that status snapshot. Every family has its HELP and TYPE lines before
// its samples; the label sets of a family are all different.
func writeMetrics(c counts, st *supervisor.Status) []byte {
	var e expo
	up := 0.0
	if st != nil {
		up = 1
	}
	e.family(metricUp, "gauge", "1 when hupd's supervisor answered this scrape's status request within the timeout; 0 when it did not, and then only the counters follow.")
	e.sample(metricUp, up)

	e.family(metricReloads, "counter", "Reloads that ended, by result (ok, failed) and strategy (swap, restart, signal).")
	for _, ok := range []bool{true, false} {
		result := "failed"
		if ok {
			result = "ok"
		}
		for _, strat := range supervisor.Strategies {
			e.sample(metricReloads, float64(c.reloads[reloadKey{ok, strat}]), "result", result, "strategy", string(strat))
		}
	}
	e.family(metricStarts, "counter", "Generations started: the first, each restart after an exit, each new generation of a reload.")
	e.sample(metricStarts, float64(c.starts))
	if st != nil {
		e.family(metricRestarts, "counter", "Restarts of the child after it exited on its own (the restart policy).")
		e.sample(metricRestarts, float64(st.Restarts))
		e.family(metricStartFails, "gauge", "Failed starts counted in the start limit's current window (start_limit); hupd gives up at the limit's burst when no generation serves.")
		e.sample(metricStartFails, float64(st.StartFailures))
	}

	e.family(metricReady, "histogram", "Time from a generation's start to its readiness, in seconds.")
	var cum uint64
	for i, le := range readyBuckets {
		cum += c.readyIn[i]
		e.sample(metricReady+"_bucket", float64(cum), "le", formatValue(le))
	}
	e.sample(metricReady+"_bucket", float64(c.readyCount), "le", "+Inf")
	e.sample(metricReady+"_sum", c.readySum)
	e.sample(metricReady+"_count", float64(c.readyCount))

	if st == nil {
		return e.b.Bytes()
	}
	e.family(metricCurrent, "gauge", "Number of the generation that serves (the newest ready one); 0 if none.")
	e.sample(metricCurrent, float64(current(*st)))
	e.family(metricGenerations, "gauge", "Generations running: starting, ready or draining.")
	e.sample(metricGenerations, float64(len(st.Generations)))
	e.family(metricInstances, "gauge", "Instances of the program each generation runs ([process] instances, or hupd scale since).")
	e.sample(metricInstances, float64(max(st.Instances, 1)))
	if len(st.Generations) > 0 {
		writeGenerations(&e, st.Generations)
		writeInstances(&e, st.Generations)
	}
	e.family(metricConfig, "gauge", "Content hash of the configuration and watched files the serving generation runs with.")
	e.sample(metricConfig, 1, "hash", st.ConfigHash)
	if r := st.LastReload; r != nil {
		e.family(metricLastReload, "gauge", "When the last reload ended, in seconds since the Unix epoch.")
		e.sample(metricLastReload, float64(r.Finished.UnixMilli())/1e3)
		ok := 0.0
		if r.OK {
			ok = 1
		}
		e.family(metricLastReloadOK, "gauge", "1 if the last reload succeeded, 0 if it failed.")
		e.sample(metricLastReloadOK, ok)
	}
	return e.b.Bytes()
}

// writeGenerations writes what each running generation uses, sampled for
// this scrape (see supervisor.GenerationStatus), labelled gen="N".
func writeGenerations(e *expo, gens []supervisor.GenerationStatus) {
	for _, f := range []struct {
		name, typ, help string
		value           func(supervisor.GenerationStatus) float64
	}{
		{metricGenMemory, "gauge", "Memory used by a generation's processes, in bytes: its cgroup's memory.current, or their resident set sizes summed.",
			func(g supervisor.GenerationStatus) float64 { return float64(g.MemoryBytes) }},
		{metricGenPeak, "gauge", "Peak memory of a generation, in bytes: its cgroup's memory.peak, or the highest sum seen by a sample.",
			func(g supervisor.GenerationStatus) float64 { return float64(g.MemoryPeakBytes) }},
		{metricGenCPU, "counter", "CPU time (user and system) used by a generation's processes, in seconds.",
			func(g supervisor.GenerationStatus) float64 { return g.CPUSeconds }},
		{metricGenProcs, "gauge", "Processes alive in a generation.",
			func(g supervisor.GenerationStatus) float64 { return float64(g.Processes) }},
	} {
		e.family(f.name, f.typ, f.help)
		for _, g := range gens {
			e.sample(f.name, f.value(g), "gen", strconv.Itoa(g.Gen))
		}
	}
}

// writeInstances writes what each instance of a generation running
// several uses, and how often it was restarted alone, labelled gen="N",
// instance="I"; nothing when no generation runs several.
func writeInstances(e *expo, gens []supervisor.GenerationStatus) {
	if !slices.ContainsFunc(gens, func(g supervisor.GenerationStatus) bool { return len(g.Instances) > 0 }) {
		return
	}
	for _, f := range []struct {
		name, typ, help string
		value           func(supervisor.InstanceStatus) float64
	}{
		{metricInstUp, "gauge", "1 while an instance has a process, 0 while it waits to be restarted.",
			func(in supervisor.InstanceStatus) float64 { return b2f(in.PID != 0) }},
		{metricInstRestarts, "counter", "Restarts of an instance after it exited on its own (the restart policy restarts it alone): a crash loop of one instance shows here.",
			func(in supervisor.InstanceStatus) float64 { return float64(in.Restarts) }},
		{metricInstMemory, "gauge", "Memory used by an instance's processes, in bytes (as hupd_generation_memory_bytes).",
			func(in supervisor.InstanceStatus) float64 { return float64(in.MemoryBytes) }},
		{metricInstPeak, "gauge", "Peak memory of an instance, in bytes (as hupd_generation_memory_peak_bytes).",
			func(in supervisor.InstanceStatus) float64 { return float64(in.MemoryPeakBytes) }},
		{metricInstCPU, "counter", "CPU time (user and system) used by an instance's processes, in seconds.",
			func(in supervisor.InstanceStatus) float64 { return in.CPUSeconds }},
		{metricInstProcs, "gauge", "Processes alive in an instance.",
			func(in supervisor.InstanceStatus) float64 { return float64(in.Processes) }},
	} {
		e.family(f.name, f.typ, f.help)
		for _, g := range gens {
			for _, in := range g.Instances {
				e.sample(f.name, f.value(in), "gen", strconv.Itoa(g.Gen), "instance", strconv.Itoa(in.Index))
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// expo writes the text exposition format.
type expo struct{ b bytes.Buffer }

// family starts a metric family: its HELP and TYPE lines.
func (e *expo) family(name, typ, help string) {
	e.b.WriteString("# HELP " + name + " " + helpEscaper.Replace(help) + "\n")
	e.b.WriteString("# TYPE " + name + " " + typ + "\n")
}

// sample writes one sample; labels are name, value pairs.
func (e *expo) sample(name string, v float64, labels ...string) {
	e.b.WriteString(name)
	if len(labels) > 0 {
		e.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.b.WriteByte(',')
			}
			e.b.WriteString(labels[i] + `="` + labelEscaper.Replace(labels[i+1]) + `"`)
		}
		e.b.WriteByte('}')
	}
	e.b.WriteString(" " + formatValue(v) + "\n")
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// formatValue writes v as Prometheus reads it: +Inf, -Inf, NaN, or a
// decimal number.
func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
