package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hupd/hupd/integration/bench/loadgen"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// steerSide is one side of scenario 8: hello -drain stock under hupd,
// without or with --steer, and what was measured.
type steerSide struct {
	name, label string // phase name; the side as the table names it
	steer       bool

	res     []*loadgen.Result // kaIdx, ncIdx
	reloads []Reload
	cpu     time.Duration // hupd's, from the load's start to the last old generation's exit
	mem     procMem       // hupd's, then
	steered int           // "steered new connections" records
}

// stockMark is what hello -drain stock writes once its Shutdown returned.
const stockMark = "(stock drain)"

// steerScenario is 8: a program whose drain is net/http's bare
// http.Server.Shutdown, reloaded every s.SteerEvery under load, without
// --steer and then with it, side by side.
func steerScenario(ctx context.Context, env *benchEnv, rep *Report, _ *baseline) {
	sides := []*steerSide{
		{name: "steer-off", label: "without --steer"},
		{name: "steer-on", label: "--steer", steer: true},
	}
	for _, sd := range sides {
		if ctx.Err() != nil {
			return
		}
		if err := sd.run(ctx, env); err != nil {
			rep.fail(sc8, fmt.Errorf("%s: %w", sd.label, err))
			return
		}
		rep.Phases = append(rep.Phases, &Phase{Name: sd.name, Target: "hupd " + sd.label + " + hello -drain stock", Loads: sd.res, Reloads: sd.reloads})
	}
	steerRows(rep, env.s, sides[0], sides[1])
}

// run starts hupd with hello -drain stock, reloads it every s.SteerEvery
// under the load for s.SteerFor, then waits for every old generation's
// stop signal, its stock drain's end and its exit, and takes hupd's CPU
// and memory.
func (sd *steerSide) run(ctx context.Context, env *benchEnv) error {
	s := env.s
	args := []string{"--listen", "http=tcp://127.0.0.1:0"}
	if sd.steer {
		// Loopback: a handshake takes microseconds, so the grace for
		// handshakes begun before the steering moved on is set to 50 ms
		// (the default, 1 s, is for distant clients; at a swap every
		// 500 ms it would keep three old generations alive at once).
		args = append(args, "--steer", "--steer-grace", "50ms")
	}
	// A 5 s grace bounds a Shutdown that something went wrong with.
	args = append(args, "--", env.hello, "-drain", "stock", "-grace", "5s")
	h, err := startHupd(ctx, env, args...)
	if err != nil {
		return err
	}
	defer h.stop()
	cpu0, err := cpuTime(h.pid())
	if err != nil {
		return err
	}
	m := startMix(h.addrs[0], s)
	sd.res, sd.reloads = during(ctx, m, s.SteerFor.d(), s.SteerEvery.d(), hupdStep(ctx, h, m))
	for i := range sd.reloads {
		r := &sd.reloads[i]
		if !r.OK {
			continue
		}
		if r.OldGen == 0 {
			return fmt.Errorf("swap %d replaced no generation", i+1)
		}
		gen := func(e event) bool { return e.num(supervisor.KeyGen) == r.OldGen }
		stop, err := h.wait(ctx, logev.Draining, 1, gen)
		if err != nil {
			return err
		}
		// The old generation stopped the stock way: Shutdown returned
		// (or its grace passed) and hello said so before exiting.
		if _, err := h.wait(ctx, logev.ChildOutput, 1, func(e event) bool {
			return gen(e) && strings.Contains(e.str(supervisor.KeyOutput), stockMark)
		}); err != nil {
			return err
		}
		exit, err := h.wait(ctx, logev.ChildExited, 1, gen)
		if err != nil {
			return err
		}
		r.OldStopMS, r.OldExitMS = msf(stop.time().Sub(r.hupdStart)), msf(exit.time().Sub(r.hupdStart))
	}
	cpu1, err := cpuTime(h.pid())
	if err != nil {
		return err
	}
	sd.cpu = cpu1 - cpu0
	if sd.mem, err = memOf(h.pid()); err != nil {
		return err
	}
	// Each swap with --steer moved new connections to the new generation
	// (the first one took the group's target: nothing to move), and
	// nothing is steered without it: the two sides differ by steering.
	sd.steered = h.count(logev.Steered, nil)
	switch ok := sd.swapsOK(); {
	case sd.steer && sd.steered < ok:
		return fmt.Errorf("%d swaps done, new connections steered %d times", ok, sd.steered)
	case !sd.steer && sd.steered > 0:
		return fmt.Errorf("new connections steered %d times without --steer", sd.steered)
	}
	return nil
}

