package socketact

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// steered opens a steered socket for flag; its group is closed at the end
// of t.
func steered(t *testing.T, flag string) *Listener {
	t.Helper()
	sp := spec(t, flag)
	sp.Steer = true
	ls, err := Open([]Spec{sp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls[0].Close() })
	if ls[0].Group() == nil {
		t.Fatal("a steered socket has no group")
	}
	return ls[0]
}

// groupOf opens a steered socket for flag and adds sockets to its group up
// to n.
func groupOf(t *testing.T, flag string, n int) (*Group, []*Listener) {
	t.Helper()
	g := steered(t, flag).Group()
	for range n - 1 {
		if _, err := g.Add(); err != nil {
			t.Fatal(err)
		}
	}
	ms := g.Sockets()
	if len(ms) != n {
		t.Fatalf("%d members, want %d", len(ms), n)
	}
	return g, ms
}

// queues reports what waits in each member of g.
func queues(t *testing.T, g *Group) []int {
	t.Helper()
	var out []int
	for _, l := range g.Sockets() {
		n, err := g.Queued(l)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// waitQueued polls until the member at index i of g holds want, under a
// deadline: a connection reaches the accept queue when its handshake
// completes, a datagram the receive queue when the loopback delivers it.
func waitQueued(t *testing.T, g *Group, i, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		qs := queues(t, g)
		if qs[i] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queues %v: want %d at index %d", qs, want, i)
		}
		time.Sleep(time.Millisecond) // a poll interval, bounded by the deadline
	}
}

// readable reports whether l's socket has something to accept or read now.
func readable(t *testing.T, l *Listener) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(l.File.Fd()), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0 && fds[0].Revents&unix.POLLIN != 0
}

