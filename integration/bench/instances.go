package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/integration/bench/loadgen"
	"github.com/hupd/hupd/supervisor"
)

// instancesScenario is 9: cpuserver (one thread, a fixed amount of CPU per
// request) under hupd with --instances 1 and --instances 2, in
// alternating rounds (1 first in odd rounds, 2 first in even ones) so
// that a noisy neighbour hurts both alike: the throughput of each, the
// ratio of each round's pair (median; goal ≥ 1.7 on 2 cores), hupd's RSS
// and CPU at each N and what each instance uses as hupd's status reports
// it; then --instances 2 swapped every s.InstEvery for s.InstFor under the
// load: 0 failed requests.
func instancesScenario(ctx context.Context, env *benchEnv, rep *Report, _ *baseline) {
	s := env.s
	ns := []int{1, 2}
	hs := make([]*hupdProc, len(ns))
	for i, n := range ns {
		h, err := startHupd(ctx, env, "--instances", strconv.Itoa(n), "--ready", "notify", "--listen", "http=tcp://127.0.0.1:0",
			"--", env.cpuserver, "-work", strconv.Itoa(cpuWork), "-grace", "5s")
		if err != nil {
			rep.fail(sc9, fmt.Errorf("--instances %d: %w", n, err))
			return
		}
		defer h.stop()
		if _, err := h.waitInstances(ctx, 1, n); err != nil {
			rep.fail(sc9, fmt.Errorf("--instances %d: %w", n, err))
			return
		}
		hs[i] = h
	}

	rates := make([][]float64, len(ns))
	answers := make([]int64, len(ns))
	failed := make([][]*loadgen.Result, len(ns))
	cpu := make([]time.Duration, len(ns))
	for round := range s.Rounds {
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			if ctx.Err() != nil {
				return
			}
			c0, _ := cpuTime(hs[i].pid())
			m := startMix(hs[i].addrs[0], s)
			sleepCtx(ctx, s.RoundFor.d()) // the measured load
			res := m.stop()
			c1, _ := cpuTime(hs[i].pid())
			cpu[i] += c1 - c0
			rates[i] = append(rates[i], res[kaIdx].PerSecond+res[ncIdx].PerSecond)
			answers[i] += res[kaIdx].Requests + res[ncIdx].Requests
			failed[i] = append(failed[i], res...)
			rep.Phases = append(rep.Phases, &Phase{Name: fmt.Sprintf("instances-n%d-round-%d", ns[i], round+1),
				Target: fmt.Sprintf("hupd --instances %d + cpuserver", ns[i]), Loads: res})
		}
	}
	rep.info(sc9, "server", "cpuserver: GOMAXPROCS 1, %d rounds of FNV-1a over 1 KiB per request; keep-alive ×%d and new-conn ×%d clients",
		cpuWork, s.KeepAlive, s.NewConn)
	for i, n := range ns {
		var nf int64
		var txt []string
		for _, r := range failed[i] {
			nf += r.Failed
			if r.Failed > 0 {
				txt = append(txt, fmt.Sprintf("%s: %s", r.Kind, failures(r)))
			}
		}
		rs := slices.Clone(rates[i])
		rep.info(sc9, fmt.Sprintf("N=%d: answered/s, median of rounds", n), "%s (%d × %s)", fint(int64(pctf(rs, 50))), len(rates[i]), s.RoundFor.d())
		v := "0"
		if nf > 0 {
			v = strings.Join(txt, "; ")
		}
		rep.goal(sc9, fmt.Sprintf("N=%d: failed, both kinds", n), v, "0", nf == 0, true)
	}
	var ratios []float64
	for r := range rates[0] {
		ratios = append(ratios, rates[1][r]/rates[0][r])
	}
	ratio := pctf(slices.Clone(ratios), 50)
	rep.goal(sc9, "throughput ratio N=2 to N=1, median of rounds", fmt.Sprintf("%.2f (rounds %.2f–%.2f)", ratio, slices.Min(ratios), slices.Max(ratios)),
		"≥ 1.7", ratio >= 1.7, !s.Short)

	// hupd's own costs at each N, and what it reports per instance.
	for i, n := range ns {
		mem, err := memOf(hs[i].pid())
		if err != nil {
			rep.fail(sc9, err)
			return
		}
		rep.info(sc9, fmt.Sprintf("N=%d: hupd RSS, its own (anonymous), peak RSS", n), "%s", mem)
		if cpu[i] == 0 {
			// /proc's CPU times tick every 10 ms: hupd is not in the data
			// path, and used less than one tick over all the rounds.
			rep.info(sc9, fmt.Sprintf("N=%d: hupd CPU under the load", n), "under 10 ms (one tick) over %s of load, %s answers",
				time.Duration(len(rates[i]))*s.RoundFor.d(), fint(answers[i]))
			continue
		}
		rep.info(sc9, fmt.Sprintf("N=%d: hupd CPU under the load", n), "%s per 1,000 answers (%s in all)",
			fdur(cpu[i]*1000/time.Duration(max(answers[i], 1))), fdur(cpu[i]))
	}
	st, err := hs[1].status(ctx)
	if err != nil {
		rep.fail(sc9, err)
		return
	}
	for _, g := range st.Generations {
		for _, in := range g.Instances {
			rep.info(sc9, fmt.Sprintf("N=2: instance %d as hupd status reports it", in.Index), "pid %d, %s, RSS %s, CPU %.2f s, %d processes",
				in.PID, in.State, fmib(int(in.MemoryBytes/1024)), in.CPUSeconds, in.Processes)
		}
	}

	// N=2 swapped under the load.
	if ctx.Err() != nil {
		return
	}
	h := hs[1]
	c0, _ := cpuTime(h.pid())
	m := startMix(h.addrs[0], s)
	res, reloads := during(ctx, m, s.InstFor.d(), s.InstEvery.d(), hupdStep(ctx, h, m))
	c1, _ := cpuTime(h.pid())
	rep.Phases = append(rep.Phases, &Phase{Name: "instances-swap", Target: "hupd --instances 2 + cpuserver, swap every " + s.InstEvery.d().String(),
		Loads: res, Reloads: reloads})
	rep.info(sc9, "N=2 swapped", "%s with a swap every %s", s.InstFor.d(), s.InstEvery.d())
	reloadRows(rep, sc9, "swaps", reloads)
	loadRows(rep, sc9, res, true, nil)
	swaps := max(len(reloads), 1)
	rep.info(sc9, "N=2 swapped: hupd CPU", "%s in all, %s per swap, %s per swap and instance", fdur(c1-c0),
		fdur((c1-c0)/time.Duration(swaps)), fdur((c1-c0)/time.Duration(2*swaps)))
	if mem, err := memOf(h.pid()); err == nil {
		rep.info(sc9, "N=2 swapped: hupd RSS, its own (anonymous), peak RSS after", "%s", mem)
	}
}

