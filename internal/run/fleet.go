package run

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/health"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
	"github.com/hupd/hupd/watch"
)

// A fleet is a hupd that runs several programs ([[program]] tables): one
// supervisor.Supervisor per program, sharing hupd's one reaper, spawner
// thread (Setup.Thread), sentinel, runtime directory and control socket.
// Each program has its own sockets, notify directory
// (Runtime.ForProgram), cgroup (contain.Manager.Child: base/prog-NAME)
// and sentinel keys (programSentinel); every record about it carries
// program=NAME.
//
// Invariants: the fleet's loop (run) owns the programs' lifecycle. A
// program's Run is called only once every program it starts after has
// been ready (its first Ready hook), never after hupd began to stop. The
// fleet owns the signal intake: a stop signal stops the programs one at a
// time in reverse start order, each once every program after it has ended;
// the others are forwarded to every running program, but the upgrade
// signal, which upgrades hupd with every program (fleetupgrade.go: one
// exec; the new image takes every program over, or hands them all back).
// A program that ends for good (its Run returns) with on_exit
// "stop-all" stops the others so and hupd exits with its code; with
// "ignore" the others go on, and hupd exits once none runs. A change of a
// program's [[program.watch]] group (one watcher for all) acts on that
// program alone, while it runs. The one health endpoint ([health])
// reports on every program (health.Server.StartPrograms), asking a
// program's supervisor for its status only while the program runs, and
// is closed once every program's Run has returned. Edits of hupd.toml
// add, remove and change programs while hupd runs (see reconfigure, in
// the loop): a removed program leaves progs at once and is in gone until
// it was released once its Run returned (its cgroup, if it has one,
// closed off the loop: nothing of it is kept, and no namesake is added
// meanwhile; a request the loop takes first takes the ended releases
// before, takeReleased); its end
// never counts as a program's end (on_exit).
// Under a service manager, hupd speaks for every program and keeps the
// sockets it holds in its fd store (fleetsystemd.go: a program that ended
// for good, hupd going on, leaves it); programs with
// cgroups off may run beside programs with them (fleetcgroup.go).
type fleet struct {
	log *slog.Logger
	// mu guards progs (the slice, and each program's spec) against the
	// control socket's and the health endpoint's goroutines; the loop, its
	// only writer, reads them without it. It also guards readyq.
	mu    sync.Mutex
	progs []*program // in start order
	// gone are the programs removed from hupd.toml, still stopping or
	// being released (release: their cgroup closed once they ended, off
	// the loop, which hears of it on releasedc; one without a cgroup of
	// its own is released at once).
	gone   []*program
	readyq []*program // programs at their first ready generation, for the loop
	kick   chan struct{}
	endc   chan programEnd
	nextID int

	releasedc chan programReleased

	// What building a program's supervisor needs (build).
	ident  supervisor.Options
	rt     *supervisor.Runtime
	cg     *contain.Manager
	cgMode contain.Mode // cg's: off while every program has cgroups off (fleetcgroup.go)
	keys   *sentinelKeys
	reaper *signals.Reaper
	self   string
	hs     *health.Server
	setup  Setup

	// hupd.toml's edits (fleetreconf.go): cur is the configuration in
	// force; load is nil without hupd.toml; cw watches it (watch_config).
	cur     *config.ResolvedMulti
	load    func() (*config.ResolvedMulti, error)
	parse   func(data []byte) (*config.ResolvedMulti, error) // nil: load reads it
	cw      *watch.Watcher
	cfgHash string
	cfgData []byte // the bytes hashed as cfgHash (nil: not known), for an upgrade's state
	cfgErr  string
	reconfc chan reconfRequest
	exited  chan struct{} // closed when the loop returns

	// The service manager (fleetsystemd.go): sd speaks for the fleet on
	// its notify socket, store keeps the sockets in its fd store, pingc
	// asks the loop to answer (the watchdog); nil when unused.
	sd    *fleetSystemd
	store *fdStore
	pingc chan chan struct{}

	// w watches every program's [[program.watch]] groups (nil: none);
	// watches[i] is the program and spec of w's group i (prog nil: its
	// program was replaced or removed while no new watcher could start).
	w       *watch.Watcher
	watches []fleetWatch
	// newWatcher starts a watcher (nil: watch.New).
	newWatcher func([]watch.Group) (*watch.Watcher, error)
	// closeCgroup closes a released program's cgroup (nil:
	// contain.Manager.Close).
	closeCgroup func(*contain.Manager) error

	// An upgrade (fleetupgrade.go): upc takes the requests, checkedc
	// the checked binary; upgrading while it is checked.
	upc       chan fleetUpgrade
	checkedc  chan fleetUpgradeChecked
	upgrading bool
	// execFleet execs the new image (nil: supervisor.ExecFleetUpgrade).
	execFleet func(st *supervisor.Upgrade, binary string, exe *os.File, frozen []*supervisor.Frozen) error
	// reloads counts the hupd reload requests being answered
	// (fleetHandler.ReloadPrograms): no upgrade meanwhile.
	reloads atomic.Int32
	// ctl is the control server, which counts the answers being made
	// (control.Server.Answering): no upgrade meanwhile either.
	ctl *control.Server
	// triggers counts the watched files' changes handed to a program's
	// supervisor (onWatch) and not taken yet: no upgrade meanwhile.
	triggers atomic.Int32

	stopping bool
	stopSig  syscall.Signal
	cause    *int // the exit code of the program whose end stopped every program
	code     int  // the first non-zero exit code of a program, else 0 (see onEnd)
	// ignoredCode: the first non-zero code of a program whose end is
	// ignored: hupd's when it ends because nothing is left to run.
	ignoredCode int
}

