// Package run wires hupd's parts together for "hupd run": it takes over
// inherited sockets, opens the others (and keeps them in the service
// manager's fd store when there is one: see fdStore), sets up signal
// intake and the reaper, and runs the supervisor. With several programs
// ([[program]] tables), RunMulti runs one supervisor per program, sharing
// what Run sets up once (see fleet).
package run

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/health"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
)

// Setup is what Run needs besides the configuration.
type Setup struct {
	Log *slog.Logger
	// Level is the Log's level, set again when hupd.toml changes it.
	Level *slog.LevelVar
	// Load reads hupd.toml and the command-line flags again (nil: there is
	// no hupd.toml). Its edits are applied while hupd runs: see reconf.
	Load func() (*config.Resolved, error)
	// Parse resolves a hupd.toml's content like Load, as if hupd.toml held
	// it (hupd plan); nil without hupd.toml.
	Parse func(data []byte) (*config.Resolved, error)
	// LoadMulti reads hupd.toml and the command-line flags again for a
	// hupd that runs several programs (RunMulti; nil: there is no
	// hupd.toml): its edits are applied while hupd runs (see fleet).
	LoadMulti func() (*config.ResolvedMulti, error)
	// ParseMulti resolves a hupd.toml's content like LoadMulti, as if
	// hupd.toml held it: hupd.toml's edits are read once and the bytes
	// parsed are the bytes hashed, and hupd plan plans a client's file
	// (nil: LoadMulti reads the file itself).
	ParseMulti func(data []byte) (*config.ResolvedMulti, error)
	// ConfigHash is the hash (watch.HashData) of the bytes of hupd.toml
	// that Run's or RunMulti's configuration was resolved from; "":
	// hupd.toml is hashed as on disk when it starts.
	ConfigHash string
	// ConfigData are those bytes (nil: none): an upgrade hands them to
	// the new image (supervisor.Upgrade.Config), which resolves its
	// configuration from them.
	ConfigData []byte
	// OnListen, when not nil, is called with the bound sockets before the
	// first child starts.
	OnListen func([]*socketact.Listener)
	// Version is hupd's version, for status (supervisor.Options.Version).
	Version string
	// Thread runs a function on the thread that forks the children and
	// execs an upgrade (main: mainthread.Do; nil: the supervisor's own
	// locked thread). See supervisor.Options.Thread.
	Thread func(func())
}

