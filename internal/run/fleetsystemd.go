package run

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/sdnotify"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
)

// A fleet under a service manager (Type=notify, Type=notify-reload, the fd
// store): what systemd.go and fdstore.go do for one program, for several.

// fleetSystemd speaks for a fleet on the service manager's notify socket:
// READY=1 once every program that is to run has been ready once (one that
// ended, with on_exit "ignore" or because a program it starts after ended,
// does not hold it back); RELOADING=1 with MONOTONIC_USEC= when a reload of
// any program begins (SIGHUP, which "systemctl reload" sends to a
// notify-reload unit, says it as it hands the signal to the programs) and
// READY=1 once no reload is in flight or asked for, whatever the outcome;
// EXTEND_TIMEOUT_USEC= with the longest budget of the reloads in flight
// (reloadBudget of each program's options), a program's start budget
// until READY=1, and at the stop the sum of the running programs' stop
// timeouts (they stop one after another); STOPPING=1 when the fleet begins
// to stop; STATUS= with one short entry per program in start order
// (fleetStatus). Its hooks run on the programs' supervisors' goroutines,
// settle and expect on the fleet's loop: mu orders them.
//
// Invariant: READY=1 follows RELOADING=1 once every reload it announced
// has ended, and nothing but STATUS= follows STOPPING=1.
type fleetSystemd struct {
	sd *systemd // its notify socket and log; its own hooks are not used

	mu        sync.Mutex
	progs     map[*program]*sdProgram
	order     []*program // the loop's programs at its last settle, in start order
	ready     bool       // READY=1 sent
	reloading bool       // RELOADING=1 sent, READY=1 not yet
	held      bool       // a SIGHUP is being handed out (hold)
	stopped   bool       // STOPPING=1 sent
	status    string     // the last STATUS= line sent
}

// sdProgram is what fleetSystemd knows of one program.
type sdProgram struct {
	name     string
	opts     supervisor.Options // for the budgets (budgeted)
	gen, pid int                // serving generation, 0 if none
	starting int                // a generation started, not ready yet
	readied  bool               // a generation was ready once
	// expected: a reload was asked of it (SIGHUP) and has not begun;
	// inflight: one began (Reloading) and has not ended.
	expected, inflight bool
	budget             time.Duration // of the reload expected or in flight
	failed             bool          // its last reload failed
	waiting, ended     bool          // as the loop last said
}

// sdView is what the loop tells settle of a program.
type sdView struct {
	p                              *program
	opts                           supervisor.Options
	ready, waiting, running, ended bool
}

// notifyFleet returns the fleet's observer when hupd runs under a service
// manager that listens ($NOTIFY_SOCKET), else nil.
func notifyFleet(f *fleet) *fleetSystemd {
	n := notifier(f.log)
	if n == nil {
		return nil
	}
	return &fleetSystemd{sd: &systemd{n: n, log: f.log}, progs: map[*program]*sdProgram{}}
}

// prog is p's entry, made on first use. Call it with mu held.
func (s *fleetSystemd) prog(p *program) *sdProgram {
	st, ok := s.progs[p]
	if !ok {
		st = &sdProgram{name: p.name, opts: budgeted(p.spec.Options)}
		s.progs[p] = st
	}
	return st
}

// hooks are the supervisor hooks of program p, built with opts.
func (s *fleetSystemd) hooks(p *program, opts supervisor.Options) supervisor.Hooks {
	s.mu.Lock()
	s.prog(p).opts = budgeted(opts)
	s.mu.Unlock()
	return supervisor.Hooks{
		Started: func(gen, pid int) {
			s.mu.Lock()
			defer s.mu.Unlock()
			st := s.prog(p)
			st.starting = gen
			if !s.ready && !s.stopped {
				// Until every program was ready, each start is what takes
				// time.
				s.status = s.statusLine()
				s.sd.send(s.status, sdnotify.ExtendTimeout(st.opts.Ready.Timeout+budgetMargin))
			}
		},
		Ready: func(gen, pid int, _ time.Duration) {
			s.mu.Lock()
			defer s.mu.Unlock()
			st := s.prog(p)
			st.readied, st.starting = true, 0
			if !st.inflight { // else the reload's end says it
				st.gen, st.pid = gen, pid
			}
			s.update()
		},
		Reloading: func(strategy supervisor.Strategy, cause string) {
			s.mu.Lock()
			defer s.mu.Unlock()
			st := s.prog(p)
			st.expected, st.inflight = false, true
			st.budget = reloadBudget(st.opts, strategy)
			s.reloadBegins(fmt.Sprintf("reloading %s (%s: %s)", p.name, strategy, cause))
		},
		Reloaded: func(r supervisor.ReloadResult) {
			s.mu.Lock()
			defer s.mu.Unlock()
			st := s.prog(p)
			st.inflight = false
			st.failed = !r.OK
			if r.OK {
				st.readied = true
				if r.NewGen > 0 {
					st.gen, st.pid = r.NewGen, r.NewPID
				}
			}
			s.update()
		},
	}
}