// fleetWatch is one [[program.watch]] group of a program.
type fleetWatch struct {
	prog *program
	spec config.WatchSpec
	hash string // as last seen: a new watcher starts from it
}

// Program states, for the control socket's answers (program.state).
const (
	progWaiting int32 = iota
	progRunning
	progEnded
)

// program is one program of a fleet.
type program struct {
	id    int    // unique in the fleet: its sentinel keys
	name  string // spec.Name, which never changes
	spec  *config.ProgramSpec
	sup   *supervisor.Supervisor
	ls    []*socketact.Listener
	cg    *contain.Manager
	log   *slog.Logger
	sigs  chan os.Signal
	after []*program // the programs it starts after
	state atomic.Int32
	// ran: its supervisor's Run was called (a program that ends before
	// its after programs were ready never runs: its supervisor answers
	// nothing, and its sockets stay the fleet's to close).
	ran atomic.Bool

	// The loop's own.
	removed     bool // removed from hupd.toml: its end is no failure
	resumed     bool // taken over from an upgrade's previous image, running
	ready       bool
	stopSent    bool
	saidWaiting bool
}

type programEnd struct {
	p    *program
	code int
	err  error
}

// stateName is what hupd status says of a program's state.
func (p *program) stateName() string {
	switch p.state.Load() {
	case progWaiting:
		return control.ProgramWaiting
	case progRunning:
		return control.ProgramRunning
	}
	return control.ProgramEnded
}

