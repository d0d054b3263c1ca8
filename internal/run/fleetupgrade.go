package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
	"github.com/hupd/hupd/watch"
)

// The in-place upgrade of a hupd that runs several programs: one exec for
// all of them (see supervisor/upgrade_fleet.go). In the old image the
// fleet's loop checks the new binary once, on a goroutine (upgrade), then,
// back in the loop (upgradeChecked), freezes every running program's
// supervisor in start order and execs with one state; any refusal or a
// failed exec thaws those frozen, and nothing changed. Right before the
// exec, with every program frozen, a signal waiting for the loop, an
// edit of hupd.toml or a reload being answered refuses it as well. The
// new image (takeOver, from RunMulti) takes every program over or hands
// the state back to the previous binary (rollback) until its control
// socket listens. The state carries the bytes of hupd.toml in force
// (supervisor.Upgrade.Config): the new image is resolved from them, so it
// takes over exactly what ran, and a hupd.toml saved after the last check
// is then applied as any edit (applyEdited): refused in one log line if
// invalid, programs added, removed or changed as hupd reload would. From
// an older binary, whose state lacks them, the new image reads the file
// on disk, and an edit found there reloads every program (reloadEdited).

// fleetUpgrade asks the loop for an upgrade (hupd upgrade, SIGUSR2).
type fleetUpgrade struct {
	binary string
	reply  chan<- error // nil: SIGUSR2, logged only
}

// fleetUpgradeChecked is an upgrade whose binary was checked.
type fleetUpgradeChecked struct {
	r      fleetUpgrade
	binary string
	exe    *os.File
	hash   string // hupd.toml's, in force when the check began
	err    error
}

// errUpgradeProgram: hupd upgrade names a program.
var errUpgradeProgram = errors.New("run: an upgrade re-executes hupd with every program at once: name none")

// errAnswering: a reload is in progress, or its answer being made.
var errAnswering = errors.New("a reload is in progress: try again when it is over")

// errTriggered: a watched file's change is being handed to a program's
// supervisor, which has not taken it yet.
var errTriggered = errors.New("a change of watched files is being handed to its program: try again")

// answering is errAnswering while the control server ctl handles a
// request that changes what runs or writes its answer (Answering): the
// exec would cut the answer, the client seeing EOF. Any goroutine; nil
// for a nil ctl.
func answering(ctl *control.Server) error {
	if ctl.Answering() {
		return errAnswering
	}
	return nil
}

// upgradable says why hupd cannot be upgraded now, or nil.
func (f *fleet) upgradable() error {
	switch {
	case f.stopping:
		return errors.New("hupd is stopping")
	case len(f.gone) > 0 && f.gone[0].state.Load() == progEnded:
		return fmt.Errorf("program %s, removed from hupd.toml, has ended and its cgroup is being removed: try again in a moment", f.gone[0].name)
	case len(f.gone) > 0:
		return fmt.Errorf("program %s, removed from hupd.toml, is still stopping: try again once it has ended", f.gone[0].name)
	case f.cfgErr != "":
		return fmt.Errorf("%s's last edit was refused: fix it (hupd reload applies it) or undo it, then upgrade", f.cur.ConfigFile)
	case f.reloads.Load() > 0 || f.ctl.Answering() || f.sd.reloadInFlight():
		// A hupd reload being answered (ExecReload= of a Type=notify
		// unit) may have no program's reload begun yet (hupd.toml being
		// read again), or all of them ended and its answer not written
		// (the control server counts it until then); a SIGHUP's reload
		// (systemctl reload of a notify-reload unit) waits for READY=1.
		// The exec would cut the first's answer and never say the
		// second's.
		return errAnswering
	case f.triggers.Load() > 0:
		// The supervisor takes it, and refuses its freeze while the
		// reload it begins runs.
		return errTriggered
	}
	running := false
	for _, p := range f.progs {
		switch p.state.Load() {
		case progWaiting:
			return fmt.Errorf("program %s waits for %s to be ready: try again once it runs", p.name, strings.Join(p.spec.After, ", "))
		case progRunning:
			running = true
		}
	}
	if !running {
		return errors.New("no program runs")
	}
	return nil
}

