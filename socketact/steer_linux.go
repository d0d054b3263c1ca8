package socketact

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Errors about steering groups.
var (
	// ErrSteerUnsupported is wrapped by the errors that refuse Steer on a
	// socket that cannot have a reuseport group of hupd's own: a unix
	// socket, an adopt-mode one, one received through LISTEN_FDS.
	ErrSteerUnsupported = errors.New("socketact: steering not supported for this socket")
	// ErrGroupMember is returned by Listener.Close for a member of a
	// steering group other than its anchor: a member lives as long as its
	// group (see Group).
	ErrGroupMember = errors.New("socketact: a steering group's member closes with its group")
	// ErrNotMember is wrapped by Group methods given a socket that is not
	// (or no longer) a member of the group.
	ErrNotMember = errors.New("socketact: not a member of the steering group")
	// ErrGroupClosed is returned by the methods of a closed Group.
	ErrGroupClosed = errors.New("socketact: steering group closed")
	// ErrTargetGone is wrapped by Check's error when the socket new
	// connections were steered to left the group: they go to its first
	// member (index 0) until the next Steer.
	ErrTargetGone = errors.New("socketact: the steering target left its group")
	// ErrOrderUnknown is wrapped by Check's error when several members
	// left the group since the last Check and the kernel's order after
	// their departures depends on which left first, which nothing tells:
	// Check assumes they left in the group's order.
	ErrOrderUnknown = errors.New("socketact: the kernel's order of the steering group is unknown")
)

// reasonError is an error that reads as its reason and wraps a sentinel
// without repeating the sentinel's text.
type reasonError struct {
	reason string
	err    error
}

func (e reasonError) Error() string { return e.reason }
func (e reasonError) Unwrap() error { return e.err }

// CheckSteer reports why a socket for sp cannot be steered, or nil (also
// when sp does not ask for steering): Open returns the same error. A
// unix socket has no reuseport group, and an adopt-mode socket is bound by
// its program, not by hupd. The error names the address and wraps
// ErrSteerUnsupported.
func (sp Spec) CheckSteer() error {
	if !sp.Steer {
		return nil
	}
	var reason string
	switch {
	case sp.Address.IsUnix():
		reason = "a unix socket has no SO_REUSEPORT group; steer TCP and UDP sockets only"
	case sp.Adopt:
		reason = "an adopt-mode socket is bound by its program; steer only sockets hupd binds itself"
	default:
		return nil
	}
	return fmt.Errorf("listen %s: steer: %w", sp.Address, reasonError{reason, ErrSteerUnsupported})
}

// errSteerActivated is the error Sockets returns for a steered spec that
// a socket received through LISTEN_FDS would have served.
func errSteerActivated(sp Spec) error {
	return fmt.Errorf("listen %s: steer: %w", sp.Address,
		reasonError{"needs a socket hupd opens itself, not one received through LISTEN_FDS", ErrSteerUnsupported})
}

// Group is a steered socket's SO_REUSEPORT group: the sockets hupd opened
// on one address (the first by Open, the others by Add), in the order of
// the kernel's array of the group's sockets, and the one every new
// connection (TCP) or datagram (UDP) goes to. A classic BPF program
// attached to the group (SO_ATTACH_REUSEPORT_CBPF) returns that socket's
// index in the array.
//
// Invariants: Sockets is the kernel's order (a socket's index is its
// place in the kernel's array), and the program returns the index of
// Target. A socket joins the kernel's array at the end (Add appends it);
// one that leaves it (shutdown(2) of a listening socket, connect(2) of a
// UDP one bound to a wildcard address, the close of its last fd) is
// replaced in its slot by the last socket. So members
// are kept for the life of the group: a generation's socket is reused by a
// later generation rather than removed, because removing one that is not
// last would move another socket to its index, and connections would go
// to the wrong socket until the program is attached again. There is no
// Remove: only the whole group closes (Close, or Listener.Close of its
// anchor, the socket Open made). A member a program shut down has left the
// kernel's group on its own; Check notices and mirrors what the kernel
// did.
//
// A member is its socket: a Respec copy of one is that member (Index,
// Listener.Group), and Listener.Close of any member but the anchor is
// refused (ErrGroupMember). Whoever holds a member's fd besides hupd (a
// generation) keeps the socket, and its place in the kernel's group,
// after the group closes in hupd.
//
// A Group is not safe for concurrent use: one goroutine owns it (the
// supervisor's).
type Group struct {
	anchor  *os.File    // the socket Open made: closing it closes the group
	members []*Listener // kernel order
	target  *Listener   // where the program steers; one of members
	spec    Spec        // the spec in force: what Add opens
	family  int
	sa      unix.Sockaddr // the address every member binds (the real port)
	bound   Address
	closed  bool
}

