package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// Log keys.
const (
	KeyGen     = "gen"
	KeyPID     = "pid"
	KeyInst    = "instance" // the instance's index (Options.Instances)
	KeyTID     = "tid"      // a thread of the process KeyPID names
	KeyOldGen  = "old_gen"
	KeyOldPID  = "old_pid"
	KeyStatus  = "status"
	KeySignal  = "signal"
	KeyDelay   = "delay"
	KeyAfter   = "after"
	KeyRan     = "ran"
	KeyError   = "error"
	KeyTimeout = "timeout"
	KeyRestart = "restart"
	KeyReason  = "reason"
	KeyReady   = "ready"
	KeyOK      = "ok"
	KeyTook    = "took"
	KeyStrat   = "strategy"
	KeyCause   = "cause"
	KeyCgroup  = "cgroup"
	KeyUID     = "uid"
	KeyPath    = "path"
	// The start limit (StartLimit): the limit, the failures counted in
	// its window, and the code hupd exits with when it gives up.
	KeyLimit    = "limit"
	KeyFailures = "failures"
	KeyExitCode = "exit_code"
	// KeyQueued: what waits in a steered socket (socketact.Group.Queued).
	KeyQueued = "queued"
)

// Supervisor runs one program as successive generations. Run owns all
// state; Reload and Status talk to it over channels and may be called from
// any goroutine.
type Supervisor struct {
	opts      Options
	log       *slog.Logger
	reaper    *signals.Reaper
	listeners []*socketact.Listener
	self      int // hupd's PID: never a member of a generation (a field for tests)

	events chan event
	reqs   chan request
	quit   chan struct{} // closed when Run returns

	cg      *contain.Manager // set before Run; its methods are safe anywhere
	book    logbook          // the generations' last output lines; safe anywhere
	helpers helperGroups     // the helpers' process groups; safe anywhere

	// Owned by Run.
	sp        Spawner
	rt        *Runtime // nil: notify sockets in a hupd-notify-* temp dir
	notifyDir string
	// oldNotifyDirs were notifyDir before a change of the children's user
	// needed another; removed when Run returns.
	oldNotifyDirs []string
	gens          []*generation // oldest first; exited ones are removed
	// sets are the generations by number (genSet), oldest first: those
	// with a live instance or an instance restart due.
	sets     []*genSet
	nextGen  int
	stopping bool
	stopCode *int // exit code of the generation that was serving at stop
	// stopCurrent is the generation that was serving when the stop began
	// (one of its instances).
	stopCurrent *generation
	tx          *reloadTx
	queued      []chan<- ReloadResult // waiters of the reload after tx
	queuedAny   bool
	queuedPlan  plan // what the queued reload does: requests merged
	last        *ReloadResult
	reloads     int
	restarts    int
	upgrades    int  // in-place upgrades this process has been through
	upgrading   bool // an upgrade's new binary is being checked
	sigs        <-chan os.Signal
	// upgradeGuard is checked before an upgrade's exec (SetUpgradeGuard).
	upgradeGuard func() error
	resumed      bool // the generations came from an upgrade (Resume)
	rolledBack   bool // ... handed back by the new binary (Upgrade.RolledBack)
	failures     int  // crashes in a row, for the backoff
	lastExit     signals.Exit
	startFails   startWindow // failed starts, for the start limit
	restartT     *time.Timer
	restartSeq   int      // which arming of restartT is current
	notified     bool     // some generation has spoken sd_notify
	standby      *standby // shim started ahead for the next generation
	// standbyLost: a standby died unused; none is started again until a
	// generation has started (cold), so that a failing one cannot loop.
	standbyLost bool
	trimT       *time.Timer // gives memory back once things settle
	// retired are sockets a new configuration no longer lists; each is
	// closed once no generation uses it. With listeners, they are every
	// socket hupd holds (see Apply).
	retired []*socketact.Listener
	// awayAt: when each steered member stopped being its group's target
	// (steer.go).
	awayAt map[*os.File]time.Time
	// left are sockets that left their steering group (a program shut
	// them down): each is closed once no generation holds it (steer.go).
	left []*socketact.Listener
	// held is what publishHeld records: the configured addresses of
	// listeners and retired, for Apply's caller (any goroutine).
	held  atomic.Pointer[[]socketact.Address]
	hash  string // content hash of the configuration and watched files
	note  Note
	hooks Hooks

	// fileInstances is the number of instances the configuration asks
	// for (New's, then Apply's): an Apply that leaves it as it was keeps
	// what Scale set.
	fileInstances int
	// wantInstances: an edit of instances waits for the reload or scale
	// in progress to end (scaleWhenFree); 0: none waits.
	wantInstances int

	// ownBindHinted: the own-bind hint was logged (hintOwnBind), once.
	ownBindHinted bool

	// execGuard is checked right before an upgrade's exec (SetExecGuard).
	execGuard func() error
	// upgradeConfig gives hupd.toml's content in force at an upgrade's
	// exec (SetUpgradeConfig).
	upgradeConfig func() []byte
}

// Hooks are told what happens, on Run's goroutine: each must return
// quickly and must not call back into the Supervisor. Any may be nil.
type Hooks struct {
	// Started: generation gen's process started (a restart after a crash
	// too, or the new generation of a reload).
	Started func(gen, pid int)
	// Ready: generation gen became ready, after its start.
	Ready func(gen, pid int, after time.Duration)
	// Reloading: a reload began.
	Reloading func(strategy Strategy, cause string)
	// Reloaded: a reload ended, well or not.
	Reloaded func(ReloadResult)
	// Stopping: hupd began to stop every generation (a signal, or the
	// restart policy gave up).
	Stopping func()
}

// UseRuntime puts hupd's runtime files (the notify sockets) in rt's
// directory (see OpenRuntime) and hands its lock over at an upgrade; call
// it before Run. Without it, the notify sockets go to a hupd-notify-*
// directory in the temp dir.
func (s *Supervisor) UseRuntime(rt *Runtime) { s.rt = rt }

