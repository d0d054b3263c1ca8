package supervisor

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/hupd/hupd/socketact"
)

// Steering across an in-place upgrade: every member of every steering
// group goes over as an fd, in the kernel's order, with the index of the
// target. The BPF program stays attached to the kernel's group through
// the exec; the new image makes the same socketact.Group of the same
// sockets (socketact.RestoreGroup, which attaches the program for the
// same target again: nothing moves), and each generation's member is
// found again by its fd. A generation waiting for its queues to empty
// (emptyBy) or settling (settleEnd) keeps its deadline; the new image
// polls or waits from where the previous one was.

// SteerState is a steering group as the new image receives it.
type SteerState struct {
	// Members are the group's sockets in the kernel's order. The first is
	// its anchor, a socket of Upgrade.Listeners or Upgrade.Retired (the
	// same fd); the state of each other one is its own.
	Members []socketact.ListenerState `json:"members"`
	// Target is the index in Members of the socket new connections go to.
	Target int `json:"target"`
	// Away is when members (by fd) stopped being the target, as recorded
	// (steerGrace).
	Away map[int]time.Time `json:"away,omitempty"`
}

// steeredHeld returns the sockets held (in force, then retired) that are
// steered, each the anchor of its group.
func (s *Supervisor) steeredHeld() []*socketact.Listener {
	var out []*socketact.Listener
	for _, l := range append(slices.Clone(s.listeners), s.retired...) {
		if l.Group() != nil {
			out = append(out, l)
		}
	}
	return out
}

// steerHandable says why the steering groups cannot be handed over, or
// nil: the new image takes a group's first socket for its anchor, so the
// anchor must still be the first member (a program that shut the anchor
// down took it out of the kernel's group).
func (s *Supervisor) steerHandable() error {
	// What a program shut down since the last look is mirrored first, so
	// that the state carries the kernel's order and target.
	for _, l := range s.steeredHeld() {
		s.checkGroup(l.Group(), nil)
	}
	if len(s.left) > 0 {
		return fmt.Errorf("socket %s left its steering group (a program shut it down) and a generation still holds it: try again when that generation has exited", s.left[0].Spec.FDName())
	}
	for _, l := range s.steeredHeld() {
		if l.Group().Target() == nil {
			return fmt.Errorf("socket %s: its steering group has no socket left: restart hupd instead of upgrading it", l.Spec.FDName())
		}
		if l.Group().Index(l) != 0 {
			return fmt.Errorf("socket %s: its first socket left its steering group (a program shut it down): restart hupd instead of upgrading it", l.Spec.FDName())
		}
	}
	return nil
}

// steerStates describes the steering groups for an upgrade (see
// steerHandable).
func (s *Supervisor) steerStates() []SteerState {
	var out []SteerState
	for _, l := range s.steeredHeld() {
		grp := l.Group()
		ss := SteerState{Target: grp.Index(grp.Target())}
		for i, m := range grp.Sockets() {
			st := m.State()
			if i == 0 {
				st = l.State() // the anchor under its spec in force
			}
			ss.Members = append(ss.Members, st)
			if at, ok := s.awayAt[m.File]; ok {
				if ss.Away == nil {
					ss.Away = map[int]time.Time{}
				}
				ss.Away[st.FD] = at
			}
		}
		out = append(out, ss)
	}
	return out
}

// RestoreSockets makes, in the new image, every socket st hands over
// (Sockets, configured first), each steered one the anchor of its group
// again with the same members and target. On an error nothing is closed:
// the sockets are as they were, for the previous image to take back.
func (st *Upgrade) RestoreSockets() ([]*socketact.Listener, error) {
	var held []*socketact.Listener
	byFD := map[int]*socketact.Listener{}
	for _, ls := range st.Sockets() {
		l, err := socketact.RestoreListener(ls)
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		byFD[ls.FD] = l
	}
	for _, ss := range st.Steered {
		if len(ss.Members) == 0 {
			return nil, fmt.Errorf("upgrade state: a steering group without sockets")
		}
		anchor, ok := byFD[ss.Members[0].FD]
		if !ok {
			return nil, fmt.Errorf("upgrade state: steering group on %s: its first socket (fd %d) was not handed over", ss.Members[0].Spec.Address, ss.Members[0].FD)
		}
		members := []*socketact.Listener{anchor}
		for _, ms := range ss.Members[1:] {
			m, err := socketact.RestoreListener(ms)
			if err != nil {
				return nil, err
			}
			members = append(members, m)
		}
		if _, err := socketact.RestoreGroup(members, ss.Target); err != nil {
			return nil, fmt.Errorf("upgrade state: %w", err)
		}
	}
	return held, nil
}

// steerFDs lists the fds of every steering group's members.
func (st *Upgrade) steerFDs() []int {
	var fds []int
	for _, ss := range st.Steered {
		for _, m := range ss.Members {
			fds = append(fds, m.FD)
		}
	}
	return fds
}

// resumeSteer adds to byFD, for Resume, every member of the groups of
// held (the sockets taken over), under the spec of the socket it belongs
// to, as generations got them (socketsFor); and takes over when members
// stopped being their group's target.
func (s *Supervisor) resumeSteer(st *Upgrade, held []*socketact.Listener, byFD map[int]*socketact.Listener) {
	for _, l := range held {
		grp := l.Group()
		if grp == nil {
			continue
		}
		for _, m := range grp.Sockets() {
			fd := int(m.File.Fd())
			if _, ok := byFD[fd]; ok {
				continue // the anchor itself
			}
			if c, err := m.Respec(l.Spec); err == nil {
				m = c
			}
			byFD[fd] = m
		}
	}
	files := map[int]*os.File{}
	for _, l := range byFD {
		files[int(l.File.Fd())] = l.File
	}
	for _, ss := range st.Steered {
		for fd, at := range ss.Away {
			if f, ok := files[fd]; ok {
				s.awayAt[f] = at
			}
		}
	}
}
