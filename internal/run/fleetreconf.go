package run

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"syscall"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
	"github.com/hupd/hupd/watch"
)

// Edits of hupd.toml with several programs: on hupd reload (no program
// named), SIGHUP and, with watch_config, a change of hupd.toml, the fleet's
// loop reads and resolves the file again (Setup.ParseMulti, once: the
// bytes resolved are the bytes hashed) and applies it
// program by program, by name: a new program is built and starts once the
// programs it starts after are ready; a removed one is stopped as a stop
// signal stops it, and its end is no program's end (on_exit); a changed
// one's supervisor takes the new options and sockets as the single form's
// does (Supervisor.Apply: its own held sockets matched, a new address
// opened, a reload if needed); the others are not touched. after and
// on_exit count for the starts and ends to come. An invalid file changes
// nothing.

// reconfRequest asks the loop to apply hupd.toml (hupd reload), or, with
// plan, what applying a hupd.toml would do (hupd plan: data is its
// content, nil for hupd.toml as on disk).
type reconfRequest struct {
	cause string
	reply chan reconfReply // buffered
	plan  bool
	ctx   context.Context // of a plan
	data  []byte
}

type reconfReply struct {
	res  reconfResult
	err  error
	plan control.FleetPlan
}

// onReconf answers a reconfRequest, in the loop.
func (f *fleet) onReconf(req reconfRequest) reconfReply {
	f.takeReleased() // a namesake of a released program may be added
	if req.plan {
		p, err := f.planData(req.ctx, req.data)
		return reconfReply{plan: p, err: err}
	}
	res, err := f.reconfigure(req.cause)
	return reconfReply{res: res, err: err}
}

// reconfResult is what applying hupd.toml did that a reload must know.
type reconfResult struct {
	// applied: hupd.toml had changed and was applied. A reload of every
	// program then reloads only those it changed; otherwise all.
	applied bool
	// changed has the programs whose supervisor took a new configuration,
	// each with where the result of the reload it started goes (room for
	// one), or nil when it started none.
	changed map[*program]chan supervisor.ReloadResult
	added   []*program
}

// reloads reports whether a reload asked for with res (SIGHUP, hupd
// reload) must reload p itself, and where the result of the reload
// applying hupd.toml started for p goes (nil: none).
func (res reconfResult) reloads(p *program) (reload bool, started chan supervisor.ReloadResult) {
	if !res.applied {
		return true, nil
	}
	done, ok := res.changed[p]
	return ok && done == nil, done
}

// errFleetStopping refuses an edit while hupd stops.
var errFleetStopping = errors.New("run: hupd is stopping")

// errProgramStopping refuses to add a program whose namesake, removed, has
// not ended yet (goneWhy): both would share its cgroup and notify
// directory.
var errProgramStopping = errors.New("is still stopping after its removal: apply hupd.toml again once it ended")

// errProgramReleasing refuses it once the namesake has ended, while its
// cgroup is being removed (release).
var errProgramReleasing = errors.New("was removed and has ended; its cgroup is being removed: apply hupd.toml again in a moment")

// goneWhy is why a program named name cannot be added, or nil: a
// namesake, removed from hupd.toml, is still stopping (errProgramStopping)
// or being released (errProgramReleasing).
func (f *fleet) goneWhy(name string) error {
	i := slices.IndexFunc(f.gone, func(q *program) bool { return q.name == name })
	switch {
	case i < 0:
		return nil
	case f.gone[i].state.Load() == progEnded:
		return errProgramReleasing
	}
	return errProgramStopping
}

// watchConfig watches hupd.toml when m says so (watch_config), or stops
// watching it.
func (f *fleet) watchConfig(m *config.ResolvedMulti) error {
	want := m.WatchConfig && m.ConfigFile != "" && f.load != nil
	if want == (f.cw != nil) {
		return nil
	}
	if !want {
		f.cw.Close()
		f.cw = nil
		return nil
	}
	w, err := watch.New([]watch.Group{{Paths: []string{m.ConfigFile}, Baseline: f.cfgHash}})
	if err != nil {
		return err
	}
	f.cw = w
	f.log.Info(logev.Watching, keyPaths, []string{m.ConfigFile}, keyAction, "apply-config", "how", "inotify", keyHash, f.cfgHash)
	return nil
}

