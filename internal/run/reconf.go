package run

import (
	"context"
	"encoding/hex"
	"errors"
	"sync/atomic"

	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/digest"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
	"github.com/hupd/hupd/watch"
)

// Log keys.
const (
	keyChanged = "changed"
	keyAction  = "action"
	keyHash    = "hash"
	keyPaths   = "paths"
	keyDiffer  = "differ"
)

// reconf applies what changes on disk while hupd runs: edits of hupd.toml,
// resolved again with the same command-line flags, and changes of watched
// files. One goroutine (loop) owns its state; others ask it over refresh.
type reconf struct {
	log   *slog.Logger
	level *slog.LevelVar
	sup   *supervisor.Supervisor
	// load resolves hupd.toml and the flags again; nil without hupd.toml.
	load func() (*config.Resolved, error)
	// parse resolves a hupd.toml's content as if hupd.toml held it, with
	// the same flags (hupd plan); nil without hupd.toml.
	parse func(data []byte) (*config.Resolved, error)

	cur     *config.Resolved
	w       *watch.Watcher // nil when nothing is watched
	store   *fdStore       // nil when the sockets are not stored
	groups  []watchGroup   // one per group of w
	cfgHash string         // of hupd.toml as last read
	applied string         // of hupd.toml as in force
	// appliedNow is applied for other goroutines (the upgrade guard),
	// with the bytes of that version when known (an upgrade's state
	// carries them): nil without hupd.toml.
	appliedNow atomic.Pointer[inForce]
	// triggers counts the actions (reloads, restarts of watched files'
	// changes, SIGHUP's) handed to the supervisor and not yet taken by
	// its loop, which an upgrade's exec would lose: execGuard refuses it
	// meanwhile.
	triggers atomic.Int32
	cfgErr   string // why the version last read was not applied
	// received are the specs of the sockets hupd passes on as it received
	// them, without [[listen]] (see listeners): a configuration that still
	// has none keeps them, until one with [[listen]] is applied.
	received []socketact.Spec

	refresh chan refreshRequest
	plans   chan planRequest
	done    chan struct{}
	exited  chan struct{}
	started bool
}

// watchGroup is what reconf knows of one group of its watcher.
type watchGroup struct {
	config  bool // hupd.toml itself
	spec    config.WatchSpec
	hash    string
	changes int
	last    time.Time
	err     string
}

type refreshRequest struct {
	cause string
	// reply, when not nil, says whether hupd.toml was applied; done then
	// receives the result of the reload that applying it started.
	reply   chan refreshReply
	done    chan<- supervisor.ReloadResult
	trigger bool // then reload with the configured strategy, unless applying did
}

// planRequest asks what applying a hupd.toml would do: data is its
// content, nil for hupd.toml as it is on disk.
type planRequest struct {
	ctx   context.Context
	data  []byte
	reply chan planReply
}

type planReply struct {
	plan supervisor.Plan
	err  error
}

// ErrNoConfigFile is the answer to a plan when hupd runs without a
// configuration file: there is nothing an edit could change.
var ErrNoConfigFile = errors.New("run: hupd runs without a configuration file (-c): nothing to plan")

type refreshReply struct {
	respawn bool // a reload was started to apply it: its result goes to done
	err     error
}

// inForce is the version of hupd.toml in force: its hash and, when known,
// its bytes (nil otherwise).
type inForce struct {
	hash string
	data []byte
}

// newReconf starts watching what r asks to watch. hash is that of the
// bytes of hupd.toml r was resolved from (watch.HashData; "": hupd.toml is
// hashed as on disk now), so that an edit written since r was read is one
// for the next read, and data those bytes (nil: not known). An error (an
// inotify limit) means nothing was started.
func newReconf(r *config.Resolved, load func() (*config.Resolved, error), hash string, data []byte, log *slog.Logger, level *slog.LevelVar) (*reconf, error) {
	rc := &reconf{log: log, level: level, load: load, cur: r,
		refresh: make(chan refreshRequest, 1), plans: make(chan planRequest), done: make(chan struct{}), exited: make(chan struct{})}
	if r.ConfigFile != "" {
		if rc.cfgHash = hash; hash == "" {
			rc.cfgHash, data = watch.Hash([]string{r.ConfigFile}), nil
		}
		rc.applied = rc.cfgHash
		rc.appliedNow.Store(&inForce{rc.applied, data})
	}
	w, groups, err := rc.watcher(r, nil)
	if err != nil {
		return nil, err
	}
	rc.w, rc.groups = w, groups
	rc.announce()
	return rc, nil
}