// makeNotifyDir makes the notify sockets' directory for children that
// run as uid and gid.
func (s *Supervisor) makeNotifyDir(uid, gid int) (string, error) {
	if s.rt == nil {
		return socketact.NotifyDir("", uid)
	}
	return s.rt.notifyDir(uid, gid)
}

// Observe sets the hooks; call it before Run.
func (s *Supervisor) Observe(h Hooks) { s.hooks = h }

type evKind int

const (
	evExit evKind = iota
	evNotify
	evReadyTimeout
	evReadyWarn
	evDelay
	evProbeOK
	evListening // every socket listened on (bind redirection)
	evDrainTimeout
	evCheckDone
	evRestart
	evAckTimeout
	evReloadTimeout
	evWatchdog
	evTrim
	evUpgradeChecked
	evMainGone // the MAINPID= process (exit.PID) exited before being followed
	evQueuePoll
	evSettleEnd
	evGroupPoll
	evInstRestart // an instance's restart is due (set, inst, seq)
)

type event struct {
	kind evKind
	gen  *generation
	exit signals.Exit
	msg  socketact.NotifyMessage
	tx   *reloadTx
	err  error
	out  string
	at   time.Time // when a notify datagram arrived
	main mainVet   // evNotify: its MAINPID= as the reader vetted it
	ref  *procRef  // evExit: the process that exited
	seq  int       // evRestart, evWatchdog, evInstRestart: which arming of the timer fired
	// evInstRestart: the generation and the instance to restart.
	set  *genSet
	inst int
	// evUpgradeChecked: the upgrade whose new binary was checked (err).
	upgrade *upgradeRequest
}

// statusReply is a status snapshot and each generation's group, for the
// caller to sample outside Run's goroutine.
type statusReply struct {
	st     Status
	groups []*contain.Group
	// inst: each generation's instances' groups, by Instances (nil for a
	// generation of one).
	inst [][]*contain.Group
}

type request struct {
	reload chan<- ReloadResult // nil: fire and forget
	status chan<- statusReply
	async  bool
	action Action
	cause  string
	apply  *applyRequest
	plan   *planRequest
	note   *Note
	// upgrade asks for an in-place upgrade (Upgrade, SIGUSR2).
	upgrade *upgradeRequest
	// freeze holds Run's goroutine still for a fleet's upgrade
	// (FreezeForUpgrade).
	freeze *freezeRequest
	// rollback asks for the settling generation back (Rollback).
	rollback chan<- ReloadResult
	// scale asks for another number of instances (Scale).
	scale *scaleRequest
	// probe runs on Run's goroutine: unit tests look at its state.
	probe func()
}

// plan is what a reload does, once requests are resolved against the
// configuration and merged.
type plan struct {
	strategy Strategy
	signals  []syscall.Signal // StrategySignal: relayed in order
	causes   []string
}

// reloadTx is the reload in progress.
type reloadTx struct {
	strategy Strategy
	signals  []syscall.Signal
	cause    string
	hash     string // content hash when it started
	started  time.Time
	waiters  []chan<- ReloadResult
	old      *generation // serving when the reload began; may be nil
	new      *generation // the generation being started (swap, restart)
	// oldSet is old's generation (its instances); nil when old is.
	oldSet *genSet
	// A rolling swap (Options.Rolling): the instances of the new
	// generation started so far (0..rollNext-1), and the old generation's
	// instances stopped so far, by index (started again if it fails).
	rolling  int
	rollNext int
	rolled   []int
	// The signal strategy: instances that answered RELOADING=1 and have
	// not yet said READY=1, and how many that speak sd_notify may still
	// answer RELOADING=1 within the ack window.
	awaitReady map[*generation]bool
	awaitAck   int
	relT       *time.Timer // the wait for READY=1 after RELOADING=1
	// failed: the new generation's instance that failed the reload.
	failed    *generation
	checking  bool
	waitOld   bool // restart: waiting for old to exit before starting new
	signalled bool // signal: the reload signal was sent
	reloading bool // signal: RELOADING=1 seen
	ackT      *time.Timer
	handover  time.Duration // READY=1 arrival to the old generation's stop signal
	strays    int           // new generations killed by a stray signal before they were ready
}

// strayStartRetries bounds how often a reload starts another generation
// after one was killed by a stray signal before it was ready.
const strayStartRetries = 3

// New returns a supervisor for opts that hands ls to every generation and
// starts children through r. log may be nil. Run owns ls, and closes them
// (and every socket a later configuration brought) when it returns; until
// Run is called they are the caller's to close.
func New(opts Options, ls []*socketact.Listener, r *signals.Reaper, log *slog.Logger) (*Supervisor, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		opts: opts.withDefaults(len(ls)), log: log, reaper: r, listeners: ls, cg: contain.Off("no containment set up"),
		self: os.Getpid(), awayAt: map[*os.File]time.Time{},
		events: make(chan event, 64), reqs: make(chan request), quit: make(chan struct{}),
	}
	s.fileInstances = s.opts.Instances
	s.publishHeld()
	return s, nil
}

// post hands an event to Run; it never blocks once Run has returned.
func (s *Supervisor) post(ev event) {
	select {
	case s.events <- ev:
	case <-s.quit:
	}
}

// Reload asks for a reload and waits for its result, or until ctx ends. A
// reload requested while one runs is coalesced: when the running one ends,
// at most one more runs, for every request that arrived meanwhile.
func (s *Supervisor) Reload(ctx context.Context) ReloadResult {
	return s.Do(ctx, ActionReload, "hupd reload")
}

// Do is Reload for action a; cause says what asked for it (logs, status).
func (s *Supervisor) Do(ctx context.Context, a Action, cause string) ReloadResult {
	reply := make(chan ReloadResult, 1)
	select {
	case s.reqs <- request{reload: reply, action: a, cause: cause}:
	case <-s.quit:
		return failed(a.Strategy, "hupd is not running")
	case <-ctx.Done():
		return failed(a.Strategy, "the caller gave up before the reload started: nothing was reloaded")
	}
	ctx, cancel := WaitContext(ctx)
	defer cancel()
	select {
	case r := <-reply:
		return r
	case <-s.quit:
		return failed(a.Strategy, "hupd stopped during the reload")
	case <-ctx.Done():
		return waitEnded(failed(a.Strategy, "timed out waiting for the reload; it goes on"))
	}
}

