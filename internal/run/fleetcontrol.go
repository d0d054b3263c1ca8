package run

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// fleetHandler is the control.Handler of a hupd that runs several
// programs: reload and status go to the programs named (control.Fleet),
// scale, rollback and logs to the one named (Program), a plan is decided
// in the fleet's loop (PlanPrograms, control.FleetPlanner), and an
// upgrade goes to the fleet's loop (every program at once); the server
// refuses the other requests (control.ErrSeveralPrograms). A
// reload of every program (none named) applies hupd.toml first, in the
// fleet's loop, as SIGHUP does; it is refused while hupd.toml is not
// valid. The programs are read under the fleet's lock: the loop changes
// them when hupd.toml is applied.
type fleetHandler struct{ f *fleet }

// programs are the fleet's programs, in start order.
func (h fleetHandler) programs() []*program {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	return slices.Clone(h.f.progs)
}

var _ control.Fleet = fleetHandler{}

// Status is hupd's own part of a status: the programs' are
// StatusPrograms'.
func (h fleetHandler) Status() supervisor.Status {
	return supervisor.Status{PID: os.Getpid(), Name: h.f.ident.Name}
}

// Reload reloads every program; the server asks ReloadPrograms instead.
func (h fleetHandler) Reload(ctx context.Context) supervisor.ReloadResult {
	now := time.Now()
	return supervisor.ReloadResult{Cause: "hupd reload", Reason: "hupd runs several programs: reload them by name", Started: now, Finished: now}
}

// Upgrade upgrades hupd with every program (fleetupgrade.go): it returns
// only on failure, nothing changed then.
func (h fleetHandler) Upgrade(ctx context.Context, binary string) error {
	reply := make(chan error, 1)
	select {
	case h.f.upc <- fleetUpgrade{binary: binary, reply: reply}:
	case <-h.f.exited:
		return errFleetStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply: // the loop answers every request it takes, unless the exec succeeds
		return err
	case <-h.f.exited:
		return errFleetStopping
	}
}

// pick returns the programs named, in start order, each once; none: all.
func (h fleetHandler) pick(names []string) ([]*program, error) {
	progs := h.programs()
	if len(names) == 0 {
		return progs, nil
	}
	var out []*program
	for _, n := range names {
		i := slices.IndexFunc(progs, func(p *program) bool { return p.name == n })
		if i < 0 {
			all := make([]string, len(progs))
			for j, p := range progs {
				all[j] = p.name
			}
			return nil, &unknownProgramError{name: n, all: all}
		}
		if !slices.Contains(out, progs[i]) {
			out = append(out, progs[i])
		}
	}
	slices.SortFunc(out, func(a, b *program) int { return slices.Index(progs, a) - slices.Index(progs, b) })
	return out, nil
}

func (h fleetHandler) StatusPrograms(names []string) ([]control.ProgramReply, error) {
	ps, err := h.pick(names)
	if err != nil {
		return nil, err
	}
	out := make([]control.ProgramReply, len(ps))
	for i, p := range ps {
		out[i] = control.ProgramReply{Name: p.name, State: p.stateName()}
		if p.ran.Load() {
			st := p.sup.StatusUsage() // an ended one answers at once
			out[i].Status = &st
		}
	}
	return out, nil
}

func (h fleetHandler) ReloadPrograms(ctx context.Context, names []string) ([]control.ProgramReply, error) {
	const cause = "hupd reload"
	h.f.reloads.Add(1) // an upgrade waits for the answer (upgradable)
	defer h.f.reloads.Add(-1)
	var applied reconfResult
	if len(names) == 0 && h.f.load != nil {
		reply := make(chan reconfReply, 1)
		select {
		case h.f.reconfc <- reconfRequest{cause: cause, reply: reply}:
		case <-h.f.exited:
			return nil, fmt.Errorf("hupd.toml not applied: %w", errFleetStopping)
		case <-ctx.Done():
			return nil, fmt.Errorf("the caller gave up before hupd.toml was read: nothing was reloaded: %w", ctx.Err())
		}
		// The loop answers every request it takes.
		r := <-reply
		switch {
		case r.err != nil && r.res.applied: // a program's supervisor refused its part
			return nil, &control.ConfigError{Err: fmt.Errorf("hupd.toml applied but for: %w (a reload applies it again)", r.err)}
		case r.err != nil:
			return nil, &control.ConfigError{Err: fmt.Errorf("hupd.toml not applied, nothing changed: %w", r.err)}
		}
		applied = r.res
	}
	ps, err := h.pick(names)
	if err != nil {
		return nil, err
	}
	out := make([]control.ProgramReply, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		out[i] = control.ProgramReply{Name: p.name, State: p.stateName()}
		reload, done := applied.reloads(p)
		if done != nil {
			// Its new configuration started a reload: its result is
			// the answer.
			wg.Go(func() {
				wctx, cancel := supervisor.WaitContext(ctx)
				defer cancel()
				var r supervisor.ReloadResult
				select {
				case r = <-done:
				case <-wctx.Done():
					now := time.Now()
					r = supervisor.ReloadResult{Cause: cause, Reason: "timed out waiting for the reload; it goes on", Started: now, Finished: now, TimedOut: true}
				}
				out[i].Reload = &r
			})
			continue
		}
		if !reload {
			reason := "not reloaded: unchanged in hupd.toml"
			if slices.Contains(applied.added, p) {
				reason = "added by hupd.toml: it starts (once the programs it starts after are ready)"
			}
			now := time.Now()
			out[i].Reload = &supervisor.ReloadResult{OK: true, Cause: cause, Reason: reason, Started: now, Finished: now}
			continue
		}
		if p.state.Load() != progRunning && len(names) == 0 {
			// A reload of every program reloads those running: one
			// waiting for its after programs, or ended, is no failure.
			now := time.Now()
			out[i].Reload = &supervisor.ReloadResult{OK: true, Cause: cause, Reason: "not reloaded: it is not running (" + out[i].State + ")", Started: now, Finished: now}
			continue
		}
		if p.state.Load() != progRunning {
			now := time.Now()
			r := supervisor.ReloadResult{Cause: cause, Reason: "program " + p.name + " is not running (" + out[i].State + ")", Started: now, Finished: now}
			out[i].Reload = &r
			continue
		}
		wg.Go(func() {
			r := p.sup.Reload(ctx)
			out[i].Reload = &r
		})
	}
	wg.Wait()
	return out, nil
}

