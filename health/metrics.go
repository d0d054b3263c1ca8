package health

import (
	"bytes"
	"math"
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
	return writeScrapes(st != nil, []scrape{{c: c, st: st}})
}

// scrape is what one program reports to a scrape: its counters and, when
// its supervisor answered, its status snapshot.
type scrape struct {
	program string // "" for hupd's single program: no program label
	c       counts
	st      *supervisor.Status
}

// labels returns the label pairs of one of s's samples: program="NAME"
// first when s is one of several programs, then kv.
func (s *scrape) labels(kv ...string) []string {
	if s.program == "" {
		return kv
	}
	return append([]string{"program", s.program}, kv...)
}

// writeScrapes renders what each of ss reports, with hupd_up once: up
// when every program asked for its status answered. Each family comes
// once, its samples of every program together, and only when a program
// has a sample of it (the single program's families are those of
// writeMetrics); the samples of several programs carry program="NAME".
func writeScrapes(up bool, ss []scrape) []byte {
	var e expo
	e.family(metricUp, "gauge", "1 when hupd's supervisor answered this scrape's status request within the timeout; 0 when it did not, and then only the counters follow.")
	e.sample(metricUp, b2f(up))

	e.family(metricReloads, "counter", "Reloads that ended, by result (ok, failed) and strategy (swap, restart, signal).")
	for _, s := range ss {
		for _, ok := range []bool{true, false} {
			result := "failed"
			if ok {
				result = "ok"
			}
			for _, strat := range supervisor.Strategies {
				e.sample(metricReloads, float64(s.c.reloads[reloadKey{ok, strat}]), s.labels("result", result, "strategy", string(strat))...)
			}
		}
	}
	e.family(metricStarts, "counter", "Generations started: the first, each restart after an exit, each new generation of a reload.")
	for _, s := range ss {
		e.sample(metricStarts, float64(s.c.starts), s.labels()...)
	}
	e.family(metricRestarts, "counter", "Restarts of the child after it exited on its own (the restart policy).")
	for _, s := range ss {
		if s.st != nil {
			e.sample(metricRestarts, float64(s.st.Restarts), s.labels()...)
		}
	}
	e.family(metricStartFails, "gauge", "Failed starts counted in the start limit's current window (start_limit); hupd gives up at the limit's burst when no generation serves.")
	for _, s := range ss {
		if s.st != nil {
			e.sample(metricStartFails, float64(s.st.StartFailures), s.labels()...)
		}
	}

	e.family(metricReady, "histogram", "Time from a generation's start to its readiness, in seconds.")
	for _, s := range ss {
		var cum uint64
		for i, le := range readyBuckets {
			cum += s.c.readyIn[i]
			e.sample(metricReady+"_bucket", float64(cum), s.labels("le", formatValue(le))...)
		}
		e.sample(metricReady+"_bucket", float64(s.c.readyCount), s.labels("le", "+Inf")...)
		e.sample(metricReady+"_sum", s.c.readySum, s.labels()...)
		e.sample(metricReady+"_count", float64(s.c.readyCount), s.labels()...)
	}

	gauge := func(name, typ, help string, value func(st *supervisor.Status) float64) {
		e.family(name, typ, help)
		for _, s := range ss {
			if s.st != nil {
				e.sample(name, value(s.st), s.labels()...)
			}
		}
	}
	gauge(metricCurrent, "gauge", "Number of the generation that serves (the newest ready one); 0 if none.",
		func(st *supervisor.Status) float64 { return float64(current(*st)) })
	gauge(metricGenerations, "gauge", "Generations running: starting, ready or draining.",
		func(st *supervisor.Status) float64 { return float64(len(st.Generations)) })
	gauge(metricInstances, "gauge", "Instances of the program each generation runs ([process] instances, or hupd scale since).",
		func(st *supervisor.Status) float64 { return float64(max(st.Instances, 1)) })
	writeGenerations(&e, ss)
	writeInstances(&e, ss)
	e.family(metricConfig, "gauge", "Content hash of the configuration and watched files the serving generation runs with.")
	for _, s := range ss {
		if s.st != nil {
			e.sample(metricConfig, 1, s.labels("hash", s.st.ConfigHash)...)
		}
	}
	e.family(metricLastReload, "gauge", "When the last reload ended, in seconds since the Unix epoch.")
	for _, s := range ss {
		if s.st != nil && s.st.LastReload != nil {
			e.sample(metricLastReload, float64(s.st.LastReload.Finished.UnixMilli())/1e3, s.labels()...)
		}
	}
	e.family(metricLastReloadOK, "gauge", "1 if the last reload succeeded, 0 if it failed.")
	for _, s := range ss {
		if s.st != nil && s.st.LastReload != nil {
			e.sample(metricLastReloadOK, b2f(s.st.LastReload.OK), s.labels()...)
		}
	}
	return e.b.Bytes()
}

// writeGenerations writes what each running generation uses, sampled for
// this scrape (see supervisor.GenerationStatus), labelled gen="N".
func writeGenerations(e *expo, ss []scrape) {
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
		for _, s := range ss {
			if s.st == nil {
				continue
			}
			for _, g := range s.st.Generations {
				e.sample(f.name, f.value(g), s.labels("gen", strconv.Itoa(g.Gen))...)
			}
		}
	}
}

// writeInstances writes what each instance of a generation running
// several uses, and how often it was restarted alone, labelled gen="N",
// instance="I"; nothing when no generation runs several.
func writeInstances(e *expo, ss []scrape) {
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
		for _, s := range ss {
			if s.st == nil {
				continue
			}
			for _, g := range s.st.Generations {
				for _, in := range oneByIndex(g.Instances) {
					e.sample(f.name, f.value(in), s.labels("gen", strconv.Itoa(g.Gen), "instance", strconv.Itoa(in.Index))...)
				}
			}
		}
	}
}

// oneByIndex is ins (sorted by index) with one instance per index: while
// an instance stopped by a scale down still drains, the one started in its
// place since is listed beside it, and a series is named by its index.
// The one not draining is kept.
func oneByIndex(ins []supervisor.InstanceStatus) []supervisor.InstanceStatus {
	out := make([]supervisor.InstanceStatus, 0, len(ins))
	for _, in := range ins {
		if n := len(out); n > 0 && out[n-1].Index == in.Index {
			if in.State != supervisor.StateDraining {
				out[n-1] = in
			}
			continue
		}
		out = append(out, in)
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// expo writes the text exposition format.
type expo struct {
	b    bytes.Buffer
	head string // the HELP and TYPE lines of the family begun, until its first sample
}

// family begins a metric family: its HELP and TYPE lines go out before
// its first sample, and not at all for a family without samples.
func (e *expo) family(name, typ, help string) {
	e.head = "# HELP " + name + " " + helpEscaper.Replace(help) + "\n" +
		"# TYPE " + name + " " + typ + "\n"
}

// sample writes one sample; labels are name, value pairs.
func (e *expo) sample(name string, v float64, labels ...string) {
	e.b.WriteString(e.head)
	e.head = ""
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