// Rollback makes the settling generation (see Options.Settle) serve again
// and stops the newer one: with steered sockets new connections go back to
// it at once, nothing is started. It fails when no generation is settling
// or a reload is in progress.
func (s *Supervisor) Rollback(ctx context.Context) ReloadResult {
	reply := make(chan ReloadResult, 1)
	select {
	case s.reqs <- request{rollback: reply}:
	case <-s.quit:
		return failed(StrategyRollback, "hupd is not running")
	case <-ctx.Done():
		return failed(StrategyRollback, "the caller gave up before the rollback started: nothing was rolled back")
	}
	select {
	case r := <-reply:
		return r
	case <-s.quit:
		return failed(StrategyRollback, "hupd stopped during the rollback")
	}
}

// Trigger asks for action a without waiting, as SIGHUP does for a reload.
func (s *Supervisor) Trigger(a Action, cause string) {
	select {
	case s.reqs <- request{async: true, action: a, cause: cause}:
	case <-s.quit:
	}
}

// Status returns a snapshot of the supervisor. It reads no file: health
// probes and the systemd watchdog call it.
func (s *Supervisor) Status() Status { return s.snapshot(false) }

// StatusUsage is Status with what each generation uses (processes, memory,
// CPU) sampled now, outside Run's goroutine: for hupd status and /metrics.
func (s *Supervisor) StatusUsage() Status { return s.snapshot(true) }

func (s *Supervisor) snapshot(usage bool) Status {
	reply := make(chan statusReply, 1)
	select {
	case s.reqs <- request{status: reply}:
		r := <-reply
		if usage {
			sample(&r.st, r.groups, r.inst)
		}
		return r.st
	case <-s.quit:
		return Status{Name: s.opts.Name, PID: os.Getpid(), Stopping: true, Containment: s.containment()}
	}
}

type waitLimitKey struct{}

// WithWaitLimit returns ctx with a limit d on the wait for a reload's
// outcome (hupd reload --timeout): Do and Reload hand the reload over
// whatever d (a reload asked for happens), then wait at most d for its
// outcome, and answer TimedOut if d ends first. Cancelling ctx ends the
// wait at once, as ever.
func WithWaitLimit(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, waitLimitKey{}, d)
}

// WaitContext is ctx bounded by its wait limit (WithWaitLimit), counted
// from now: for the wait that follows handing a reload over.
func WaitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Value(waitLimitKey{}).(time.Duration); ok && d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// waitEnded marks r as the answer of a wait that ended (its ctx) before
// the reload's outcome was known.
func waitEnded(r ReloadResult) ReloadResult {
	r.TimedOut = true
	return r
}

func failed(st Strategy, reason string) ReloadResult {
	now := time.Now()
	return ReloadResult{Strategy: st, Reason: reason, Started: now, Finished: now}
}

// Run starts the first generation and supervises until hupd should exit:
// after a stop signal once every generation is gone, when the serving
// child exits and the restart policy says not to start it again, or when
// a restart is due and the start limit is reached (Options.StartLimit). It
// returns the exit code hupd should exit with: the serving child's (128+n
// if it died of signal n; 0 for one of Options.SuccessExitStatus), or
// after giving up the last failed start's (never 0). An error means the
// first generation could not be started; it is a *socketact.ExecError
// when the shim could not exec.
func (s *Supervisor) Run(sigs <-chan os.Signal) (int, error) {
	defer close(s.quit)
	defer s.closeSockets() // after cleanup, which says which retired ones it closes
	s.sigs = sigs
	s.sp = s.opts.Spawner
	if s.sp == nil {
		s.sp = startSpawnerOn(s.reaper, s.opts.Thread)
	}
	defer s.sp.stop()
	if !s.resumed {
		dir, err := s.makeNotifyDir(s.opts.UID, s.opts.GID)
		if err != nil {
			return 1, fmt.Errorf("notify socket directory: %w", err)
		}
		s.notifyDir = dir
	} else if s.rt != nil {
		s.rt.keepNotifyDir(s.notifyDir)
	}
	defer func() {
		for _, d := range append(s.oldNotifyDirs, s.notifyDir) {
			os.RemoveAll(d)
		}
	}()
	defer s.cleanup()

	if s.resumed {
		s.resumeGens()
	} else if _, err := s.spawn(); err != nil {
		return ExitCode(err), err
	}
	for {
		select {
		case sig := <-sigs:
			s.onSignal(sig)
		case ev := <-s.events:
			s.onEvent(ev)
		case req := <-s.reqs:
			s.onRequest(req)
		}
		s.scaleWanted()
		s.prestart()
		if code, done := s.finished(); done {
			return code, nil
		}
	}
}

// trimAfter is how long after a reload or exit hupd returns the memory
// that spawning and reloading used to the OS. hupd's live heap is tiny,
// but the Go runtime keeps freed memory for reuse: without this, a burst
// of reloads would leave its high-water mark in hupd's RSS. The trim is
// due trimAfter after the first event since the last one, and later
// events do not postpone it: during a burst (a reload every 100 ms) hupd
// trims every trimAfter, which keeps its peak about 1 MiB lower than one
// trim after the burst, at about 4 ms of CPU per trim.
const trimAfter = 250 * time.Millisecond

// scheduleTrim arms the memory trim unless it is already armed.
func (s *Supervisor) scheduleTrim() {
	if s.trimT != nil {
		return
	}
	s.trimT = time.AfterFunc(trimAfter, func() { s.post(event{kind: evTrim}) })
}

// finished reports whether Run should return, and with which code.
func (s *Supervisor) finished() (int, bool) {
	if len(s.gens) > 0 || s.restartPending() || !s.stopping && s.restartsPending() > 0 {
		return 0, false
	}
	if s.stopCode != nil {
		return *s.stopCode, true
	}
	return s.exitCode(s.lastExit), s.stopping
}

func (s *Supervisor) restartPending() bool { return s.restartT != nil && !s.stopping }