// RunMulti runs the programs of m until hupd should exit and returns hupd's
// exit code: after a stop signal, 0 if every program stopped cleanly,
// else the first non-zero code a program's supervisor returned (not one
// that ended on its own with on_exit "ignore"); after a program with
// on_exit "stop-all" ended, that program's code; when nothing is left to
// run, the first non-zero code of any program. An error means nothing was
// left running. setup.LoadMulti, when set, reads hupd.toml again: its
// edits are applied while the programs run (see fleetreconf.go);
// setup.Load and Parse are not used.
func RunMulti(m *config.ResolvedMulti, setup Setup) (int, error) {
	log := setup.Log
	// An upgrading hupd may have handed its programs over
	// (fleetupgrade.go): every error until the control socket listens
	// hands them back (fail).
	sigs, up, err := begin()
	defer signal.Stop(sigs)
	if err != nil {
		return 1, err
	}
	var (
		tk           *takeOver
		dropSentinel func()
		gcBack       = func() {}
	)
	fail := func(err error) (int, error) {
		if up != nil {
			return rollback(up, err, log, dropSentinel, setup.Thread)
		}
		return 1, err
	}
	ident := supervisor.Options{Name: m.Name, Control: m.Control, Args: m.Programs[0].Options.Args}
	explicit := m.Control != ""
	if up != nil {
		if tk, err = newTakeOver(up, m); err != nil {
			return fail(err)
		}
		name, ctl, expl, err := handedIdentity(up)
		if err != nil {
			return fail(err)
		}
		ident.Name, ident.Control, explicit = name, ctl, expl
		m.Name, m.Control = name, ctl // what runs, for edits of hupd.toml to compare with
		gcBack = pauseGC()
	}
	defaults(&ident)
	log = slog.New(log.Handler().WithAttrs(identity(ident)))
	rt, err := runtimeDir(up, ident, explicit, log)
	if err != nil {
		return fail(err)
	}
	defer rt.Close()

	f := &fleet{log: log, kick: make(chan struct{}, 1), endc: make(chan programEnd), releasedc: make(chan programReleased), cur: m, load: setup.LoadMulti, parse: setup.ParseMulti,
		reconfc: make(chan reconfRequest), exited: make(chan struct{}), ident: ident, rt: rt, setup: setup,
		upc: make(chan fleetUpgrade), checkedc: make(chan fleetUpgradeChecked, 1)}
	f.cfgData = setup.ConfigData
	if f.cfgHash = setup.ConfigHash; f.cfgHash == "" && m.ConfigFile != "" {
		f.cfgHash = watch.Hash([]string{m.ConfigFile}) // as resolved, for its edits
	}
	f.sd, f.store = notifyFleet(f), newFDStore(m.FDStore, log)
	var held []*os.File
	if tk != nil {
		if failTakeOver != "" {
			return fail(errors.New(failTakeOver))
		}
		err = tk.sockets(f, m)
	} else {
		held, err = f.listen(m, log)
	}
	if err != nil {
		return fail(err)
	}
	defer closeFiles(held)
	defer func() {
		for _, p := range f.progs {
			if !p.ran.Load() { // its supervisor never ran: the sockets are still the fleet's
				socketact.CloseAll(p.ls)
			}
		}
	}()
	// One health endpoint for every program, opened right after their
	// sockets, as with one program.
	hs, err := openHealth(m.Health, log)
	if err != nil {
		return fail(err)
	}
	if hs != nil {
		defer hs.Close()
	}

	reaper := newReaper(log)
	done := make(chan struct{})
	defer close(done)
	if tk != nil {
		tk.exits = up.Watch(reaper) // before it reaps: an exit in the exec window waits
	}
	f.cgMode = fleetCgroupMode(m)
	if up != nil && up.Cgroup != nil {
		f.cg = contain.Restore(*up.Cgroup) // the programs' cgroups are kept
		if f.cg.Enabled() {
			// Laid out by a previous image, hupd in its leaf: the mode
			// follows what was handed over, not hupd.toml (whose
			// programs may all have cgroups off by now), or a program
			// with them added later would lay them out again, from
			// inside that leaf.
			f.cgMode = contain.ModeAuto
		}
	} else {
		f.cg = setupContainment(f.cgMode, ident.Name, log)
	}
	defer func() {
		// Every generation has ended, and the sentinel (closed before)
		// has exited: each program's cgroup, then hupd's.
		for _, p := range f.progs { // the removed ones were released
			if p.cg == nil { // an early error: not built
				continue
			}
			if err := p.cg.Close(); err != nil {
				log.Warn(logev.CgroupsLeftBehind, supervisor.KeyProgram, p.spec.Name, "error", err)
			}
		}
		if err := f.cg.Close(); err != nil {
			log.Warn(logev.CgroupsLeftBehind, "error", err)
		}
	}()
	sen, fresh := startSentinel(up, reaper, log)
	reaping := false
	var keys *sentinelKeys
	if sen != nil {
		keys = &sentinelKeys{sen: sen, ids: map[[2]int]int{}}
		if tk != nil {
			tk.sentinelKeys(keys)
			if fresh {
				dropSentinel = sen.Release // before going back to a binary that does not know it
			}
		}
		defer func() {
			if reaping {
				if e, ok := sen.Close(sentinelWait); ok && !e.Success() {
					log.Warn(logev.SentinelFailedAtExit, supervisor.KeyPID, e.PID, supervisor.KeyStatus, e.String())
				}
			} else {
				sen.Close(0)
			}
		}()
	}
	self, err := os.Executable()
	if err != nil {
		log.Warn(logev.OwnBinaryUnknown, "error", err)
	}
	f.keys, f.reaper, f.self, f.hs = keys, reaper, self, hs
	for _, p := range f.progs {
		if tk != nil {
			p.cg = tk.cgroup(p)
		}
		if err := f.build(p, p.spec); err != nil {
			return fail(err)
		}
		if tk != nil {
			if err := tk.resume(p); err != nil {
				return fail(err)
			}
		}
	}
	if tk != nil {
		tk.watches(f)
		log.Info(logev.Upgraded, "programs", len(f.progs), "upgrades", up.Upgrades)
	}
	if err := f.watch(); err != nil {
		return fail(err)
	}
	defer func() {
		if f.w != nil {
			f.w.Close()
		}
	}()
	if err := f.watchConfig(m); err != nil {
		return fail(err)
	}
	defer func() {
		if f.cw != nil {
			f.cw.Close()
		}
	}()
	ctl, err := control.Listen(ident.Control, fleetHandler{f}, log)
	if err != nil {
		return fail(fmt.Errorf("control socket: %w (choose another with --name or --control)", err))
	}
	defer ctl.Close()
	f.ctl = ctl // before the loop runs
	go ctl.Serve()
	if up != nil {
		up.Close() // taken over: no going back from here
		gcBack()
	}
	log.Info(logev.ControlSocket, "path", ident.Control)
	var all []*socketact.Listener
	for _, p := range f.progs {
		for i, l := range p.ls {
			if l.Pending() {
				p.log.Info(logev.SocketToAdopt, supervisor.KeySocket, l.Spec.FDName(), "address", l.Bound.String())
				continue
			}
			p.log.Info(logev.Listening, "fd", 3+i, supervisor.KeySocket, l.Spec.FDName(), "address", l.Bound.String(), "inherited", l.Inherited)
		}
		all = append(all, p.ls...)
	}
	if setup.OnListen != nil {
		setup.OnListen(all)
	}
	if tk != nil {
		f.resumedUnderManager(tk) // READY=1 was said and the sockets stored before the upgrade
	} else {
		f.syncStore() // from here on, the sockets outlive hupd
	}
	if hs != nil {
		// Its Close, deferred, runs once f.run has returned: every
		// program's Run has then returned, and a Status call in flight
		// has its answer.
		hs.StartPrograms(f.healthPrograms())
	}
	go reaper.Run(done)
	reaping = true
	if tk != nil {
		tk.start(f) // before the loop: they ran already
		tk.applyEdited(f)
	}
	defer f.startWatchdog()()
	return f.run(sigs), nil
}