// swapsOK is how many of the side's swaps succeeded.
func (sd *steerSide) swapsOK() int {
	n := 0
	for _, r := range sd.reloads {
		if r.OK {
			n++
		}
	}
	return n
}

// steerRows adds scenario 8's side-by-side rows: "without | with".
func steerRows(rep *Report, s settings, off, on *steerSide) {
	rep.info(sc8, "load", "%s per side, a reload every %s; hello -drain stock (net/http's http.Server.Shutdown): without | with --steer",
		s.SteerFor.d(), s.SteerEvery.d())
	okOff, okOn := off.swapsOK(), on.swapsOK()
	rep.goal(sc8, "swaps done", fmt.Sprintf("%d of %d | %d of %d", okOff, len(off.reloads), okOn, len(on.reloads)), "all, ≥ 1",
		okOff == len(off.reloads) && okOn == len(on.reloads) && okOff > 0 && okOn > 0, true)
	perSwap := func(r *loadgen.Result, swaps int) string {
		return fmt.Sprintf("%.2f", float64(r.Failed)/float64(max(swaps, 1)))
	}
	for _, k := range []int{ncIdx, kaIdx} {
		a, b := off.res[k], on.res[k]
		kind := kindLabel(a)
		rep.info(sc8, "answered, "+kind, "%s | %s", answered(a), answered(b))
		failed := fmt.Sprintf("%s | %s", failures(a), failures(b))
		if k == ncIdx {
			// What steering guarantees: a new connection reaches a
			// generation that has not been told to stop.
			rep.goal(sc8, "failed, "+kind, failed, "0 with --steer", b.Failed == 0, true)
		} else {
			// Connections the old program holds when told to stop are its
			// drain's: Shutdown closes idle keep-alive connections at once.
			rep.info(sc8, "failed, "+kind+" (the program's own drain)", "%s", failed)
		}
		rep.info(sc8, "failed per swap, "+kind, "%s | %s", perSwap(a, okOff), perSwap(b, okOn))
		rep.info(sc8, "latency p99, longest stall, "+kind, "%s, %s | %s, %s", fms(a.Latency.P99), fms(a.StallMS), fms(b.Latency.P99), fms(b.StallMS))
	}

	// The cost of steering.
	both := func(f func(Reload) float64) string {
		side := func(rs []Reload) string {
			var v []float64
			for _, r := range rs {
				if r.OK {
					v = append(v, f(r))
				}
			}
			if len(v) == 0 {
				return "none"
			}
			return fmt.Sprintf("%s / %s", fms(pctf(v, 50)), fms(slices.Max(v)))
		}
		return side(off.reloads) + " | " + side(on.reloads)
	}
	rep.info(sc8, "swap to ready (as `hupd reload` sees it), p50 / max", "%s", both(func(r Reload) float64 { return r.TookMS }))
	rep.info(sc8, "reload to the old generation's stop signal, p50 / max", "%s", both(func(r Reload) float64 { return r.OldStopMS }))
	rep.info(sc8, "reload to the old generation's exit, p50 / max", "%s", both(func(r Reload) float64 { return r.OldExitMS }))
	cpu := func(sd *steerSide) string {
		return fmt.Sprintf("%s (%s per swap)", fdur(sd.cpu), fdur(sd.cpu/time.Duration(max(sd.swapsOK(), 1))))
	}
	rep.info(sc8, "hupd CPU over the side (load, swaps, drains)", "%s | %s", cpu(off), cpu(on))
	rep.info(sc8, "hupd after: RSS, its own (anonymous), peak RSS", "%s | %s", off.mem, on.mem)
	rep.info(sc8, "added per connection or syscall", "none (stated, not measured): the kernel runs steering's one-instruction BPF program as it picks a new connection's socket; hupd is not in the path")
}