// cleanup runs when Run returns: nothing may be left behind.
func (s *Supervisor) cleanup() {
	s.helpers.killAll()
	if s.restartT != nil {
		s.restartT.Stop()
	}
	if s.trimT != nil {
		s.trimT.Stop()
	}
	if s.standby != nil {
		s.discardStandby()
	}
	for _, g := range s.gens { // only on an early return
		g.settle()
		g.killGroup()
		s.cg.Retire(g.grp)
		g.notify.Close()
		s.unguard(g)
		g.closeMain()
	}
	s.gens = nil
	s.closeRetired()
	s.failTx("hupd stopped")
}

func (s *Supervisor) onSignal(sig os.Signal) {
	ss, ok := sig.(syscall.Signal)
	if !ok || ss == unix.SIGPIPE {
		return
	}
	switch {
	case isStop(ss) && !s.stopping:
		s.stop(ss)
	case ss == signals.Reload && !s.stopping:
		s.requestReload(nil, ActionReload, "SIGHUP")
	case ss == signals.Upgrade:
		s.upgrade(&upgradeRequest{})
	case isStop(ss): // a second stop signal is forwarded as received
		for _, g := range s.gens {
			s.send(g, ss)
		}
	default:
		for _, g := range s.serving() {
			s.send(g, ss)
		}
	}
}

// stop begins the graceful stop of every generation.
func (s *Supervisor) stop(sig syscall.Signal) {
	s.stopping = true
	if h := s.hooks.Stopping; h != nil {
		h()
	}
	s.closeSockets()
	if s.standby != nil {
		s.discardStandby()
	}
	if s.restartT != nil {
		s.restartT.Stop()
		s.restartT = nil
	}
	s.failTx("hupd is stopping")
	s.stopInstances()
	cur := s.current()
	s.log.Info(logev.Stopping, KeySignal, signals.Name(sig), "generations", len(s.gens),
		"stop_signal", signals.Name(s.opts.StopSignal), KeyTimeout, s.opts.StopTimeout)
	if cur == nil && len(s.gens) == 0 {
		code := s.exitCode(s.lastExit)
		s.stopCode = &code
	}
	for _, g := range s.gens {
		if g == cur {
			cur = nil
			s.stopCurrent = g
		}
		s.drain(g)
	}
}

// closeSockets closes hupd's own copies of the sockets when it stops: once
// the generations have closed theirs, a client that connects is refused at
// once, instead of waiting in a queue that nobody will accept from, to be
// reset when hupd exits. (A service manager's socket, passed to hupd, stays
// open in the manager, which starts hupd again for it.)
func (s *Supervisor) closeSockets() {
	for _, l := range append(slices.Concat(s.listeners, s.retired), s.left...) {
		l.Close()
	}
	s.retired, s.left = nil, nil
	s.publishHeld()
}

func (s *Supervisor) onRequest(req request) {
	switch {
	case req.status != nil:
		st, groups, inst := s.status()
		req.status <- statusReply{st, groups, inst}
	case req.reload != nil:
		s.requestReload(req.reload, req.action, req.cause)
	case req.async:
		s.requestReload(nil, req.action, req.cause)
	case req.apply != nil:
		req.apply.reply <- s.apply(req.apply)
	case req.plan != nil:
		req.plan.reply <- s.planApply(req.plan)
	case req.note != nil:
		s.note = *req.note
		s.hash = req.note.Hash
	case req.upgrade != nil:
		s.upgrade(req.upgrade)
	case req.freeze != nil:
		s.freezeFor(req.freeze)
	case req.rollback != nil:
		req.rollback <- s.rollback()
	case req.scale != nil:
		s.scale(req.scale)
	case req.probe != nil:
		req.probe()
	}
}

