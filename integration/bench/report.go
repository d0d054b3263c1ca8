package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hupd/hupd/integration/bench/loadgen"
)

// Report is the JSON result of one run (-out), from which -plots and
// -replot draw the pictures.
type Report struct {
	Command  string    `json:"command"`
	Mode     string    `json:"mode"` // "full" or "short"
	Started  time.Time `json:"started"`
	TookS    float64   `json:"took_s"`
	Machine  Machine   `json:"machine"`
	Settings settings  `json:"settings"`
	Rows     []Row     `json:"rows"`
	Phases   []*Phase  `json:"phases"`
	// OK: every goal checked in this mode was met.
	OK bool `json:"ok"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPU       string `json:"cpu"`
	MemoryMiB int    `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
}

// Row is one line of the table.
type Row struct {
	Scenario string `json:"scenario"`
	Measure  string `json:"measure"`
	Value    string `json:"value"`
	// Goal is the goal as text ("" when the figure is only reported), and
	// Met whether it was met; Checked says whether this mode checks it
	// (-short checks correctness only).
	Goal    string `json:"goal,omitempty"`
	Checked bool   `json:"checked,omitempty"`
	Met     bool   `json:"met,omitempty"`
}

// Phase is one load (or pair of loads run together) and what happened
// meanwhile: the time series behind the plots.
type Phase struct {
	Name    string            `json:"name"`
	Target  string            `json:"target"` // what served: "hello (bare)", "hupd + hello", …
	Loads   []*loadgen.Result `json:"loads"`
	Reloads []Reload          `json:"reloads,omitempty"`
}

// Reload is one reload or restart during a phase.
type Reload struct {
	AtMS       float64 `json:"at_ms"` // its start, since the phase's loads started
	TookMS     float64 `json:"took_ms"`
	OK         bool    `json:"ok"`
	Error      string  `json:"error,omitempty"`
	ExecMS     float64 `json:"exec_after_ms,omitempty"`
	HandoverMS float64 `json:"handover_took_ms,omitempty"`
	ReadyMS    float64 `json:"ready_after_ms,omitempty"`
	// The generation the reload replaced, and (scenario 8) the times from
	// the reload's start in hupd to that generation's stop signal and to
	// its exit, from hupd's log.
	OldGen    int       `json:"old_gen,omitempty"`
	OldStopMS float64   `json:"old_stop_after_ms,omitempty"`
	OldExitMS float64   `json:"old_exited_after_ms,omitempty"`
	hupdStart time.Time // the reload's start in hupd (ReloadResult.Started)
}

func (r *Report) add(row Row) { r.Rows = append(r.Rows, row) }

// info adds a reported figure without a goal.
func (r *Report) info(scenario, measure, format string, args ...any) {
	r.add(Row{Scenario: scenario, Measure: measure, Value: fmt.Sprintf(format, args...)})
}

// goal adds a figure with its goal; checked says whether this mode
// enforces it.
func (r *Report) goal(scenario, measure, value, goal string, met, checked bool) {
	r.add(Row{Scenario: scenario, Measure: measure, Value: value, Goal: goal, Met: met, Checked: checked})
}

// fail records a scenario that could not run to its end: always a missed
// goal.
func (r *Report) fail(scenario string, err error) {
	r.goal(scenario, "ran to its end", err.Error(), "yes", false, true)
}

// missed lists the goals this mode checks that were not met.
func (r *Report) missed() []Row {
	var out []Row
	for _, row := range r.Rows {
		if row.Checked && !row.Met {
			out = append(out, row)
		}
	}
	return out
}

// printTable writes the one table.
func (r *Report) printTable(w io.Writer) {
	fmt.Fprintf(w, "hupd benchmark, %s mode, %s; %d CPUs (%s), %d MiB, Linux %s, %s\n\n", r.Mode,
		r.Started.Format("2006-01-02 15:04"), r.Machine.CPUs, r.Machine.CPU, r.Machine.MemoryMiB, r.Machine.Kernel, r.Machine.Go)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmeasure\tvalue\tgoal\t")
	fmt.Fprintln(tw, "--------\t-------\t-----\t----\t")
	for _, c := range r.cells(" (not checked in this mode)", " ok", " MISSED") {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", c[0], c[1], c[2], c[3])
	}
	tw.Flush()
	if r.OK {
		fmt.Fprintf(w, "\nevery goal checked in %s mode met (%.0f s)\n", r.Mode, r.TookS)
	} else {
		fmt.Fprintf(w, "\n%d goal(s) missed (%.0f s)\n", len(r.missed()), r.TookS)
	}
}

// cells are the table's rows: scenario (only on its first row), measure,
// value, and the goal with the marker for a goal not checked in this
// mode, met, or missed.
func (r *Report) cells(unchecked, met, missed string) [][4]string {
	var out [][4]string
	last := ""
	for _, row := range r.Rows {
		sc := row.Scenario
		if sc == last {
			sc = ""
		}
		last = row.Scenario
		g := row.Goal
		switch {
		case g == "":
		case !row.Checked:
			g += unchecked
		case row.Met:
			g += met
		default:
			g += missed
		}
		out = append(out, [4]string{sc, row.Measure, row.Value, g})
	}
	return out
}

// printMarkdown writes the table as Markdown, for the README.
func (r *Report) printMarkdown(w io.Writer) {
	fmt.Fprintln(w, "| scenario | measure | value | goal |")
	fmt.Fprintln(w, "| --- | --- | --- | --- |")
	esc := strings.NewReplacer("|", "\\|")
	for _, c := range r.cells(" (not checked)", " ✓", " **missed**") {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", esc.Replace(c[0]), esc.Replace(c[1]), esc.Replace(c[2]), esc.Replace(c[3]))
	}
}

// write saves r as JSON at path, creating its directory if need be.
func (r *Report) write(path string) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			m.MemoryMiB = kib / 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Formatting helpers for the table.

func fms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func fdur(d time.Duration) string { return fms(float64(d) / float64(time.Millisecond)) }

func fint(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + fint(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func fmib(kib int) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }
