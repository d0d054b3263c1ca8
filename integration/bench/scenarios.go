package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/hupd/hupd/integration/bench/loadgen"
	"github.com/hupd/hupd/internal/logev"
)

// Scenario labels in the table.
const (
	sc1 = "1 bare hello"
	sc2 = "2 hupd, no reloads"
	sc3 = "3 swap every 500ms"
	sc4 = "4 restart"
	sc5 = "5 legacy redirect"
	sc6 = "6 scale"
	sc7 = "7 hupd's costs"
	sc8 = "8 steering, stock drain"
	sc9 = "9 instances"
)

// baseline is scenario 2's load, for scenario 3 to compare with: medians
// over the rounds, per client kind.
type baseline struct {
	p99, stall [2]float64
}

// helloArgs is hello under hupd on one socket of its own. A 5 s grace
// bounds a drain that something went wrong with.
func helloArgs(env *benchEnv, extra ...string) []string {
	args := append([]string{"--listen", "http=tcp://127.0.0.1:0"}, extra...)
	return append(args, "--", env.hello, "-grace", "5s")
}

// throughput runs scenarios 1 and 2 in alternating rounds (bare first in
// odd rounds, hupd first in even ones), so that a noisy neighbour hurts
// both alike, and compares their medians. With hupd false it runs 1 only.
func throughput(ctx context.Context, env *benchEnv, rep *Report, withHupd bool) *baseline {
	s := env.s
	bare, err := startBare(ctx, env, "127.0.0.1:0")
	if err != nil {
		rep.fail(sc1, err)
		return nil
	}
	defer bare.stop()
	type target struct {
		name, label, addr string
		res               [][]*loadgen.Result
	}
	targets := []*target{{name: "bare", label: "hello (bare)", addr: bare.addr}}
	var h *hupdProc
	if withHupd {
		if h, err = startHupd(ctx, env, helloArgs(env)...); err != nil {
			rep.fail(sc2, err)
			return nil
		}
		defer h.stop()
		targets = append(targets, &target{name: "hupd", label: "hupd + hello", addr: h.addrs[0]})
	}
	for round := range s.Rounds {
		order := targets
		if round%2 == 1 && len(targets) == 2 {
			order = []*target{targets[len(targets)-1], targets[0]}
		}
		for _, t := range order {
			if ctx.Err() != nil {
				return nil
			}
			m := startMix(t.addr, s)
			sleepCtx(ctx, s.RoundFor.d()) // the measured load
			res := m.stop()
			t.res = append(t.res, res)
			rep.Phases = append(rep.Phases, &Phase{Name: fmt.Sprintf("%s-round-%d", t.name, round+1), Target: t.label, Loads: res})
		}
	}
	// The medians over the rounds, per kind and of the total rate.
	type sum struct {
		rate, p50, p99, max, stall [2]float64
		failed                     [2]int64
		total                      float64
		failedText                 [2]string
	}
	summarise := func(t *target) sum {
		var out sum
		var totals []float64
		for k := range 2 {
			var rate, p50, p99, mx, stall []float64
			for _, res := range t.res {
				r := res[k]
				rate, p50, p99 = append(rate, r.PerSecond), append(p50, r.Latency.P50), append(p99, r.Latency.P99)
				mx, stall = append(mx, r.Latency.Max), append(stall, r.StallMS)
				out.failed[k] += r.Failed
				if r.Failed > 0 {
					out.failedText[k] = failures(r)
				}
			}
			out.rate[k], out.p50[k], out.p99[k] = pctf(rate, 50), pctf(p50, 50), pctf(p99, 50)
			out.max[k], out.stall[k] = pctf(mx, 50), pctf(stall, 50)
		}
		for _, res := range t.res {
			totals = append(totals, res[kaIdx].PerSecond+res[ncIdx].PerSecond)
		}
		out.total = pctf(totals, 50)
		return out
	}
	rows := func(scenario string, t *target, x sum) {
		rep.info(scenario, "answered/s, median of rounds", "%s (keep-alive %s, new-conn %s; %d × %s)", fint(int64(x.total)),
			fint(int64(x.rate[kaIdx])), fint(int64(x.rate[ncIdx])), len(t.res), s.RoundFor.d())
		for k, kind := range []string{fmt.Sprintf("keep-alive ×%d", s.KeepAlive), fmt.Sprintf("new-conn ×%d", s.NewConn)} {
			rep.info(scenario, "latency p50 / p99 / max, "+kind, "%s / %s / %s", fms(x.p50[k]), fms(x.p99[k]), fms(x.max[k]))
			rep.info(scenario, "longest stall, "+kind, "%s", fms(x.stall[k]))
			txt := x.failedText[k]
			if txt == "" {
				txt = fint(x.failed[k])
			}
			rep.goal(scenario, "failed, "+kind, txt, "0", x.failed[k] == 0, true)
		}
	}
	b := summarise(targets[0])
	rows(sc1, targets[0], b)
	if !withHupd {
		return nil
	}
	hx := summarise(targets[1])
	rows(sc2, targets[1], hx)
	// The ratio of each round's two loads, run back to back, then the
	// median of those: a machine whose speed drifts over the minute (a
	// neighbour's build) moves both sides of a round alike.
	var ratios, kaRatios, ncRatios []float64
	for i := range targets[0].res {
		br, hr := targets[0].res[i], targets[1].res[i]
		ratios = append(ratios, (hr[kaIdx].PerSecond+hr[ncIdx].PerSecond)/(br[kaIdx].PerSecond+br[ncIdx].PerSecond))
		kaRatios = append(kaRatios, hr[kaIdx].PerSecond/br[kaIdx].PerSecond)
		ncRatios = append(ncRatios, hr[ncIdx].PerSecond/br[ncIdx].PerSecond)
	}
	ratio := pctf(ratios, 50)
	rep.goal(sc2, "throughput ratio to 1, median of rounds", fmt.Sprintf("%.3f (rounds %.2f–%.2f; keep-alive %.3f, new-conn %.3f)", ratio,
		slices.Min(ratios), slices.Max(ratios), pctf(kaRatios, 50), pctf(ncRatios, 50)), "≥ 0.98", ratio >= 0.98, !s.Short)
	return &baseline{p99: hx.p99, stall: hx.stall}
}