// announce logs what is watched, and warns about files that never change.
func (rc *reconf) announce() {
	for _, g := range rc.groups {
		for _, p := range watch.FileMounts(g.spec.Paths) {
			rc.log.Warn(logev.WatchMountPoint,
				"path", p)
		}
		how := "inotify"
		if g.spec.PollInterval > 0 {
			how = "poll every " + g.spec.PollInterval.String()
		}
		rc.log.Info(logev.Watching, keyPaths, g.spec.Paths, keyAction, actionName(g), "how", how, keyHash, g.hash)
	}
}

func actionName(g watchGroup) string {
	if g.config {
		return "apply-config"
	}
	return g.spec.Action.String()
}

// watcher starts a watcher for r's groups. A group with the same paths as
// one in prev starts from prev's hash, so that a change made while the
// watchers were replaced is still seen.
func (rc *reconf) watcher(r *config.Resolved, prev []watchGroup) (*watch.Watcher, []watchGroup, error) {
	var groups []watchGroup
	if r.ConfigFile != "" && r.WatchConfig && rc.load != nil {
		groups = append(groups, watchGroup{config: true, spec: config.WatchSpec{Paths: []string{r.ConfigFile}, Where: r.ConfigFile}, hash: rc.cfgHash})
	}
	for _, ws := range r.Watch {
		g := watchGroup{spec: ws}
		for _, p := range prev {
			if !p.config && slices.Equal(p.spec.Paths, ws.Paths) {
				g.hash, g.changes, g.last = p.hash, p.changes, p.last
			}
		}
		groups = append(groups, g)
	}
	if len(groups) == 0 {
		return nil, nil, nil
	}
	specs := make([]watch.Group, len(groups))
	for i, g := range groups {
		specs[i] = watch.Group{Paths: g.spec.Paths, Debounce: g.spec.Debounce, PollInterval: g.spec.PollInterval, Baseline: g.hash}
	}
	w, err := watch.New(specs)
	if err != nil {
		return nil, nil, err
	}
	for i, h := range w.Hashes() {
		if groups[i].hash == "" {
			groups[i].hash = h
		}
	}
	return w, groups, nil
}

// note is what hupd status shows about the configuration and the watches.
func (rc *reconf) note() supervisor.Note { return noteOf(rc.applied, rc.cfgErr, rc.groups) }

// noteOf is the note for hupd.toml's hash cfg (in force), its error, and
// the watch groups. Its Hash covers hupd.toml and every watched file.
func noteOf(cfg, cfgErr string, groups []watchGroup) supervisor.Note {
	n := supervisor.Note{ConfigError: cfgErr}
	h := digest.New()
	h.Write([]byte(cfg))
	for _, g := range groups {
		n.Watches = append(n.Watches, supervisor.WatchStatus{Paths: g.spec.Paths, Action: actionName(g), Hash: g.hash,
			Changes: g.changes, LastChange: g.last, Poll: supervisor.Duration(g.spec.PollInterval), Error: g.err})
		if !g.config {
			h.Write([]byte{0})
			h.Write([]byte(g.hash))
		}
	}
	if cfg != "" || len(groups) > 0 {
		n.Hash = hex.EncodeToString(h.Sum(nil))[:16]
	}
	return n
}

// start runs the loop; sup must be set.
func (rc *reconf) start() {
	rc.started = true
	go rc.run()
}

// run is the loop; it returns once stop is called.
func (rc *reconf) run() {
	defer close(rc.exited)
	for {
		var events <-chan watch.Event
		if rc.w != nil {
			events = rc.w.Events()
		}
		select {
		case ev := <-events:
			rc.onEvent(ev)
		case req := <-rc.refresh:
			respawn, err := rc.reread(req.cause, req.done)
			if req.reply != nil {
				req.reply <- refreshReply{respawn, err}
			}
			switch {
			case !req.trigger, respawn:
			case err != nil:
				rc.log.Error(logev.ReloadRefusedInvalid, supervisor.KeyCause, req.cause, supervisor.KeyError, err)
			default:
				rc.trigger(supervisor.ActionReload, req.cause)
			}
		case req := <-rc.plans:
			p, err := rc.planData(req.ctx, req.data)
			req.reply <- planReply{p, err}
		case <-rc.done:
			return
		}
	}
}

