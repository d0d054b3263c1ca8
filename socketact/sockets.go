package socketact

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Set is what Sockets chose for a list of specs.
type Set struct {
	// Listeners has one socket per spec, in the specs' order: a kept one
	// under its new spec (a Listener of its own: the held one is not
	// changed), or one opened for it.
	Listeners []*Listener
	// Reused are the held or activated sockets kept, each with what Apply
	// still has to change on it.
	Reused []Reuse
	// Opened are the sockets opened for specs nothing held could serve,
	// in the specs' order; each is also in Listeners.
	Opened []*Listener
	// Left are the held sockets no spec took; Unclaimed the activated
	// ones. Sockets closes none of them: they are the caller's.
	Left      []*Listener
	Unclaimed []Activated
}

// Reuse is a socket kept for a spec. Choosing it changed nothing on the
// socket; Apply makes the socket match the spec once the caller has
// decided to go on with the set (a configuration refused later must leave
// its sockets as they were).
type Reuse struct {
	// Listener is the socket under its new spec, as in Set.Listeners.
	Listener *Listener
	// Was is the spec it was held under (for an activated one, the same
	// as Listener.Spec).
	Was       Spec
	activated bool
}

// Apply makes the socket match its new spec: for a held one, the backlog,
// O_NONBLOCK, and the mode and owner of its socket file where they differ
// from Was (Listener.Apply); an activated one is made non-blocking when
// its spec asks (systemd's NonBlocking=), and otherwise left as received.
// A failure leaves the socket as it was.
func (r Reuse) Apply() error {
	if r.activated {
		if r.Listener.Spec.NonBlocking {
			unix.SetNonblock(int(r.Listener.File.Fd()), true)
		}
		return nil
	}
	return r.Listener.Apply(r.Was)
}

// Match is the first step of Sockets, without opening or changing
// anything: for each spec, the held socket Sockets keeps for it (nil: one
// that Sockets would take from the activated sockets or open). An error is
// the one Sockets returns for a held socket that cannot take its spec
// (ErrNeedsNewSocket). hupd plan calls it to say which sockets a
// configuration keeps, opens and closes; apply calls Sockets, which calls
// it: the two never disagree.
func Match(held []*Listener, specs []Spec, where []string) ([]*Listener, error) {
	at := func(i int, err error) error {
		if i < len(where) && where[i] != "" {
			return fmt.Errorf("%s: %w", where[i], err)
		}
		return err
	}
	match := make([]*Listener, len(specs))
	taken := make([]bool, len(held))
	for _, sameName := range []bool{true, false} {
		for i, sp := range specs {
			if match[i] != nil {
				continue
			}
			for j, l := range held {
				if !taken[j] && l.Serves(sp) && (!sameName || l.Spec.FDName() == sp.FDName()) {
					match[i], taken[j] = l, true
					break
				}
			}
		}
	}
	for i, sp := range specs {
		if match[i] != nil {
			if err := match[i].CanReconfigure(sp); err != nil {
				return nil, at(i, err)
			}
		}
	}
	return match, nil
}

