package supervisor

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
)

// Steering (Spec.Steer): a steered socket of the configuration is the
// first member (anchor) of a reuseport group (socketact.Group), and every
// generation gets a member of its own. New connections go to one member,
// the target: the newest ready generation's. Members are kept for the
// group's life (removing one would reorder the kernel's group): a member
// no live generation uses goes to the next generation that needs one. A
// generation that starts while another serves gets a free member (or a
// new one); one that starts while none serves takes the target and the
// connections queued in it.
//
// When a generation stops while another is the target, its members first
// empty their queues (what reached them before the steering moved on,
// accepted by the program as usual), for at most Options.SteerWait, and
// only then is it sent its stop signal: a program that stops at once loses
// nothing it had not accepted.

// queuePoll is how often a stopping generation's queues are looked at.
const queuePoll = 2 * time.Millisecond

// holds reports whether a live generation holds the socket l (by its file: a kept socket is a new Listener on the same
// file).
func (s *Supervisor) holds(l *socketact.Listener) bool {
	for _, g := range s.gens {
		if holdsFile(g.listeners, l) {
			return true
		}
	}
	return false
}

// holdsServing reports whether a generation that has not been told to
// stop holds the socket l.
func (s *Supervisor) holdsServing(l *socketact.Listener) bool {
	return slices.ContainsFunc(s.gens, func(g *generation) bool { return g.state != StateDraining && holdsFile(g.listeners, l) })
}

func holdsFile(ls []*socketact.Listener, l *socketact.Listener) bool {
	return slices.ContainsFunc(ls, func(x *socketact.Listener) bool { return x.File == l.File })
}

// uses reports whether g uses the held socket l: l itself, or, for a
// steered one, any member of its group.
func uses(g *generation, l *socketact.Listener) bool {
	if grp := l.Group(); grp != nil {
		return slices.ContainsFunc(g.listeners, func(x *socketact.Listener) bool { return x.Group() == grp })
	}
	return holdsFile(g.listeners, l)
}

// socketsFor returns the sockets a new generation gets: the
// configuration's, each steered one replaced by a member of its group —
// the target when no generation holds it but those told to stop (a
// restart then serves what waits there, as it would on a shared socket),
// else a free member (preferring one of prefer, the standby's), else a
// new one.
func (s *Supervisor) socketsFor(prefer []*socketact.Listener) ([]*socketact.Listener, error) {
	ls := slices.Clone(s.listeners)
	for i, l := range ls {
		grp := l.Group()
		if grp == nil {
			continue
		}
		var free []*socketact.Listener
		for _, m := range grp.Sockets() {
			if m != grp.Target() && !s.holds(m) {
				free = append(free, m)
			}
		}
		switch t := grp.Target(); {
		case t != nil && !s.holdsServing(t):
			ls[i] = t
		case len(free) == 0:
			m, err := grp.Add()
			if err != nil {
				return nil, err
			}
			ls[i] = m
		default:
			ls[i] = free[0]
			for _, m := range free {
				if holdsFile(prefer, m) {
					ls[i] = m
				}
			}
		}
		// The member serves under the configuration's spec and name (the
		// target too: an edit may have renamed the socket since).
		m, err := ls[i].Respec(l.Spec)
		if err != nil {
			return nil, err
		}
		ls[i] = m
	}
	return ls, nil
}

// steerTo steers every steered socket of g to g's member. It returns
// the failures (the steering of those sockets is as it was): a member
// its program shut down is out of its group, and nothing can be steered
// to it.
func (s *Supervisor) steerTo(g *generation) error {
	var errs []error
	for _, l := range g.listeners {
		grp := l.Group()
		if grp == nil {
			if l.Spec.Steer {
				// A member its program shut down (Check took it out).
				err := fmt.Errorf("socket %s left its steering group (its program shut it down)", l.Spec.FDName())
				s.log.Error(logev.SteerFailed, KeyGen, g.num, KeySocket, l.Spec.FDName(), KeyError, err)
				errs = append(errs, err)
			}
			continue
		}
		old := grp.Target()
		if old != nil && old.File == l.File {
			continue
		}
		if err := grp.Steer(ownMember(grp, l)); err != nil {
			s.log.Error(logev.SteerFailed, KeyGen, g.num, KeySocket, l.Spec.FDName(), KeyError, err)
			errs = append(errs, err)
			// Its member (or another) may have left the group: follow
			// the kernel's order now, not at the next exit.
			s.checkGroup(grp, g)
			continue
		}
		if old != nil {
			s.awayAt[old.File] = time.Now()
		}
		s.log.Info(logev.Steered, g.ids(KeySocket, l.Spec.FDName())...)
	}
	return errors.Join(errs...)
}

// ownMember is the group's own Listener for l's file (l may be a copy made
// for a spec).
func ownMember(grp *socketact.Group, l *socketact.Listener) *socketact.Listener {
	for _, m := range grp.Sockets() {
		if m.File == l.File {
			return m
		}
	}
	return l
}

// steeredAway reports whether g holds a member that is not its group's
// target: one that must empty before g is told to stop.
func steeredAway(g *generation) bool {
	for _, l := range g.listeners {
		if grp := l.Group(); grp != nil && grp.Target() != nil && grp.Target().File != l.File {
			return true
		}
	}
	return false
}