func (f *fleet) onConfigEvent(ev watch.Event) {
	if ev.Err != nil {
		f.log.Warn(logev.WatchProblem, keyPaths, []string{f.cur.ConfigFile}, supervisor.KeyError, ev.Err)
		return
	}
	if f.stopping {
		return
	}
	f.reconfigure("hupd.toml changed")
}

// hangup is what SIGHUP means: apply hupd.toml, then, as for hupd
// reload, reload every running program if hupd.toml had not changed, else
// each it changed whose new configuration did not start a reload itself.
// An invalid hupd.toml reloads nothing.
func (f *fleet) hangup() {
	res, err := f.reconfigure("SIGHUP")
	if err != nil && !res.applied {
		f.log.Error(logev.ReloadRefusedInvalid, supervisor.KeyCause, "SIGHUP", supervisor.KeyError, err)
		return
	}
	// (Applied but for a program whose part was refused, logged by it:
	// the others reload as they would.)
	for _, p := range f.progs {
		if reload, _ := res.reloads(p); reload && p.state.Load() == progRunning {
			f.send(p, syscall.SIGHUP)
		}
	}
}

// reconfigure applies hupd.toml if it changed since it was last read, or
// if that version was not applied. Its error says why hupd.toml was not
// applied (logged): nothing was changed then, unless the supervisor of a
// changed program refused its part (a port in use), when the programs
// before it in start order have theirs.
func (f *fleet) reconfigure(cause string) (reconfResult, error) {
	if f.load == nil {
		return reconfResult{}, nil
	}
	if f.stopping {
		return reconfResult{}, errFleetStopping
	}
	h, data, next, err := f.readConfig()
	if h == f.cfgHash && f.cfgErr == "" {
		return reconfResult{}, nil
	}
	f.cfgHash, f.cfgData = h, data
	var res reconfResult
	if err == nil {
		res, err = f.apply(next, cause)
	}
	f.cfgErr = ""
	if err != nil {
		f.cfgErr = err.Error()
		f.log.Error(logev.ConfigNotApplied, supervisor.KeyError, err)
	}
	return res, err
}

// readConfig reads hupd.toml once and resolves it: its hash is the hash
// of the very bytes resolved (data), so that an edit written meanwhile is
// seen as one by the next read. A file that cannot be read is hashed as on
// disk, and data is nil then, as without ParseMulti.
func (f *fleet) readConfig() (hash string, data []byte, next *config.ResolvedMulti, err error) {
	path := f.cur.ConfigFile
	if f.parse == nil {
		// Read twice (hashed, then resolved): what a Setup without
		// ParseMulti can do.
		hash = watch.Hash([]string{path})
		next, err = f.load()
		return hash, nil, next, err
	}
	data, err = config.ReadFile(path)
	if err != nil {
		return watch.Hash([]string{path}), nil, nil, err
	}
	next, err = f.parse(data)
	return watch.HashData(path, data), data, next, err
}

