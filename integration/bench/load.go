package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hupd/hupd/integration/bench/loadgen"
)

// mix is the load of every scenario: s.KeepAlive keep-alive clients and
// s.NewConn new-connection clients at once, against one address. Its
// results come in that order.
type mix struct{ loads []*loadgen.Load }

const (
	kaIdx = 0 // keep-alive results
	ncIdx = 1 // new-connection results
)

func startMix(addr string, s settings) *mix {
	return &mix{loads: []*loadgen.Load{
		loadgen.Start(loadgen.Options{Addr: addr, Kind: loadgen.KeepAlive, Clients: s.KeepAlive}),
		loadgen.Start(loadgen.Options{Addr: addr, Kind: loadgen.NewConn, Clients: s.NewConn}),
	}}
}

// since is the time since the mix started (its first load; the second
// started microseconds later).
func (m *mix) since() time.Duration { return m.loads[0].Since() }

func (m *mix) stop() []*loadgen.Result {
	out := make([]*loadgen.Result, len(m.loads))
	for i, l := range m.loads {
		out[i] = l.Stop()
	}
	return out
}

// sleepCtx waits d, the measured interval the caller names, unless ctx
// ends first (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// during runs m for total, calling step at interval, 2·interval, … after
// its start, the last one no later than total−interval, so that each step
// has at least one interval of load after it. A step that overruns its
// slot makes the next one wait for the next free slot (no back-to-back
// catch-up). step returns what happened and whether to go on. The load is
// stopped and its results returned with the steps.
func during(ctx context.Context, m *mix, total, interval time.Duration, step func() (Reload, bool)) ([]*loadgen.Result, []Reload) {
	var steps []Reload
	for at := interval; at <= total-interval; {
		// The time between two reloads: the measured interval itself.
		if !sleepCtx(ctx, at-m.since()) {
			break
		}
		r, goOn := step()
		steps = append(steps, r)
		if !goOn {
			break
		}
		at = (m.since()/interval + 1) * interval
	}
	sleepCtx(ctx, total-m.since()) // the load's tail after the last step
	return m.stop(), steps
}

// hupdStep is a step that reloads h and reports it.
func hupdStep(ctx context.Context, h *hupdProc, m *mix) func() (Reload, bool) {
	return func() (Reload, bool) {
		at := m.since()
		t0 := time.Now()
		res, err := h.reload(ctx)
		r := Reload{AtMS: msf(at), TookMS: msf(time.Since(t0)), OK: err == nil}
		if err != nil {
			r.Error = err.Error()
		}
		if res != nil {
			r.ExecMS, r.HandoverMS, r.ReadyMS = msf(time.Duration(res.ExecAfter)), msf(time.Duration(res.HandoverTook)), msf(time.Duration(res.ReadyAfter))
			r.OldGen, r.hupdStart = res.OldGen, res.Started
		}
		return r, ctx.Err() == nil
	}
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// failures is a load's failed requests as text: "0", or "12 (refused 10,
// reset 2)".
func failures(r *loadgen.Result) string {
	if r.Failed == 0 {
		return "0"
	}
	var parts []string
	for _, c := range loadgen.Classes() {
		if n := r.ByClass[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", c, fint(n)))
		}
	}
	return fmt.Sprintf("%s (%s)", fint(r.Failed), strings.Join(parts, ", "))
}

// answered is the requests answered, with their rate.
func answered(r *loadgen.Result) string {
	return fmt.Sprintf("%s (%s/s)", fint(r.Requests), fint(int64(r.PerSecond)))
}

func kindLabel(r *loadgen.Result) string { return fmt.Sprintf("%s ×%d", r.Kind, r.Clients) }

// loadRows adds the rows every load phase has: answered, failed (goal 0
// when zeroGoal, checked in every mode), latency and the stall, per client
// kind; vs, when not nil, is the same load in scenario 2 to compare with.
func loadRows(rep *Report, scenario string, res []*loadgen.Result, zeroGoal bool, vs *baseline) {
	for i, r := range res {
		k := kindLabel(r)
		rep.info(scenario, "answered, "+k, "%s", answered(r))
		if zeroGoal {
			rep.goal(scenario, "failed, "+k, failures(r), "0", r.Failed == 0, true)
		} else {
			rep.info(scenario, "failed, "+k, "%s", failures(r))
		}
		lat := fmt.Sprintf("%s / %s / %s", fms(r.Latency.P50), fms(r.Latency.P99), fms(r.Latency.Max))
		stall := fms(r.StallMS)
		if vs != nil {
			lat += fmt.Sprintf(" (2: p99 %s)", fms(vs.p99[i]))
			stall += fmt.Sprintf(" (2: %s)", fms(vs.stall[i]))
		}
		rep.info(scenario, "latency p50 / p99 / max, "+k, "%s", lat)
		rep.info(scenario, "longest stall, "+k, "%s", stall)
	}
}

// reloadRows adds how the reloads went: how many, how long.
func reloadRows(rep *Report, scenario, what string, rs []Reload) {
	ok := 0
	var took, exec, handover []float64
	for _, r := range rs {
		if r.OK {
			ok++
			took = append(took, r.TookMS)
			exec = append(exec, r.ExecMS)
			handover = append(handover, r.HandoverMS)
		}
	}
	rep.goal(scenario, what+" done", fmt.Sprintf("%d of %d", ok, len(rs)), "all, ≥ 1", ok == len(rs) && ok > 0, true)
	if len(took) > 0 {
		rep.info(scenario, what+" took p50 / max", "%s / %s", fms(pctf(took, 50)), fms(slices.Max(took)))
	}
	if len(exec) > 0 && exec[0] > 0 {
		rep.info(scenario, "trigger to exec p50, READY=1 to stop p50", "%s, %s", fms(pctf(exec, 50)), fms(pctf(handover, 50)))
	}
}

// pctf is the p-th percentile (nearest rank) of v (which it sorts).
func pctf(v []float64, p int) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	i := (len(v)*p + 99) / 100
	return v[max(i, 1)-1]
}