// swapScenario is 3: a swap every 500 ms under load.
func swapScenario(ctx context.Context, env *benchEnv, rep *Report, base *baseline) {
	s := env.s
	h, err := startHupd(ctx, env, helloArgs(env)...)
	if err != nil {
		rep.fail(sc3, err)
		return
	}
	defer h.stop()
	cpu0, _ := cpuTime(h.pid())
	m := startMix(h.addrs[0], s)
	res, reloads := during(ctx, m, s.Duration.d(), s.SwapEvery.d(), hupdStep(ctx, h, m))
	cpu1, _ := cpuTime(h.pid())
	rss, _ := rssKiB(h.pid())
	rep.Phases = append(rep.Phases, &Phase{Name: "swap", Target: "hupd + hello, swap every " + s.SwapEvery.d().String(), Loads: res, Reloads: reloads})
	rep.info(sc3, "load", "%s with a swap every %s", s.Duration.d(), s.SwapEvery.d())
	reloadRows(rep, sc3, "swaps", reloads)
	loadRows(rep, sc3, res, true, base)
	n := max(len(reloads), 1)
	rep.info(sc3, "hupd CPU, RSS after", "%s in all, %s per swap; %s", fdur(cpu1-cpu0), fdur((cpu1-cpu0)/time.Duration(n)), fmib(rss))
}

