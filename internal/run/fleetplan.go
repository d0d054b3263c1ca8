package run

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// hupd plan with several programs: what applying a hupd.toml would do,
// decided in the fleet's loop as apply decides it (fleetreconf.go),
// changing nothing. Each program of the file is added (new, or an ended
// one that apply replaces), changed (what its supervisor's own Plan says,
// as for a single program; a program waiting to start has no generation:
// its sockets and settings, its cgroup mode included, which it starts
// with) or unchanged; the programs it no longer has are removed, with the
// sockets that closes (a running one's: every socket its supervisor holds,
// as it says). hupd-wide settings apply live or wait for a restart. While
// hupd stops, a plan is refused as an edit is.

// planData resolves data (nil: hupd.toml as on disk) as an edit would be,
// and plans it. An error about the file is a *control.ConfigError.
func (f *fleet) planData(ctx context.Context, data []byte) (control.FleetPlan, error) {
	if f.load == nil || data != nil && f.parse == nil {
		return control.FleetPlan{}, ErrNoConfigFile
	}
	if f.stopping {
		return control.FleetPlan{}, errFleetStopping
	}
	var next *config.ResolvedMulti
	var err error
	if data != nil {
		next, err = f.parse(data)
	} else {
		_, _, next, err = f.readConfig()
	}
	if err != nil {
		return control.FleetPlan{}, &control.ConfigError{Err: err}
	}
	return f.plan(ctx, next)
}

// plan says what apply(next) would do now.
func (f *fleet) plan(ctx context.Context, next *config.ResolvedMulti) (control.FleetPlan, error) {
	var out control.FleetPlan
	for _, fixed := range f.fixedSettings(next) {
		if fixed.Now != fixed.Configured {
			out.Restart = append(out.Restart, fixed)
		}
	}
	if f.cur.LogLevel != next.LogLevel {
		out.Live = append(out.Live, "log.level")
	}
	if f.cur.WatchConfig != next.WatchConfig {
		out.Live = append(out.Live, "watch_config")
	}
	for i := range next.Programs {
		spec := &next.Programs[i]
		pp, err := f.planProgram(ctx, spec)
		if err != nil {
			return control.FleetPlan{}, err
		}
		out.Programs = append(out.Programs, pp)
	}
	for _, p := range f.progs {
		if next.Program(p.name) != nil {
			continue
		}
		pl, err := f.planRemoval(ctx, p)
		if err != nil {
			return control.FleetPlan{}, err
		}
		out.Programs = append(out.Programs, control.ProgramPlan{Name: p.name, Change: control.ChangeRemoved, State: p.stateName(), Plan: pl})
	}
	return out, nil
}

// errPlanStopping: a running program's supervisor no longer plans: it is
// stopping (which lasts up to its stop timeout), or has just ended and the
// loop has not heard of it yet.
var errPlanStopping = errors.New("is stopping: plan again once it has ended")

// planRemoval is the plan of program p's removal: the sockets it closes.
// A running program's supervisor holds its sockets (those an edit dropped
// too, while a draining generation uses them): it says which, and which a
// generation uses. A waiting one's are the fleet's, unused, closed at
// once; an ended one's are closed already.
func (f *fleet) planRemoval(ctx context.Context, p *program) (*supervisor.Plan, error) {
	pl := &supervisor.Plan{}
	switch p.state.Load() {
	case progWaiting:
		for _, l := range p.ls {
			pl.Close = append(pl.Close, supervisor.PlanSocket{Name: l.Spec.FDName(), Address: l.Bound.String()})
		}
	case progRunning:
		held, err := p.sup.PlanStop(ctx)
		switch {
		case errors.Is(err, supervisor.ErrStopping):
			return nil, fmt.Errorf("program %s %w", p.name, errPlanStopping)
		case err != nil:
			return nil, err
		}
		pl.Close = held.Close
	}
	return pl, nil
}