// cpuWork is cpuserver's -work: about 1.5 ms of one core per request on
// the machine the bench was written on, so that the load generator's own
// CPU per request is small beside it.
const cpuWork = 1000

// status is h's status, as `hupd status --json` has it.
func (h *hupdProc) status(ctx context.Context) (*supervisor.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	rep, err := control.Call(ctx, h.control, control.Request{Cmd: control.CmdStatus})
	if err != nil {
		return nil, err
	}
	if rep.Status == nil {
		return nil, fmt.Errorf("status: %s", rep.Error)
	}
	return rep.Status, nil
}

// waitInstances returns h's status once generation gen is the only one
// and runs n ready instances. An instance's change is logged: the status
// is asked again after each line hupd logs, never on a timer.
func (h *hupdProc) waitInstances(ctx context.Context, gen, n int) (*supervisor.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	for {
		h.mu.Lock()
		seen := len(h.events)
		h.mu.Unlock()
		st, err := h.status(ctx)
		if err != nil {
			return nil, err
		}
		if instancesReady(st, gen, n) {
			return st, nil
		}
		if err := h.waitLine(ctx, seen); err != nil {
			return nil, fmt.Errorf("waiting for generation %d with %d ready instances: %w", gen, n, err)
		}
	}
}

// instancesReady reports whether st has generation gen alone with n
// ready instances (one process and no instance list when n is 1).
func instancesReady(st *supervisor.Status, gen, n int) bool {
	if len(st.Generations) != 1 || st.Generations[0].Gen != gen || st.Generations[0].State != supervisor.StateReady {
		return false
	}
	g := st.Generations[0]
	if n == 1 && len(g.Instances) == 0 {
		return true
	}
	if len(g.Instances) != n {
		return false
	}
	for _, in := range g.Instances {
		if in.State != supervisor.StateReady || in.PID <= 0 {
			return false
		}
	}
	return true
}

// waitLine blocks until hupd has logged more than seen lines; it fails if
// hupd exits first or ctx ends.
func (h *hupdProc) waitLine(ctx context.Context, seen int) error {
	stop := context.AfterFunc(ctx, func() { h.mu.Lock(); h.cond.Broadcast(); h.mu.Unlock() })
	defer stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.events) <= seen {
		switch {
		case h.exited:
			return errors.New("hupd exited")
		case ctx.Err() != nil:
			return ctx.Err()
		}
		h.cond.Wait()
	}
	return nil
}
