package socketact

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openHeld opens specs as sockets already held, closed at the end of t.
func openHeld(t *testing.T, specs ...Spec) []*Listener {
	t.Helper()
	ls, err := Open(specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { CloseAll(ls) })
	return ls
}

// specs parses listen flags.
func specs(t *testing.T, flags ...string) []Spec {
	t.Helper()
	out := make([]Spec, len(flags))
	for i, f := range flags {
		out[i] = spec(t, f)
	}
	return out
}

// cleanupSet closes what s opened at the end of t.
func cleanupSet(t *testing.T, s Set) {
	t.Cleanup(func() { CloseAll(s.Opened) })
}

func fdCount(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// isOpen reports whether f's descriptor is still a socket.
func isOpen(f *os.File) bool {
	_, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_TYPE)
	return err == nil
}

// TestSocketsReuse: a new list of specs keeps every held socket it names
// again, one socket per spec (by name first, then by address: two port-0
// specs stay two sockets), opens the others, and leaves the held sockets
// nothing names, unchanged.
func TestSocketsReuse(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	held := openHeld(t, specs(t, "http=tcp://127.0.0.1:0", "admin=tcp://127.0.0.1:0", "u=unix://"+sock,
		"abs=unix://@hupd-sockets-test-"+t.Name(), "gone=tcp://127.0.0.1:0")...)
	// Renamed, reordered, one dropped, one added.
	want := specs(t, "admin=tcp://127.0.0.1:0", "web=tcp://127.0.0.1:0", "new=tcp://127.0.0.1:0", "u2=unix://"+sock,
		"abs=unix://@hupd-sockets-test-"+t.Name())
	// gone is a third port-0 socket: "new" takes it (same address, and
	// no other spec of its name wants one).
	set, err := Sockets(held, nil, want, nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanupSet(t, set)
	if len(set.Listeners) != len(want) {
		t.Fatalf("%d sockets for %d specs", len(set.Listeners), len(want))
	}
	for i, l := range set.Listeners {
		if l.Spec.Name != want[i].Name {
			t.Errorf("socket %d under name %q, want %q", i, l.Spec.Name, want[i].Name)
		}
	}
	if set.Listeners[0].File != held[1].File {
		t.Error("admin did not keep its own socket")
	}
	if set.Listeners[1].File != held[0].File {
		t.Error("web (http renamed) did not get the first remaining port-0 socket")
	}
	if set.Listeners[2].File != held[4].File {
		t.Error("new did not get the last remaining port-0 socket")
	}
	if set.Listeners[3].File != held[2].File || set.Listeners[4].File != held[3].File {
		t.Error("the unix socket or the abstract one was not kept")
	}
	if len(set.Opened) != 0 || len(set.Left) != 0 || len(set.Reused) != 5 {
		t.Errorf("opened %d, left %d, reused %d; want 0, 0, 5", len(set.Opened), len(set.Left), len(set.Reused))
	}
	if held[0].Spec.Name != "http" {
		t.Error("the held listener was renamed in place")
	}

	// One more spec than there are sockets; and a socket left over.
	want = specs(t, "admin=tcp://127.0.0.1:0", "web=tcp://127.0.0.1:0", "new=tcp://127.0.0.1:0", "fourth=tcp://127.0.0.1:0")
	set, err = Sockets(held, nil, want, nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanupSet(t, set)
	if len(set.Opened) != 1 || set.Listeners[3] != set.Opened[0] || set.Opened[0].Spec.Name != "fourth" {
		t.Errorf("opened %v, want one socket for the fourth spec", set.Opened)
	}
	if len(set.Left) != 2 || set.Left[0] != held[2] || set.Left[1] != held[3] {
		t.Errorf("left %v, want the unix and the abstract socket, in held order", set.Left)
	}
	for _, l := range held {
		if !isOpen(l.File) {
			t.Errorf("held socket %s closed", l.Spec.Name)
		}
	}
}

// TestSocketsRetiredComesBack: a socket the running set dropped (after
// the current ones in held) is taken again by a spec that names its
// address once more, instead of a bind that would fail; a current socket
// of the same address and name wins over it.
func TestSocketsRetiredComesBack(t *testing.T) {
	busy := openHeld(t, specs(t, "a=tcp://127.0.0.1:0")...)[0]
	fixed := fmt.Sprintf("tcp://127.0.0.1:%d", busy.Bound.Port)
	cur := openHeld(t, specs(t, "cur=tcp://127.0.0.1:0")...)
	// The retired one: its fixed address is in use (by itself), so only
	// keeping it can serve the spec.
	retired := &Listener{Spec: spec(t, "old="+fixed), File: busy.File, Bound: busy.Bound}
	held := append(cur, retired)
	set, err := Sockets(held, nil, specs(t, "cur=tcp://127.0.0.1:0", "back="+fixed), nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanupSet(t, set)
	if set.Listeners[0].File != cur[0].File || set.Listeners[1].File != busy.File || len(set.Opened) != 0 {
		t.Errorf("got %v, opened %v: want the current socket, then the retired one", set.Listeners, set.Opened)
	}
	if set.Reused[1].Was.Name != "old" || set.Listeners[1].Spec.Name != "back" {
		t.Errorf("reused %+v", set.Reused[1])
	}
}

// TestSocketsFailureClosesOnlyWhatItOpened: a spec that cannot be opened
// fails the whole set, naming where it was configured; what Sockets had
// opened before it is closed, the held and activated sockets stay open.
func TestSocketsFailureClosesOnlyWhatItOpened(t *testing.T) {
	held := openHeld(t, specs(t, "http=tcp://127.0.0.1:0")...)
	act, _ := activated(t, "x", "127.0.0.1:0")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	want := specs(t, "http=tcp://127.0.0.1:0", "free=tcp://127.0.0.1:0", "busy=tcp://"+busy.Addr().String())
	before := fdCount(t)
	_, err = Sockets(held, []Activated{act}, want, []string{"h.toml:2", "h.toml:5", "h.toml:8"})
	if err == nil || !strings.HasPrefix(err.Error(), "h.toml:8: ") || !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("error %v does not name where and why", err)
	}
	if n := fdCount(t); n != before {
		t.Fatalf("%d fds open after the failure, %d before: the opened socket leaked", n, before)
	}
	if !isOpen(held[0].File) || !isOpen(act.File) {
		t.Fatal("a held or an activated socket was closed")
	}
}

// TestSocketsFixedOption: an option a bound socket cannot change is
// refused before anything is opened.
func TestSocketsFixedOption(t *testing.T) {
	held := openHeld(t, specs(t, "http=tcp://127.0.0.1:0")...)
	sp := spec(t, "http=tcp://127.0.0.1:0")
	sp.ReusePort = true
	before := fdCount(t)
	_, err := Sockets(held, nil, []Spec{spec(t, "new=tcp://127.0.0.1:0"), sp}, []string{"", "h.toml:3"})
	if !errors.Is(err, ErrNeedsNewSocket) || !strings.HasPrefix(err.Error(), "h.toml:3: ") || !strings.Contains(err.Error(), "reuseport") {
		t.Fatalf("err = %v", err)
	}
	if n := fdCount(t); n != before {
		t.Fatalf("%d fds open after the refusal, %d before", n, before)
	}
}

// TestSocketsDefersChanges: choosing the sockets changes nothing on them
// (a configuration refused later must leave them as they were); Apply
// makes the change.
func TestSocketsDefersChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	sp := spec(t, "a=unix://"+path)
	sp.Mode = 0o600
	held := openHeld(t, sp)
	next := sp
	next.Mode = 0o660
	set, err := Sockets(held, nil, []Spec{next}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v before Apply, want 0600 (%v)", fi.Mode(), err)
	}
	if len(set.Reused) != 1 || set.Reused[0].Was.Mode != 0o600 {
		t.Fatalf("reused %+v", set.Reused)
	}
	if err := set.Reused[0].Apply(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("mode %v after Apply, want 0660 (%v)", fi.Mode(), err)
	}
}

// TestSocketsAdoptPlaceholder: an adopt-mode placeholder that no program
// has bound serves only an adopt-mode spec; a spec that wants a bound
// socket at that address gets a new one, and the placeholder is left.
func TestSocketsAdoptPlaceholder(t *testing.T) {
	sp := spec(t, "a=tcp://127.0.0.1:0")
	sp.Adopt = true
	held := openHeld(t, sp)
	if !held[0].Pending() {
		t.Fatal("the placeholder is bound")
	}
	set, err := Sockets(held, nil, []Spec{sp}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if set.Listeners[0].File != held[0].File || len(set.Opened) != 0 {
		t.Error("an adopt-mode spec did not keep its placeholder")
	}
	bound := sp
	bound.Adopt = false
	set, err = Sockets(held, nil, []Spec{bound}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanupSet(t, set)
	if len(set.Opened) != 1 || set.Listeners[0] != set.Opened[0] || set.Opened[0].Pending() {
		t.Error("a spec for a bound socket did not get a new bound socket")
	}
	if len(set.Left) != 1 || set.Left[0] != held[0] {
		t.Errorf("left %v, want the placeholder", set.Left)
	}
}

// rawActivated is a blocking TCP socket on 127.0.0.1 (port 0), as a
// service manager would pass one, under name.
func rawActivated(t *testing.T, name string) (Activated, int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), name)
	t.Cleanup(func() { f.Close() })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return Activated{Name: name, File: f}, sa.(*unix.SockaddrInet4).Port
}

// TestSocketsActivated: activated sockets are taken by name or address,
// marked inherited with their bound address; the others are returned
// unclaimed, open; the rest of the specs get new sockets; O_NONBLOCK is
// set by Apply, not by the choice.
func TestSocketsActivated(t *testing.T) {
	web, webPort := rawActivated(t, "web")
	other, _ := rawActivated(t, "other")
	byAddr, byAddrPort := rawActivated(t, UnknownName)
	want := specs(t, fmt.Sprintf("web=tcp://127.0.0.1:%d", webPort), fmt.Sprintf("tcp://127.0.0.1:%d", byAddrPort), "extra=tcp://127.0.0.1:0")
	want[0].NonBlocking = true
	set, err := Sockets(nil, []Activated{web, other, byAddr}, want, nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanupSet(t, set)
	if set.Listeners[0].File != web.File || set.Listeners[1].File != byAddr.File {
		t.Fatal("activated sockets not taken by name and by address")
	}
	for _, l := range set.Listeners[:2] {
		if !l.Inherited || l.Bound.Port == 0 || l.Bound.Host != "127.0.0.1" {
			t.Errorf("activated listener %+v", l)
		}
	}
	if len(set.Opened) != 1 || set.Listeners[2] != set.Opened[0] || set.Opened[0].Inherited {
		t.Errorf("opened %v, want one for extra", set.Opened)
	}
	if len(set.Unclaimed) != 1 || set.Unclaimed[0].File != other.File || !isOpen(other.File) {
		t.Errorf("unclaimed %v, want the other socket, open", set.Unclaimed)
	}
	if nonblocking(t, web.File) {
		t.Fatal("O_NONBLOCK set before Apply")
	}
	for _, r := range set.Reused {
		if err := r.Apply(); err != nil {
			t.Fatal(err)
		}
	}
	if !nonblocking(t, web.File) || nonblocking(t, byAddr.File) {
		t.Error("Apply did not set O_NONBLOCK where asked, and only there")
	}
}

// TestSocketsActivatedPortZero: a port-0 spec takes an activated socket
// of its name on any port, but never one by address alone.
func TestSocketsActivatedPortZero(t *testing.T) {
	named, _ := rawActivated(t, "web")
	anon, _ := rawActivated(t, UnknownName)
	set, err := Sockets(nil, []Activated{anon, named}, specs(t, "web=tcp://127.0.0.1:0", "tcp://127.0.0.1:0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanupSet(t, set)
	if set.Listeners[0].File != named.File {
		t.Error("a port-0 spec did not take the socket of its name")
	}
	if len(set.Opened) != 1 || set.Listeners[1] != set.Opened[0] {
		t.Error("a port-0 spec took a socket by address")
	}
	if len(set.Unclaimed) != 1 || set.Unclaimed[0].File != anon.File {
		t.Errorf("unclaimed %v", set.Unclaimed)
	}
}

// TestSocketsNoSpecs: without specs, the activated sockets are passed on
// as received, in order, and every held socket is left.
func TestSocketsNoSpecs(t *testing.T) {
	a, aPort := rawActivated(t, "a")
	b, _ := rawActivated(t, UnknownName)
	held := openHeld(t, specs(t, "h=tcp://127.0.0.1:0")...)
	set, err := Sockets(held, []Activated{a, b}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Listeners) != 2 || set.Listeners[0].File != a.File || set.Listeners[1].File != b.File {
		t.Fatalf("listeners %v", set.Listeners)
	}
	if l := set.Listeners[0]; l.Spec.Name != "a" || l.Bound.Port != aPort || !l.Inherited || l.Spec.Address != l.Bound {
		t.Errorf("passed on as %+v", l)
	}
	if len(set.Left) != 1 || set.Left[0] != held[0] || len(set.Opened) != 0 || len(set.Unclaimed) != 0 {
		t.Errorf("left %v, opened %v, unclaimed %v", set.Left, set.Opened, set.Unclaimed)
	}
}

// TestResolveHostsAhead: ResolveHosts looks a host name up once, and the
// socket is then bound to the address it found, without another lookup
// (the supervisor opens a new configuration's sockets on its own
// goroutine); a spec whose host changed since is looked up again; a held
// address is not looked up; a failed lookup is the opening's error.
func TestResolveHostsAhead(t *testing.T) {
	specs := []Spec{
		{Address: Address{Network: TCP4, Host: "localhost", Port: 0}},
		{Address: Address{Network: TCP, Host: "127.0.0.1", Port: 0}},
		{Address: Address{Network: Unix, Path: filepath.Join(t.TempDir(), "s")}},
		{Address: Address{Network: TCP4, Host: "hupd-held.invalid", Port: 80}},
		{Address: Address{Network: TCP4, Host: "hupd-no-such-host.invalid", Port: 80}},
	}
	ResolveHosts(specs, func(a Address) bool { return a == specs[3].Address })
	if r := specs[0].resolved; r == nil || r.err != nil || r.ip.Unmap() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("localhost resolved to %+v", r)
	}
	if specs[1].resolved != nil || specs[2].resolved != nil || specs[3].resolved != nil {
		t.Fatal("an IP literal, a unix path or a held address was looked up")
	}
	if r := specs[4].resolved; r == nil || r.err == nil {
		t.Fatalf("the lookup of a name that does not exist: %+v", r)
	}
	// What was found ahead is used: made 127.0.0.2 here, it binds that.
	sp := specs[0]
	sp.resolved = &hostLookup{host: "localhost", ip: netip.MustParseAddr("127.0.0.2")}
	if _, sa, err := sp.Sockaddr(); err != nil || sa.(*unix.SockaddrInet4).Addr != [4]byte{127, 0, 0, 2} {
		t.Fatalf("bound to %+v (%v), want the address found ahead", sa, err)
	}
	// ... for the host it was found for only.
	sp.Address.Host = "127.0.0.3"
	if _, sa, err := sp.Sockaddr(); err != nil || sa.(*unix.SockaddrInet4).Addr != [4]byte{127, 0, 0, 3} {
		t.Fatalf("bound to %+v (%v) after the host changed, want 127.0.0.3", sa, err)
	}
	if _, err := Open(specs[4:5]); err == nil || !strings.Contains(err.Error(), "hupd-no-such-host.invalid") {
		t.Fatalf("opening a socket whose lookup failed: %v", err)
	}
}

// TestUnixPathInUseFullBacklog: opening a unix socket on a path where a
// live server listens with a full backlog fails at once with EADDRINUSE:
// the probe that tells a live socket from a stale file does not wait in
// connect (the supervisor opens a new configuration's sockets on its own
// goroutine).
func TestUnixPathInUseFullBacklog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.sock")
	srv, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(srv)
	if err := unix.Bind(srv, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(srv, 0); err != nil {
		t.Fatal(err)
	}
	full := false
	for i := 0; i < 64 && !full; i++ {
		c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(c)
		full = errors.Is(unix.Connect(c, &unix.SockaddrUnix{Name: path}), unix.EAGAIN)
	}
	if !full {
		t.Fatal("the backlog never filled")
	}
	spec, err := ParseListenFlag("unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ls, err := Open([]Spec{spec})
		CloseAll(ls)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, unix.EADDRINUSE) {
			t.Fatalf("open: %v, want EADDRINUSE", err)
		}
	case <-time.After(10 * time.Second):
		nfd, _, _ := unix.Accept(srv) // let the probe go on, then fail
		unix.Close(nfd)
		t.Fatal("open waits in connect on a listener whose backlog is full")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the live server's socket file: %v", err)
	}
}