// fleetCgroupMode is the mode hupd's cgroups are set up with: off only
// when every program has them off.
func fleetCgroupMode(m *config.ResolvedMulti) contain.Mode {
	for _, p := range m.Programs {
		if p.Cgroup != contain.ModeOff {
			return contain.ModeAuto
		}
	}
	return contain.ModeOff
}

// listen opens every program's sockets: hupd's inherited ones (socket
// activation) go to the first program whose [[program.listen]] claims
// them; those no program claims are returned, held unused. A program
// without [[program.listen]] gets no socket. On an error every socket is
// closed.
func (f *fleet) listen(m *config.ResolvedMulti, log *slog.Logger) (held []*os.File, err error) {
	act, err := socketact.Files()
	if err != nil {
		return nil, err
	}
	if f.store != nil {
		f.store.inherit(act)
	}
	for i := range m.Programs {
		spec := &m.Programs[i]
		p := f.newProgram(spec)
		f.progs = append(f.progs, p)
		if len(spec.Listen) == 0 {
			continue
		}
		received := forProgram(act, spec.Name)
		set, err := socketact.Sockets(nil, act, spec.Listen, spec.ListenWhere)
		storedNames(set.Unclaimed, received)
		if err != nil {
			storedNames(act, received)
			for _, q := range f.progs {
				socketact.CloseAll(q.ls)
			}
			for _, a := range act {
				a.File.Close()
			}
			return nil, err
		}
		for _, r := range set.Reused {
			r.Apply()
		}
		p.ls, act = set.Listeners, set.Unclaimed
	}
	for _, a := range f.unclaimedStored(act) {
		log.Warn(logev.InheritedUnused, supervisor.KeySocket, a.Name, "fd", a.File.Fd())
		held = append(held, a.File)
	}
	f.link()
	return held, nil
}