// upgrade runs in the loop: it checks the new binary on a goroutine of its
// own (the loop goes on meanwhile) and carries on at upgradeChecked.
func (f *fleet) upgrade(r fleetUpgrade) {
	f.takeReleased()
	err := f.upgradable()
	if err == nil && f.upgrading {
		err = errors.New("an upgrade is in progress")
	}
	if err != nil {
		f.upgradeFailed(r, err)
		return
	}
	// The check runs through a running program's supervisor: hupd's own
	// user, spawner and reaper.
	i := slices.IndexFunc(f.progs, func(p *program) bool { return p.state.Load() == progRunning })
	sup, hash, path := f.progs[i].sup, f.cfgHash, f.cur.ConfigFile
	f.upgrading = true
	go func() {
		binary, exe, err := sup.CheckFleetUpgrade(r.binary, func() error { return configInForce(path, hash) })
		f.checkedc <- fleetUpgradeChecked{r: r, binary: binary, exe: exe, hash: hash, err: err} // buffered: one at a time
	}()
}

// configInForce is nil when hupd.toml on disk (path, "" for none) is the
// version in force (hash): an edit not applied yet is refused (hupd reload
// first), not carried over by the upgrade; the new image is resolved from
// the version in force, which the state carries, and applies an edit
// saved after this check as any other (applyEdited).
func configInForce(path, hash string) error {
	if path != "" && watch.Hash([]string{path}) != hash {
		return errors.New(path + " is not the version in force (edited since): apply it with hupd reload, or undo the edit, then upgrade")
	}
	return nil
}

// upgradeChecked runs in the loop once the new binary was checked;
// pending is the number of signals waiting for the loop.
func (f *fleet) upgradeChecked(c fleetUpgradeChecked, pending func() int) {
	f.upgrading = false
	err := c.err
	if err == nil {
		f.takeReleased()
		err = f.upgradable() // things may have moved while the check ran
	}
	switch {
	case err != nil:
	case c.hash != f.cfgHash:
		err = errors.New("hupd.toml was applied meanwhile: try again")
	case pending() > 0:
		err = errSignalMeanwhile
	default:
		err = f.execUpgrade(c.binary, c.exe, pending)
	}
	if c.exe != nil {
		c.exe.Close()
	}
	f.upgradeFailed(c.r, err)
}

func (f *fleet) upgradeFailed(r fleetUpgrade, err error) {
	f.log.Error(logev.UpgradeFailed, supervisor.KeyError, err)
	if r.reply != nil {
		r.reply <- err
	}
}

// errSignalMeanwhile: a signal waits for the fleet's loop, which the
// exec would lose (a SIGTERM: hupd would upgrade instead of stopping).
var errSignalMeanwhile = errors.New("a signal arrived meanwhile: try again")

// execUpgrade freezes every running program and execs exe (binary) with
// the state of them all; it returns only if that could not be done, every
// program going on as it was. pending is the number of signals waiting
// for the loop.
func (f *fleet) execUpgrade(binary string, exe *os.File, pending func() int) error {
	var frozen []*supervisor.Frozen
	defer func() {
		for _, fz := range frozen {
			fz.Thaw() // only reached if the exec failed
		}
	}()
	// A program ready meanwhile, not seen by the loop yet.
	f.mu.Lock()
	for _, p := range f.readyq {
		p.ready = true
	}
	f.readyq = nil
	f.mu.Unlock()
	parts := make([]*supervisor.Upgrade, len(f.progs))
	for i, p := range f.progs {
		if p.state.Load() != progRunning {
			continue
		}
		fz, err := p.sup.FreezeForUpgrade(context.Background())
		if err != nil {
			return fmt.Errorf("program %s: %w", p.name, err)
		}
		frozen = append(frozen, fz)
		parts[i] = fz.State
	}
	// The loop was held through the freezes: a signal that arrived
	// meanwhile would die with the exec, and an edit of hupd.toml saved
	// meanwhile would be taken by the new image as the version in force,
	// never applied.
	if pending() > 0 {
		return errSignalMeanwhile
	}
	if f.reloads.Load() > 0 {
		return errAnswering
	}
	if err := answering(f.ctl); err != nil { // a request taken meanwhile
		return err
	}
	if err := configInForce(f.cur.ConfigFile, f.cfgHash); err != nil {
		return err
	}
	editBeforeExec(f.cur.ConfigFile)
	// Every program frozen: its sentinel registrations hold still.
	fl := f.upgradeState()
	for i, part := range parts {
		fl.Programs[i].Part = part
	}
	var cg *contain.State
	if f.cg != nil {
		st := f.cg.State()
		cg = &st
	}
	exec := f.execFleet
	if exec == nil {
		exec = supervisor.ExecFleetUpgrade
	}
	st := supervisor.FleetUpgradeState(frozen, cg, fl)
	st.Config = f.cfgData // what the new image resolves: the version in force
	return exec(st, binary, exe, frozen)
}