// expect says that a reload was asked of p (SIGHUP): RELOADING=1 goes now,
// before any program's reload can end, and READY=1 waits for p's.
func (s *fleetSystemd) expect(p *program) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.prog(p)
	if st.ended {
		return
	}
	st.expected = true
	if !st.inflight {
		st.budget = reloadBudget(st.opts, st.opts.Reload)
	}
	s.reloadBegins("reloading " + p.name)
}

// reloadBegins says RELOADING=1 once READY=1 was said, or asks for the
// longest budget of the reloads in flight when one is already said. Call
// it with mu held.
func (s *fleetSystemd) reloadBegins(status string) {
	if !s.ready || s.stopped {
		return
	}
	budget := sdnotify.ExtendTimeout(s.reloadBudget())
	if s.reloading {
		s.sd.send(budget)
		return
	}
	s.reloading = true
	s.status = sdnotify.Status(status)
	s.sd.send("RELOADING=1", sdnotify.MonotonicUsec(), s.status, budget)
}

// inFlight reports whether a reload is expected or in flight, or a SIGHUP
// is being handed out. Call it with mu held.
func (s *fleetSystemd) inFlight() bool {
	if s.held {
		return true
	}
	for _, st := range s.progs {
		if st.expected || st.inflight {
			return true
		}
	}
	return false
}

// reloadInFlight reports whether the service manager was told of a
// reload (RELOADING=1) it has not seen end, or one is expected or in
// flight; false for a nil s (no service manager).
func (s *fleetSystemd) reloadInFlight() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloading || s.inFlight()
}

// reloadBudget is the longest budget of the reloads expected or in
// flight. Call it with mu held.
func (s *fleetSystemd) reloadBudget() time.Duration {
	var d time.Duration
	for _, st := range s.progs {
		switch {
		case st.expected || st.inflight:
			d = max(d, st.budget)
		case s.held && !st.ended:
			d = max(d, reloadBudget(st.opts, st.opts.Reload))
		}
	}
	return d
}

// hold begins the reload a SIGHUP asks for: RELOADING=1 goes at once, and
// READY=1 waits at least for release, once the signal was handed to every
// program it reloads (expect): a program whose reload ends first does not
// end it early.
func (s *fleetSystemd) hold() (release func()) {
	s.mu.Lock()
	s.held = true
	s.reloadBegins("reloading (SIGHUP)")
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.held = false
		s.update()
	}
}

// settle takes the loop's view of the programs (vs, in start order) and
// whether the fleet stops, and says what follows from it.
func (s *fleetSystemd) settle(vs []sdView, stopping bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.order = s.order[:0]
	var stopBudget time.Duration
	for _, v := range vs {
		st := s.prog(v.p)
		st.opts = budgeted(v.opts)
		st.waiting, st.ended = v.waiting, v.ended
		st.readied = st.readied || v.ready
		if v.ended {
			st.expected, st.inflight = false, false
		}
		if v.running {
			stopBudget += st.opts.StopTimeout
		}
		s.order = append(s.order, v.p)
	}
	for p := range s.progs {
		if !slices.Contains(s.order, p) {
			delete(s.progs, p) // removed from hupd.toml
		}
	}
	if s.stopped {
		return
	}
	if stopping {
		s.stopped = true
		s.status = sdnotify.Status("stopping")
		s.sd.send("STOPPING=1", s.status, sdnotify.ExtendTimeout(stopBudget+budgetMargin))
		return
	}
	s.update()
}