// newProgram is a program of spec, not built yet.
func (f *fleet) newProgram(spec *config.ProgramSpec) *program {
	f.nextID++
	return &program{id: f.nextID, name: spec.Name, spec: spec, sigs: make(chan os.Signal, 64), log: f.log.With(supervisor.KeyProgram, spec.Name)}
}

// link points each program's after at the programs it names.
func (f *fleet) link() {
	for _, p := range f.progs {
		p.after = p.after[:0]
		for _, name := range p.spec.After {
			if i := slices.IndexFunc(f.progs, func(q *program) bool { return q.name == name }); i >= 0 {
				p.after = append(p.after, f.progs[i])
			}
		}
	}
}

// options are the supervisor.Options of program p for spec: hupd's name
// and control socket, and what the fleet shares.
func (f *fleet) options(p *program, spec *config.ProgramSpec) supervisor.Options {
	opts := spec.Options
	opts.Name, opts.Control = f.ident.Name, f.ident.Control
	opts.OutputProgram = p.name // raw lines (text logs) say whose they are
	attrs := append(identity(f.ident), slog.String(supervisor.KeyProgram, p.name))
	if rec := opts.OutputRecords; rec != nil {
		opts.OutputRecords = func(w io.Writer) slog.Handler { return rec(w).WithAttrs(attrs) }
	}
	if f.keys != nil {
		opts.Sentinel = programSentinel{keys: f.keys, prog: p.id}
	}
	opts.Thread, opts.Version, opts.Argv, opts.Self = f.setup.Thread, f.setup.Version, os.Args, f.self
	return opts
}

// build makes program p's supervisor for spec (p's, or the one it is
// about to take), with its own cgroup (kept if p has one), notify
// directory, sentinel keys and log.
func (f *fleet) build(p *program, spec *config.ProgramSpec) error {
	name := p.name
	opts := f.options(p, spec)
	if p.cg == nil {
		if spec.Cgroup == contain.ModeOff {
			p.cg = contain.Off("disabled by the cgroup setting (off)")
		} else {
			var err error
			if p.cg, err = f.cgroups().Child(name); err != nil {
				p.log.Warn(logev.ContainmentGroups, supervisor.KeyReason, p.cg.Reason())
			}
		}
	}
	sup, err := supervisor.New(opts, p.ls, f.reaper, p.log)
	if err != nil {
		return fmt.Errorf("%s: program %q: %w", spec.Where, name, err)
	}
	sup.Contain(p.cg)
	sup.UseRuntime(f.rt.ForProgram(name))
	var once sync.Once
	var obs []supervisor.Hooks
	if f.sd != nil { // first: what it says of p is current when the loop hears of p's readiness
		obs = append(obs, f.sd.hooks(p, opts))
	}
	obs = append(obs, supervisor.Hooks{Ready: func(int, int, time.Duration) {
		once.Do(func() { f.readied(p) })
	}})
	if f.hs != nil {
		obs = append(obs, f.hs.ProgramHooks(name))
	}
	sup.Observe(hooks(obs...))
	p.sup = sup
	return nil
}