// upgradeState is the fleet's part of an upgrade's state, without the
// running programs' parts.
func (f *fleet) upgradeState() *supervisor.FleetState {
	fl := &supervisor.FleetState{NextID: f.nextID, ConfigHash: f.cfgHash, Code: f.code, IgnoredCode: f.ignoredCode}
	if f.keys != nil {
		f.keys.mu.Lock()
		fl.SentinelNext = f.keys.next
	}
	for _, p := range f.progs {
		ps := supervisor.ProgramState{Name: p.name, ID: p.id, Ended: p.state.Load() != progRunning, Ran: p.ran.Load(), Ready: p.ready}
		if f.keys != nil {
			for k, id := range f.keys.ids {
				if k[0] == p.id {
					if ps.Sentinel == nil {
						ps.Sentinel = map[int]int{}
					}
					ps.Sentinel[k[1]] = id
				}
			}
		}
		for _, fw := range f.watches {
			if fw.prog == p {
				ps.Watch = append(ps.Watch, fw.hash)
			}
		}
		fl.Programs = append(fl.Programs, ps)
	}
	if f.keys != nil {
		f.keys.mu.Unlock()
	}
	return fl
}

// takeOver is the new image's side of an upgrade, for RunMulti.
type takeOver struct {
	up    *supervisor.Upgrade
	fl    *supervisor.FleetState
	exits map[int]<-chan signals.Exit
	// others[p] are the handed-over sockets p's configuration no longer
	// names, kept while a generation uses them.
	others map[*program][]*socketact.Listener
	// edited: hupd.toml on disk, which the programs were built from, is
	// not the version in force in the previous image (saved after its
	// last check), which the state did not carry: see reloadEdited.
	edited bool
	// stored is what the previous image's fd store held of the handed-over
	// sockets (noteStored), for resumedUnderManager.
	stored []storeEntry
}

// newTakeOver checks that up, a state handed over to RunMulti, is one of
// several programs and that hupd.toml on disk has the same programs.
func newTakeOver(up *supervisor.Upgrade, m *config.ResolvedMulti) (*takeOver, error) {
	if up.Fleet == nil {
		return nil, errors.New("the previous image ran one program; hupd.toml on disk has several ([[program]]): restart hupd to run them")
	}
	var had, has []string
	for _, ps := range up.Fleet.Programs {
		had = append(had, ps.Name)
	}
	for _, p := range m.Programs {
		has = append(has, p.Name)
	}
	a, b := slices.Sorted(slices.Values(had)), slices.Sorted(slices.Values(has))
	if !slices.Equal(a, b) {
		return nil, fmt.Errorf("the previous image ran the programs %s; hupd.toml on disk has %s", strings.Join(had, ", "), strings.Join(has, ", "))
	}
	return &takeOver{up: up, fl: up.Fleet, others: map[*program][]*socketact.Listener{}}, nil
}

// state is the handed-over state of program name.
func (t *takeOver) state(name string) *supervisor.ProgramState {
	i := slices.IndexFunc(t.fl.Programs, func(ps supervisor.ProgramState) bool { return ps.Name == name })
	return &t.fl.Programs[i] // newTakeOver checked the names
}

// sockets gives each program of f the sockets its part hands over
// (takeOverSockets); an ended program gets none. f.cfgHash, hupd.toml's
// as m was read, becomes the state's unless the file was edited (edited).
// On an error the handed-over sockets are as they were, for the previous
// image.
func (t *takeOver) sockets(f *fleet, m *config.ResolvedMulti) error {
	t.noteStored()
	for i := range m.Programs {
		spec := &m.Programs[i]
		p := f.newProgram(spec)
		ps := t.state(spec.Name)
		p.id = ps.ID
		f.progs = append(f.progs, p)
		if ps.Part == nil {
			continue
		}
		ls, others, err := takeOverSockets(ps.Part, spec.Listen, spec.ListenWhere)
		if err != nil {
			return fmt.Errorf("program %s: %w", p.name, err)
		}
		p.ls, t.others[p] = ls, others
	}
	f.nextID = max(f.nextID, t.fl.NextID)
	read := f.cfgHash // of hupd.toml as m was read from it (RunMulti)
	f.cfgHash, f.code, f.ignoredCode = t.fl.ConfigHash, t.fl.Code, t.fl.IgnoredCode
	if h := read; h != "" && h != f.cfgHash {
		// Read from a file edited since the previous image's last check
		// (in the instant before its exec): what runs is now built from
		// it, and reloadEdited applies it to the generations.
		t.edited, f.cfgHash = true, h
	}
	f.link()
	return nil
}