// planData resolves data (nil: hupd.toml as on disk) as a reload would,
// and plans it.
func (rc *reconf) planData(ctx context.Context, data []byte) (supervisor.Plan, error) {
	if rc.load == nil || (data != nil && rc.parse == nil) {
		return supervisor.Plan{}, ErrNoConfigFile
	}
	var next *config.Resolved
	var err error
	if data == nil {
		next, err = rc.load()
	} else {
		next, err = rc.parse(data)
	}
	if err != nil {
		return supervisor.Plan{}, &control.ConfigError{Err: err}
	}
	p, err := rc.plan(ctx, next)
	if err != nil && !errors.Is(err, supervisor.ErrStopping) && ctx.Err() == nil {
		// The supervisor refused it as it would refuse applying it (a
		// kept socket that cannot take its new options, invalid options).
		err = &control.ConfigError{Err: err}
	}
	return p, err
}

// stop ends the loop and the watcher.
func (rc *reconf) stop() {
	close(rc.done)
	if rc.started {
		<-rc.exited
	}
	if rc.w != nil {
		rc.w.Close()
	}
}

func (rc *reconf) onEvent(ev watch.Event) {
	if ev.Group < 0 {
		rc.log.Warn(logev.WatchProblem, supervisor.KeyError, ev.Err)
		return
	}
	g := &rc.groups[ev.Group]
	if ev.Err != nil {
		g.err = ev.Err.Error()
		rc.log.Warn(logev.WatchProblem, keyPaths, g.spec.Paths, supervisor.KeyError, ev.Err)
		rc.sup.SetNote(rc.note())
		return
	}
	g.err, g.hash, g.changes, g.last = "", ev.Hash, g.changes+1, time.Now()
	if g.config {
		rc.reread("hupd.toml changed", nil)
		return
	}
	rc.log.Info(logev.WatchedFilesChanged, keyChanged, ev.Changed, keyAction, g.spec.Action.String(), keyHash, ev.Hash)
	rc.sup.SetNote(rc.note())
	rc.trigger(g.spec.Action, "changed: "+names(ev.Changed))
}

// trigger asks the supervisor for action a without waiting (Trigger
// waits for its loop to take it, which an upgrade in progress holds up),
// counted (triggers) until taken.
func (rc *reconf) trigger(a supervisor.Action, cause string) {
	rc.triggers.Add(1)
	go func() {
		defer rc.triggers.Add(-1)
		rc.sup.Trigger(a, cause)
	}()
}

