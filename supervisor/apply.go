package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

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
	Options   Options
	Listeners []*socketact.Listener
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
	// Respawn is set when the child's command, environment, user or
	// sockets changed: a new generation was asked for (Strategy).
	Respawn  bool
	Strategy Strategy
	// Retired counts the sockets the new configuration dropped; each is
	// closed once no generation uses it.
	Retired int
}

// ErrStopping is returned for requests hupd can no longer carry out.
var ErrStopping = errors.New("supervisor: hupd is stopping")

// Apply makes u the configuration of the generations to come. The running
// generations are untouched: they keep their sockets, and a socket that
// u.Listeners no longer holds is closed once none of them uses it. When
// the change needs a new generation (see ApplyResult), a reload is started
// as for the configured strategy; the signal strategy cannot start a new
// program, so it becomes a swap (a restart without sockets). On an error
// nothing changed and the caller still owns u.Listeners.
func (s *Supervisor) Apply(ctx context.Context, u Update) (ApplyResult, error) {
	if err := u.Options.Validate(); err != nil {
		return ApplyResult{}, err
	}
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

// apply runs on Run's goroutine.
func (s *Supervisor) apply(r *applyRequest) applyReply {
	if s.stopping {
		return applyReply{err: ErrStopping}
	}
	next := r.Options.withDefaults(len(r.Listeners))
	// What hupd itself was started with stays.
	next.Stdin, next.Stdout, next.Stderr, next.Shim, next.Self = s.opts.Stdin, s.opts.Stdout, s.opts.Stderr, s.opts.Shim, s.opts.Self
	next.Sentinel = s.opts.Sentinel
	next.Spawner, next.Thread, next.Version, next.Argv = s.opts.Spawner, s.opts.Thread, s.opts.Version, s.opts.Argv
	respawn := !sameSpawn(s.opts, s.listeners, next, r.Listeners)
	if next.UID > 0 && next.UID != os.Geteuid() {
		// The notify sockets' directory was made for the user hupd
		// started with: let this one through too, or make one it can
		// reach (see Runtime.notifyDir).
		if err := s.shareNotifyDir(next.UID, next.GID); err != nil {
			return applyReply{err: fmt.Errorf("notify socket directory: %w", err)}
		}
	}
	n := len(s.retired)
	for _, l := range s.listeners {
		if !slices.ContainsFunc(r.Listeners, func(x *socketact.Listener) bool { return x.File == l.File }) {
			s.retired = append(s.retired, l)
		}
	}
	retired := len(s.retired) - n
	// A socket dropped earlier and listed again (see Reclaim) is kept.
	s.retired = slices.DeleteFunc(s.retired, func(l *socketact.Listener) bool {
		return slices.ContainsFunc(r.Listeners, func(x *socketact.Listener) bool { return x.File == l.File })
	})
	s.pinned = nil
	s.opts, s.listeners = next, r.Listeners
	prev := s.hash
	s.note, s.hash = r.Note, r.Note.Hash
	if s.standby != nil {
		// It holds the old sockets and pipes: start another.
		s.discardStandby()
	}
	s.closeRetired()
	res := ApplyResult{Respawn: respawn, Retired: retired}
	if !respawn {
		// Nothing it was started with changed: it runs the configuration
		// in force, if it ran the one before (not one whose reload failed).
		for _, g := range s.gens {
			if g.state != StateDraining && (s.tx == nil || s.tx.new != g) && g.configHash == prev {
				g.configHash = s.hash
			}
		}
	}
	if respawn {
		res.Strategy = next.Reload
		if res.Strategy == StrategySignal {
			res.Strategy = StrategyRestart
			if len(r.Listeners) > 0 {
				res.Strategy = StrategySwap
			}
		}
		s.requestReload(r.Done, Action{Strategy: res.Strategy}, r.Cause)
	}
	return applyReply{res: res}
}

// sameSpawn reports whether a generation started with (a, als) would be
// started the same way with (b, bls). The hand-over dialects (a.Handoff
// and each socket's Spec.Handoff, [[listen]] env) are compared by the
// variables they give the child (socketact.HandoffEnv): a change that
// alters them, such as a socket's new env, needs a new generation on the
// same sockets; one that does not (the same dialects in another order)
// does not.
func sameSpawn(a Options, als []*socketact.Listener, b Options, bls []*socketact.Listener) bool {
	if a.Path != b.Path || !slices.Equal(a.Args, b.Args) || !slices.Equal(a.Env, b.Env) || a.Dir != b.Dir ||
		a.UID != b.UID || a.GID != b.GID || !slices.Equal(a.Groups, b.Groups) || a.Watchdog != b.Watchdog ||
		a.Output != b.Output || a.OutputPrefix != b.OutputPrefix || a.Control != b.Control ||
		a.Legacy != b.Legacy || a.Forking != b.Forking || a.Pidfile != b.Pidfile {
		return false
	}
	if !slices.EqualFunc(als, bls, func(x, y *socketact.Listener) bool {
		return x.File == y.File && x.Spec.FDName() == y.Spec.FDName()
	}) {
		return false
	}
	return slices.Equal(socketact.HandoffEnv(a.Handoff, als, 0), socketact.HandoffEnv(b.Handoff, bls, 0))
}

type reclaimRequest struct {
	specs []socketact.Spec
	reply chan []*socketact.Listener
}

// Reclaim returns the sockets that an earlier Update dropped and that are
// still open because a generation uses them, for the addresses specs name
// (see socketact.Listener.Serves): a new configuration that lists such an
// address again must keep the socket, which cannot be bound twice. They
// stay open until the next Apply, which keeps those in its Listeners, or
// the next Reclaim (Reclaim(nil) gives them all back). After Run has
// returned it returns nil.
func (s *Supervisor) Reclaim(specs []socketact.Spec) []*socketact.Listener {
	reply := make(chan []*socketact.Listener, 1)
	select {
	case s.reqs <- request{reclaim: &reclaimRequest{specs: specs, reply: reply}}:
		return <-reply
	case <-s.quit:
		return nil
	}
}

// reclaim runs on Run's goroutine.
func (s *Supervisor) reclaim(specs []socketact.Spec) []*socketact.Listener {
	s.pinned = nil
	for _, l := range s.retired {
		if slices.ContainsFunc(specs, func(sp socketact.Spec) bool { return l.Serves(sp) }) {
			s.pinned = append(s.pinned, l)
		}
	}
	s.closeRetired()
	return slices.Clone(s.pinned)
}

// closeRetired closes the sockets no configuration lists and no
// generation uses any more.
func (s *Supervisor) closeRetired() {
	s.retired = slices.DeleteFunc(s.retired, func(l *socketact.Listener) bool {
		if slices.Contains(s.pinned, l) {
			return false
		}
		for _, g := range s.gens {
			if slices.ContainsFunc(g.listeners, func(x *socketact.Listener) bool { return x.File == l.File }) {
				return false
			}
		}
		l.Close()
		s.log.Info("socket closed: no longer configured", "name", l.Spec.FDName(), "address", l.Bound.String())
		return true
	})
}