// apply makes next the configuration, program by program (see the top of
// this file).
func (f *fleet) apply(next *config.ResolvedMulti, cause string) (reconfResult, error) {
	old := f.cur
	for _, fixed := range f.fixedSettings(next) {
		if fixed.Now != fixed.Configured {
			f.log.Warn(logev.SettingNeedsRestart, "setting", fixed.Setting, "now", fixed.Now, "configured", fixed.Configured)
		}
	}
	// What runs, for the next edit to compare with.
	next.Name, next.Control, next.LogFormat, next.Health, next.FDStore = old.Name, old.Control, old.LogFormat, old.Health, old.FDStore

	// First what can fail with nothing changed: the new programs' sockets
	// and supervisors, and the waiting programs' new ones.
	type change struct {
		p    *program
		spec *config.ProgramSpec
	}
	var (
		added, rebuilt, changed, kept []change
		rewaited                      []change   // waiting, to get a new supervisor
		built                         []*program // with cgroups of their own
		opened                        []*socketact.Listener
	)
	undo := func() {
		socketact.CloseAll(opened)
		for _, p := range built {
			if p.cg != nil {
				p.cg.Close()
			}
		}
	}
	for i := range next.Programs {
		spec := &next.Programs[i]
		p := f.program(spec.Name)
		// An ended program is replaced when it changed, and one that
		// never ran (a program it starts after ended first) at any edit:
		// that program may be fixed now.
		if p == nil || p.state.Load() == progEnded && (differs(p.spec, spec) || !p.ran.Load()) {
			if err := f.goneWhy(spec.Name); err != nil {
				undo()
				return reconfResult{}, fmt.Errorf("%s: program %q %w", spec.Where, spec.Name, err)
			}
			np := f.newProgram(spec)
			if p != nil && sameContainment(p.spec.Cgroup, spec.Cgroup) {
				np.cg = p.cg // ended: its cgroup is empty, and the new one's
			}
			set, err := socketact.Sockets(nil, nil, spec.Listen, spec.ListenWhere)
			if err == nil {
				np.ls = set.Listeners
				opened = append(opened, set.Listeners...)
				err = f.build(np, spec)
				if p == nil {
					built = append(built, np)
				}
			}
			if err != nil {
				undo()
				return reconfResult{}, err
			}
			added = append(added, change{np, spec})
			if p != nil { // ended: its namesake replaces it
				rebuilt = append(rebuilt, change{p, nil})
			}
			continue
		}
		if p.state.Load() == progWaiting && rewaits(p.spec, spec) {
			kept = append(kept, change{p, spec})
			rewaited = append(rewaited, change{p, spec})
			continue
		}
		if p.state.Load() == progRunning && differs(p.spec, spec) {
			changed = append(changed, change{p, spec})
			continue
		}
		kept = append(kept, change{p, spec})
	}

	// A waiting program never ran: its sockets are the fleet's, matched
	// here to its new ones, and it gets a new supervisor, and a new
	// cgroup if its mode changed (it has no generation in the old one).
	// Each keeps its old ones until every one has its new.
	type rewait struct {
		p   *program
		sup *supervisor.Supervisor
		ls  []*socketact.Listener
		cg  *contain.Manager
		set socketact.Set
	}
	var done []rewait
	for _, c := range rewaited {
		p := c.p
		set, err := socketact.Sockets(p.ls, nil, c.spec.Listen, c.spec.ListenWhere)
		if err == nil {
			done = append(done, rewait{p, p.sup, p.ls, p.cg, set})
			p.ls = set.Listeners
			if !sameContainment(p.spec.Cgroup, c.spec.Cgroup) {
				p.cg = nil // build makes one of the new mode
			}
			err = f.build(p, c.spec)
		}
		if err != nil {
			for _, r := range done {
				if r.p.cg != r.cg && r.p.cg != nil {
					r.p.cg.Close()
				}
				r.p.sup, r.p.ls, r.p.cg = r.sup, r.ls, r.cg
				socketact.CloseAll(r.set.Opened)
			}
			undo()
			return reconfResult{}, err
		}
	}
	for _, r := range done {
		for _, ru := range r.set.Reused {
			ru.Apply()
		}
		socketact.CloseAll(r.set.Left)
		if r.cg != r.p.cg && r.cg != nil {
			// Never used: no generation's cgroup to wait for.
			if err := r.cg.Close(); err != nil {
				r.p.log.Warn(logev.CgroupsLeftBehind, supervisor.KeyError, err)
			}
		}
	}

	// Then each changed program's supervisor takes its part.
	res := reconfResult{applied: true, changed: map[*program]chan supervisor.ReloadResult{}}
	for _, c := range rewaited {
		res.changed[c.p] = nil
	}
	var failed error
	for _, c := range changed {
		p, spec := c.p, c.spec
		if spec.Cgroup != p.spec.Cgroup {
			p.log.Warn(logev.SettingNeedsRestart, "setting", "process.cgroup", "now", string(p.spec.Cgroup), "configured", string(spec.Cgroup))
			spec.Cgroup = p.spec.Cgroup
		}
		done := make(chan supervisor.ReloadResult, 1)
		u := supervisor.Update{Options: f.options(p, spec), Listen: spec.Listen, ListenWhere: spec.ListenWhere, Cause: cause, Done: done}
		ar, err := p.sup.Apply(context.Background(), u)
		if errors.Is(err, supervisor.ErrStopping) {
			// It has just ended (its end is on its way to the loop): a
			// later edit replaces it as an ended one.
			kept = append(kept, change{p, p.spec})
			continue
		}
		if err != nil {
			p.log.Error(logev.ConfigNotApplied, supervisor.KeyError, err)
			failed = errors.Join(failed, fmt.Errorf("program %s: %w", p.name, err))
			spec = p.spec // as it was: a later edit tries again
		} else {
			for _, l := range ar.Opened {
				p.log.Info(logev.Listening, supervisor.KeySocket, l.Spec.FDName(), "address", l.Bound.String())
			}
			p.log.Info(logev.ConfigApplied, "new_generation", ar.Respawn, supervisor.KeyStrat, string(ar.Strategy),
				keyDiffer, ar.Differ, "sockets_opened", len(ar.Opened), "sockets_dropped", ar.Retired)
			res.changed[p] = nil
			if ar.Respawn {
				res.changed[p] = done
			}
			p.ls = ar.Sockets // its supervisor's now, for the fd store
		}
		kept = append(kept, change{p, spec})
	}

	// The program list: in next's start order; the removed ones stop.
	var progs []*program
	for i := range next.Programs {
		name := next.Programs[i].Name
		if j := slices.IndexFunc(added, func(c change) bool { return c.p.name == name }); j >= 0 {
			progs = append(progs, added[j].p)
			res.added = append(res.added, added[j].p)
			continue
		}
		j := slices.IndexFunc(kept, func(c change) bool { return c.p.name == name })
		progs = append(progs, kept[j].p)
	}
	var removed []string
	for _, p := range f.progs {
		if slices.Contains(progs, p) {
			continue
		}
		if !slices.ContainsFunc(rebuilt, func(c change) bool { return c.p == p }) {
			removed = append(removed, p.name)
		}
		p.removed = true
		if slices.ContainsFunc(rebuilt, func(c change) bool { return c.p == p }) {
			continue // ended; its namesake has its cgroup
		}
		switch p.state.Load() {
		case progWaiting: // never ran: its sockets are the fleet's
			p.state.Store(progEnded)
			socketact.CloseAll(p.ls)
			f.release(p)
		case progEnded:
			f.release(p)
		case progRunning:
			f.gone = append(f.gone, p)
			p.log.Info(logev.ProgramRemoving, supervisor.KeySignal, signals.Name(syscall.SIGTERM))
			p.stopSent = true // asked to stop: a second stop signal reaches it
			f.send(p, syscall.SIGTERM)
		}
	}
	f.mu.Lock()
	for _, c := range kept {
		c.p.spec = c.spec
	}
	f.progs = progs
	f.mu.Unlock()
	f.link()
	f.cur = next
	if f.hs != nil {
		f.hs.SetPrograms(f.healthPrograms())
	}
	if f.setup.Level != nil {
		f.setup.Level.Set(next.LogLevel)
	}
	if err := f.watch(); err != nil {
		f.log.Warn(logev.WatchProblem, supervisor.KeyError, err)
	}
	if err := f.watchConfig(next); err != nil {
		f.log.Warn(logev.WatchProblem, supervisor.KeyError, err)
	}
	names := func(cs []change) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.p.name
		}
		return out
	}
	for _, c := range added {
		for i, l := range c.p.ls {
			c.p.log.Info(logev.Listening, "fd", 3+i, supervisor.KeySocket, l.Spec.FDName(), "address", l.Bound.String(), "inherited", false)
		}
	}
	f.log.Info(logev.ProgramsReconfigured, "added", names(added), "removed", removed, "changed", names(changed))
	f.syncStore() // the new sockets in, the dropped ones out
	f.startEligible()
	return res, failed
}