// Sockets gives each of specs a socket: one that held or act already has,
// or one it opens. where[i], when present and not "", prefixes an error
// about specs[i] (the file and line it was configured at).
//
// A held socket (one this process opened or took earlier: the sockets of
// the configuration in force, then those an earlier configuration dropped
// that a generation still uses, or those an in-place upgrade handed over)
// is kept for a spec with the same configured address (Spec.SameSocket:
// "tcp://:0" stays the port the kernel chose the first time; an adopt-mode
// placeholder no program has bound serves only an adopt-mode spec, see
// Listener.Serves). Each held socket goes to one spec at most: first to a
// spec with the same address and name, then to one with the same address
// (two "tcp://127.0.0.1:0" are two sockets), the earlier held socket
// first. A kept socket must be able to take the new spec
// (Listener.CanReconfigure: an option fixed once bound, such as
// reuseport or v6only, needs a new address); otherwise nothing is opened
// and the error wraps ErrNeedsNewSocket.
//
// An activated socket (one received through LISTEN_FDS: a service
// manager's, or one hupd kept in its fd store) is matched, for the specs
// no held socket serves, first by name: a named spec takes a socket of its
// name, an unnamed one a socket under its StoreName, but only one of the
// spec's type on its port (any port for port 0) or unix path, whatever its
// host (a .socket unit's ListenStream=8080 binds every address); then by
// bound address: a socket of the spec's type bound to the spec's unix path,
// or to its port (never for port 0) and host (any unspecified host for an
// unspecified one, a name resolved). A steered spec takes none: Sockets
// returns an error (wrapping ErrSteerUnsupported) when an activated socket
// would serve it, since a steered socket must be the first of a reuseport
// group of hupd's own. With no specs at all, every activated
// socket is passed on as received, in order (FromActivated), and every
// held one is left.
//
// The specs nothing serves get new sockets, opened one at a time in order.
// On an error Sockets closes what it opened and nothing else: the held and
// activated sockets are as they were, and remain the caller's.
func Sockets(held []*Listener, act []Activated, specs []Spec, where []string) (Set, error) {
	at := func(i int, err error) error {
		if i < len(where) && where[i] != "" {
			return fmt.Errorf("%s: %w", where[i], err)
		}
		return err
	}
	if len(specs) == 0 {
		return Set{Listeners: FromActivated(act), Left: slices.Clone(held)}, nil
	}
	match, err := Match(held, specs, where)
	if err != nil {
		return Set{}, err
	}
	taken := make([]bool, len(held))
	for j, l := range held {
		taken[j] = slices.Contains(match, l)
	}
	var set Set
	rest := make([]int, 0, len(specs)) // the specs no held socket serves
	for i := range specs {
		if match[i] == nil {
			rest = append(rest, i)
		}
	}
	for _, i := range rest {
		// A steered spec never takes an activated socket (one that
		// hupd did not open may have joined another reuseport group, or
		// be joined by sockets that are not hupd's), and opening a new
		// socket beside one would do just that.
		if specs[i].Steer && slices.ContainsFunc(act, func(a Activated) bool { return activatedFor(specs[i], a) }) {
			return Set{}, at(i, errSteerActivated(specs[i]))
		}
	}
	adopted := make([]*Listener, len(specs))
	if len(act) > 0 && len(rest) > 0 {
		restSpecs := make([]Spec, len(rest))
		for k, i := range rest {
			restSpecs[k] = specs[i]
		}
		var got []*Listener
		got, set.Unclaimed = adopt(restSpecs, act)
		for k, i := range rest {
			adopted[i] = got[k]
		}
	} else {
		set.Unclaimed = slices.Clone(act)
	}
	for i, sp := range specs {
		if match[i] != nil || adopted[i] != nil {
			continue
		}
		l, err := Open([]Spec{sp})
		if err != nil {
			CloseAll(set.Opened)
			return Set{}, at(i, err)
		}
		set.Opened = append(set.Opened, l[0])
	}
	k := 0
	for i, sp := range specs {
		switch {
		case adopted[i] != nil:
			set.Listeners = append(set.Listeners, adopted[i])
			set.Reused = append(set.Reused, Reuse{Listener: adopted[i], Was: sp, activated: true})
		case match[i] != nil:
			l, err := match[i].Respec(sp)
			if err != nil { // checked above
				CloseAll(set.Opened)
				return Set{}, at(i, err)
			}
			set.Listeners = append(set.Listeners, l)
			set.Reused = append(set.Reused, Reuse{Listener: l, Was: match[i].Spec})
		default:
			set.Listeners = append(set.Listeners, set.Opened[k])
			k++
		}
	}
	for j, l := range held {
		if !taken[j] {
			set.Left = append(set.Left, l)
		}
	}
	return set, nil
}