func (s *Supervisor) onEvent(ev event) {
	g := ev.gen
	switch ev.kind {
	case evExit:
		if g := ev.ref.gen.Load(); g != nil {
			s.onExit(g, ev.exit)
		} else if st := s.standby; st != nil && st.ref == ev.ref {
			s.log.Warn(logev.StandbyExited, KeyPID, st.pid, KeyStatus, ev.exit.String())
			s.standby, s.standbyLost = nil, true
			st.release()
			s.cg.Retire(st.grp)
		} else {
			s.log.Debug(logev.StandbyDiscardedExited, KeyPID, ev.exit.PID)
		}
	case evNotify:
		s.onNotify(g, ev.msg, ev.at, ev.main)
	case evReadyWarn:
		if g.state == StateStarting && !g.exited() {
			s.log.Warn(logev.NotReadyYet, g.ids(KeyReady, g.ready.String(),
				KeyAfter, time.Since(g.started).Round(time.Millisecond), KeyHint, readinessHint(g.ready))...)
		}
	case evReadyTimeout:
		if g.state != StateStarting || g.exited() {
			return // ready or gone
		}
		if time.Now().Before(g.readyBy) {
			// EXTEND_TIMEOUT_USEC moved the deadline: its own timer fires then.
			s.log.Debug(logev.ReadyDeadlineMoved, g.ids("deadline", g.readyBy.Format(time.RFC3339Nano))...)
			return
		}
		reason := fmt.Sprintf("generation %d not ready within %s (readiness %s)", g.num, g.ready.Timeout, g.ready)
		if g.set.multi() {
			reason = fmt.Sprintf("instance %d of generation %d not ready within %s (readiness %s)", g.inst, g.num, g.ready.Timeout, g.ready)
		}
		if s.txNew(g) {
			s.tx.failed = g
			s.failedReloadStart(1) // it is stopped: a failed start (with no status of its own)
			s.finishTx(false, reason)
			return
		}
		s.log.Error(logev.NotReady, g.ids(KeyReason, reason)...)
		if s.scaleFailed(g, reason) {
			return
		}
		if g.set.multi() && g.set.ready {
			// An instance restarted alone: its exit restarts it again,
			// with its backoff.
			g.killGroup()
		}
		s.maybeStartQueued() // a reload waiting for it need wait no longer
	case evDelay:
		if g.state != StateStarting || g.exited() {
			return
		}
		// Judged by the readiness it was started with: a hupd.toml edit
		// may have changed the configured one since.
		if g.ready.Kind == ReadyAuto {
			if s.notified {
				return // it speaks sd_notify: wait for READY=1
			}
			s.log.Info(logev.ReadyByAlive, g.ids(
				KeyAfter, g.ready.Delay, KeyHint, "set --ready notify, delay:D or exec:COMMAND to choose")...)
		}
		s.onReady(g, "alive after "+g.ready.Delay.String())
	case evProbeOK:
		if g.state == StateStarting && !g.exited() {
			s.onReady(g, "probe succeeded")
		}
	case evListening:
		if g.state == StateStarting && !g.exited() {
			s.onReady(g, "listening on every socket")
		}
	case evDrainTimeout:
		if !g.exited() {
			// (The message predates cgroups: the whole cgroup goes too.)
			s.log.Warn(logev.StopTimeout, g.ids(KeyTimeout, g.stopTimeout, KeyCgroup, g.grp.Path())...)
			if err := g.killGroup(); err != nil {
				s.log.Error(logev.KillGroupFailed, g.ids(KeyError, err)...)
			}
		}
	case evCheckDone:
		if s.tx != ev.tx || !s.tx.checking {
			return
		}
		s.tx.checking = false
		if ev.err != nil {
			s.finishTx(false, "check failed: "+ev.err.Error()+tailText(ev.out))
			return
		}
		s.proceed()
	case evAckTimeout:
		if s.tx == ev.tx && s.tx.strategy == StrategySignal {
			// Those that did not answer RELOADING=1 got the signal: the
			// reload is done once those that did are ready again.
			s.tx.awaitAck = 0
			if len(s.tx.awaitReady) == 0 {
				s.finishTx(true, "")
			}
		}
	case evReloadTimeout:
		if s.tx == ev.tx && s.tx.reloading {
			s.finishTx(false, fmt.Sprintf("generation %d not ready within %s after %s (RELOADING=1 without READY=1)",
				g.num, s.opts.Ready.Timeout, signalNames(ev.tx.signals)))
		}
	case evRestart:
		if s.stopping || s.restartT == nil || ev.seq != s.restartSeq {
			return // stopped, or a timer replaced after it had fired
		}
		s.restartT = nil
		s.restarts++
		if _, err := s.spawn(); err != nil {
			s.failedStart(ExitCode(err))
			s.scheduleRestart(0, err.Error())
		}
	case evTrim:
		s.trimT = nil
		debug.FreeOSMemory()
	case evUpgradeChecked:
		s.upgradeChecked(ev.upgrade, ev.err)
	case evMainGone:
		s.mainGone(g, ev.exit.PID)
	case evQueuePoll:
		s.empty(g)
	case evSettleEnd:
		if g.state == StateSettling {
			s.drain(g)
		}
	case evGroupPoll:
		s.watchGroups(g)
	case evInstRestart:
		s.onInstRestart(ev.set, ev.inst, ev.seq)
	case evWatchdog:
		if ev.seq != g.watchdogSeq {
			return // re-armed by a WATCHDOG=1 after this timer had fired
		}
		if !g.exited() && g.state != StateDraining {
			s.log.Error(logev.WatchdogTimeout, g.ids(KeyTimeout, g.watchdogDur)...)
			g.killGroup()
		}
	}
}

