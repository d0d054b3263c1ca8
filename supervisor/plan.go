package supervisor

import (
	"context"
	"slices"

	"github.com/hupd/hupd/socketact"
)

// Plan says what applying a configuration would do, without doing it
// (hupd plan). The supervisor fills in the generation and the sockets;
// hupd's wiring (internal/run) adds what applies live and what waits for a
// restart of hupd.
type Plan struct {
	// NewGeneration is set when the configuration needs a new generation;
	// Differ names the settings that differ from the running one's
	// (command, args, env, user, sockets, …), and Strategy is how the
	// reload would go.
	NewGeneration bool     `json:"new_generation"`
	Strategy      Strategy `json:"strategy,omitempty"`
	Differ        []string `json:"differ,omitempty"`
	// Open are the sockets it would open; Keep those it keeps (Changed
	// names the options a kept socket takes: backlog, mode, …); Close
	// those it drops, each closed once no generation uses it (Draining:
	// a running generation still does).
	Open  []PlanSocket `json:"open,omitempty"`
	Keep  []PlanSocket `json:"keep,omitempty"`
	Close []PlanSocket `json:"close,omitempty"`
	// Live are the settings that change for the generations to come
	// without a new one (timeouts, the restart policy, log level,
	// watches).
	Live []string `json:"live,omitempty"`
	// Restart are the settings that take effect only when hupd restarts.
	Restart []PlanSetting `json:"restart,omitempty"`
}

// PlanSocket is one socket of a Plan.
type PlanSocket struct {
	Name     string   `json:"name"`
	Address  string   `json:"address"`
	Changed  []string `json:"changed,omitempty"`
	Draining bool     `json:"draining,omitempty"`
}

// PlanSetting is a setting whose new value waits for a restart of hupd.
type PlanSetting struct {
	Setting    string `json:"setting"`
	Now        string `json:"now"`
	Configured string `json:"configured"`
}

// Nothing reports whether applying the configuration would change nothing.
func (p Plan) Nothing() bool {
	return !p.NewGeneration && len(p.Open) == 0 && len(p.Close) == 0 && len(p.Live) == 0 && len(p.Restart) == 0 &&
		!slices.ContainsFunc(p.Keep, func(k PlanSocket) bool { return len(k.Changed) > 0 })
}

type planRequest struct {
	Update
	stop  bool // PlanStop: Update unused
	reply chan planReply
}

type planReply struct {
	plan Plan
	err  error
}

// Plan says what Apply(u) would do now, changing nothing: the same
// decision Apply takes on Run's goroutine (see decide), without carrying
// it out. The sockets it would open are not opened, so an address in use
// is not found before Apply.
func (s *Supervisor) Plan(ctx context.Context, u Update) (Plan, error) {
	if err := u.Options.Validate(); err != nil {
		return Plan{}, err
	}
	// As Apply: host names are looked up here.
	u.Listen = slices.Clone(u.Listen)
	held := *s.held.Load()
	socketact.ResolveHosts(u.Listen, func(a socketact.Address) bool { return slices.Contains(held, a) })
	return s.askPlan(ctx, &planRequest{Update: u})
}

// PlanStop says which sockets stopping the supervisor for good would
// close (a program removed from a hupd of several): every socket it
// holds, those in force and those an earlier configuration dropped that a
// generation still uses, each Draining while a generation (draining or
// not) uses it; it changes nothing. ErrStopping: it is stopping already.
func (s *Supervisor) PlanStop(ctx context.Context) (Plan, error) {
	return s.askPlan(ctx, &planRequest{stop: true})
}

// askPlan hands r to Run's goroutine (Plan, PlanStop) and returns its
// answer: ErrStopping once Run has quit, ctx's error if ctx ends before
// Run takes r.
func (s *Supervisor) askPlan(ctx context.Context, r *planRequest) (Plan, error) {
	reply := make(chan planReply, 1)
	r.reply = reply
	select {
	case s.reqs <- request{plan: r}:
	case <-s.quit:
		return Plan{}, ErrStopping
	case <-ctx.Done():
		return Plan{}, ctx.Err()
	}
	a := <-reply // Run answers every request it takes
	return a.plan, a.err
}

// stopPlan runs on Run's goroutine (PlanStop).
func (s *Supervisor) stopPlan() planReply {
	if s.stopping {
		return planReply{err: ErrStopping}
	}
	var p Plan
	for _, l := range slices.Concat(s.listeners, s.retired) {
		p.Close = append(p.Close, PlanSocket{Name: l.Spec.FDName(), Address: l.Bound.String(), Draining: s.inUse(l)})
	}
	return planReply{plan: p}
}