// programReleased is the end of a removed program's release: err is its
// cgroup's Close's.
type programReleased struct {
	p   *program
	err error
}

// release lets go of program p, removed from hupd.toml, once it has ended
// (or never ran): its cgroup is closed, so that a program of the same name
// added later gets a fresh one, and nothing of p is kept until hupd exits.
// Its generations have all ended, but closing it waits for their cgroups'
// removal (up to contain's stale wait each): that is done off the loop,
// which goes on meanwhile. p stays in gone until the loop hears of the end
// (released), so that no namesake, whose cgroup would be p's, is added
// before, and the loop does not return before. Without a cgroup of its own
// (none, or the fallback: nothing to close) p is released at once.
func (f *fleet) release(p *program) {
	cg := p.cg
	p.cg = nil
	if cg == nil || !cg.Enabled() {
		f.released(programReleased{p: p})
		return
	}
	if !slices.Contains(f.gone, p) {
		f.gone = append(f.gone, p)
	}
	closeCgroup := f.closeCgroup
	if closeCgroup == nil {
		closeCgroup = (*contain.Manager).Close
	}
	go func() {
		var err error
		if cg != nil {
			err = closeCgroup(cg)
		}
		f.releasedc <- programReleased{p: p, err: err} // the loop runs until p leaves gone
	}()
}