// newGroup makes l, listening (TCP) or bound (UDP), the first member of a
// new group steered to it.
func newGroup(l *Listener, family int) (*Group, error) {
	fd := int(l.File.Fd())
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, os.NewSyscallError("getsockname", err)
	}
	g := &Group{anchor: l.File, members: []*Listener{l}, target: l, spec: l.Spec, family: family, sa: sa, bound: l.Bound}
	if err := attachSteer(fd, 0); err != nil {
		return nil, err
	}
	l.group = g
	return g, nil
}

// attachSteer attaches, through socket fd, the program that sends every
// new connection or datagram of fd's reuseport group to the socket at
// index. It replaces the group's program atomically.
func attachSteer(fd, index int) error {
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: uint32(index)}}
	err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	if err != nil {
		return os.NewSyscallError("setsockopt SO_ATTACH_REUSEPORT_CBPF", err)
	}
	return nil
}

// probeFree checks that nothing is bound to sa (family, type typ, the
// IPV6_V6ONLY of v6only) before a steered socket binds it: a socket with
// SO_REUSEPORT of the same owner (a program an earlier hupd left running,
// another spec on the address) would otherwise take the new socket into
// its group, at an index that is not 0. The check and the bind are not
// atomic; it catches what was there before.
func probeFree(family, typ int, sa unix.Sockaddr, v6only bool) error {
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if typ == unix.SOCK_STREAM {
		// As the real socket: a connection in TIME_WAIT is no owner.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
		}
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolInt(v6only)); err != nil {
			return os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return fmt.Errorf("the address is already bound by another socket, whose reuseport group hupd's sockets would join: %w", os.NewSyscallError("bind", err))
		}
		return os.NewSyscallError("bind", err)
	}
	return nil
}

// Group returns the steering group l belongs to: its anchor's, or a
// member's (a Respec copy of either included); nil when l is not steered,
// left its group, or the group is closed.
func (l *Listener) Group() *Group {
	g := l.group
	if g == nil || g.closed || g.anchor != l.File && g.Index(l) < 0 {
		return nil
	}
	return g
}

// Sockets returns the members in the kernel's order: index i is the
// socket at position i of the kernel's array of the group's sockets.
func (g *Group) Sockets() []*Listener { return slices.Clone(g.members) }

// Index returns l's index in the group (Sockets), or -1 when it is not a
// member. A Respec copy of a member is that member: a member is its socket.
func (g *Group) Index(l *Listener) int {
	if l == nil {
		return -1
	}
	return slices.IndexFunc(g.members, func(m *Listener) bool { return m.File == l.File })
}

// Target returns the member new connections (datagrams) are steered to.
func (g *Group) Target() *Listener {
	if g.closed {
		return nil
	}
	return g.target
}

// Spec returns the spec in force for the group's sockets: the anchor's as
// opened, then as the last Listener.Apply of a member made it. Add opens
// sockets under it.
func (g *Group) Spec() Spec { return g.spec }