// update says READY=1 when it is due, else STATUS= when it changed. Call
// it with mu held.
func (s *fleetSystemd) update() {
	if s.stopped {
		return
	}
	if !s.ready {
		some := false
		for _, p := range s.order {
			st := s.progs[p]
			if st.ended {
				continue
			}
			if !st.readied {
				return // the start goes on: Started said so
			}
			some = true
		}
		if !some {
			return
		}
		s.ready = true
		s.status = s.statusLine()
		s.sd.send("READY=1", s.status)
		return
	}
	if s.reloading {
		if s.inFlight() {
			return
		}
		s.reloading = false
		s.status = s.statusLine()
		s.sd.send("READY=1", s.status)
		return
	}
	if line := s.statusLine(); line != s.status {
		s.status = line
		s.sd.send(line)
	}
}

// maxStatus bounds STATUS= well under what systemd takes (a datagram's
// worth); what is cut ends in "...".
const maxStatus = 480

// statusLine is the STATUS= line of the programs in start order. Call it
// with mu held.
func (s *fleetSystemd) statusLine() string {
	parts := make([]string, 0, len(s.order))
	for _, p := range s.order {
		parts = append(parts, s.progs[p].name+": "+s.progs[p].state())
	}
	return sdnotify.Status(fleetStatus(parts))
}

// fleetStatus joins the programs' entries, cut at maxStatus bytes.
func fleetStatus(parts []string) string {
	line := strings.Join(parts, "; ")
	if len(line) > maxStatus {
		line = line[:maxStatus-3] + "..."
	}
	return line
}

// state is a program's entry in STATUS=.
func (st *sdProgram) state() string {
	switch {
	case st.ended:
		return "ended"
	case st.waiting:
		return "waiting"
	case st.gen > 0:
		s := fmt.Sprintf("gen %d (pid %d)", st.gen, st.pid)
		if st.failed {
			s += ", last reload failed"
		}
		return s
	case st.starting > 0:
		return fmt.Sprintf("starting gen %d", st.starting)
	}
	return "no generation"
}

// resumed takes what a program's state handed over by an upgrade (part)
// says of it: the generation that serves (Upgrade.Serving, as one
// program's hupd takes it) and whether its last reload failed.
func (st *sdProgram) resumed(part *supervisor.Upgrade) {
	st.gen, st.pid = part.Serving()
	st.readied = st.readied || st.gen > 0
	st.failed = part.Last != nil && !part.Last.OK
}

// tellSystemd gives the service manager's observer the loop's view of the
// programs (after each of the loop's events): hupd stops once a stop
// began, or when nothing is left to run (every program ended with on_exit
// "ignore").
func (f *fleet) tellSystemd() {
	if f.sd == nil {
		return
	}
	vs := make([]sdView, 0, len(f.progs))
	for _, p := range f.progs {
		st := p.state.Load()
		vs = append(vs, sdView{p: p, opts: p.spec.Options, ready: p.ready, waiting: st == progWaiting,
			ended: st == progEnded, running: st == progRunning})
	}
	f.sd.settle(vs, f.stopping || !f.running())
}

// expectReload tells the service manager's observer that sig, sent to p,
// asks for a reload.
func (f *fleet) expectReload(p *program, sig os.Signal) {
	if f.sd != nil && sig == signals.Reload && !f.stopping && p.state.Load() == progRunning {
		f.sd.expect(p)
	}
}

// holdReady is hold when hupd speaks for the service (see hold), for the
// loop to call around the handing out of a SIGHUP.
func (f *fleet) holdReady() (release func()) {
	if f.sd == nil {
		return func() {}
	}
	return f.sd.hold()
}

// startWatchdog pings the service manager's watchdog, when it has one,
// while the fleet's loop and every running program's supervisor answer;
// the function returned stops it.
func (f *fleet) startWatchdog() (stop func()) {
	if f.sd == nil || f.sd.sd.n.Watchdog() <= 0 {
		return func() {}
	}
	f.pingc = make(chan chan struct{})
	done, running := make(chan struct{}), make(chan struct{})
	close(running) // a program's Status answers once its Run runs (answers asks only those)
	var pings sync.WaitGroup
	pings.Go(func() { f.sd.sd.watchdog(func() bool { return f.answers(done) }, running, done) })
	return func() {
		close(done)
		pings.Wait()
	}
}

