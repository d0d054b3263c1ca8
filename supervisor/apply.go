package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
)

// Note is what the caller knows about the configuration and the watched
// files: the content hash the next generation starts with, and what hupd
// status shows about them.
type Note struct {
	Hash        string        `json:"hash,omitempty"`
	Watches     []WatchStatus `json:"watches,omitempty"`
	ConfigError string        `json:"config_error,omitempty"`
}

// Preset sets the Note before Run starts the first generation. It must not
// be called once Run has started; use SetNote then.
func (s *Supervisor) Preset(n Note) { s.note, s.hash = n, n.Hash }

// SetNote replaces the Note. Generations started after it record its hash.
func (s *Supervisor) SetNote(n Note) {
	select {
	case s.reqs <- request{note: &n}:
	case <-s.quit:
	}
}

// Update is a new configuration for the generations to come.
type Update struct {
	Options Options
	// Listen are the sockets it wants, in order; ListenWhere[i], when
	// present, names where Listen[i] was configured (for errors). The
	// supervisor matches them to the sockets it holds (socketact.Sockets).
	Listen      []socketact.Spec
	ListenWhere []string
	// Note replaces the Note: its Hash is what the next generation
	// starts with.
	Note  Note
	Cause string // what changed, for the reload it may start
	// Done, when not nil, receives the result of the reload the update
	// starts, if it starts one (ApplyResult.Respawn). It must have room
	// for one result.
	Done chan<- ReloadResult
}

type applyRequest struct {
	Update
	reply chan applyReply
}

type applyReply struct {
	res ApplyResult
	err error
}

// ApplyResult says what a new configuration changed.
type ApplyResult struct {
	// ScaleTo, when not 0, is the number of instances the serving
	// generation is scaled to (an edit of instances alone; see Scale).
	ScaleTo int
	// Respawn is set when the child's command, environment, user or
	// sockets changed: a new generation was asked for (Strategy).
	Respawn  bool
	Strategy Strategy
	// Differ names the settings that made it needed (Plan.Differ).
	Differ []string
	// Sockets are the sockets of the new configuration, one per spec of
	// Update.Listen, in order; they are the supervisor's (read them, do
	// not close them). Opened are those opened for it.
	Sockets []*socketact.Listener
	Opened  []*socketact.Listener
	// Retired counts the sockets the new configuration dropped; each is
	// closed once no generation uses it.
	Retired int
}

// ErrStopping is returned for requests hupd can no longer carry out.
var ErrStopping = errors.New("supervisor: hupd is stopping")

// Apply makes u the configuration of the generations to come, in one
// request to Run's goroutine. Its sockets are chosen there by
// socketact.Sockets among those the supervisor holds: those in force, then
// those an earlier configuration dropped that a generation still uses (a
// socket listed again is kept: it cannot be bound twice); the other specs
// get new sockets. A kept socket takes its new options (backlog, mode,
// owner) once the configuration is in force. The running generations are
// untouched: they keep their sockets, and a socket that u.Listen no longer
// names is closed once none of them uses it. When the change needs a new
// generation (see ApplyResult), a reload is started as for the configured
// strategy; the signal strategy cannot start a new program, so it becomes
// a swap (a restart without sockets). On an error nothing changed: no
// socket is left open for it, and those held are as they were.
func (s *Supervisor) Apply(ctx context.Context, u Update) (ApplyResult, error) {
	if err := u.Options.Validate(); err != nil {
		return ApplyResult{}, err
	}
	// Host names of sockets to open are looked up here, not on Run's
	// goroutine (those it holds need none).
	u.Listen = slices.Clone(u.Listen)
	held := *s.held.Load()
	socketact.ResolveHosts(u.Listen, func(a socketact.Address) bool { return slices.Contains(held, a) })
	reply := make(chan applyReply, 1)
	select {
	case s.reqs <- request{apply: &applyRequest{Update: u, reply: reply}}:
	case <-s.quit:
		return ApplyResult{}, ErrStopping
	case <-ctx.Done():
		return ApplyResult{}, ctx.Err()
	}
	r := <-reply // Run answers every request it takes
	return r.res, r.err
}