// acceptNow accepts, without blocking, every connection waiting in l.
func acceptNow(t *testing.T, l *Listener) int {
	t.Helper()
	n := 0
	for readable(t, l) {
		fd, _, err := unix.Accept4(int(l.File.Fd()), unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		n++
	}
	return n
}

// landsOn steers g to its member at index i and shows that new
// connections reach that member's accept queue and no other's.
func landsOn(t *testing.T, g *Group, i int) {
	t.Helper()
	ms := g.Sockets()
	if err := g.Steer(ms[i]); err != nil {
		t.Fatal(err)
	}
	if g.Target() != ms[i] {
		t.Fatalf("Target is not the member steered to")
	}
	connectTo(t, ms[i], 3)
	waitQueued(t, g, i, 3)
	for j, l := range ms {
		switch got := acceptNow(t, l); {
		case j == i && got != 3:
			t.Fatalf("steered to %d: accepted %d from it, want 3", i, got)
		case j != i && got != 0:
			t.Fatalf("steered to %d: accepted %d from member %d", i, got, j)
		}
	}
	if qs := queues(t, g); slices.ContainsFunc(qs, func(n int) bool { return n != 0 }) {
		t.Fatalf("queues after accepting: %v", qs)
	}
}

// connectTo makes n connections to l's address; they stay open until the
// end of t.
func connectTo(t *testing.T, l *Listener, n int) {
	t.Helper()
	addr := net.JoinHostPort(l.Bound.Host, strconv.Itoa(l.Bound.Port))
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// TestSteerTCP: in a group of 3, steering to each member in turn sends
// every new connection to that member's accept queue and none to the
// others; Queued counts them and goes back to 0 once they are accepted.
func TestSteerTCP(t *testing.T) {
	flags := []string{"tcp://127.0.0.1:0"}
	if ipv6Available() {
		flags = append(flags, "tcp://[::1]:0")
	}
	for _, flag := range flags {
		t.Run(flag, func(t *testing.T) {
			g, ms := groupOf(t, flag, 3)
			for i, l := range ms {
				if g.Index(l) != i || l.Group() != g {
					t.Fatalf("member %d: Index %d", i, g.Index(l))
				}
				if l.Bound != ms[0].Bound || l.Bound.Port == 0 {
					t.Fatalf("member %d bound to %s, the anchor to %s", i, l.Bound, ms[0].Bound)
				}
			}
			if g.Target() != ms[0] {
				t.Fatal("a new group does not steer to its first socket")
			}
			for _, i := range []int{0, 1, 2, 1, 0} {
				landsOn(t, g, i)
			}
		})
	}
}

// TestSteerUDP: datagrams follow Steer; Queued is the next datagram's
// size, 1 for an empty one, 0 when none waits.
func TestSteerUDP(t *testing.T) {
	g, ms := groupOf(t, "udp://127.0.0.1:0", 3)
	c, err := net.Dial("udp", net.JoinHostPort(ms[0].Bound.Host, strconv.Itoa(ms[0].Bound.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, i := range []int{2, 0, 1} {
		if err := g.Steer(ms[i]); err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{"hello from " + strconv.Itoa(i), ""} {
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			want := max(len(msg), 1)
			waitQueued(t, g, i, want)
			for j, q := range queues(t, g) {
				if j != i && q != 0 {
					t.Fatalf("steered to %d: %d waits in member %d", i, q, j)
				}
			}
			for j, l := range ms {
				buf := make([]byte, 64)
				n, _, err := unix.Recvfrom(int(l.File.Fd()), buf, unix.MSG_DONTWAIT)
				switch {
				case j == i && (err != nil || string(buf[:n]) != msg):
					t.Fatalf("steered to %d: read %q, %v", i, buf[:n], err)
				case j != i && !errors.Is(err, unix.EAGAIN):
					t.Fatalf("steered to %d: member %d read %q, %v", i, j, buf[:n], err)
				}
			}
			if q, err := g.Queued(ms[i]); err != nil || q != 0 {
				t.Fatalf("Queued after reading: %d, %v", q, err)
			}
		}
	}
}

// TestSteerCheck: a member whose program shut it down leaves the kernel's
// group, and the kernel moves the last member into its slot: Check does
// the same (shown by steering to every index afterwards), reports it, and
// keeps steering to the target at its new index.
func TestSteerCheck(t *testing.T) {
	g, ms := groupOf(t, "tcp://127.0.0.1:0", 4)
	a, b, c, d := ms[0], ms[1], ms[2], ms[3]
	if err := g.Steer(c); err != nil {
		t.Fatal(err)
	}
	if gone, err := g.Check(); gone != nil || err != nil {
		t.Fatalf("Check of an intact group: %v, %v", gone, err)
	}
	if err := unix.Shutdown(int(b.File.Fd()), unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	gone, err := g.Check()
	if err != nil || !slices.Equal(gone, []*Listener{b}) {
		t.Fatalf("Check: gone %v, %v", gone, err)
	}
	if got := g.Sockets(); !slices.Equal(got, []*Listener{a, d, c}) {
		t.Fatalf("order after the second socket left: %v", names(ms, got))
	}
	// Still steered to c, now at index 2.
	connectTo(t, c, 2)
	waitQueued(t, g, 2, 2)
	if acceptNow(t, c) != 2 || acceptNow(t, a) != 0 || acceptNow(t, d) != 0 {
		t.Fatal("connections did not stay with the target after Check")
	}
	for i := range 3 {
		landsOn(t, g, i)
	}
	if b.Group() != nil || g.Index(b) != -1 {
		t.Fatal("a member that left is still one")
	}
	// A member closes with its group; one that left is the caller's.
	if err := d.Close(); !errors.Is(err, ErrGroupMember) || !isOpen(d.File) {
		t.Fatalf("Close of a member: %v (open: %v)", err, isOpen(d.File))
	}
	if n, err := g.Queued(b); n != 0 || err != nil {
		t.Fatalf("Queued of a socket that left: %d, %v", n, err)
	}
	if err := b.Close(); err != nil || isOpen(b.File) || !isOpen(a.File) {
		t.Fatalf("Close of a socket that left: %v", err)
	}
}

// names shows a list of members by their place in all.
func names(all, ls []*Listener) []int {
	var out []int
	for _, l := range ls {
		out = append(out, slices.Index(all, l))
	}
	return out
}

// TestSteerCheckTargetGone: when the target leaves, new connections go to
// index 0 and Check says so.
func TestSteerCheckTargetGone(t *testing.T) {
	g, ms := groupOf(t, "tcp://127.0.0.1:0", 3)
	if err := g.Steer(ms[1]); err != nil {
		t.Fatal(err)
	}
	unix.Shutdown(int(ms[1].File.Fd()), unix.SHUT_RD)
	gone, err := g.Check()
	if !errors.Is(err, ErrTargetGone) || len(gone) != 1 || gone[0] != ms[1] {
		t.Fatalf("Check: %v, %v", gone, err)
	}
	if g.Target() != ms[0] || !slices.Equal(g.Sockets(), []*Listener{ms[0], ms[2]}) {
		t.Fatalf("target %d, order %v", slices.Index(ms, g.Target()), names(ms, g.Sockets()))
	}
	connectTo(t, ms[0], 2)
	waitQueued(t, g, 0, 2)
	if acceptNow(t, ms[0]) != 2 || acceptNow(t, ms[2]) != 0 {
		t.Fatal("connections not at index 0")
	}
}

// TestSteerCheckAllGone: when every member left (the one program serving
// shut its socket down), Check opens a new member on the address and
// steers to it: the address is never left without a listener; and Steer
// refuses a socket that left instead of attaching a program to a group of
// its own.
func TestSteerCheckAllGone(t *testing.T) {
	g, ms := groupOf(t, "tcp://127.0.0.1:0", 1)
	unix.Shutdown(int(ms[0].File.Fd()), unix.SHUT_RD)
	if err := g.Steer(ms[0]); !errors.Is(err, ErrNotMember) {
		t.Fatalf("Steer to a socket that left: %v", err)
	}
	gone, err := g.Check()
	if !errors.Is(err, ErrTargetGone) || len(gone) != 1 || gone[0] != ms[0] {
		t.Fatalf("Check: %v, %v", gone, err)
	}
	if len(g.Sockets()) != 1 || g.Target() != g.Sockets()[0] || g.Target() == ms[0] {
		t.Fatalf("after Check: %d members, target %v", len(g.Sockets()), g.Target())
	}
	connectTo(t, g.Target(), 2)
	waitQueued(t, g, 0, 2)
	if acceptNow(t, g.Target()) != 2 {
		t.Fatal("connections not at the new member")
	}
}

// TestSteerCheckSeveral: two members that left between two Checks. Where
// the order of their departures does not matter, Check mirrors the kernel
// and says nothing; where it does, Check assumes the group's order (which
// is the one used here) and says that it assumed.
func TestSteerCheckSeveral(t *testing.T) {
	for _, tc := range []struct {
		leave   []int
		want    []int
		unknown bool
	}{
		{leave: []int{1, 3}, want: []int{0, 4, 2}},
		{leave: []int{1, 2}, want: []int{0, 4, 3}, unknown: true},
	} {
		t.Run(fmt.Sprint(tc.leave), func(t *testing.T) {
			g, ms := groupOf(t, "tcp://127.0.0.1:0", 5)
			for _, i := range tc.leave {
				unix.Shutdown(int(ms[i].File.Fd()), unix.SHUT_RD)
			}
			gone, err := g.Check()
			if len(gone) != 2 || errors.Is(err, ErrOrderUnknown) != tc.unknown || !tc.unknown && err != nil {
				t.Fatalf("Check: %d gone, %v", len(gone), err)
			}
			if got := names(ms, g.Sockets()); !slices.Equal(got, tc.want) {
				t.Fatalf("order %v, want %v", got, tc.want)
			}
			for i := range g.Sockets() {
				landsOn(t, g, i)
			}
		})
	}
}

// TestSteerCheckUDP: a UDP member bound to a wildcard address that its
// program connects leaves the group (the kernel rehashes it); Check sees
// it bound elsewhere.
func TestSteerCheckUDP(t *testing.T) {
	g, ms := groupOf(t, "udp4://0.0.0.0:0", 3)
	if err := g.Steer(ms[1]); err != nil {
		t.Fatal(err)
	}
	peer := &unix.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Connect(int(ms[0].File.Fd()), peer); err != nil {
		t.Fatal(err)
	}
	gone, err := g.Check()
	if err != nil || !slices.Equal(gone, []*Listener{ms[0]}) {
		t.Fatalf("Check: %v, %v", names(ms, gone), err)
	}
	if got := names(ms, g.Sockets()); !slices.Equal(got, []int{2, 1}) {
		t.Fatalf("order %v", got)
	}
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(ms[1].Bound.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, l := range g.Sockets() {
		if err := g.Steer(l); err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		waitQueued(t, g, i, 1)
		if qs := queues(t, g); qs[1-i] != 0 {
			t.Fatalf("steered to %d: queues %v", i, qs)
		}
		unix.Recvfrom(int(l.File.Fd()), make([]byte, 8), unix.MSG_DONTWAIT)
	}
	// The anchor left, but it is still the group's handle.
	if ms[0].Group() != g {
		t.Fatal("an anchor that left lost its group")
	}
}

// TestSteerRestoreGroup: a group rebuilt from its members' fds as an
// in-place upgrade hands them over steers again, as told.
func TestSteerRestoreGroup(t *testing.T) {
	g, ms := groupOf(t, "tcp://127.0.0.1:0", 3)
	var restored []*Listener
	for _, l := range ms {
		fd, err := unix.FcntlInt(l.File.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := RestoreListener(ListenerState{FD: fd, Spec: l.Spec, Bound: l.Bound})
		if err != nil {
			t.Fatal(err)
		}
		restored = append(restored, r)
	}
	if _, err := RestoreGroup(restored, 3); err == nil {
		t.Fatal("RestoreGroup took a target out of range")
	}
	if _, err := RestoreGroup(nil, 0); err == nil {
		t.Fatal("RestoreGroup took no members")
	}
	// The old image's sockets go; the kernel's group stays (the
	// handed-over fds hold it).
	if err := ms[0].Close(); err != nil {
		t.Fatal(err)
	}
	r, err := RestoreGroup(restored, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer restored[0].Close()
	if r.Target() != restored[2] || restored[1].Group() != r || g.Target() != nil {
		t.Fatal("restored group: wrong target or membership")
	}
	connectTo(t, restored[2], 2)
	waitQueued(t, r, 2, 2)
	if acceptNow(t, restored[2]) != 2 {
		t.Fatal("connections not with the restored target")
	}
	for i := range 3 {
		landsOn(t, r, i)
	}
	l, err := r.Add()
	if err != nil {
		t.Fatal(err)
	}
	if r.Index(l) != 3 || l.Bound != restored[0].Bound {
		t.Fatalf("added at %d on %s", r.Index(l), l.Bound)
	}
	landsOn(t, r, 3)
}

// TestSteerCloseAnchor: closing the anchor (through a Respec copy, as the
// supervisor holds it) closes every socket of the group.
func TestSteerCloseAnchor(t *testing.T) {
	before := fdCount(t)
	sp := spec(t, "web=tcp://127.0.0.1:0")
	sp.Steer = true
	ls, err := Open([]Spec{sp})
	if err != nil {
		t.Fatal(err)
	}
	g := ls[0].Group()
	for range 2 {
		if _, err := g.Add(); err != nil {
			t.Fatal(err)
		}
	}
	if got := fdCount(t); got != before+3 {
		t.Fatalf("%d fds for a group of 3, %d before", got, before)
	}
	sp.Name = "www"
	held, err := ls[0].Respec(sp)
	if err != nil {
		t.Fatal(err)
	}
	if held.Group() != g {
		t.Fatal("Respec lost the group")
	}
	ms := g.Sockets()
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fdCount(t); got != before {
		t.Fatalf("%d fds after closing the anchor, %d before the group", got, before)
	}
	for i, l := range ms {
		if isOpen(l.File) || l.Group() != nil {
			t.Fatalf("member %d open after its group closed", i)
		}
	}
	if _, err := g.Add(); !errors.Is(err, ErrGroupClosed) {
		t.Fatalf("Add on a closed group: %v", err)
	}
}

// TestSteerRefused: a unix, abstract or adopt-mode socket cannot be
// steered; Open says so in one line naming the address.
func TestSteerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sock")
	adopt := spec(t, "tcp://127.0.0.1:0")
	adopt.Adopt = true
	for _, tc := range []struct {
		sp   Spec
		want string
	}{
		{spec(t, "unix://"+path), "listen unix://" + path + ": steer: a unix socket has no SO_REUSEPORT group; steer TCP and UDP sockets only"},
		{spec(t, "unixgram://@hupd-steer-test"), "listen unixgram://@hupd-steer-test: steer: a unix socket has no SO_REUSEPORT group; steer TCP and UDP sockets only"},
		{adopt, "listen tcp://127.0.0.1:0: steer: an adopt-mode socket is bound by its program; steer only sockets hupd binds itself"},
	} {
		tc.sp.Steer = true
		before := fdCount(t)
		_, err := Open([]Spec{tc.sp})
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrSteerUnsupported) {
			t.Errorf("Open: %v\nwant %s", err, tc.want)
		}
		if got := fdCount(t); got != before {
			t.Errorf("%d fds after a refusal, %d before", got, before)
		}
		if err := tc.sp.CheckSteer(); err == nil || err.Error() != tc.want {
			t.Errorf("CheckSteer: %v", err)
		}
	}
}

// TestSteerActivated: a steered spec never takes a socket received through
// LISTEN_FDS; Sockets refuses one that would have served it, by name or by
// address, and opens a group beside one that would not.
func TestSteerActivated(t *testing.T) {
	act := openHeld(t, spec(t, "web=tcp://127.0.0.1:0"))[0]
	port := strconv.Itoa(act.Bound.Port)
	acts := []Activated{{Name: "web", File: act.File}}
	for _, flag := range []string{"web=tcp://127.0.0.1:0", "other=tcp://127.0.0.1:" + port} {
		sp := spec(t, flag)
		sp.Steer = true
		_, err := Sockets(nil, acts, []Spec{sp}, []string{"hupd.toml:3"})
		want := "hupd.toml:3: listen " + sp.Address.String() + ": steer: needs a socket hupd opens itself, not one received through LISTEN_FDS"
		if err == nil || err.Error() != want || !errors.Is(err, ErrSteerUnsupported) {
			t.Errorf("Sockets: %v\nwant %s", err, want)
		}
		if m, _ := adopt([]Spec{sp}, acts); m[0] != nil {
			t.Errorf("adopt took %s for a steered spec", flag)
		}
		sp.Steer = false
		if m, _ := adopt([]Spec{sp}, acts); m[0] == nil {
			t.Errorf("adopt does not take %s unsteered: the case above proves nothing", flag)
		}
	}
	sp := spec(t, "api=tcp://127.0.0.1:0")
	sp.Steer = true
	set, err := Sockets(nil, acts, []Spec{sp}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAll(set.Opened)
	if len(set.Unclaimed) != 1 || set.Listeners[0].Group() == nil {
		t.Fatalf("unclaimed %d, group %v", len(set.Unclaimed), set.Listeners[0].Group())
	}
}

// TestSteerAddressTaken: a steered socket is the first of its group: a
// socket already on the address, even one with SO_REUSEPORT of the same
// owner (whose group it would join), refuses the address.
func TestSteerAddressTaken(t *testing.T) {
	for _, network := range []string{"tcp", "udp"} {
		sp := spec(t, network+"://127.0.0.1:0")
		sp.ReusePort = true
		other := openHeld(t, sp)[0]
		sp = spec(t, network+"://127.0.0.1:"+strconv.Itoa(other.Bound.Port))
		sp.Steer = true
		before := fdCount(t)
		if ls, err := Open([]Spec{sp}); !errors.Is(err, unix.EADDRINUSE) {
			CloseAll(ls)
			t.Errorf("%s: Open beside a reuseport socket: %v", network, err)
		}
		if got := fdCount(t); got != before {
			t.Errorf("%d fds after a refusal, %d before", got, before)
		}
	}
	// A fixed port that is free is fine.
	l := steered(t, "tcp://127.0.0.1:0")
	port := l.Bound.Port
	l.Close()
	steered(t, "tcp://127.0.0.1:"+strconv.Itoa(port))
}

// TestSteerReconfigure: steering is fixed once the socket is bound; a
// Respec copy carries the group, and Apply changes every member and what
// Add opens.
func TestSteerReconfigure(t *testing.T) {
	l := steered(t, "tcp://127.0.0.1:0")
	g := l.Group()
	m, err := g.Add()
	if err != nil {
		t.Fatal(err)
	}
	off := l.Spec
	off.Steer = false
	if err := l.CanReconfigure(off); !errors.Is(err, ErrNeedsNewSocket) {
		t.Fatalf("steer off: %v", err)
	}
	plain := openHeld(t, spec(t, "tcp://127.0.0.1:0"))[0]
	on := plain.Spec
	on.Steer = true
	if err := plain.CanReconfigure(on); !errors.Is(err, ErrNeedsNewSocket) {
		t.Fatalf("steer on: %v", err)
	}
	next := l.Spec
	next.ReusePort, next.NonBlocking, next.Name = true, true, "web" // reuseport: implied already
	n, err := l.Reconfigure(next)
	if err != nil {
		t.Fatal(err)
	}
	if n.Group() != g || !nonblocking(t, l.File) || !nonblocking(t, m.File) || !g.Spec().NonBlocking {
		t.Fatal("Apply did not reach every member of the group")
	}
	added, err := g.Add()
	if err != nil {
		t.Fatal(err)
	}
	if !nonblocking(t, added.File) || added.Spec.Name != "web" {
		t.Fatal("Add does not open under the spec in force")
	}
	landsOn(t, g, 2)
}