// onExit handles the exit of a generation's main process.
func (s *Supervisor) onExit(g *generation, e signals.Exit) {
	s.scheduleTrim()
	if g.mainFD != nil && g.mainPID != e.PID && pidfdAlive(g.mainFD) {
		s.follow(g, e, logev.MainExitFollow)
		return
	}
	if (g.forking || !g.foundAt.IsZero()) && s.forked(g, e) {
		return
	}
	ran := time.Since(g.started)
	cur := s.current()
	wasCurrent := cur == g || s.stopCurrent == g
	// (With instances: whether g's generation is the one serving.)
	wasServing := cur != nil && cur.set == g.set
	prev := g.state
	g.state = StateExited
	g.settle()
	// What is left of it goes with it, as systemd's KillMode=control-group
	// does: its process group, and in cgroup mode everything in its
	// cgroup (daemons that called setsid included), then the cgroup.
	g.killGroup()
	s.cg.Retire(g.grp)
	s.unguard(g)
	g.notify.Close()
	g.closeMain()
	if g.proc != nil {
		g.proc.Release()
	}
	s.gens = slices.DeleteFunc(s.gens, func(x *generation) bool { return x == g })
	g.set.lastExit[g.inst] = e.String()
	g.out.ended.Store(true)
	defer func() {
		// After what follows may have armed its restart: its sockets are
		// still in use then.
		s.pruneSets()
		s.closeRetired()
	}()
	s.log.Info(logev.ChildExited, g.ids(KeyStatus, e.String(), KeyRan, ran.Round(time.Millisecond), "state", string(prev))...)
	if g.failure != "" {
		// It exited 0, but its start failed: counted as a failure.
		s.log.Error(logev.StartFailed, g.ids(KeyReason, g.failure)...)
		e.Status = syscall.WaitStatus(1 << 8)
	}
	s.hintOwnBind(g, prev)
	s.checkGroups(g)

	if s.stopping {
		if s.stopCurrent == g || s.stopCurrent != nil && s.stopCurrent.set == g.set || s.stopCode == nil && len(s.gens) == 0 {
			code := s.exitCode(e)
			s.stopCode = &code
		}
		// hupd may exit next: what the child wrote last must be out first
		// (its group is gone, so its pipes close).
		g.out.settle(exitSettle)
		return
	}
	if tx := s.tx; prev == StateStarting && tx != nil && s.txNew(g) && g.failure == "" && e.Status.Signaled() &&
		isStraySignal(e.Status.Signal()) && tx.strays < strayStartRetries {
		// Killed before it was ready by a signal hupd does not send a
		// starting generation: one meant for the whole service, that
		// reached it while its program was starting (systemctl kill -s
		// HUP: hupd starts the reload's generation while systemd is still
		// going through the unit's processes, and a program dies of HUP
		// until it has set up its handler). Not a failed start: start
		// another.
		tx.strays++
		s.log.Warn(logev.ReloadStartStraySignal, g.ids("signal", signals.Name(e.Status.Signal()))...)
		if g.set.multi() {
			// That instance alone starts again.
			ng, err := s.spawnInst(g.set, g.inst)
			if err != nil {
				tx.failed = g
				s.failedReloadStart(ExitCode(err))
				s.finishTx(false, fmt.Sprintf("instance %d of generation %d failed to start: %v", g.inst, g.num, err))
				return
			}
			if tx.new == g {
				tx.new = ng
			}
			return
		}
		tx.new = nil
		s.startNew()
		return
	}
	if prev == StateStarting {
		// It exited before it was ready (hupd had not asked it to: it
		// would be draining): a failed start, a reload's or a restart's.
		switch {
		case s.txNew(g) || g.set != nil && g.set.scaling != nil && g.set.scaling.waiting[g]:
			s.failedReloadStart(e.Code()) // a reload's, or a scale's
		case g.set.multi():
			s.instanceFailed(g, e.Code())
		default:
			s.failedStart(e.Code())
		}
		if s.scaleFailed(g, fmt.Sprintf("instance %d of generation %d exited before it was ready: %s", g.inst, g.num, e)) {
			return
		}
	}
	if tx := s.tx; tx != nil {
		switch {
		case s.txNew(g) && g.set.multi():
			tx.failed = g
			g.out.settle(outputSettle)
			why := fmt.Sprintf("instance %d of generation %d exited before it was ready: %s", g.inst, g.num, e)
			if prev != StateStarting {
				why = fmt.Sprintf("instance %d of generation %d exited during the reload: %s", g.inst, g.num, e)
			}
			s.finishTx(false, why+tailText(strings.Join(g.out.tail(), "\n")))
			return
		case tx.waitOld && tx.oldSet == g.set && g.set.multi():
			if len(s.instances(g.set)) == 0 {
				tx.waitOld = false
				s.startNew()
			}
			return
		case tx.old != nil && tx.oldSet == g.set && g.set.multi() && tx.strategy == StrategySignal && prev != StateDraining:
			s.finishTx(false, fmt.Sprintf("instance %d of generation %d exited during the reload: %s", g.inst, g.num, e))
		case tx.new == g:
			// Its last words explain the failure: let them arrive first.
			g.out.settle(outputSettle)
			why := fmt.Sprintf("generation %d exited before it was ready: %s", g.num, e)
			if g.failure != "" {
				why = fmt.Sprintf("generation %d failed to start: %s", g.num, g.failure)
			}
			s.finishTx(false, why+tailText(strings.Join(g.out.tail(), "\n")))
			return
		case tx.waitOld && tx.old == g:
			tx.waitOld = false
			s.startNew()
			return
		case tx.old == g && tx.strategy == StrategySignal:
			s.finishTx(false, fmt.Sprintf("generation %d exited during the reload: %s", g.num, e))
		}
	}
	if prev == StateDraining {
		s.maybeStartQueued() // a drain slot is free
		return
	}
	if g.set.multi() {
		if prev == StateSettling || !wasServing {
			return
		}
		if s.rollbackOnExit(g) {
			s.maybeStartQueued()
			return
		}
		s.instanceExited(g, e, prev, ran)
		s.maybeStartQueued() // a reload waiting for it (starting) need wait no longer
		return
	}
	if !wasCurrent {
		return
	}
	if s.rollbackOnExit(g) {
		s.maybeStartQueued()
		return
	}
	s.lastExit = e
	if !s.shouldRestart(e) {
		g.out.settle(exitSettle) // hupd exits once the others are gone
		s.log.Info(logev.NotRestarting, KeyRestart, string(s.opts.Restart), KeyStatus, e.String())
		s.exitWith(s.exitCode(e))
		return
	}
	if prev != StateStarting {
		// The serving generation exited and is restarted: counted for the
		// start limit as systemd counts the restart.
		s.failedStart(e.Code())
	}
	if tx := s.tx; tx != nil && tx.strategy != StrategySignal {
		// The reload is starting the next generation already: it takes
		// over, and if it fails, finishTx applies the restart policy. A
		// restart now would start a second one beside it.
		s.log.Warn(logev.ServingExitedDuringReload, g.ids(KeyStatus, e.String())...)
		if tx.new != nil {
			// Clients wait in its queue, as they would in a shared socket.
			s.steerTo(tx.new)
		}
		return
	}
	if s.startLimitHit() {
		g.out.settle(exitSettle) // hupd exits next: its last words first
		s.giveUp(e.String())
		return
	}
	s.scheduleRestart(ran, e.String())
	// A reload queued behind it (it was starting) need wait no longer:
	// as a reload during the backoff, it starts the next generation.
	s.maybeStartQueued()
}

// outputSettle bounds how long a failed reload waits for the failed
// generation's last output (its pipes close as soon as it is gone).
const outputSettle = 250 * time.Millisecond

// exitSettle bounds how long hupd, about to exit, waits for an exited
// generation's last output to be copied: what is left in its pipes (up to
// a pipe's size) goes out at the pace of whoever reads hupd's output.
const exitSettle = 2 * time.Second

// follow makes the process g announced with MAINPID= its main process once
// the one hupd started has exited (a program that hands over to a new
// master, as nginx does for a binary upgrade). It was a member of g when
// it was announced (acceptMainPID). Its exit ends the generation, whoever
// its parent is (watchMain).
func (s *Supervisor) follow(g *generation, e signals.Exit, msg string) {
	// Logged once the sentinel knows (below): whoever sees the line may
	// kill hupd, and the sentinel must then end this process.
	defer s.log.Info(msg, KeyGen, g.num, KeyOldPID, e.PID, KeyPID, g.mainPID, KeyStatus, e.String())
	if g.proc != nil {
		g.proc.Release()
		g.proc = nil
	}
	g.pid = g.mainPID
	// The root of member's tree is now this process; the old one's PID is
	// free.
	g.origin.Store(int64(g.pid))
	g.mainRoot.Store(0)
	closePidfds(&g.procFD, &g.goneFD)
	g.procFD, g.mainFD = g.mainFD, nil
	// It was vetted as a member when MAINPID= named it: the fallback finds
	// members under it, and kills it through its pidfd.
	g.grp.SetMain(g.pid)
	if g.grp.Path() == "" {
		if pgid, ok := socketact.ProcessGroup(g.pid); !ok || pgid != g.grp.Leader() {
			// The group the generation started in has lost its leader
			// and may empty: its id could then be a stranger's.
			g.grp.DropLeader()
		}
	}
	// The sentinel ends the process it now is, in or out of the group,
	// through the pidfd that names it.
	withFD(g.procFD, func(fd int) { s.guard(g, g.grp.Leader(), fd) })
	ref := &procRef{}
	ref.gen.Store(g)
	g.ref = ref
	s.watchMain(ref, g.pid, g.procFD, s.reaper.Watch(g.pid))
}

