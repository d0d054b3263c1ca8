//go:build linux && (amd64 || arm64)

package legacy

// Adopt mode with real trapped children (see server_test.go): the first
// program to bind a configured address keeps its own socket, which hupd
// takes over; a later program is given that socket.

import (
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// pending makes the placeholder hupd holds for url in adopt mode
// (socketact.Open of an Adopt spec) and describes it as the supervisor
// does.
func pending(t *testing.T, url string) Socket {
	t.Helper()
	a, err := socketact.ParseAddress(url)
	if err != nil {
		t.Fatal(err)
	}
	sp := socketact.Spec{Address: a, Adopt: true, UID: -1, GID: -1}
	ls, err := socketact.Open([]socketact.Spec{sp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { socketact.CloseAll(ls) })
	if !ls[0].Pending() {
		t.Fatalf("%s: a fresh adopt-mode socket is not pending", url)
	}
	_, sa, err := sp.Sockaddr()
	if err != nil {
		t.Fatal(err)
	}
	return Expect(ls[0].File, a.Stream(), sa, sp.IPv6Only())
}

func inode(t *testing.T, s Socket) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(s.File.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// freeUDPPort is a port free for both TCP (freePort) and UDP on 127.0.0.1.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		if p := freePort(t); bindable(unix.SOCK_DGRAM, p) {
			return p
		}
	}
	t.Fatal("no free UDP port")
	return 0
}

// wantKeepAlive checks held socket s has SO_KEEPALIVE, which the program
// set on its own socket before bind.
func wantKeepAlive(t *testing.T, s Socket) {
	t.Helper()
	if v, err := unix.GetsockoptInt(int(s.File.Fd()), unix.SOL_SOCKET, unix.SO_KEEPALIVE); err != nil || v != 1 {
		t.Errorf("held socket's SO_KEEPALIVE = %d, %v; the program set 1", v, err)
	}
}

// wantGiven checks that a later program's bind of fd to addr was given
// the adopted socket (inode ino), and reads its stat line.
func (tr *trapped) wantGiven(fd int, addr Addr, ino uint64) {
	tr.t.Helper()
	if ev, want := tr.event(), (Event{Socket: 0, PID: tr.tid, FD: fd, Addr: addr}); ev != want {
		tr.t.Errorf("second program's bind event %+v, want %+v", ev, want)
	}
	if st := tr.expectStat(); st.ino != ino {
		tr.t.Errorf("second program's fd has inode %d, want the adopted %d", st.ino, ino)
	}
}

// wantListenAnswered checks the event of a later program's listen on fd.
func (tr *trapped) wantListenAnswered(fd int) {
	tr.t.Helper()
	if ev, want := tr.event(), (Event{Socket: 0, Listen: true, PID: tr.tid, FD: fd}); ev != want {
		tr.t.Errorf("second program's listen event %+v, want %+v", ev, want)
	}
}