// Add opens one more socket on the group's address (the port the kernel
// chose for the first one, when its spec asked for port 0) with the
// group's spec, as Open would, and appends it: it is the last member.
// Steering does not change.
func (g *Group) Add() (*Listener, error) {
	if g.closed {
		return nil, ErrGroupClosed
	}
	sp := g.spec
	fail := func(err error) (*Listener, error) {
		return nil, fmt.Errorf("listen %s: steer: add a socket: %w", sp.Address, err)
	}
	typ := unix.SOCK_STREAM
	if !sp.Address.Stream() {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(g.family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(os.NewSyscallError("socket", err))
	}
	// Blocking, so the runtime never polls it (see open).
	l := &Listener{Spec: sp, File: os.NewFile(uintptr(fd), g.bound.String()), group: g}
	if err := l.setup(fd, g.family, g.sa); err != nil {
		l.File.Close()
		return fail(err)
	}
	if l.Bound, err = boundAddress(fd, sp.Address.Network); err != nil {
		l.File.Close()
		return fail(err)
	}
	g.members = append(g.members, l)
	return l, nil
}

// Steer sends every new connection (datagram) of the group to l, a
// member: it attaches the program that returns l's index. What already
// waits in another member's queue stays there.
func (g *Group) Steer(l *Listener) error {
	if g.closed {
		return ErrGroupClosed
	}
	i := g.Index(l)
	if i < 0 {
		return fmt.Errorf("listen %s: steer: %w", g.spec.Address, ErrNotMember)
	}
	// Through l itself, once it is known to be in the kernel's group: on
	// a socket that left it (a listener shut down), the kernel would
	// accept the program for a new group of that socket alone, and the
	// real group would go on with its old one.
	if !g.inGroup(g.members[i]) {
		return fmt.Errorf("listen %s: steer: %w: call Check", g.spec.Address, ErrNotMember)
	}
	if err := attachSteer(int(g.members[i].File.Fd()), i); err != nil {
		return fmt.Errorf("listen %s: steer: %w", g.spec.Address, err)
	}
	g.target = g.members[i]
	return nil
}

// Queued reports what waits in l (a member, or a socket that left the
// group): for TCP, the connections in its accept queue (TCP_INFO's
// tcpi_unacked on a listening socket), 0 once it no longer listens; for
// UDP, the size in bytes of the next datagram (SIOCINQ), and 1 for a
// datagram of no bytes, so that 0 always means that nothing waits.
func (g *Group) Queued(l *Listener) (int, error) {
	fd := int(l.File.Fd())
	fail := func(err error) (int, error) {
		return 0, fmt.Errorf("listen %s: steer: %w", g.spec.Address, err)
	}
	if g.spec.Address.Stream() {
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return fail(os.NewSyscallError("getsockopt TCP_INFO", err))
		}
		if ti.State != tcpListen {
			return 0, nil
		}
		return int(ti.Unacked), nil
	}
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return fail(os.NewSyscallError("ioctl SIOCINQ", err))
	}
	if n > 0 {
		return n, nil
	}
	// 0: an empty queue, or an empty datagram at its head.
	_, _, err = unix.Recvfrom(fd, nil, unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC)
	switch {
	case err == nil:
		return 1, nil
	case errors.Is(err, unix.EAGAIN):
		return 0, nil
	}
	return fail(os.NewSyscallError("recvfrom MSG_PEEK", err))
}

// tcpListen is TCP_LISTEN in the kernel's enum of TCP states
// (TCP_INFO's tcpi_state).
const tcpListen = 10

// inGroup reports whether member l is still in the kernel's group: a TCP
// socket while it listens (a program that shut down its listening socket
// took it out); a UDP socket while it is bound to the group's address (a
// program that connected a socket bound to a wildcard address, or
// disconnected one bound to port 0, took it out).
func (g *Group) inGroup(l *Listener) bool {
	fd := int(l.File.Fd())
	if g.spec.Address.Stream() {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		return err == nil && v == 1
	}
	sa, err := unix.Getsockname(fd)
	return err == nil && sockaddrAddress(sa, UDP) == sockaddrAddress(g.sa, UDP)
}

// detach returns members after each of leaving left them, in that order,
// as the kernel's __reuseport_detach_sock does: the last member moves into
// the slot of the one that left.
func detach(members, leaving []*Listener) []*Listener {
	out := slices.Clone(members)
	for _, l := range leaving {
		i := slices.Index(out, l)
		out[i] = out[len(out)-1]
		out = out[:len(out)-1]
	}
	return out
}

// orderKnown reports whether every order in which leaving may have left
// members gives the same order of the rest (checked for up to 6 leaving).
func orderKnown(members, leaving []*Listener) bool {
	if len(leaving) < 2 {
		return true
	}
	if len(leaving) > 6 {
		return false
	}
	want := detach(members, leaving)
	perm := slices.Clone(leaving)
	same := true
	var permute func(k int)
	permute = func(k int) {
		if !same {
			return
		}
		if k == len(perm) {
			same = slices.Equal(detach(members, perm), want)
			return
		}
		for i := k; i < len(perm); i++ {
			perm[k], perm[i] = perm[i], perm[k]
			permute(k + 1)
			perm[k], perm[i] = perm[i], perm[k]
		}
	}
	permute(0)
	return same
}