// noteStored records in t.stored what the previous image stored of the
// sockets the state hands over: each program's configured sockets (its
// part's Listeners, not its retired ones), under its storePrefix and the
// name its configuration gave them there, in the order that image synced
// them (handedStored). Call it while the handed-over fds are all open:
// before a take-over's sockets go to the programs, which close those no
// generation uses.
func (t *takeOver) noteStored() {
	t.stored = t.stored[:0]
	for _, ps := range t.fl.Programs {
		if ps.Part != nil {
			t.stored = append(t.stored, handedStored(storePrefix(ps.Name), ps.Part.Listeners)...)
		}
	}
}

// applyEdited applies hupd.toml when it changed between the previous
// image's last check and now. With the state's bytes of the version in
// force (supervisor.Upgrade.Config), which this image was resolved from,
// a file on disk that differs is applied as an edit (f.reconfigure, as
// the watcher and hupd reload do). Without them (an older binary), see
// reloadEdited. Call it once the programs run (start), before the loop.
func (t *takeOver) applyEdited(f *fleet) {
	if t.up.Config == nil {
		t.reloadEdited(f)
		return
	}
	if path := f.cur.ConfigFile; path == "" || watch.Hash([]string{path}) == f.cfgHash {
		return
	}
	f.log.Warn(logev.ConfigChangedDuringUpgrade, keyHash, f.cfgHash)
	f.reconfigure("hupd.toml changed during the upgrade") // its error is logged
}

// reloadEdited applies hupd.toml, when it was edited in the instant
// between the previous image's last check and this image's read of it
// (edited), to the generations taken over, when the state did not carry
// the version in force (from an older binary): every running program,
// built from the file as edited (options, sockets: as an edit of hupd.toml
// would), reloads, so that nothing of the edit is recorded as applied
// but not applied.
func (t *takeOver) reloadEdited(f *fleet) {
	if !t.edited {
		return
	}
	f.log.Warn(logev.ConfigEditedDuringUpgrade, keyHash, f.cfgHash)
	for _, p := range f.progs {
		if p.resumed {
			f.trigger(p, supervisor.ActionReload, "hupd.toml edited during the upgrade")
		}
	}
}

// sentinelKeys are the sentinel registrations of every program's keys
// the state hands over, for the sentinel taken over.
func (t *takeOver) sentinelKeys(keys *sentinelKeys) {
	keys.next = max(keys.next, t.fl.SentinelNext)
	for _, ps := range t.fl.Programs {
		for k, id := range ps.Sentinel {
			keys.ids[[2]int{ps.ID, k}] = id
		}
	}
}

// cgroup is program p's cgroup as handed over, nil if none was. A
// program's is always a child Manager (contain.Manager.Child): an image
// from before State.Child did not say so, and its Close would then move
// hupd back and spare the program's own directory.
func (t *takeOver) cgroup(p *program) *contain.Manager {
	ps := t.state(p.name)
	if ps.Part == nil || ps.Part.Cgroup == nil {
		return nil
	}
	st := *ps.Part.Cgroup
	if st.Base != "" { // enabled, not in the fallback
		st.Child = true
	}
	return contain.Restore(st)
}

// resume makes program p's supervisor (built) take over its generations,
// or keeps p ended as it was.
func (t *takeOver) resume(p *program) error {
	ps := t.state(p.name)
	p.ready = ps.Ready
	if ps.Part == nil {
		p.state.Store(progEnded)
		p.ran.Store(ps.Ran)
		if ps.Ran {
			p.sup.Ended() // its status answers as an ended one's
		}
		p.log.Info(logev.ProgramStaysEnded)
		return nil
	}
	if err := p.sup.Resume(ps.Part, t.others[p], t.exits); err != nil {
		return fmt.Errorf("program %s: %w", p.name, err)
	}
	// Running already: the control socket and the health endpoint, which
	// answer before the loop starts it (start), ask its supervisor, whose
	// Run answers once it runs, instead of saying it waits.
	p.resumed = true
	p.ran.Store(true)
	p.state.Store(progRunning)
	p.log.Info(logev.ProgramTakenOver, "generations", len(ps.Part.Gens), "upgrades", ps.Part.Upgrades)
	return nil
}

// watches are the hashes the programs' watch groups had, for f.watch to
// start from: a change made during the upgrade is still seen.
func (t *takeOver) watches(f *fleet) {
	for _, p := range f.progs {
		hashes := t.state(p.name).Watch
		for i, ws := range p.spec.Watch {
			if i < len(hashes) {
				f.watches = append(f.watches, fleetWatch{prog: p, spec: ws, hash: hashes[i]})
			}
		}
	}
}

// start runs every program that was running, without waiting for the
// programs it starts after: it ran already.
func (t *takeOver) start(f *fleet) {
	for _, p := range f.progs {
		if p.resumed {
			f.start(p)
		}
	}
}