// planProgram is program spec's part of a plan (see apply).
func (f *fleet) planProgram(ctx context.Context, spec *config.ProgramSpec) (control.ProgramPlan, error) {
	pp := control.ProgramPlan{Name: spec.Name}
	p := f.program(spec.Name)
	if p != nil {
		pp.State = p.stateName()
	}
	if p == nil || p.state.Load() == progEnded && (differs(p.spec, spec) || !p.ran.Load()) {
		if err := f.goneWhy(spec.Name); err != nil {
			return pp, &control.ConfigError{Err: fmt.Errorf("%s: program %q %w", spec.Where, spec.Name, err)}
		}
		pp.Change = control.ChangeAdded
		pl := &supervisor.Plan{NewGeneration: true}
		for _, sp := range spec.Listen {
			pl.Open = append(pl.Open, supervisor.PlanSocket{Name: sp.FDName(), Address: sp.Address.String()})
		}
		pp.Plan = pl
		return pp, nil
	}
	// What counts without a new generation or supervisor: the starts and
	// ends to come, the watches, and the cgroup mode (it waits for a
	// restart, as apply warns).
	var live []string
	if !slices.Equal(p.spec.After, spec.After) {
		live = append(live, "after")
	}
	if p.spec.OnExit != spec.OnExit {
		live = append(live, "on_exit")
	}
	if !slices.EqualFunc(p.spec.Watch, spec.Watch, sameWatch) {
		live = append(live, "watch")
	}
	var restart []supervisor.PlanSetting
	if p.spec.Cgroup != spec.Cgroup && p.state.Load() != progWaiting {
		restart = append(restart, supervisor.PlanSetting{Setting: "process.cgroup", Now: string(p.spec.Cgroup), Configured: string(spec.Cgroup)})
	}
	var pl supervisor.Plan
	switch {
	case p.state.Load() == progWaiting && rewaits(p.spec, spec):
		// It gets a new supervisor (it never ran) and its sockets are
		// matched to its new ones; a new cgroup mode is its own from its
		// start.
		var err error
		if pl, err = supervisor.SocketsPlan(p.ls, spec.Listen, spec.ListenWhere); err != nil {
			return pp, &control.ConfigError{Err: fmt.Errorf("program %s: %w", p.name, err)}
		}
		if spec.Cgroup != p.spec.Cgroup {
			live = append(live, "process.cgroup")
		}
		pl.Live = live
		pp.Change, pp.Plan = control.ChangeChanged, &pl // its settings, whatever else
		return pp, nil
	case p.state.Load() == progRunning && differs(p.spec, spec):
		next := *spec
		next.Cgroup = p.spec.Cgroup
		var err error
		pl, err = p.sup.Plan(ctx, supervisor.Update{Options: f.options(p, &next), Listen: spec.Listen, ListenWhere: spec.ListenWhere, Cause: "hupd plan"})
		switch {
		case errors.Is(err, supervisor.ErrStopping):
			return pp, fmt.Errorf("program %s %w", p.name, errPlanStopping)
		case err != nil && ctx.Err() != nil:
			return pp, err
		case err != nil:
			// Refused as applying it would be refused.
			return pp, &control.ConfigError{Err: fmt.Errorf("program %s: %w", p.name, err)}
		}
		pl.Live = append(pl.Live, live...)
	default:
		pl.Live = live
	}
	pl.Restart = append(pl.Restart, restart...)
	pp.Change = control.ChangeChanged
	if pl.Nothing() {
		pp.Change = control.ChangeUnchanged
		return pp, nil
	}
	pp.Plan = &pl
	return pp, nil
}

// fixedSettings are the hupd-wide settings that wait for a restart of
// hupd: their value now, and next's.
func (f *fleet) fixedSettings(next *config.ResolvedMulti) []supervisor.PlanSetting {
	old := f.cur
	healthAddr := func(h config.HealthSpec) string {
		if h.Address == "" {
			return "off"
		}
		return h.Address
	}
	return []supervisor.PlanSetting{
		{Setting: "name", Now: old.Name, Configured: next.Name},
		{Setting: "control", Now: old.Control, Configured: next.Control},
		{Setting: "log.format", Now: old.LogFormat, Configured: next.LogFormat},
		{Setting: "health.address", Now: healthAddr(old.Health), Configured: healthAddr(next.Health)},
		{Setting: "health.failures", Now: strconv.Itoa(old.Health.Failures), Configured: strconv.Itoa(next.Health.Failures)},
		{Setting: "systemd.fdstore", Now: old.FDStore, Configured: next.FDStore},
	}
}