// decision is what applying an Update decides, before anything is done.
type decision struct {
	next Options
	// match has, for each spec of the Update, the held socket kept for it
	// (nil: one is opened), as socketact.Sockets chooses.
	match  []*socketact.Listener
	held   []*socketact.Listener // in force, then retired: what was matched against
	differ []string              // why a new generation is needed; none: it is not
	// strategy is the reload a new generation is started with.
	strategy Strategy
}

func (d decision) respawn() bool { return len(d.differ) > 0 }

// decide is what applying u would do; it runs on Run's goroutine and
// changes nothing. apply carries it out; Plan reports it.
func (s *Supervisor) decide(u Update) (decision, error) {
	if s.stopping {
		return decision{}, ErrStopping
	}
	held := append(slices.Clone(s.listeners), s.retired...)
	match, err := socketact.Match(held, u.Listen, u.ListenWhere)
	if err != nil {
		return decision{}, err
	}
	// The sockets as the next generation would get them: a kept one under
	// its new spec (the same file), a new one with no file yet.
	ls := make([]*socketact.Listener, len(u.Listen))
	for i, sp := range u.Listen {
		if match[i] == nil {
			ls[i] = &socketact.Listener{Spec: sp}
			continue
		}
		if ls[i], err = match[i].Respec(sp); err != nil { // checked by Match
			return decision{}, err
		}
	}
	next := u.Options.withDefaults(len(ls))
	// What hupd itself was started with stays.
	next.Stdin, next.Stdout, next.Stderr, next.Shim, next.Self = s.opts.Stdin, s.opts.Stdout, s.opts.Stderr, s.opts.Shim, s.opts.Self
	next.Sentinel = s.opts.Sentinel
	next.OutputRecords = s.opts.OutputRecords // hupd's log format: fixed while it runs
	next.Spawner, next.Thread, next.Version, next.Argv = s.opts.Spawner, s.opts.Thread, s.opts.Version, s.opts.Argv
	if max(next.Instances, 1) == s.fileInstances {
		// Not edited: what hupd scale set stays.
		next.Instances = s.opts.Instances
	}
	d := decision{next: next, match: match, held: held, differ: spawnDiff(s.opts, s.listeners, next, ls)}
	if d.respawn() {
		// The signal strategy cannot start a new program: it becomes a
		// swap (a restart without sockets).
		d.strategy = next.Reload
		if d.strategy == StrategySignal {
			d.strategy = StrategyRestart
			if len(ls) > 0 {
				d.strategy = StrategySwap
			}
		}
	}
	return d, nil
}

// planApply runs on Run's goroutine.
func (s *Supervisor) planApply(r *planRequest) planReply {
	if r.stop {
		return s.stopPlan()
	}
	d, err := s.decide(r.Update)
	if err != nil {
		return planReply{err: err}
	}
	p := Plan{NewGeneration: d.respawn(), Strategy: d.strategy, Differ: d.differ, Live: liveDiff(s.opts, d.next)}
	for i, sp := range r.Listen {
		m := d.match[i]
		if m == nil {
			p.Open = append(p.Open, PlanSocket{Name: sp.FDName(), Address: sp.Address.String()})
			continue
		}
		p.Keep = append(p.Keep, PlanSocket{Name: sp.FDName(), Address: m.Bound.String(), Changed: socketChanges(m.Spec, sp)})
	}
	// Those in force that no spec takes close once no generation uses
	// them (those retired earlier are closing already).
	for _, l := range s.listeners {
		if slices.Contains(d.match, l) {
			continue
		}
		p.Close = append(p.Close, PlanSocket{Name: l.Spec.FDName(), Address: l.Bound.String(), Draining: s.inUse(l)})
	}
	return planReply{plan: p}
}

// inUse reports whether a generation uses the held socket l (for a
// steered one: any member of its group).
func (s *Supervisor) inUse(l *socketact.Listener) bool {
	return slices.ContainsFunc(s.gens, func(g *generation) bool { return uses(g, l) }) ||
		// A generation whose instances wait for their restart.
		slices.ContainsFunc(s.sets, func(set *genSet) bool {
			return len(set.pending) > 0 && uses(&generation{listeners: set.listeners}, l)
		})
}

// socketChanges names the options a kept socket takes (what
// socketact.Reuse.Apply changes on it).
func socketChanges(was, now socketact.Spec) []string {
	var c []string
	add := func(differ bool, name string) {
		if differ {
			c = append(c, name)
		}
	}
	add(was.FDName() != now.FDName(), "name")
	add(was.Backlog != now.Backlog, "backlog")
	add(was.NonBlocking != now.NonBlocking, "nonblocking")
	add(was.Mode != now.Mode, "mode")
	add(was.UID != now.UID || was.GID != now.GID, "owner")
	add(!slices.Equal(was.Handoff, now.Handoff), "handoff")
	return c
}