// names lists changed files for a reload's cause.
func names(files []string) string {
	const most = 3
	if len(files) <= most {
		return strings.Join(files, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(files[:most], ", "), len(files)-most)
}

// reread applies hupd.toml if it changed since it was last read, or if
// that version was not applied (the cause, a port in use, may be gone).
// It reports whether applying it started a reload (whose result goes to
// done). An error means nothing changed: the running generations, the
// sockets and the watches are as they were.
func (rc *reconf) reread(cause string, done chan<- supervisor.ReloadResult) (respawn bool, err error) {
	if rc.load == nil {
		return false, nil
	}
	h, data, next, err := rc.readConfig()
	if h == rc.cfgHash && rc.cfgErr == "" {
		return false, nil
	}
	rc.cfgHash = h
	if err == nil {
		respawn, err = rc.apply(next, cause, inForce{h, data}, done)
	}
	rc.cfgErr = ""
	if err != nil {
		rc.cfgErr = err.Error()
		rc.sup.SetNote(rc.note()) // first: status shows the error once it is logged
		rc.log.Error(logev.ConfigNotApplied, supervisor.KeyError, err)
	}
	// Applied, the Update carried this very note: one request in all.
	return respawn, err
}

// readConfig reads hupd.toml once and resolves it (with parse, when set):
// its hash is the hash of the very bytes resolved, so that an edit
// written meanwhile is seen as one by the next read (hashed first, then
// read again, such an edit was applied under the older version's hash,
// and the next reload found nothing changed); data are those bytes. A
// file that cannot be read is hashed as on disk; data is nil then, and
// without parse.
func (rc *reconf) readConfig() (hash string, data []byte, next *config.Resolved, err error) {
	path := rc.cur.ConfigFile
	if rc.parse == nil {
		hash = watch.Hash([]string{path})
		next, err = rc.load()
		return hash, nil, next, err
	}
	data, err = config.ReadFile(path)
	if err != nil {
		return watch.Hash([]string{path}), nil, nil, err
	}
	next, err = rc.parse(data)
	return watch.HashData(path, data), data, next, err
}

// reconfDecision is what applying a configuration decides, before
// anything is done: apply carries it out, plan reports it.
type reconfDecision struct {
	opts    supervisor.Options // for the supervisor's Update
	listen  []socketact.Spec
	restart []supervisor.PlanSetting // settings that wait for a restart of hupd
	watches bool                     // the watches change: a new watcher
	level   bool                     // the log level changes
}

// decide is what applying next would do; it changes nothing.
func (rc *reconf) decide(next *config.Resolved) reconfDecision {
	old := rc.cur
	opts := next.Options
	defaults(&opts)
	cur := rc.cur.Options
	defaults(&cur)
	// The health endpoint is opened once, before the supervisor runs: it
	// keeps its address and threshold ("" is off) until hupd restarts.
	healthAddr := func(h config.HealthSpec) string {
		if h.Address == "" {
			return "off"
		}
		return h.Address
	}
	var d reconfDecision
	for _, fixed := range []struct{ what, was, now string }{
		{"name", cur.Name, opts.Name}, {"control", cur.Control, opts.Control}, {"log.format", old.LogFormat, next.LogFormat},
		{"health.address", healthAddr(old.Health), healthAddr(next.Health)},
		{"health.failures", strconv.Itoa(old.Health.Failures), strconv.Itoa(next.Health.Failures)},
		{"systemd.fdstore", old.FDStore, next.FDStore},
		{"process.cgroup", string(old.Cgroup), string(next.Cgroup)},
	} {
		if fixed.was != fixed.now {
			d.restart = append(d.restart, supervisor.PlanSetting{Setting: fixed.what, Now: fixed.was, Configured: fixed.now})
		}
	}
	opts.Name, opts.Control = cur.Name, cur.Control
	d.opts = opts
	d.watches = watchesChanged(old, next)
	d.level = old.LogLevel != next.LogLevel
	d.listen = next.Listen
	if len(d.listen) == 0 && len(old.Listen) == 0 {
		d.listen = rc.received // passed on as received, as at start
	}
	return d
}

// plan says what applying next would do (hupd plan): the supervisor's
// answer to the Update apply would send, and what reconf itself would
// change.
func (rc *reconf) plan(ctx context.Context, next *config.Resolved) (supervisor.Plan, error) {
	if err := steerFixed(rc.cur, next); err != nil {
		return supervisor.Plan{}, err
	}
	d := rc.decide(next)
	p, err := rc.sup.Plan(ctx, supervisor.Update{Options: d.opts, Listen: d.listen, ListenWhere: next.ListenWhere})
	if err != nil {
		return p, err
	}
	if d.level {
		p.Live = append(p.Live, "log.level")
	}
	if d.watches {
		p.Live = append(p.Live, "watch")
	}
	p.Restart = d.restart
	return p, nil
}

// apply makes next the configuration: a new watcher is started if the
// watches changed, then the supervisor takes the new options and sockets
// for the generations to come (one request: it keeps the sockets it holds
// that next names again, and opens the others, see Supervisor.Apply).
// What it does is what decide decided.
func (rc *reconf) apply(next *config.Resolved, cause string, cfg inForce, done chan<- supervisor.ReloadResult) (bool, error) {
	old := rc.cur
	if err := steerFixed(old, next); err != nil {
		return false, err
	}
	d := rc.decide(next)
	for _, r := range d.restart {
		rc.log.Warn(logev.SettingNeedsRestart, "setting", r.Setting, "now", r.Now, "configured", r.Configured)
	}
	opts := d.opts
	// What runs, for the next edit to compare with: a name or control
	// changed in hupd.toml still waits for a restart then (and a later
	// edit must not start a generation with a control socket that is not
	// hupd's).
	next.Options.Name, next.Options.Control = opts.Name, opts.Control
	next.Health, next.FDStore = old.Health, old.FDStore
	next.Cgroup = old.Cgroup

	w, groups := rc.w, rc.groups
	if d.watches {
		var err error
		if w, groups, err = rc.watcher(next, rc.groups); err != nil {
			return false, err
		}
	}
	closeWatcher := func() {
		if w != nil && w != rc.w {
			w.Close()
		}
	}
	u := supervisor.Update{Options: opts, Listen: d.listen, ListenWhere: next.ListenWhere, Cause: cause,
		Note: noteOf(cfg.hash, "", groups), Done: done}
	res, err := rc.sup.Apply(context.Background(), u)
	if err != nil {
		closeWatcher()
		return false, err
	}
	if w != rc.w {
		if rc.w != nil {
			rc.w.Close()
		}
		rc.w, rc.groups = w, groups
		rc.announce()
	}
	if rc.store != nil {
		rc.store.sync(res.Sockets) // the new sockets in, the dropped ones out
	}
	if len(next.Listen) > 0 {
		// The received sockets are [[listen]]'s business from now on:
		// dropped once it no longer names them, never opened again.
		rc.received = nil
	}
	rc.cur, rc.applied = next, cfg.hash
	rc.appliedNow.Store(&cfg)
	rc.level.Set(next.LogLevel)
	for _, l := range res.Opened {
		rc.log.Info(logev.Listening, supervisor.KeySocket, l.Spec.FDName(), "address", l.Bound.String())
	}
	rc.log.Info(logev.ConfigApplied, "new_generation", res.Respawn, supervisor.KeyStrat, string(res.Strategy),
		keyDiffer, res.Differ, "sockets_opened", len(res.Opened), "sockets_dropped", res.Retired)
	return res.Respawn, nil
}

func watchesChanged(a, b *config.Resolved) bool {
	if a.WatchConfig != b.WatchConfig || len(a.Watch) != len(b.Watch) {
		return true
	}
	for i := range a.Watch {
		x, y := a.Watch[i], b.Watch[i]
		if !slices.Equal(x.Paths, y.Paths) || x.Action != y.Action || x.Debounce != y.Debounce || x.PollInterval != y.PollInterval {
			return true
		}
	}
	return false
}

// upgradeGuard refuses an in-place upgrade while hupd.toml on disk is not
// the version in force (edited without a reload, or an edit was refused):
// hupd reload first. The new image is resolved from the version in force,
// which the state carries (inForceData), and applies an edit saved after
// the last check as any other (appliedEdited).
func (rc *reconf) upgradeGuard(path string) func() error {
	return func() error {
		if watch.Hash([]string{path}) != rc.appliedNow.Load().hash {
			return errors.New(path + " is not the version in force (edited since, or its last edit was refused): apply it with hupd reload, or undo the edit, then upgrade")
		}
		return nil
	}
}

// inForceData is the content of hupd.toml in force, nil when not known
// (read without ParseMulti/Parse) or without hupd.toml: what an upgrade's
// state carries (Supervisor.SetUpgradeConfig). Any goroutine.
func (rc *reconf) inForceData() []byte {
	if cfg := rc.appliedNow.Load(); cfg != nil {
		return cfg.data
	}
	return nil
}

// appliedEdited applies hupd.toml as an edit (reread, on rc's loop) when
// the file on disk is not the version this image was resolved from: an
// upgrade's new image, resolved from the version in force in the previous
// one (supervisor.Upgrade.Config), finds it saved since that image's last
// check. Call it once rc runs (start).
func (rc *reconf) appliedEdited() {
	path := rc.cur.ConfigFile
	if path == "" || rc.load == nil || watch.Hash([]string{path}) == rc.cfgHash {
		return
	}
	rc.log.Warn(logev.ConfigChangedDuringUpgrade, keyHash, rc.cfgHash)
	select {
	case rc.refresh <- refreshRequest{cause: "hupd.toml changed during the upgrade"}:
	default: // a request pending (hupd reload) reads it too
	}
}

// execGuard is the check an upgrade must pass right before its exec
// (Supervisor.SetExecGuard), with everything frozen: no answer of the
// control server ctl to a request that changes what runs being made (the
// exec would cut it), no action handed to the supervisor and not yet
// taken (the exec would lose it), and hupd.toml (path, "" for none) still
// the version in force: it may have been edited while the new binary was
// checked, and the new image reads it. It does not block.
func (rc *reconf) execGuard(ctl *control.Server, path string) func() error {
	inForce := func() error { return nil }
	if path != "" {
		inForce = rc.upgradeGuard(path)
	}
	return func() error {
		if err := answering(ctl); err != nil {
			return err
		}
		if rc.triggers.Load() > 0 {
			return errTriggered
		}
		if err := inForce(); err != nil {
			return err
		}
		editBeforeExec(path)
		return nil
	}
}

// hangup asks for what SIGHUP means: read hupd.toml again, then reload.
// It never blocks: a request already pending covers this one.
func (rc *reconf) hangup() {
	select {
	case rc.refresh <- refreshRequest{cause: "SIGHUP", trigger: true}:
	default:
	}
}
