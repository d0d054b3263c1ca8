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
// programs: reload and status go to the programs named (control.Fleet);
// the server refuses the other requests (control.ErrSeveralPrograms). A
// reload does not read hupd.toml again: edits are not applied yet with
// several programs.
type fleetHandler struct{ f *fleet }

var _ control.Fleet = fleetHandler{}

// Status is hupd's own part of a status: the programs' are
// StatusPrograms'.
func (h fleetHandler) Status() supervisor.Status {
	st := supervisor.Status{PID: os.Getpid()}
	if len(h.f.progs) > 0 {
		st.Name = h.f.progs[0].spec.Options.Name
	}
	return st
}

// Reload reloads every program; the server asks ReloadPrograms instead.
func (h fleetHandler) Reload(ctx context.Context) supervisor.ReloadResult {
	now := time.Now()
	return supervisor.ReloadResult{Cause: "hupd reload", Reason: "hupd runs several programs: reload them by name", Started: now, Finished: now}
}

func (h fleetHandler) Upgrade(context.Context, string) error {
	return fmt.Errorf("upgrade: %w", control.ErrSeveralPrograms)
}

// pick returns the programs named, in start order, each once; none: all.
func (h fleetHandler) pick(names []string) ([]*program, error) {
	if len(names) == 0 {
		return h.f.progs, nil
	}
	var out []*program
	for _, n := range names {
		i := slices.IndexFunc(h.f.progs, func(p *program) bool { return p.spec.Name == n })
		if i < 0 {
			all := make([]string, len(h.f.progs))
			for j, p := range h.f.progs {
				all[j] = p.spec.Name
			}
			return nil, &unknownProgramError{name: n, all: all}
		}
		if !slices.Contains(out, h.f.progs[i]) {
			out = append(out, h.f.progs[i])
		}
	}
	slices.SortFunc(out, func(a, b *program) int { return a.idx - b.idx })
	return out, nil
}

func (h fleetHandler) StatusPrograms(names []string) ([]control.ProgramReply, error) {
	ps, err := h.pick(names)
	if err != nil {
		return nil, err
	}
	out := make([]control.ProgramReply, len(ps))
	for i, p := range ps {
		out[i] = control.ProgramReply{Name: p.spec.Name, State: p.stateName()}
		if p.ran.Load() {
			st := p.sup.StatusUsage() // an ended one answers at once
			out[i].Status = &st
		}
	}
	return out, nil
}

func (h fleetHandler) ReloadPrograms(ctx context.Context, names []string) ([]control.ProgramReply, error) {
	ps, err := h.pick(names)
	if err != nil {
		return nil, err
	}
	out := make([]control.ProgramReply, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		out[i] = control.ProgramReply{Name: p.spec.Name, State: p.stateName()}
		if p.state.Load() != progRunning && len(names) == 0 {
			continue // a reload of every program: those running (the state says why not)
		}
		if p.state.Load() != progRunning {
			now := time.Now()
			r := supervisor.ReloadResult{Cause: "hupd reload", Reason: "program " + p.spec.Name + " is not running (" + out[i].State + ")", Started: now, Finished: now}
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
		return nil, fmt.Errorf("program %s has not started yet: it starts after %s", name, strings.Join(p.spec.After, ", "))
	}
	if !p.ran.Load() {
		return nil, fmt.Errorf("program %s never started: a program it starts after ended first", name)
	}
	return programHandler{p.sup}, nil
}

// programHandler answers the requests about one program of a fleet as
// controlHandler answers them for hupd's one program, without hupd.toml
// (its edits are not applied with several programs yet).
type programHandler struct{ sup *supervisor.Supervisor }

var (
	_ control.Rollbacker = programHandler{}
	_ control.Scaler     = programHandler{}
	_ control.LogSource  = programHandler{}
)

func (h programHandler) Status() supervisor.Status { return h.sup.StatusUsage() }

func (h programHandler) Reload(ctx context.Context) supervisor.ReloadResult { return h.sup.Reload(ctx) }

func (h programHandler) Upgrade(context.Context, string) error {
	return fmt.Errorf("upgrade: %w", control.ErrSeveralPrograms)
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