// answers reports whether the fleet's loop answered and then every
// program's supervisor that runs; it blocks while one is stuck.
func (f *fleet) answers(done <-chan struct{}) bool {
	c := make(chan struct{})
	select {
	case f.pingc <- c:
	case <-f.exited:
		return false
	case <-done:
		return false
	}
	<-c
	f.mu.Lock()
	var sups []*supervisor.Supervisor
	for _, p := range f.progs {
		if p.state.Load() == progRunning {
			sups = append(sups, p.sup)
		}
	}
	f.mu.Unlock()
	for _, sup := range sups {
		sup.Status() // blocks while its loop is stuck; answers once its Run returned
	}
	return true
}

// storePrefix is the prefix of program name's sockets in the fd store:
// "NAME/" (a program's name has no '/', an FDNAME may).
func storePrefix(name string) string { return name + "/" }

// forProgram renames, in act, the sockets program name stored (under its
// storePrefix) to the names they have in its configuration, for
// socketact.Sockets to match them by name, and returns their names as
// received, for storedNames.
func forProgram(act []socketact.Activated, name string) map[*os.File]string {
	received := map[*os.File]string{}
	for i, a := range act {
		if rest, ok := strings.CutPrefix(a.Name, storePrefix(name)); ok {
			received[a.File] = a.Name
			act[i].Name = rest
		}
	}
	return received
}

// storedNames gives the sockets of act that forProgram renamed their names
// as received back.
func storedNames(act []socketact.Activated, received map[*os.File]string) {
	for i, a := range act {
		if n, ok := received[a.File]; ok {
			act[i].Name = n
		}
	}
}

// syncStore makes the fd store hold every program's sockets, each under
// its program's storePrefix.
func (f *fleet) syncStore() {
	if f.store != nil {
		f.store.syncSets(f.storeSets())
	}
}

// storeEnded takes the sockets of the programs that ended for good out of
// the fd store, while hupd goes on without them; when hupd stops, or
// exits with nothing left to run, they stay there for its next start, as
// every program's do.
func (f *fleet) storeEnded() {
	if !f.stopping && f.running() {
		f.syncStore()
	}
}

// storeSets are the sockets hupd holds for its programs, each set under
// its program's storePrefix: none of a program that ended (its supervisor
// closed them, or it never ran and the fleet did: startEligible).
func (f *fleet) storeSets() []storeSet {
	sets := make([]storeSet, 0, len(f.progs))
	for _, p := range f.progs {
		if p.state.Load() == progEnded {
			continue
		}
		sets = append(sets, storeSet{prefix: storePrefix(p.name), ls: p.ls})
	}
	return sets
}

// resumedUnderManager is what a fleet that took over from a previous image
// of hupd (an in-place upgrade, tk) must call once its programs' sockets
// are in p.ls and before its loop runs: READY=1 was said by that image (a
// reload then says RELOADING=1 at once), each program serves the
// generation that image's STATUS= named (its Ready hooks were that
// image's: STATUS= goes on naming it), and the fd store holds what that
// image stored (tk.stored: noteStored) and the sockets of a program that
// had ended, which hupd no longer holds. A sync then makes it hold what
// this image holds: nothing is sent again of what is unchanged; the
// sockets of an ended program, which that image may have left there, are
// taken out, and so are those an edit of hupd.toml made since that
// image's last check dropped or renamed, while those it added are stored.
func (f *fleet) resumedUnderManager(tk *takeOver) {
	if f.sd != nil {
		f.sd.mu.Lock()
		f.sd.ready = true
		for _, p := range f.progs {
			if part := tk.state(p.name).Part; part != nil {
				f.sd.prog(p).resumed(part)
			}
		}
		f.sd.mu.Unlock()
	}
	if f.store != nil {
		f.store.assumeEntries(tk.stored)
		for _, p := range f.progs {
			if tk.state(p.name).Part != nil {
				continue
			}
			for _, spec := range p.spec.Listen {
				if !spec.Adopt && !spec.Steer { // never stored (wantedEntry)
					f.store.held = append(f.store.held, storeEntry{name: storeName(storePrefix(p.name), spec)})
				}
			}
		}
		f.syncStore()
	}
}

// unclaimedStored closes the inherited sockets no program claimed when
// the sockets are stored (the store's first sync removes them), as with
// one program, and returns the others, to hold.
func (f *fleet) unclaimedStored(act []socketact.Activated) []socketact.Activated {
	if f.store == nil {
		return act
	}
	for _, a := range act {
		f.log.Info(logev.InheritedClosed, supervisor.KeySocket, a.Name, "fd", a.File.Fd())
		a.File.Close()
	}
	return nil
}