// scheduleRestart arms the restart of the program after a failure (why),
// with the backoff; or, when the start limit is reached, gives up.
func (s *Supervisor) scheduleRestart(ran time.Duration, why string) {
	if s.startLimitHit() {
		s.giveUp(why)
		return
	}
	var d time.Duration
	d, s.failures = s.opts.Backoff.Next(s.failures, ran)
	attrs := []any{KeyGen, s.nextGen + 1, KeyDelay, d, "attempt", s.failures, KeyReason, why}
	if l := s.opts.StartLimit; !l.Off() {
		// How close the crash loop is to the start limit.
		attrs = append(attrs, KeyFailures, s.startFails.count(l, time.Now()), KeyLimit, l.String())
	}
	s.log.Warn(logev.RestartingChild, attrs...)
	s.restartSeq++
	seq := s.restartSeq
	s.restartT = time.AfterFunc(d, func() { s.post(event{kind: evRestart, seq: seq}) })
}

func (s *Supervisor) shouldRestart(e signals.Exit) bool {
	switch s.opts.Restart {
	case RestartAlways:
		return true
	case RestartNever:
		return false
	}
	return !s.success(e)
}

// onNotify handles a datagram on g's notify socket, from a sender the
// notify reader verified as a member of g (m.Verified), and then releases
// the sender of a BARRIER=1.
func (s *Supervisor) onNotify(g *generation, m socketact.NotifyMessage, at time.Time, main mainVet) {
	if m.Barrier != nil {
		// Every datagram received before it has been handled once this
		// one is: its sender may go on (sd_notify_barrier(3)).
		defer m.Barrier.Close()
	}
	pid, hasMain := m.MainPID()
	if g.exited() || !m.Verified || !hasMain || pid == g.mainPID {
		if main.f != nil {
			main.f.Close()
		}
	}
	if g.exited() || !m.Verified {
		return
	}
	s.notified, g.speaksNotify = true, true
	if st, ok := m.Status(); ok {
		g.statusText = st
	}
	if hasMain && pid != g.mainPID {
		s.acceptMainPID(g, pid, m.PID, main)
	}
	if errno, ok := m.Errno(); ok {
		s.log.Warn(logev.ChildReportedError, g.ids(KeyError, errno.Error())...)
	}
	if d, ok := m.Usec(socketact.NotifyExtendTimeout); ok && g.state == StateStarting {
		s.log.Info(logev.ReadyTimeoutExtended, g.ids(KeyTimeout, d)...)
		// As systemd does: the deadline becomes now+d unless it is later.
		if by := time.Now().Add(d); by.After(g.readyBy) {
			g.readyBy = by
			s.after(g, d, evReadyTimeout)
		}
	}
	if m.Flag(socketact.NotifyStopping) {
		s.log.Info(logev.ChildStopping, g.ids()...)
	}
	if d, ok := m.Usec(socketact.NotifyWatchdogUsec); ok && d > 0 {
		g.watchdogDur = d
		s.armWatchdog(g)
	}
	if m.Flag(socketact.NotifyWatchdog) {
		s.armWatchdog(g)
	} else if m.Fields[socketact.NotifyWatchdog] == "trigger" {
		// Handled here: posting from Run's goroutine would wait forever
		// on a queue that only this goroutine empties.
		s.onEvent(event{kind: evWatchdog, gen: g, seq: g.watchdogSeq})
	}
	if m.Flag(socketact.NotifyReloading) {
		g.speaksReload = true
		if tx := s.tx; tx != nil && tx.oldSet == g.set && tx.strategy == StrategySignal && tx.signalled && tx.awaitAck > 0 && !tx.awaitReady[g] {
			tx.awaitAck--
			tx.awaitReady[g] = true
			tx.reloading = true
			if tx.awaitAck == 0 && tx.ackT != nil {
				tx.ackT.Stop()
			}
			if tx.relT == nil {
				tx.relT = s.reloadTimeout(tx, g)
			}
		}
	}
	if m.Ready() {
		if tx := s.tx; tx != nil && tx.reloading && tx.awaitReady[g] {
			delete(tx.awaitReady, g)
			if len(tx.awaitReady) == 0 && tx.awaitAck == 0 {
				s.finishTx(true, "")
			}
			return
		}
		if g.state == StateStarting {
			s.onReadyAt(g, "READY=1", at)
		}
	}
}

// reloadTimeout arms the wait for READY=1 after RELOADING=1 in a reload
// by signal. (g is ready already: evReadyTimeout, which watches a starting
// generation, would not fire for it.)
func (s *Supervisor) reloadTimeout(tx *reloadTx, g *generation) *time.Timer {
	return time.AfterFunc(s.opts.Ready.Timeout, func() { s.post(event{kind: evReloadTimeout, gen: g, tx: tx}) })
}

func (s *Supervisor) armWatchdog(g *generation) {
	if g.watchdogDur <= 0 {
		return
	}
	if g.watchdog != nil {
		g.watchdog.Stop()
	}
	g.watchdogSeq++
	seq := g.watchdogSeq
	g.watchdog = time.AfterFunc(g.watchdogDur, func() { s.post(event{kind: evWatchdog, gen: g, seq: seq}) })
}