// waiting is what still waits in g's members steered away from: queued
// connections (or the next datagram's bytes), and whether one of them was
// steered away from too recently to know (Options.SteerGrace).
func (s *Supervisor) waiting(g *generation, now time.Time) (n int, recent bool) {
	for _, l := range g.listeners {
		grp := l.Group()
		if grp == nil || grp.Target() == nil || grp.Target().File == l.File {
			continue
		}
		if at, ok := s.awayAt[l.File]; ok && now.Sub(at) < s.opts.SteerGrace {
			recent = true
		}
		q, err := grp.Queued(ownMember(grp, l))
		if err == nil {
			n += q
		}
	}
	return n, recent
}

// empty stops g once its members steered away from are empty, or
// SteerWait after it began to wait; until then it polls.
func (s *Supervisor) empty(g *generation) {
	if g.exited() || g.state != StateDraining || g.emptyBy.IsZero() {
		return
	}
	now := time.Now()
	n, recent := s.waiting(g, now)
	switch {
	case n == 0 && !recent:
	case now.After(g.emptyBy):
		if n > 0 {
			// (With n 0, the wait ended within the grace: nothing left.)
			s.log.Warn(logev.SteerQueueLeft, g.ids(KeyQueued, n, KeyTimeout, s.opts.SteerWait)...)
		}
	default:
		if n > 0 && !recent && !g.emptyLogged {
			// Once: why its stop signal waits.
			g.emptyLogged = true
			s.log.Info(logev.SteerQueueWait, g.ids(KeyQueued, n, KeyTimeout, s.opts.SteerWait)...)
		}
		// One timer, reset: g.timers would otherwise grow by one every
		// poll, for as long as SteerWait.
		if g.pollT == nil {
			g.pollT = s.after(g, queuePoll, evQueuePoll)
		} else {
			g.pollT.Reset(queuePoll)
		}
		return
	}
	g.emptyBy = time.Time{}
	s.halt(g)
}

// groupPoll is how often the steering groups of a generation told to
// stop are checked (watchGroups).
const groupPoll = 10 * time.Millisecond

// watchGroups checks g's steering groups (checkGroups) now and then every
// groupPoll while g, told to stop, runs and holds a member: a program
// that stops often shuts its listening socket down, which takes it out of
// the kernel's group at once, and the kernel moves the group's last
// socket into its slot. Were that the target, the program would steer to
// an index that is now another socket's, or none (the kernel then picks
// any member, one nobody accepts from included), until the group is
// checked: at the latest groupPoll later, not when g exits.
func (s *Supervisor) watchGroups(g *generation) {
	if g.exited() || !slices.ContainsFunc(g.listeners, func(l *socketact.Listener) bool { return l.Group() != nil }) {
		return
	}
	s.checkGroups(g)
	if g.groupT == nil {
		g.groupT = s.after(g, groupPoll, evGroupPoll)
	} else {
		g.groupT.Reset(groupPoll)
	}
}

// checkGroups mirrors the members a program shut down (they left the
// kernel's group) for the groups g used; called when g has exited. A
// socket that left is hupd's to close (socketact.Group.Check): it is
// closed once no generation holds it (closeLeft), unless it is a group's
// anchor, which stays its group's handle.
func (s *Supervisor) checkGroups(g *generation) {
	seen := map[*socketact.Group]bool{}
	for _, l := range g.listeners {
		grp := l.Group()
		if grp == nil || seen[grp] {
			continue
		}
		seen[grp] = true
		s.checkGroup(grp, g)
	}
	s.closeLeft()
}

// checkGroup mirrors the members of grp a program shut down, and steers
// anew if the target was one; g is the generation looked at (nil: none in
// particular). A socket that left while a generation that was not told to
// stop holds it is an error: that generation gets nothing more on it.
func (s *Supervisor) checkGroup(grp *socketact.Group, g *generation) {
	gone, err := grp.Check()
	for _, m := range gone {
		attrs := []any{KeySocket, m.Spec.FDName(), "address", m.Bound.String(), KeyError, err}
		if g != nil {
			attrs = append(attrs, KeyGen, g.num)
		}
		if s.holdsServing(m) {
			s.log.Error(logev.SteerSocketShut, attrs...)
		} else {
			s.log.Warn(logev.SteerSocketShut, attrs...)
		}
		if m.Group() == nil {
			s.left = append(s.left, m)
		}
	}
	if errors.Is(err, socketact.ErrTargetGone) || grp.Target() == nil {
		s.retarget(grp)
	}
}

// retarget steers grp, whose target left it (Check then steers to its
// first member, whoever holds that), to the serving generation's member;
// with none serving, to a member no live generation holds, where new
// connections wait for the next generation, which takes it (socketsFor),
// rather than reach one that is stopping.
func (s *Supervisor) retarget(grp *socketact.Group) {
	var to *socketact.Listener
	if cur := s.current(); cur != nil {
		for _, l := range cur.listeners {
			if l.Group() == grp {
				to = ownMember(grp, l)
			}
		}
	}
	if to == nil {
		for _, m := range grp.Sockets() {
			if !s.holds(m) {
				to = m
				break
			}
		}
	}
	old := grp.Target()
	if to == nil || old == nil || to.File == old.File {
		return
	}
	if err := grp.Steer(to); err != nil {
		s.log.Error(logev.SteerFailed, KeySocket, to.Spec.FDName(), KeyError, err)
		return
	}
	s.awayAt[old.File] = time.Now()
}

// closeLeft closes the sockets that left their steering group (checkGroups)
// and that no live generation holds any more.
func (s *Supervisor) closeLeft() {
	s.left = slices.DeleteFunc(s.left, func(l *socketact.Listener) bool {
		if s.holds(l) {
			return false
		}
		delete(s.awayAt, l.File)
		l.Close()
		return true
	})
}