// Run supervises the resolved configuration until hupd should exit and
// returns hupd's exit code. An error means nothing was left running: every
// socket opened here is closed and its file removed.
func Run(r *config.Resolved, setup Setup) (int, error) {
	log := setup.Log
	if setup.Level == nil {
		setup.Level = new(slog.LevelVar)
		setup.Level.Set(r.LogLevel)
	}
	sigs, up, err := begin()
	defer signal.Stop(sigs)
	if err != nil {
		return 1, err
	}
	// goBack hands an upgrade's generations back to the previous binary
	// when this image cannot take them over.
	goBack := func(why error, drop func()) (int, error) { return rollback(up, why, log, drop, setup.Thread) }
	opts := r.Options
	explicit := opts.Control != ""
	if up != nil && up.Fleet != nil {
		return goBack(errors.New("the previous image ran several programs ([[program]]); hupd.toml on disk has one: restart hupd to run it"), nil)
	}
	if up != nil {
		// The name and control socket hupd runs under are kept, whatever
		// this binary's command line would give today.
		name, ctl, expl, err := handedIdentity(up)
		if err != nil {
			return goBack(err, nil)
		}
		opts.Name, opts.Control, explicit = name, ctl, expl
		// What runs, for edits of hupd.toml to compare with.
		r.Options.Name, r.Options.Control = name, ctl
	}
	defaults(&opts)
	log = slog.New(log.Handler().WithAttrs(identity(opts)))
	if rec := opts.OutputRecords; rec != nil {
		opts.OutputRecords = func(w io.Writer) slog.Handler { return rec(w).WithAttrs(identity(opts)) }
	}
	// The runtime directory first: a second hupd of the same name fails
	// here, before it opens anything.
	rt, err := runtimeDir(up, opts, explicit, log)
	if err != nil {
		if up != nil {
			return goBack(err, nil)
		}
		return 1, err
	}
	defer rt.Close() // only at a clean exit: an upgrade's exec never gets here
	var (
		ls, others []*socketact.Listener
		held       []*os.File
		gcBack     = func() {}
		store      = newFDStore(r.FDStore, log) // nil: nothing is stored
	)
	if up != nil {
		gcBack = pauseGC()
		if failTakeOver != "" {
			return goBack(errors.New(failTakeOver), nil)
		}
		if ls, others, err = takeOverSockets(up, r.Listen, r.ListenWhere); err != nil {
			return goBack(err, nil)
		}
		if store != nil {
			// What the previous image stored: the sync once taken over
			// sends nothing again but what an edit of hupd.toml since
			// its last check changed.
			store.resumed(up.Listeners)
		}
	} else if ls, held, err = listeners(r.Listen, r.ListenWhere, store, log); err != nil {
		return 1, err
	}
	defer closeFiles(held)
	hs, err := openHealth(r.Health, log)
	if err != nil {
		if up != nil {
			return goBack(err, nil)
		}
		socketact.CloseAll(ls)
		return 1, err
	}
	if hs != nil {
		defer hs.Close()
	}
	rc, err := newReconf(r, setup.Load, setup.ConfigHash, setup.ConfigData, log, setup.Level)
	if err != nil {
		if up != nil {
			return goBack(err, nil)
		}
		socketact.CloseAll(ls)
		return 1, err
	}
	rc.store = store
	rc.parse = setup.Parse
	if len(r.Listen) == 0 {
		for _, l := range ls {
			rc.received = append(rc.received, l.Spec)
		}
	}
	if len(r.Watch) > 0 {
		// The first scan read every watched file: return what it used.
		debug.FreeOSMemory()
	}
	// The sockets are Run's to close until the supervisor runs; then they
	// are its own (it closes them, and every socket a later configuration
	// brought, when it returns).
	supervised := false
	defer func() {
		if !supervised {
			socketact.CloseAll(ls)
		}
	}()
	defer rc.stop()

	reaper := newReaper(log)
	done := make(chan struct{})
	defer close(done)
	var exits map[int]<-chan signals.Exit
	if up != nil {
		exits = up.Watch(reaper) // before it reaps: an exit in the exec window waits
	}
	// A fresh start lays out its cgroups first: hupd moves into its own
	// leaf (base/supervisor), and the sentinel started next shares it
	// instead of staying an internal process of base's parent. The
	// generations an upgrade hands over keep their cgroups (below).
	var cg *contain.Manager
	defer func() {
		// Last (deferred before the sentinel's close): every generation
		// has ended by then, and the sentinel, which shares hupd's leaf,
		// has exited (see contain.Close).
		if cg == nil {
			return
		}
		if err := cg.Close(); err != nil {
			log.Warn(logev.CgroupsLeftBehind, "error", err)
		}
	}()
	if up == nil {
		cg = setupContainment(r.Cgroup, opts.Name, log)
	}
	// Before any generation starts; closed (and waited for) before the
	// reaper stops (done), once every generation is gone.
	sen, fresh := startSentinel(up, reaper, log)
	var dropSentinel func() // before going back to a binary that does not know it
	reaping := false        // the reaper runs: the sentinel's exit can be waited for
	if sen != nil {
		defer func() {
			if reaping {
				if e, ok := sen.Close(sentinelWait); ok && !e.Success() {
					log.Warn(logev.SentinelFailedAtExit, supervisor.KeyPID, e.PID, supervisor.KeyStatus, e.String())
				}
			} else {
				sen.Close(0) // an early error: it exits; nothing would reap it before hupd does
			}
		}()
		if fresh && up != nil {
			dropSentinel = sen.Release
		}
	}
	// The reaper starts once nothing can go back to the previous binary
	// (below): an exit it collected here would be lost to that one.

	if sen != nil {
		opts.Sentinel = sen
	}
	opts.Thread, opts.Version, opts.Argv = setup.Thread, setup.Version, os.Args
	if opts.Self, err = os.Executable(); err != nil {
		log.Warn(logev.OwnBinaryUnknown, "error", err)
	}
	sup, err := supervisor.New(opts, ls, reaper, log)
	if err != nil {
		if up != nil {
			return goBack(err, dropSentinel)
		}
		return 1, err
	}
	// The generations an upgrade hands over keep their cgroups; a hupd
	// upgraded from one without cgroups lays them out below, once nothing
	// can go back.
	if up != nil && up.Cgroup != nil {
		cg = contain.Restore(*up.Cgroup)
	}
	if cg != nil {
		sup.Contain(cg)
	}
	if up != nil {
		if err := sup.Resume(up, others, exits); err != nil {
			return goBack(err, dropSentinel)
		}
		log.Info(logev.Upgraded, "generations", len(up.Gens), "upgrades", up.Upgrades)
	}
	sup.UseRuntime(rt)
	rc.sup = sup
	sup.Preset(rc.note())
	var observers []supervisor.Hooks
	running := make(chan struct{}) // closed once nothing can fail before sup.Run
	if sd := notifySystemd(opts, log); sd != nil {
		if up != nil { // READY=1 was said before the upgrade
			sd.resumed(up)
		}
		observers = append(observers, sd.hooks())
		stop := make(chan struct{})
		var pings sync.WaitGroup
		if sd.n.Watchdog() > 0 {
			pings.Go(func() { sd.watchdog(func() bool { sup.Status(); return true }, running, stop) })
		}
		defer func() {
			close(stop)
			pings.Wait() // Run has returned: Status no longer blocks
		}()
	}
	if hs != nil {
		observers = append(observers, hs.Hooks())
	}
	sup.Observe(hooks(observers...))
	if r.ConfigFile != "" {
		sup.SetUpgradeGuard(rc.upgradeGuard(r.ConfigFile))
	}
	ctl, err := control.Listen(opts.Control, controlHandler{sup, rc}, log)
	if err != nil {
		err = fmt.Errorf("control socket: %w (choose another with --name or --control)", err)
		if up != nil {
			return goBack(err, dropSentinel)
		}
		return 1, err
	}
	defer ctl.Close()
	sup.SetExecGuard(rc.execGuard(ctl, r.ConfigFile))
	sup.SetUpgradeConfig(rc.inForceData)
	go ctl.Serve()
	if up != nil {
		up.Close() // taken over: no going back from here
		gcBack()
	}
	log.Info(logev.ControlSocket, "path", opts.Control)
	for i, l := range ls {
		if l.Pending() {
			log.Info(logev.SocketToAdopt, supervisor.KeySocket, l.Spec.FDName(), "address", l.Bound.String())
			continue
		}
		log.Info(logev.Listening, "fd", 3+i, supervisor.KeySocket, l.Spec.FDName(), "address", l.Bound.String(), "inherited", l.Inherited)
	}
	if setup.OnListen != nil {
		setup.OnListen(ls)
	}
	if store != nil {
		store.sync(ls) // from here on, the sockets outlive hupd
	}
	if cg == nil { // upgraded from a hupd without cgroups
		cg = setupContainment(r.Cgroup, opts.Name, log)
		sup.Contain(cg)
	}
	rc.start()
	if up != nil && up.Config != nil {
		// Resolved from the version in force in the previous image: the
		// file on disk, if saved since its last check, is an edit.
		rc.appliedEdited()
	}
	if hs != nil {
		hs.Start(sup) // no error return is left before sup.Run, which answers its requests
	}
	go reaper.Run(done) // before any child is started (sup.Run)
	reaping = true
	close(running)
	supervised = true
	if setup.Load == nil {
		return sup.Run(sigs)
	}
	// SIGHUP reads hupd.toml again before it reloads, as hupd reload does.
	supSigs := make(chan os.Signal, cap(sigs))
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == signals.Reload {
					rc.hangup()
					continue
				}
				select {
				case supSigs <- sig:
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	return sup.Run(supSigs)
}

// begin is how Run and RunMulti start: hupd's GC target, the signal
// intake (first: a TERM that arrives while sockets open is not lost; the
// caller stops it), and the state an upgrading hupd handed over, if any
// (nil: a fresh start).
func begin() (chan os.Signal, *supervisor.Upgrade, error) {
	// hupd's live heap is well under a megabyte: a low GC target keeps
	// its footprint small (measured: RSS after 100 back-to-back reloads
	// 9.0 MB instead of 11.9) at a cost of microseconds per collection.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	sigs := make(chan os.Signal, 64)
	signals.Intake(sigs)
	up, err := supervisor.TakeUpgrade(os.Args)
	if err != nil {
		return sigs, nil, fmt.Errorf("upgrade: %w", err)
	}
	return sigs, up, nil
}

// handedIdentity is the name and control socket path hupd ran under
// before the upgrade up, which the new image keeps whatever its command
// line would give today, and whether that path was given explicitly.
func handedIdentity(up *supervisor.Upgrade) (name, ctl string, explicit bool, err error) {
	name, ctl, derived, err := up.Identity()
	if err != nil {
		return "", "", false, err
	}
	return name, ctl, up.ControlExplicit || derived && ctl != control.DefaultPath(name), nil
}

// pauseGC stops the GC until an upgrade's state is taken over (a
// finalizer would close the fds of objects a failed take-over drops,
// which the previous binary needs back); the returned function restores it.
func pauseGC() func() {
	gc := debug.SetGCPercent(-1)
	return func() { debug.SetGCPercent(gc) }
}

// newReaper makes hupd the subreaper of its descendants' orphans (PID 1
// is already) and returns the one reaper of the process, which logs the
// orphans it reaps; the caller runs it.
func newReaper(log *slog.Logger) *signals.Reaper {
	if err := signals.BecomeSubreaper(); err != nil {
		log.Warn(logev.SubreaperFailed, "error", err)
	}
	return &signals.Reaper{Orphans: true, Orphan: func(e signals.Exit) {
		log.Debug(logev.OrphanReaped, supervisor.KeyPID, e.PID, supervisor.KeyStatus, e.String())
	}}
}

// setupContainment lays out the cgroups of the generations (package
// contain), or says in one line why they are process groups.
func setupContainment(mode contain.Mode, name string, log *slog.Logger) *contain.Manager {
	cg, cleaned := contain.Setup(contain.Options{Name: name, Mode: mode})
	for _, c := range cleaned {
		log.Warn(logev.StaleCgroupRemoved, "cgroup", c.Path, "killed", c.Killed)
	}
	if cg.Enabled() {
		log.Info(logev.ContainmentCgroup, "cgroup", cg.Base())
	} else {
		log.Info(logev.ContainmentGroups, supervisor.KeyReason, cg.Reason())
	}
	return cg
}

// identity is the one place that says which service a record is about:
// every record hupd writes carries these attributes, its own and (JSON
// logs) its children's output lines; the program's name and instance join
// them when hupd runs several.
func identity(o supervisor.Options) []slog.Attr {
	return []slog.Attr{slog.String(supervisor.KeyName, o.Name)}
}

// defaults fills the name and control socket path the way hupd run does.
func defaults(o *supervisor.Options) {
	if o.Name == "" {
		o.Name = filepath.Base(o.Args[0])
	}
	if o.Control == "" {
		o.Control = control.DefaultPath(o.Name)
	}
}

// runtimeDir opens and locks hupd's runtime directory, or takes over the
// one an upgrading hupd held.
func runtimeDir(up *supervisor.Upgrade, opts supervisor.Options, explicit bool, log *slog.Logger) (*supervisor.Runtime, error) {
	if up != nil {
		return supervisor.AdoptRuntime(opts.Name, opts.Control, explicit, up.Lock, log)
	}
	return supervisor.OpenRuntime(opts.Name, opts.Control, explicit, log)
}

// listeners takes over the sockets hupd was activated with and opens the
// rest (socketact.Sockets). Without --listen, every inherited socket is
// passed on as received. Inherited sockets no spec claims are held open,
// never closed early; with an fd store, they are closed (the manager holds
// them, and the store's first sync removes them from the store). where[i],
// when present, prefixes an error opening specs[i]. On an error every
// inherited socket is closed too: hupd exits.
func listeners(specs []socketact.Spec, where []string, store *fdStore, log *slog.Logger) (ls []*socketact.Listener, held []*os.File, err error) {
	act, err := socketact.Files()
	if err != nil {
		return nil, nil, err
	}
	if store != nil {
		store.inherit(act)
	}
	set, err := socketact.Sockets(nil, act, specs, where)
	if err != nil {
		for _, a := range act {
			a.File.Close()
		}
		return nil, nil, err
	}
	for _, r := range set.Reused {
		r.Apply() // an inherited socket: O_NONBLOCK if asked, no error
	}
	for _, a := range set.Unclaimed {
		if store != nil {
			log.Info(logev.InheritedClosed, supervisor.KeySocket, a.Name, "fd", a.File.Fd())
			a.File.Close()
			continue
		}
		log.Warn(logev.InheritedUnused, supervisor.KeySocket, a.Name, "fd", a.File.Fd())
		held = append(held, a.File)
	}
	return set.Listeners, held, nil
}

// openHealth opens hupd's own health and metrics endpoint, if configured,
// right after the [[listen]] sockets: a port in use fails hupd before
// anything runs or is logged (exit 1, as a [[listen]] port in use). Nil
// when it is off.
func openHealth(h config.HealthSpec, log *slog.Logger) (*health.Server, error) {
	if h.Address == "" {
		return nil, nil
	}
	hs, err := health.Listen(health.Options{Address: h.Address, Failures: h.Failures, Log: log})
	if err != nil {
		return nil, fmt.Errorf("%s: health.address = %q: %w", h.Where, h.Address, err)
	}
	log.Info(logev.HealthEndpoint, "address", hs.Addr().String(), "failures", h.Failures)
	return hs, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