// onReady marks g ready and, when g is the new generation of a swap or
// restart, completes the reload.
func (s *Supervisor) onReady(g *generation, how string) { s.onReadyAt(g, how, time.Now()) }

// onReadyAt is onReady for a readiness signal that arrived at at.
func (s *Supervisor) onReadyAt(g *generation, how string, at time.Time) {
	if g.forking {
		// Forking mode: ready no earlier than the daemon is found.
		if g.readyPending == "" {
			g.readyPending = how
		}
		return
	}
	g.settle()
	g.state, g.readyAt = StateReady, time.Now()
	s.log.Info(logev.ChildReady, g.ids(KeyAfter, g.readyAt.Sub(g.started).Round(time.Microsecond), KeyReady, how)...)
	if g.set.multi() {
		s.instanceReady(g, at)
		return
	}
	if g.set != nil {
		g.set.ready = true
	}
	if h := s.hooks.Ready; h != nil {
		h(g.num, g.pid, g.readyAt.Sub(g.started))
	}
	if g.watchdogDur > 0 {
		s.armWatchdog(g)
	}
	err := s.steerTo(g)
	if tx := s.tx; tx != nil && tx.new == g {
		if err != nil {
			// It would get no new connection: the swap fails, and
			// the old generation keeps them (the sockets steered to g
			// already go back to it).
			if o := tx.old; o != nil && !o.exited() {
				s.steerTo(o)
			}
			s.finishTx(false, fmt.Sprintf("generation %d is ready, but new connections cannot be steered to it: %v", g.num, err))
			return
		}
		for _, o := range s.gens {
			switch {
			case o == g || o.state == StateDraining:
			case o == tx.old && o.state == StateReady && s.opts.Settle > 0 && tx.strategy == StrategySwap:
				s.keepWarm(o)
			default:
				s.drain(o)
			}
		}
		tx.handover = time.Since(at)
		s.finishTx(true, "")
		return
	}
	s.maybeStartQueued()
}

// drain asks g to stop and kills its group if it has not exited within the
// stop timeout. At most MaxDraining generations drain at once.
func (s *Supervisor) drain(g *generation) {
	if g.exited() {
		return
	}
	if g.state == StateDraining {
		if !g.emptyBy.IsZero() && s.stopping {
			// hupd stops: nothing is steered anywhere any more.
			g.emptyBy = time.Time{}
			s.halt(g)
		}
		return
	}
	g.settle()
	g.state = StateDraining
	if !s.stopping && steeredAway(g) {
		// New connections go elsewhere: what reached its sockets before
		// is accepted first (steer.go).
		g.emptyBy = time.Now().Add(s.opts.SteerWait)
		s.empty(g)
		return
	}
	s.halt(g)
}

// halt sends g, draining, its stop signal and arms the stop timeout.
func (s *Supervisor) halt(g *generation) {
	s.log.Info(logev.Draining, g.ids(KeySignal, signals.Name(g.stopSignal), KeyTimeout, g.stopTimeout)...)
	s.send(g, g.stopSignal)
	g.drainBy = time.Now().Add(g.stopTimeout)
	s.after(g, g.stopTimeout, evDrainTimeout)
	s.watchGroups(g)
	// Draining generations, oldest first, each with its instances; not
	// the stopped instances of a generation that still serves (a scale
	// down, a rolling swap's stopped ones), which is no reload's old
	// generation.
	var draining [][]*generation
	for _, o := range s.gens {
		if s.partlyServing(o) {
			continue
		}
		// Not those still emptying their steered queues: they have not
		// been told to stop, and killing one would lose what waits in
		// its queue (steer_wait bounds them).
		if o.state != StateDraining || o.exited() || !o.emptyBy.IsZero() {
			continue
		}
		if i := slices.IndexFunc(draining, func(d []*generation) bool { return d[0].set == o.set && o.set != nil }); i >= 0 {
			draining[i] = append(draining[i], o)
		} else {
			draining = append(draining, []*generation{o})
		}
	}
	// A stop drains every generation as README promises (stop signal,
	// SIGKILL at the stop timeout): the cap is for reloads only. It
	// counts generations, not instances: a rolling swap or a scale down
	// drains instances of one generation.
	for !s.stopping && len(draining) > s.opts.MaxDraining {
		s.log.Warn(logev.TooManyDraining, KeyGen, draining[0][0].num, KeyPID, draining[0][0].pid, "max_draining", s.opts.MaxDraining)
		for _, o := range draining[0] {
			o.killGroup()
		}
		draining = draining[1:]
	}
}

func (s *Supervisor) send(g *generation, sig syscall.Signal) {
	if err := g.signal(sig); err != nil && !errors.Is(err, unix.ESRCH) {
		s.log.Warn(logev.SignalFailed, g.ids(KeySignal, signals.Name(sig), KeyError, err)...)
		return
	}
	s.log.Debug(logev.SignalSent, g.ids(KeySignal, signals.Name(sig))...)
}

// current is the generation that serves: the newest one that is neither
// draining nor the new generation of a reload in progress.
func (s *Supervisor) current() *generation {
	for i := len(s.gens) - 1; i >= 0; i-- {
		g := s.gens[i]
		if g.state == StateDraining || g.state == StateSettling || g.exited() || s.txNew(g) {
			continue
		}
		return g
	}
	return nil
}

func isStop(sig syscall.Signal) bool {
	return slices.Contains(signals.Stop, sig)
}

// ExitCode maps a start error to a shell's exit code.
func ExitCode(err error) int {
	var ee *socketact.ExecError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return nf.Code
	}
	return 1
}

func tailText(out string) string {
	out = strings.TrimSpace(out)
	if out == "" {
		return ""
	}
	lines := strings.Split(out, "\n")
	return " | " + strings.Join(lines[max(0, len(lines)-5):], " | ")
}

func readinessHint(r Readiness) string {
	switch r.Kind {
	case ReadyNotify, ReadyAuto:
		return "the program has not sent READY=1 on $NOTIFY_SOCKET; if it never does, set --ready delay:D or exec:COMMAND"
	case ReadyExec:
		return "the readiness probe has not exited 0 yet"
	}
	return ""
}