// restartScenario is 4: hupd's restart strategy, then a naive stop and
// start without hupd, under the same load and schedule.
func restartScenario(ctx context.Context, env *benchEnv, rep *Report, _ *baseline) {
	s := env.s
	func() {
		h, err := startHupd(ctx, env, helloArgs(env, "--reload", "restart")...)
		if err != nil {
			rep.fail(sc4, err)
			return
		}
		defer h.stop()
		m := startMix(h.addrs[0], s)
		res, reloads := during(ctx, m, s.RestartFor.d(), s.RestartEvery.d(), hupdStep(ctx, h, m))
		rep.Phases = append(rep.Phases, &Phase{Name: "restart-hupd", Target: "hupd --reload restart + hello", Loads: res, Reloads: reloads})
		rep.info(sc4, "a. hupd --reload restart", "%s, a restart every %s", s.RestartFor.d(), s.RestartEvery.d())
		reloadRows(rep, sc4, "restarts", reloads)
		loadRows(rep, sc4, res, true, nil)
	}()
	if ctx.Err() != nil {
		return
	}
	b, err := startBare(ctx, env, "127.0.0.1:0")
	if err != nil {
		rep.fail(sc4, err)
		return
	}
	addr := b.addr
	defer func() {
		if b != nil {
			b.stop()
		}
	}()
	m := startMix(addr, s)
	// The naive restart: SIGTERM, wait for hello to exit (it drains and
	// its socket closes with it), bind the port again, start hello and
	// wait for its first answer.
	res, restarts := during(ctx, m, s.RestartFor.d(), s.RestartEvery.d(), func() (Reload, bool) {
		at := m.since()
		t0 := time.Now()
		err := b.stop()
		b = nil
		if err == nil {
			b, err = startBare(ctx, env, addr)
		}
		r := Reload{AtMS: msf(at), TookMS: msf(time.Since(t0)), OK: err == nil}
		if err != nil {
			r.Error = err.Error()
		}
		return r, err == nil
	})
	rep.Phases = append(rep.Phases, &Phase{Name: "restart-naive", Target: "hello, stopped and started again without hupd", Loads: res, Reloads: restarts})
	rep.info(sc4, "b. naive stop and start", "%s, a restart every %s: no socket in between", s.RestartFor.d(), s.RestartEvery.d())
	reloadRows(rep, sc4, "restarts", restarts)
	loadRows(rep, sc4, res, false, nil)
}

// legacyScenario is 5: goserver binds its own port; hupd redirects the
// bind to its socket and swaps it every 500 ms.
func legacyScenario(ctx context.Context, env *benchEnv, rep *Report, _ *baseline) {
	s := env.s
	h, err := startHupd(ctx, env, "--legacy", "redirect", "--listen", "http=tcp://:0", "--", env.goserver, "-addr", ":{port:http}", "-grace", "5s")
	if err != nil {
		rep.fail(sc5, err)
		return
	}
	defer h.stop()
	_, port, err := net.SplitHostPort(h.addrs[0])
	if err != nil {
		rep.fail(sc5, err)
		return
	}
	m := startMix(net.JoinHostPort("127.0.0.1", port), s)
	total := s.Duration.d() / 2
	res, reloads := during(ctx, m, total, s.SwapEvery.d(), hupdStep(ctx, h, m))
	rep.Phases = append(rep.Phases, &Phase{Name: "legacy", Target: "hupd --legacy redirect + goserver", Loads: res, Reloads: reloads})
	redirected := h.count(logev.BindRedirected, nil)
	rep.info(sc5, "load", "%s with a swap every %s; %d binds redirected", total, s.SwapEvery.d(), redirected)
	reloadRows(rep, sc5, "swaps", reloads)
	// hupd's part is the socket: no connection refused or reset by a
	// swap; goserver drains its keep-alive clients (Connection: close,
	// idle ones closed after a second), so no request fails either.
	loadRows(rep, sc5, res[ncIdx:], true, nil)
	loadRows(rep, sc5, res[:ncIdx], true, nil)
	refused := res[kaIdx].ByClass["refused"] + res[ncIdx].ByClass["refused"]
	rep.goal(sc5, "refused, both kinds", fint(refused), "0", refused == 0, true)
	if redirected < 1+len(reloads) {
		rep.fail(sc5, errors.New("fewer binds redirected than generations started"))
	}
}