// spawnDiff names what differs between a generation started with (a, als)
// and one started with (b, bls); none: it would be started the same way.
// The hand-over dialects (a.Handoff and each socket's Spec.Handoff,
// [[listen]] env) are compared by the variables they give the child
// (socketact.HandoffEnv): a change that alters them, such as a socket's
// new env, needs a new generation on the same sockets; one that does not
// (the same dialects in another order) does not.
func spawnDiff(a Options, als []*socketact.Listener, b Options, bls []*socketact.Listener) []string {
	var d []string
	add := func(differ bool, name string) {
		if differ {
			d = append(d, name)
		}
	}
	add(a.Path != b.Path, "command")
	add(!slices.Equal(a.Args, b.Args), "args")
	add(!slices.Equal(a.Env, b.Env), "env")
	add(a.Dir != b.Dir, "dir")
	add(a.UID != b.UID || a.GID != b.GID || !slices.Equal(a.Groups, b.Groups), "user")
	add(a.Watchdog != b.Watchdog, "watchdog")
	add(a.Output != b.Output || a.OutputPrefix != b.OutputPrefix || a.OutputProgram != b.OutputProgram, "output")
	add(a.Control != b.Control, "control")
	add(a.Legacy != b.Legacy, "legacy")
	add(a.Forking != b.Forking || a.Pidfile != b.Pidfile, "forking")
	add(!slices.EqualFunc(als, bls, func(x, y *socketact.Listener) bool {
		return x.File == y.File && x.Spec.FDName() == y.Spec.FDName()
	}), "sockets")
	add(!slices.Equal(socketact.HandoffEnv(a.Handoff, als, 0), socketact.HandoffEnv(b.Handoff, bls, 0)), "handoff")
	return d
}

// liveDiff names the settings that change for the generations to come
// without a new one.
func liveDiff(a, b Options) []string {
	var d []string
	add := func(differ bool, name string) {
		if differ {
			d = append(d, name)
		}
	}
	add(a.Reload != b.Reload || a.ReloadSignal != b.ReloadSignal, "reload")
	add(!sameReadiness(a, b), "ready")
	add(a.MaxDraining != b.MaxDraining, "max_draining")
	add(max(a.Instances, 1) != max(b.Instances, 1), "instances") // scaled live
	add(a.Rolling != b.Rolling, "rolling")
	add(a.StopSignal != b.StopSignal || a.StopTimeout != b.StopTimeout, "stop")
	add(a.Settle != b.Settle, "settle")
	add(a.SteerWait != b.SteerWait, "steer_wait")
	add(a.SteerGrace != b.SteerGrace, "steer_grace")
	add(a.Restart != b.Restart || a.Backoff != b.Backoff, "restart")
	add(a.StartLimit != b.StartLimit, "start_limit")
	add(!slices.Equal(a.SuccessExitStatus.Codes, b.SuccessExitStatus.Codes) ||
		!slices.Equal(a.SuccessExitStatus.Signals, b.SuccessExitStatus.Signals), "success_exit_status")
	return d
}

func sameReadiness(a, b Options) bool {
	x, y := a.Ready, b.Ready
	return x.Kind == y.Kind && x.Delay == y.Delay && slices.Equal(x.Command, y.Command) && x.Interval == y.Interval &&
		x.Timeout == y.Timeout && slices.Equal(a.Check, b.Check)
}

// SocketsPlan is the socket part of a Plan for a program that holds
// sockets but runs no generation (one waiting to start): which of held
// the specs keep (matched as Apply matches them), which they open, and
// which close at once. An error is Match's (a kept socket that cannot
// take its new options).
func SocketsPlan(held []*socketact.Listener, specs []socketact.Spec, where []string) (Plan, error) {
	match, err := socketact.Match(held, specs, where)
	if err != nil {
		return Plan{}, err
	}
	var p Plan
	for i, sp := range specs {
		if m := match[i]; m != nil {
			p.Keep = append(p.Keep, PlanSocket{Name: sp.FDName(), Address: m.Bound.String(), Changed: socketChanges(m.Spec, sp)})
			continue
		}
		p.Open = append(p.Open, PlanSocket{Name: sp.FDName(), Address: sp.Address.String()})
	}
	for _, l := range held {
		if !slices.Contains(match, l) {
			p.Close = append(p.Close, PlanSocket{Name: l.Spec.FDName(), Address: l.Bound.String()})
		}
	}
	return p, nil
}