// shareNotifyDir lets children of uid and gid reach the notify sockets of
// the generations started from now on.
func (s *Supervisor) shareNotifyDir(uid, gid int) error {
	if s.rt == nil {
		return os.Chmod(s.notifyDir, socketact.NotifyDirModeShared)
	}
	dir, err := s.rt.notifyDir(uid, gid)
	if err != nil {
		return err
	}
	if dir != s.notifyDir {
		s.oldNotifyDirs = append(s.oldNotifyDirs, s.notifyDir)
		s.notifyDir = dir
	}
	return nil
}

// apply runs on Run's goroutine: it carries out what decide decided (Plan
// reports the same decision).
func (s *Supervisor) apply(r *applyRequest) applyReply {
	d, err := s.decide(r.Update)
	if err != nil {
		return applyReply{err: err}
	}
	set, err := socketact.Sockets(d.held, nil, r.Listen, r.ListenWhere)
	if err != nil {
		return applyReply{err: err}
	}
	ls := set.Listeners
	next := d.next
	respawn := d.respawn()
	if next.UID > 0 && next.UID != os.Geteuid() {
		// The notify sockets' directory was made for the user hupd
		// started with: let this one through too, or make one it can
		// reach (see Runtime.notifyDir).
		if err := s.shareNotifyDir(next.UID, next.GID); err != nil {
			socketact.CloseAll(set.Opened)
			return applyReply{err: fmt.Errorf("notify socket directory: %w", err)}
		}
	}
	// Those dropped earlier that no spec took again stay retired, and
	// those this configuration drops join them.
	taken := func(l *socketact.Listener) bool { return !slices.Contains(set.Left, l) }
	dropped := slices.DeleteFunc(slices.Clone(s.listeners), taken)
	s.retired = append(slices.DeleteFunc(s.retired, taken), dropped...)
	scaleTo := 0
	if n := max(next.Instances, 1); n != max(s.opts.Instances, 1) && !respawn {
		scaleTo = n
		next.Instances = s.opts.Instances // scale changes it
	}
	s.fileInstances = max(r.Options.Instances, 1)
	s.opts, s.listeners = next, ls
	s.publishHeld()
	for _, re := range set.Reused {
		if err := re.Apply(); err != nil {
			s.log.Warn(logev.SocketOptionNotApplied, KeySocket, re.Listener.Spec.FDName(), KeyError, err)
		}
	}
	prev := s.hash
	s.note, s.hash = r.Note, r.Note.Hash
	if s.standby != nil {
		// It holds the old sockets and pipes: start another.
		s.discardStandby()
	}
	s.closeRetired()
	res := ApplyResult{Respawn: respawn, Sockets: slices.Clone(ls), Opened: set.Opened, Retired: len(dropped), Differ: d.differ}
	if !respawn {
		// Nothing it was started with changed: it runs the configuration
		// in force, if it ran the one before (not one whose reload failed).
		for _, g := range s.gens {
			if g.state != StateDraining && !s.txNew(g) && g.configHash == prev {
				g.configHash = s.hash
			}
		}
	}
	if respawn {
		res.Strategy = d.strategy
		s.requestReload(r.Done, Action{Strategy: res.Strategy}, r.Cause)
	}
	if scaleTo > 0 {
		// An edit of instances alone scales the serving generation live,
		// as hupd scale does (its outcome is logged).
		res.ScaleTo = scaleTo
		s.scaleWhenFree(scaleTo)
	}
	return applyReply{res: res}
}

// closeRetired closes the sockets no configuration lists and no
// generation uses any more.
func (s *Supervisor) closeRetired() {
	n := len(s.retired)
	defer func() {
		if len(s.retired) != n {
			s.publishHeld()
		}
	}()
	s.retired = slices.DeleteFunc(s.retired, func(l *socketact.Listener) bool {
		if s.inUse(l) {
			return false
		}
		l.Close()
		s.log.Info(logev.SocketClosed, KeySocket, l.Spec.FDName(), "address", l.Bound.String())
		return true
	})
}

// publishHeld records the configured addresses of the sockets the
// supervisor holds (in force and retired), for Apply's caller; Run's
// goroutine calls it whenever they change.
func (s *Supervisor) publishHeld() {
	held := make([]socketact.Address, 0, len(s.listeners)+len(s.retired))
	for _, l := range append(slices.Clone(s.listeners), s.retired...) {
		held = append(held, l.Spec.Address)
	}
	s.held.Store(&held)
}
