package supervisor

import (
	"fmt"
	"slices"
	"time"

	"github.com/hupd/hupd/internal/logev"
)

// Settle (Options.Settle): once a swap's new generation is ready, the old
// one is kept running for a while (StateSettling) instead of being
// stopped: with steered sockets it receives nothing new but can serve
// again at once — Rollback, or by itself when the new generation exits
// within the window — without starting anything. Without steering both
// generations accept meanwhile. At most one generation settles: a later
// swap stops the one settling. When the window ends it is stopped as any
// old generation is (its queues emptied first).

// settling is the generation kept running after a swap (StateSettling),
// nil if none.
func (s *Supervisor) settling() *generation {
	for _, g := range s.gens {
		if g.state == StateSettling {
			return g
		}
	}
	return nil
}

// keepWarm makes g, the old generation of a swap just done, settle.
func (s *Supervisor) keepWarm(g *generation) {
	g.state = StateSettling
	g.settleEnd = time.Now().Add(s.opts.Settle)
	g.settleT = s.after(g, s.opts.Settle, evSettleEnd)
	s.log.Info(logev.Settling, g.ids(KeyTimeout, s.opts.Settle)...)
}

// revive makes the settling generation g serve again: new connections go
// to it, and the generation that was serving (cur, may be nil) stops.
// When new connections cannot be steered to g, nothing changes (what was
// steered to g goes back to cur) and the error says why.
func (s *Supervisor) revive(g, cur *generation) error {
	if err := s.steerTo(g); err != nil {
		if cur != nil {
			s.steerTo(cur)
		}
		return err
	}
	// Every instance of it serves again; every instance of cur stops.
	for _, x := range s.gens {
		if x != g && (x.set == nil || x.set != g.set || x.state != StateSettling) {
			continue
		}
		x.state = StateReady
		x.settleEnd = time.Time{}
		if x.settleT != nil {
			x.settleT.Stop()
			x.settleT = nil
		}
	}
	if cur != nil {
		if cur.set != nil {
			s.drainSet(cur.set)
		} else {
			s.drain(cur)
		}
	}
	// Instances of it that exited while it settled start again.
	if set := g.set; set.multi() {
		for i := range set.n {
			if !slices.ContainsFunc(s.instances(set), func(x *generation) bool { return x.inst == i }) {
				s.scheduleInstRestart(set, i, 0, "exited while its generation settled")
			}
		}
	}
	return nil
}

// rollback serves a Rollback request on Run's goroutine.
func (s *Supervisor) rollback() ReloadResult {
	g := s.settling()
	switch {
	case s.stopping:
		return failed(StrategyRollback, "hupd is stopping")
	case s.tx != nil:
		return failed(StrategyRollback, "a reload is in progress")
	case g == nil:
		return failed(StrategyRollback, "no generation is settling: nothing to roll back to")
	}
	started := time.Now()
	cur := s.current()
	if err := s.revive(g, cur); err != nil {
		return failed(StrategyRollback, fmt.Sprintf("new connections cannot be steered back to generation %d: %v", g.num, err))
	}
	res := ReloadResult{OK: true, Strategy: StrategyRollback, Cause: "hupd rollback", NewGen: g.num, NewPID: g.pid, Started: started, Finished: time.Now()}
	if cur != nil {
		res.OldGen, res.OldPID = cur.num, cur.pid
	}
	s.last = &res
	s.log.Info(logev.RolledBack, g.ids(KeyOldPID, res.OldPID, KeyTook, res.Finished.Sub(started).Round(time.Microsecond))...)
	if h := s.hooks.Reloaded; h != nil {
		h(res)
	}
	return res
}

// rollbackOnExit revives the settling generation, if any, when the
// serving generation g has exited; it reports whether it did.
func (s *Supervisor) rollbackOnExit(g *generation) bool {
	o := s.settling()
	var cur *generation // what is left of g's generation stops too
	if live := s.instances(g.set); g.set.multi() && len(live) > 0 {
		cur = live[0]
	}
	if o == nil || s.revive(o, cur) != nil {
		return false
	}
	now := time.Now()
	s.last = &ReloadResult{OK: true, Strategy: StrategyRollback, Cause: "generation exited while another settled",
		OldGen: g.num, OldPID: g.pid, NewGen: o.num, NewPID: o.pid, Started: now, Finished: now}
	s.log.Warn(logev.SettleRollback, KeyGen, o.num, KeyPID, o.pid, KeyOldPID, g.pid)
	if h := s.hooks.Reloaded; h != nil {
		h(*s.last) // as for hupd rollback: systemd's STATUS=, metrics
	}
	return true
}