// Check finds the members that left the kernel's group (see inGroup): a
// program may shut down its listening socket. For each, the kernel moved
// its last member into the leaver's slot; Check does the same to Sockets,
// attaches the program again for the target's new index, and returns the
// members that left, in their former order. They are still open and no
// longer members; the caller decides what to do with them (Close closes
// one, except the anchor, which stays the group's handle: closing it
// closes the group). A member that left and listens again has joined the
// kernel's group at its end without the Group knowing: close it.
//
// When every member left, Check opens a new one on the address (Add), so
// that the group always has a target while it is open.
//
// The error wraps ErrTargetGone when the target left (the program then
// steers to index 0, which is Target), and ErrOrderUnknown when several
// members left and the order they left in matters (Check assumes the
// group's order).
func (g *Group) Check() (gone []*Listener, err error) {
	if g.closed {
		return nil, ErrGroupClosed
	}
	for _, l := range g.members {
		if !g.inGroup(l) {
			gone = append(gone, l)
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	var errs []error
	if !orderKnown(g.members, gone) {
		errs = append(errs, fmt.Errorf("listen %s: steer: %d sockets left the group together: %w; assuming they left in the group's order", g.spec.Address, len(gone), ErrOrderUnknown))
	}
	g.members = detach(g.members, gone)
	if len(g.members) == 0 {
		// Every member left: a new one keeps the address served (the
		// group's program went with the last member; the new socket
		// starts a group of its own and gets its program below).
		if _, err := g.Add(); err != nil {
			errs = append(errs, err)
		}
	}
	if slices.Contains(gone, g.target) {
		errs = append(errs, fmt.Errorf("listen %s: steer: %w (a program took it out); new connections go to the group's first socket", g.spec.Address, ErrTargetGone))
		g.target = nil
		if len(g.members) > 0 {
			g.target = g.members[0]
		}
	}
	if g.target != nil {
		if err := attachSteer(int(g.target.File.Fd()), g.Index(g.target)); err != nil {
			errs = append(errs, fmt.Errorf("listen %s: steer: %w", g.spec.Address, err))
		}
	}
	return gone, errors.Join(errs...)
}

// RestoreGroup makes the group of members, handed over by an in-place
// upgrade in the kernel's order (Sockets) with the index of the target,
// and attaches the program for the target again. members[0] is the
// anchor. Each member's Group is then the new group.
func RestoreGroup(members []*Listener, target int) (*Group, error) {
	if len(members) == 0 {
		return nil, errors.New("socketact: a steering group needs a socket")
	}
	addr := members[0].Spec.Address
	if target < 0 || target >= len(members) {
		return nil, fmt.Errorf("listen %s: steer: target %d of a group of %d sockets", addr, target, len(members))
	}
	g := &Group{anchor: members[0].File, members: slices.Clone(members), spec: members[0].Spec, bound: members[0].Bound}
	// The group's address from a member still on it (one a program
	// shut down may have lost its port).
	for _, l := range members {
		if l.Bound != g.bound {
			return nil, fmt.Errorf("listen %s: steer: a group's sockets on %s and %s", addr, g.bound, l.Bound)
		}
		sa, err := unix.Getsockname(int(l.File.Fd()))
		if err != nil {
			return nil, fmt.Errorf("listen %s: steer: %w", addr, os.NewSyscallError("getsockname", err))
		}
		if g.sa == nil && sockaddrAddress(sa, addr.Network) == l.Bound {
			g.sa = sa
		}
	}
	if g.sa == nil {
		return nil, fmt.Errorf("listen %s: steer: no socket of the group is bound to %s any more", addr, g.bound)
	}
	g.family = unix.AF_INET
	if _, ok := g.sa.(*unix.SockaddrInet6); ok {
		g.family = unix.AF_INET6
	}
	for _, l := range g.members {
		l.group = g
	}
	if err := g.Steer(g.members[target]); err != nil {
		return nil, err
	}
	return g, nil
}

// Close closes every socket of the group: its members and its anchor (not
// the other sockets Check reported gone, which are the caller's).
func (g *Group) Close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	var first error
	closed := false
	for _, l := range g.members {
		closed = closed || l.File == g.anchor
		if err := l.File.Close(); err != nil && first == nil {
			first = err
		}
	}
	if !closed {
		if err := g.anchor.Close(); err != nil && first == nil {
			first = err
		}
	}
	g.members, g.target = nil, nil
	return first
}

// apply makes every member's socket match sp where it differs from old
// (Listener.Apply for a steered socket): all of a group's sockets behave
// alike, as the generations that get them expect. A failure puts back
// the members already changed.
func (g *Group) apply(old, sp Spec) error {
	for i, l := range g.members {
		if err := applySocket(int(l.File.Fd()), old, sp); err != nil {
			for _, done := range g.members[:i] {
				applySocket(int(done.File.Fd()), sp, old)
			}
			return fmt.Errorf("listen %s: %w", sp.Address, err)
		}
	}
	g.spec = sp
	return nil
}