// readied tells the loop that p is ready, without waiting for it: the
// loop may be waiting for p's supervisor (an Apply).
func (f *fleet) readied(p *program) {
	f.mu.Lock()
	f.readyq = append(f.readyq, p)
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// healthPrograms are the programs for the health endpoint, in start
// order: a program is asked for its status only while its supervisor runs
// (progRunning is stored before its Run is called, and its Status answers
// once Run returned), and one whose end hupd ignores (on_exit "ignore")
// is left out of /readyz of all once it ended.
func (f *fleet) healthPrograms() []health.Program {
	hp := make([]health.Program, len(f.progs))
	for i, p := range f.progs {
		hp[i] = health.Program{
			Name:   p.spec.Name,
			Source: p.sup,
			After:  p.spec.After,
			State: func() health.ProgramState {
				switch p.state.Load() {
				case progWaiting:
					return health.ProgramWaiting
				case progRunning:
					return health.ProgramRunning
				}
				return health.ProgramEnded
			},
			EndIgnored: p.spec.OnExit == config.OnExitIgnore,
		}
	}
	return hp
}

// run is the fleet's loop: it starts the programs in order, hands the
// signals out, and returns hupd's exit code once no program runs.
func (f *fleet) run(sigs <-chan os.Signal) int {
	defer close(f.exited)
	f.tellSystemd()
	f.startEligible()
	f.tellSystemd()
	for f.running() {
		var events, cfgEvents <-chan watch.Event
		if f.w != nil {
			events = f.w.Events()
		}
		if f.cw != nil {
			cfgEvents = f.cw.Events()
		}
		select {
		case ev := <-events:
			f.onWatch(ev)
		case ev := <-cfgEvents:
			f.onConfigEvent(ev)
		case req := <-f.reconfc:
			req.reply <- f.onReconf(req) // buffered
		case sig := <-sigs:
			f.onSignal(sig)
		case r := <-f.upc:
			f.upgrade(r)
		case c := <-f.checkedc:
			f.upgradeChecked(c, func() int { return len(sigs) })
		case <-f.kick:
			f.mu.Lock()
			q := f.readyq
			f.readyq = nil
			f.mu.Unlock()
			for _, p := range q {
				p.ready = true
			}
			if !f.stopping {
				f.startEligible()
			}
		case e := <-f.endc:
			f.onEnd(e)
		case r := <-f.releasedc:
			f.released(r)
		case c := <-f.pingc: // nil without a watchdog
			close(c)
		}
		f.tellSystemd()
	}
	if f.cause != nil {
		return *f.cause
	}
	if !f.stopping && f.code == 0 {
		return f.ignoredCode // nothing left to run, no stop asked for
	}
	return f.code
}

// running reports whether a program runs or may still start.
func (f *fleet) running() bool {
	return len(f.gone) > 0 || slices.ContainsFunc(f.progs, func(p *program) bool {
		st := p.state.Load()
		return st == progRunning || st == progWaiting && !f.stopping
	})
}

// startEligible starts every waiting program whose after programs have all
// been ready; one that waits for a program that ended before it was ready
// will never start.
func (f *fleet) startEligible() {
	for _, p := range f.progs {
		if p.state.Load() != progWaiting {
			continue
		}
		ok := true
		for _, q := range p.after {
			switch {
			case q.ready:
			case q.state.Load() == progEnded:
				p.state.Store(progEnded)
				p.log.Warn(logev.ProgramNotStarted, "after", q.spec.Name)
				// It never runs: its sockets close now, refusing clients
				// instead of queueing them for nobody, and leave the fd
				// store.
				socketact.CloseAll(p.ls)
				f.storeEnded()
				ok = false
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		if ok {
			f.start(p)
		} else if p.state.Load() == progWaiting && !p.saidWaiting {
			p.saidWaiting = true
			p.log.Info(logev.ProgramWaiting, "after", p.spec.After)
		}
	}
}

func (f *fleet) start(p *program) {
	p.ran.Store(true)
	p.state.Store(progRunning)
	switch {
	case p.resumed: // ProgramTakenOver said it
	case len(p.spec.After) == 0:
		p.log.Info(logev.ProgramStarting)
	default:
		p.log.Info(logev.ProgramStarting, "after", p.spec.After)
	}
	go func() {
		code, err := p.sup.Run(p.sigs)
		f.endc <- programEnd{p: p, code: code, err: err} // the loop takes it: p runs until then
	}()
}

func (f *fleet) onSignal(sig os.Signal) {
	ss, ok := sig.(syscall.Signal)
	if !ok {
		return
	}
	switch {
	case slices.Contains(signals.Stop, ss) && !f.stopping:
		f.log.Info(logev.StoppingPrograms, supervisor.KeySignal, signals.Name(ss))
		f.stopAll(ss)
	case ss == signals.Upgrade:
		f.upgrade(fleetUpgrade{})
	case ss == syscall.SIGHUP && !f.stopping:
		defer f.holdReady()()
		f.hangup()
	default: // a second stop signal is forwarded as received, to the removed programs too
		for _, p := range slices.Concat(f.progs, f.gone) {
			// While the fleet stops, only the programs asked to stop so far
			// get anything: the others must serve those after them until
			// these have ended (the reverse order).
			if p.state.Load() == progRunning && (!f.stopping || p.stopSent) {
				f.send(p, ss)
			}
		}
	}
}

// send hands sig to p's supervisor; its buffer is never full unless p is
// gone already.
func (f *fleet) send(p *program, sig os.Signal) {
	f.expectReload(p, sig)
	select {
	case p.sigs <- sig:
	default:
	}
}

// stopAll begins to stop every program with sig, in reverse start order.
func (f *fleet) stopAll(sig syscall.Signal) {
	f.stopping, f.stopSig = true, sig
	f.stopNext()
}

// stopNext asks the last running program to stop, once the programs after
// it have ended.
func (f *fleet) stopNext() {
	for _, p := range slices.Backward(f.progs) {
		if p.state.Load() != progRunning {
			continue
		}
		if !p.stopSent {
			p.stopSent = true
			p.log.Info(logev.ProgramStopping, supervisor.KeySignal, signals.Name(f.stopSig))
			f.send(p, f.stopSig)
		}
		return
	}
}

func (f *fleet) onEnd(e programEnd) {
	p := e.p
	p.state.Store(progEnded)
	if p.removed { // in gone until its release is done
		if e.err != nil {
			p.log.Error(logev.ProgramStartFailed, supervisor.KeyError, e.err)
		}
		p.log.Info(logev.ProgramRemoved, supervisor.KeyStatus, e.code)
		f.release(p)
		if f.stopping {
			f.stopNext()
		}
		return
	}
	if e.err != nil {
		p.log.Error(logev.ProgramStartFailed, supervisor.KeyError, e.err)
	}
	p.log.Info(logev.ProgramEnded, supervisor.KeyStatus, e.code)
	// A program whose end is ignored does not decide hupd's code after a
	// stop signal, unless that stop ended it; when hupd ends because
	// nothing is left to run, it does (ignoredCode).
	switch {
	case e.code == 0:
	case p.spec.OnExit != config.OnExitIgnore || f.stopping && p.stopSent:
		if f.code == 0 {
			f.code = e.code
		}
	case f.ignoredCode == 0:
		f.ignoredCode = e.code
	}
	switch {
	case f.stopping:
		f.stopNext()
	case p.spec.OnExit == config.OnExitIgnore:
		f.startEligible()
		f.storeEnded() // p's sockets, closed by its supervisor
	default:
		code := e.code
		f.cause = &code
		f.log.Info(logev.StoppingPrograms, supervisor.KeyProgram, p.spec.Name, supervisor.KeyStatus, e.code)
		f.stopAll(syscall.SIGTERM)
	}
}

// watch starts one watcher for every program's [[program.watch]] groups
// and says what each program watches. A path that several programs watch
// is in a group of each: a change reloads each of them. An error (an
// inotify limit) means nothing was started: the watcher in force, if any,
// goes on, its groups pointed at the programs as they are now (retarget);
// without one (at start: hupd exits), the error is the watcher's. Called
// again after an edit of
// hupd.toml, it keeps the watcher when the groups are the same, and a new
// one starts each group that was watched already from its last hash (a
// change made meanwhile is still seen).
func (f *fleet) watch() error {
	var watches []fleetWatch
	for _, p := range f.progs {
		for _, ws := range p.spec.Watch {
			fw := fleetWatch{prog: p, spec: ws}
			for _, old := range f.watches {
				if old.prog == p && sameWatch(old.spec, ws) {
					fw.hash = old.hash
				}
			}
			watches = append(watches, fw)
		}
	}
	if f.w != nil && slices.EqualFunc(watches, f.watches, func(a, b fleetWatch) bool { return a.prog == b.prog && sameWatch(a.spec, b.spec) }) {
		return nil
	}
	var w *watch.Watcher
	if len(watches) > 0 {
		specs := make([]watch.Group, len(watches))
		for i, fw := range watches {
			specs[i] = watch.Group{Paths: fw.spec.Paths, Debounce: fw.spec.Debounce, PollInterval: fw.spec.PollInterval, Baseline: fw.hash}
		}
		newWatcher := f.newWatcher
		if newWatcher == nil {
			newWatcher = watch.New
		}
		var err error
		if w, err = newWatcher(specs); err != nil && f.w == nil {
			return err
		} else if err != nil {
			return f.retarget(watches, err)
		}
	}
	if f.w != nil {
		f.w.Close()
	}
	f.w, f.watches = w, watches
	if w == nil {
		return nil
	}
	for i, h := range w.Hashes() {
		fw := &f.watches[i]
		if fw.hash == "" {
			fw.hash = h
		}
		p := fw.prog
		for _, mp := range watch.FileMounts(fw.spec.Paths) {
			p.log.Warn(logev.WatchMountPoint, "path", mp)
		}
		how := "inotify"
		if fw.spec.PollInterval > 0 {
			how = "poll every " + fw.spec.PollInterval.String()
		}
		p.log.Info(logev.Watching, keyPaths, fw.spec.Paths, keyAction, fw.spec.Action.String(), "how", how, keyHash, fw.hash)
	}
	return nil
}

// sameWatch reports whether a and b watch alike.
func sameWatch(a, b config.WatchSpec) bool {
	return slices.Equal(a.Paths, b.Paths) && a.Action == b.Action && a.Debounce == b.Debounce && a.PollInterval == b.PollInterval
}

// onWatch acts on a change of a watched group: its program's action, if
// the program runs and hupd is not stopping.
func (f *fleet) onWatch(ev watch.Event) {
	if ev.Group < 0 {
		f.log.Warn(logev.WatchProblem, supervisor.KeyError, ev.Err)
		return
	}
	fw := &f.watches[ev.Group]
	p := fw.prog
	if p == nil { // dropped (retarget)
		return
	}
	if ev.Err != nil {
		p.log.Warn(logev.WatchProblem, keyPaths, fw.spec.Paths, supervisor.KeyError, ev.Err)
		return
	}
	fw.hash = ev.Hash
	p.log.Info(logev.WatchedFilesChanged, keyChanged, ev.Changed, keyAction, fw.spec.Action.String(), keyHash, ev.Hash)
	if f.stopping || p.removed || p.state.Load() != progRunning {
		return
	}
	f.trigger(p, fw.spec.Action, "changed: "+names(ev.Changed))
}

// trigger asks p's supervisor for action a, without waiting: Trigger
// waits for the supervisor's loop to take it (or its end), not on the
// fleet's loop. Until it is taken, an upgrade is refused (triggers): the
// exec would lose it (and hand over the watch hash of the change it acts
// on).
func (f *fleet) trigger(p *program, a supervisor.Action, cause string) {
	f.triggers.Add(1)
	go func() {
		defer f.triggers.Add(-1)
		p.sup.Trigger(a, cause)
	}()
}

// sentinelKeys gives each (program, key) pair a sentinel registration of
// its own: the supervisors of several programs number their generations
// alike.
type sentinelKeys struct {
	sen  supervisor.Sentinel
	mu   sync.Mutex
	next int
	ids  map[[2]int]int
}

func (k *sentinelKeys) id(prog, key int, add bool) (int, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	pk := [2]int{prog, key}
	id, ok := k.ids[pk]
	switch {
	case add && !ok:
		k.next++
		id, ok = k.next, true
		k.ids[pk] = id
	case !add && ok:
		delete(k.ids, pk)
	}
	return id, ok
}

// programSentinel is the supervisor.Sentinel of one program of a fleet.
type programSentinel struct {
	keys *sentinelKeys
	prog int
}

func (s programSentinel) Register(gen, pgid, pidfd int, cgroup string) error {
	id, _ := s.keys.id(s.prog, gen, true)
	return s.keys.sen.Register(id, pgid, pidfd, cgroup)
}

func (s programSentinel) Unregister(gen int) error {
	id, ok := s.keys.id(s.prog, gen, false)
	if !ok {
		return nil
	}
	return s.keys.sen.Unregister(id)
}

// Handover is the sentinel's, hupd's one: each program's frozen state
// names it, and the upgrade hands it over once (ExecFleetUpgrade).
func (s programSentinel) Handover() (fd, pid int) { return s.keys.sen.Handover() }