// takeReleased takes, in the loop, the end of every release that has
// ended but not reached the loop yet: the loop's select picks among ready
// cases at random, so that a request handled first would see the program
// still in gone, though released.
func (f *fleet) takeReleased() {
	for {
		select {
		case r := <-f.releasedc:
			f.released(r)
		default:
			return
		}
	}
}

// released takes the end of p's release, in the loop.
func (f *fleet) released(r programReleased) {
	f.gone = slices.DeleteFunc(f.gone, func(q *program) bool { return q == r.p })
	if r.err != nil {
		f.log.Warn(logev.CgroupsLeftBehind, supervisor.KeyProgram, r.p.name, "error", r.err)
	}
	r.p.log.Info(logev.ProgramReleased)
}

// retarget keeps the watcher consistent when no new one could start
// (err) for the groups wanted after an edit of hupd.toml: each group of
// the old watcher that a program wants still, alike, is pointed at that
// program as it is now (a replaced program is a new one); the others are
// dropped, acting on nothing. The error returned names what is not watched
// until a later edit of hupd.toml starts a watcher for it (each edit
// tries again: the groups then differ from those wanted).
func (f *fleet) retarget(want []fleetWatch, err error) error {
	taken := make([]bool, len(want))
	for i := range f.watches {
		fw := &f.watches[i]
		j := -1
		for k, nw := range want {
			if fw.prog != nil && !taken[k] && nw.prog.name == fw.prog.name && sameWatch(nw.spec, fw.spec) {
				j = k
				break
			}
		}
		if j < 0 {
			fw.prog = nil
			continue
		}
		taken[j] = true
		fw.prog, fw.spec = want[j].prog, want[j].spec
	}
	var missing []string
	for j, nw := range want {
		if !taken[j] {
			missing = append(missing, nw.prog.name+": "+strings.Join(nw.spec.Paths, ", "))
		}
	}
	if len(missing) == 0 {
		return fmt.Errorf("%w (the watches in force go on, each for its program)", err)
	}
	return fmt.Errorf("%w: not watched until an edit of hupd.toml starts a new watcher: %s", err, strings.Join(missing, "; "))
}

// program is the program called name, or nil.
func (f *fleet) program(name string) *program {
	if i := slices.IndexFunc(f.progs, func(p *program) bool { return p.name == name }); i >= 0 {
		return f.progs[i]
	}
	return nil
}

// rewaits reports whether a program waiting to start with a gets a new
// supervisor for b: it differs, or its cgroup mode does (it starts in a
// cgroup of the new mode).
func rewaits(a, b *config.ProgramSpec) bool {
	return differs(a, b) || a.Cgroup != b.Cgroup
}

// differs reports whether a and b run the program differently: their
// options, sockets or cgroup. Where things are written, after, on_exit and
// the watches do not count (they change no generation).
func differs(a, b *config.ProgramSpec) bool {
	strip := func(s *config.ProgramSpec) config.ProgramSpec {
		c := *s
		// Not compared: where it is written, what counts for later
		// starts and ends, watches (rebuilt apart), and the cgroup mode,
		// which waits for a restart (warned when it changes).
		c.Where, c.ListenWhere, c.After, c.OnExit, c.Watch, c.Cgroup = "", nil, nil, "", nil, ""
		o := &c.Options
		o.OutputRecords, o.Thread, o.Stdin, o.Stdout, o.Stderr = nil, nil, nil, nil, nil
		return c
	}
	return !reflect.DeepEqual(strip(a), strip(b))
}