// TestAdoptTCP proves the first program's own TCP socket becomes the held
// one at its listen: its option set before bind (SO_KEEPALIVE) and its
// backlog (7) are kept, it accepts, and the socket outlives the program.
// A second program, whose server still sees the socket as pending, has its
// bind redirected to the adopted socket and its listen answered without
// touching the backlog.
func TestAdoptTCP(t *testing.T) {
	checkFDs(t)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	stale := pending(t, "tcp://"+addr)
	held := []Socket{stale}
	tr := start(t, held, "", "socket inet stream", "keepalive", "bind "+addr, "listen 7", "stat", "accept")
	fd := tr.expectFD()
	tr.expectLine("keepalive 0")
	tr.expectLine("bind 0")
	tr.expectLine("listen 0")
	if ev, want := tr.event(), (Event{Socket: 0, Listen: true, Adopted: true, PID: tr.tid, FD: fd, Addr: in4("127.0.0.1", port)}); ev != want {
		t.Errorf("listen event %+v, want %+v", ev, want)
	}
	st := tr.expectStat()
	ino := inode(t, held[0])
	if st.ino != ino {
		t.Errorf("held fd has inode %d, the program's socket %d", ino, st.ino)
	}
	if held[0].Pending || held[0].Port != port || held[0].ino != ino {
		t.Errorf("server's description after adoption: %+v", held[0])
	}
	wantKeepAlive(t, stale)
	if limit, _ := listenBacklog(t, unix.AF_INET, ino); limit != 7 {
		t.Errorf("backlog %d, the program asked for 7", limit)
	}
	c, err := net.DialTimeout("tcp4", addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	tr.expectLine("accept " + c.LocalAddr().String())
	c.Close()
	tr.exit()

	// The program is gone; hupd's fd still listens.
	c, err = net.DialTimeout("tcp4", addr, deadline)
	if err != nil {
		t.Fatalf("after the program exited: %v", err)
	}
	c.Close()

	tr2 := start(t, []Socket{stale}, "", "socket inet stream", "bind "+addr, "stat", "listen 100", "accept")
	fd2 := tr2.expectFD()
	tr2.expectLine("bind 0")
	tr2.wantGiven(fd2, in4("127.0.0.1", port), ino)
	tr2.expectLine("listen 0")
	tr2.wantListenAnswered(fd2)
	if limit, _ := listenBacklog(t, unix.AF_INET, ino); limit != 7 {
		t.Errorf("backlog %d after the second program's listen(100), want 7", limit)
	}
	// The connection made while no program ran waits in the queue.
	tr2.expect("accept")
	tr2.exit()
}

// TestAdoptUDP proves a datagram socket is bound for the program (there is
// no later call to see its own bind by) and adopted at once, and that the
// next program is given it.
func TestAdoptUDP(t *testing.T) {
	checkFDs(t)
	port := freeUDPPort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	stale := pending(t, "udp://"+addr)
	held := []Socket{stale}
	tr := start(t, held, "", "socket inet dgram", "keepalive", "bind "+addr, "stat", "recv")
	fd := tr.expectFD()
	tr.expectLine("keepalive 0")
	tr.expectLine("bind 0")
	if ev, want := tr.event(), (Event{Socket: 0, Adopted: true, PID: tr.tid, FD: fd, Addr: in4("127.0.0.1", port)}); ev != want {
		t.Errorf("bind event %+v, want %+v", ev, want)
	}
	ino := inode(t, held[0])
	if st := tr.expectStat(); st.ino != ino || st.addr != addr {
		t.Errorf("program's socket: inode %d at %s; held inode %d, want %s", st.ino, st.addr, ino, addr)
	}
	wantKeepAlive(t, stale)
	send := func(msg string) {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	send("one")
	tr.expectLine("recv one")
	tr.exit()

	tr2 := start(t, []Socket{stale}, "", "socket inet dgram", "bind "+addr, "stat", "recv")
	fd2 := tr2.expectFD()
	tr2.expectLine("bind 0")
	tr2.wantGiven(fd2, in4("127.0.0.1", port), ino)
	send("two")
	tr2.expectLine("recv two")
	tr2.exit()
}

// TestAdoptBindFails proves a program whose bind fails gets the kernel's
// error (its own bind for a stream socket, the one hupd made for it for a
// datagram socket), nothing is adopted, and the placeholder stays pending.
func TestAdoptBindFails(t *testing.T) {
	checkFDs(t)
	for _, network := range []string{"tcp4", "udp4"} {
		t.Run(network, func(t *testing.T) {
			busy := hold(t, network, "127.0.0.1:0", false, 1)
			addr := busy.addrPort()
			held := []Socket{pending(t, network[:3]+"://"+addr)}
			typ := map[string]string{"tcp4": "stream", "udp4": "dgram"}[network]
			tr := start(t, held, "", "socket inet "+typ, "bind "+addr)
			tr.expectFD()
			tr.expectLine("bind EADDRINUSE")
			tr.exit() // fails on any event
			if socketact.Bound(held[0].File) || !held[0].Pending {
				t.Errorf("placeholder bound or described as adopted after a failed bind: %+v", held[0])
			}
		})
	}
}

// TestAdoptUnixRelative proves a unix socket file the program binds by a
// relative path (in its own working directory) is recognised as the
// configured absolute path, adopted at listen, and given to the next
// program binding the same relative path.
func TestAdoptUnixRelative(t *testing.T) {
	checkFDs(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.sock")
	stale := pending(t, "unix://"+path)
	held := []Socket{stale}
	tr := start(t, held, dir, "socket unix stream", "bind unixfs:app.sock", "listen 5", "stat", "accept")
	fd := tr.expectFD()
	tr.expectLine("bind 0")
	tr.expectLine("listen 0")
	if ev, want := tr.event(), (Event{Socket: 0, Listen: true, Adopted: true, PID: tr.tid, FD: fd, Addr: Addr{Family: unix.AF_UNIX, Path: path}}); ev != want {
		t.Errorf("listen event %+v, want %+v", ev, want)
	}
	ino := inode(t, held[0])
	if st := tr.expectStat(); st.ino != ino {
		t.Errorf("held inode %d, the program's %d", ino, st.ino)
	}
	if held[0].Path != path {
		t.Errorf("adopted socket described at %q, want the configured %q", held[0].Path, path)
	}
	c, err := net.DialTimeout("unix", path, deadline)
	if err != nil {
		t.Fatal(err)
	}
	tr.expect("accept")
	c.Close()
	tr.exit()

	tr2 := start(t, []Socket{stale}, dir, "socket unix stream", "bind unixfs:app.sock", "stat", "listen 5")
	fd2 := tr2.expectFD()
	// The file exists: redirected, the program's own bind would fail.
	tr2.expectLine("bind 0")
	tr2.wantGiven(fd2, Addr{Family: unix.AF_UNIX, Path: path}, ino)
	tr2.expectLine("listen 0")
	tr2.wantListenAnswered(fd2)
	tr2.exit()
}

// TestAdoptable: a pending socket is only ever given a program socket of
// its own type, family and IPV6_V6ONLY, bound to its address or inside it.
func TestAdoptable(t *testing.T) {
	const p = 8080
	pend := func(fam int, ip string, v6only, stream bool) Socket {
		return Socket{Pending: true, Stream: stream, Family: fam, IP: netip.MustParseAddr(ip), Port: p, V6Only: v6only}
	}
	for _, tc := range []struct {
		name   string
		held   Socket
		a      Addr
		fam    int
		v6only bool
		want   int
	}{
		{"dual :: takes a dual-stack [::]", pend(unix.AF_INET6, "::", false, true), in6("::", p), unix.AF_INET6, false, 0},
		{"dual :: refuses an IPv6-only [::]", pend(unix.AF_INET6, "::", false, true), in6("::", p), unix.AF_INET6, true, -1},
		{"dual :: refuses an IPv4 0.0.0.0", pend(unix.AF_INET6, "::", false, true), in4("0.0.0.0", p), unix.AF_INET, false, -1},
		{"tcp6 [::] refuses a dual-stack [::]", pend(unix.AF_INET6, "::", true, true), in6("::", p), unix.AF_INET6, false, -1},
		{"127.0.0.1 refuses 0.0.0.0 (wider)", pend(unix.AF_INET, "127.0.0.1", false, true), in4("0.0.0.0", p), unix.AF_INET, false, -1},
		{"0.0.0.0 takes 127.0.0.1 (inside)", pend(unix.AF_INET, "0.0.0.0", false, true), in4("127.0.0.1", p), unix.AF_INET, false, 0},
		{"another port", pend(unix.AF_INET, "0.0.0.0", false, true), in4("0.0.0.0", p+1), unix.AF_INET, false, -1},
		{"datagram for a stream one", pend(unix.AF_INET, "0.0.0.0", false, true), in4("0.0.0.0", p), unix.AF_INET, false, -1},
	} {
		stream := tc.name != "datagram for a stream one"
		if got := Adoptable([]Socket{tc.held}, tc.a, stream, tc.fam, tc.v6only); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	adopted := pend(unix.AF_INET, "0.0.0.0", false, true)
	adopted.Pending = false
	if got := Adoptable([]Socket{adopted}, in4("0.0.0.0", p), true, unix.AF_INET, false); got != -1 {
		t.Errorf("an adopted socket is adoptable again: %d", got)
	}
}
