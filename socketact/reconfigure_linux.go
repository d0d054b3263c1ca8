package socketact

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNeedsNewSocket is wrapped by Reconfigure's errors about options that
// are fixed once a socket is bound.
var ErrNeedsNewSocket = errors.New("socketact: option fixed once the socket is bound")

// Reconfigure returns l under a new spec for the same address (see
// SameSocket): the socket itself is kept, never closed or re-bound. A new
// name only changes LISTEN_FDNAMES; a new backlog is applied with
// listen(2) again; a new mode, owner or group of a socket file with chmod
// and chown. Steer, SO_REUSEPORT and IPV6_V6ONLY cannot change on a bound
// socket: give the socket a new address, or restart hupd. It is Respec
// followed by Apply.
func (l *Listener) Reconfigure(sp Spec) (*Listener, error) {
	n, err := l.Respec(sp)
	if err != nil {
		return nil, err
	}
	return n, n.Apply(l.Spec)
}

// Respec returns l under sp without touching the socket, after the checks
// of CanReconfigure; Apply then makes the socket match.
func (l *Listener) Respec(sp Spec) (*Listener, error) {
	if err := l.CanReconfigure(sp); err != nil {
		return nil, err
	}
	n := *l
	n.Spec = sp
	return &n, nil
}

// Apply makes the socket match l.Spec where it differs from old: the
// backlog, O_NONBLOCK, and the mode, owner and group of a socket file hupd
// created. An adopted socket is left as its program made it. For a steered
// socket, every member of its group is changed, and the group's spec
// (Group.Spec, what Group.Add opens) becomes l.Spec.
func (l *Listener) Apply(old Spec) error {
	sp := l.Spec
	if sp.Adopt {
		return nil // the program set its socket up itself
	}
	if g := l.Group(); g != nil {
		return g.apply(old, sp)
	}
	if err := applySocket(int(l.File.Fd()), old, sp); err != nil {
		return fmt.Errorf("listen %s: %w", sp.Address, err)
	}
	if sp.Address.IsUnix() && !sp.Address.IsAbstract() && l.unixIno != 0 {
		if sp.Mode != 0 && sp.Mode != old.Mode {
			if err := os.Chmod(sp.Address.Path, fs.FileMode(sp.Mode)); err != nil {
				return fmt.Errorf("listen %s: %w", sp.Address, err)
			}
		}
		if sp.UID != old.UID || sp.GID != old.GID {
			if err := os.Lchown(sp.Address.Path, sp.UID, sp.GID); err != nil {
				return fmt.Errorf("listen %s: %w", sp.Address, err)
			}
		}
	}
	return nil
}

// applySocket sets O_NONBLOCK and the backlog of socket fd where sp
// differs from old.
func applySocket(fd int, old, sp Spec) error {
	if old.NonBlocking != sp.NonBlocking {
		if err := unix.SetNonblock(fd, sp.NonBlocking); err != nil {
			return os.NewSyscallError("fcntl O_NONBLOCK", err)
		}
	}
	if old.Backlog != sp.Backlog && sp.Address.Stream() {
		backlog := sp.Backlog
		if backlog <= 0 {
			backlog = maxBacklog()
		}
		if err := unix.Listen(fd, backlog); err != nil {
			return os.NewSyscallError("listen", err)
		}
	}
	return nil
}

// CanReconfigure reports whether Reconfigure(sp) can keep l's socket,
// without changing anything.
func (l *Listener) CanReconfigure(sp Spec) error {
	old := l.Spec
	if !old.SameSocket(sp) {
		return fmt.Errorf("socketact: %s is not %s", sp.Address, old.Address)
	}
	if old.Steer != sp.Steer {
		return fmt.Errorf("listen %s: steer: %w: keep it, or give the socket a new address", sp.Address, ErrNeedsNewSocket)
	}
	if (old.ReusePort || old.Steer) != (sp.ReusePort || sp.Steer) {
		return fmt.Errorf("listen %s: reuseport: %w: keep it, or give the socket a new address", sp.Address, ErrNeedsNewSocket)
	}
	if !sameV6Only(old.V6Only, sp.V6Only) {
		return fmt.Errorf("listen %s: v6only: %w: keep it, or give the socket a new address", sp.Address, ErrNeedsNewSocket)
	}
	if (sp.UID != old.UID || sp.GID != old.GID) && l.unixIno != 0 && os.Geteuid() != 0 {
		return fmt.Errorf("listen %s: changing the owner or group of a socket file needs hupd to run as root", sp.Address)
	}
	return nil
}

// SameSocket reports whether s and o name the same socket: the same
// network and address as configured (so "tcp://:0" stays the port the
// kernel chose the first time).
func (s Spec) SameSocket(o Spec) bool { return s.Address == o.Address }

// Serves reports whether l's socket can be kept for sp: the same socket,
// and not an adopt-mode placeholder for a spec that wants a bound socket.
func (l *Listener) Serves(sp Spec) bool {
	return l.Spec.SameSocket(sp) && (sp.Adopt || !l.Pending())
}

func sameV6Only(a, b *bool) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}