var _ control.FleetPlanner = fleetHandler{}

// PlanPrograms says what applying a hupd.toml would do (hupd plan),
// decided in the fleet's loop; data is its content, nil for hupd.toml as
// on disk. hupd reads no file the client names.
func (h fleetHandler) PlanPrograms(ctx context.Context, data []byte) (control.FleetPlan, error) {
	reply := make(chan reconfReply, 1)
	select {
	case h.f.reconfc <- reconfRequest{plan: true, ctx: ctx, data: data, reply: reply}:
	case <-h.f.exited:
		return control.FleetPlan{}, errFleetStopping
	case <-ctx.Done():
		return control.FleetPlan{}, ctx.Err()
	}
	r := <-reply // the loop answers every request it takes
	return r.plan, r.err
}

// unknownProgramError names a program hupd does not run, and those it
// runs; it is a control.ErrUnknownProgram.
type unknownProgramError struct {
	name string
	all  []string
}

func (e *unknownProgramError) Error() string {
	return fmt.Sprintf("unknown program %.64q: hupd runs %s", e.name, strings.Join(e.all, ", "))
}

func (e *unknownProgramError) Is(target error) bool { return target == control.ErrUnknownProgram }

// Program is the Handler of program name for its scale, rollback and logs
// requests; a program still waiting to start has none yet.
func (h fleetHandler) Program(name string) (control.Handler, error) {
	ps, err := h.pick([]string{name})
	if err != nil {
		return nil, err
	}
	p := ps[0]
	if p.state.Load() == progWaiting {
		h.f.mu.Lock()
		after := p.spec.After
		h.f.mu.Unlock()
		return nil, fmt.Errorf("program %s has not started yet: it starts after %s", name, strings.Join(after, ", "))
	}
	if !p.ran.Load() {
		return nil, fmt.Errorf("program %s never started: a program it starts after ended first", name)
	}
	return programHandler{p.sup}, nil
}

// programHandler answers the requests about one program of a fleet as
// controlHandler answers them for hupd's one program, without hupd.toml
// (a reload of one program named does not read it).
type programHandler struct{ sup *supervisor.Supervisor }

var (
	_ control.Rollbacker = programHandler{}
	_ control.Scaler     = programHandler{}
	_ control.LogSource  = programHandler{}
)

func (h programHandler) Status() supervisor.Status { return h.sup.StatusUsage() }

func (h programHandler) Reload(ctx context.Context) supervisor.ReloadResult { return h.sup.Reload(ctx) }

// Upgrade is refused: an upgrade re-executes hupd, every program at once
// (fleetHandler.Upgrade).
func (h programHandler) Upgrade(context.Context, string) error {
	return errUpgradeProgram
}

func (h programHandler) Scale(ctx context.Context, n int) supervisor.ScaleResult {
	return h.sup.Scale(ctx, n)
}

func (h programHandler) Rollback(ctx context.Context) supervisor.ReloadResult {
	r := h.sup.Rollback(ctx)
	if r.Cause == "" {
		r.Cause = "hupd rollback"
	}
	return r
}

func (h programHandler) Logs(gen, n int) []supervisor.OutputLine { return h.sup.Logs(gen, n) }

func (h programHandler) FollowLogs(gen, n int) ([]supervisor.OutputLine, <-chan supervisor.OutputLine, func() int) {
	return h.sup.FollowLogs(gen, n)
}
