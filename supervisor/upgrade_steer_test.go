package supervisor

import (
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/socketact"
)

// steeredGroup opens a steered TCP socket on 127.0.0.1:0 and adds members
// up to n; the group is closed at the end of t.
func steeredGroup(t *testing.T, n int) (*socketact.Listener, []*socketact.Listener) {
	t.Helper()
	sp, err := socketact.ParseListenFlag("http=tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sp.Steer = true
	ls, err := socketact.Open([]socketact.Spec{sp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls[0].Close() })
	grp := ls[0].Group()
	for range n - 1 {
		if _, err := grp.Add(); err != nil {
			t.Fatal(err)
		}
	}
	return ls[0], grp.Sockets()
}

// sameSocket reports whether fds a and b are the same socket.
func sameSocket(t *testing.T, a, b int) bool {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Fstat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(b, &sb); err != nil {
		t.Fatal(err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// asNewImage rewrites every socket fd of st to a duplicate, as if another
// image had received them: this process keeps its own.
func asNewImage(t *testing.T, st *Upgrade) {
	t.Helper()
	dups := map[int]int{}
	dup := func(fd int) int {
		if d, ok := dups[fd]; ok {
			return d
		}
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		dups[fd] = d
		return d
	}
	for i := range st.Listeners {
		st.Listeners[i].FD = dup(st.Listeners[i].FD)
	}
	for i, ss := range st.Steered {
		for j := range ss.Members {
			st.Steered[i].Members[j].FD = dup(ss.Members[j].FD)
		}
		away := map[int]time.Time{}
		for fd, at := range ss.Away {
			away[dup(fd)] = at
		}
		st.Steered[i].Away = away
	}
	for i := range st.Gens {
		for j, fd := range st.Gens[i].Sockets {
			st.Gens[i].Sockets[j] = dup(fd)
		}
	}
}

// TestUpgradeStateSteering: a steering group goes through the upgrade
// state (JSON) and comes back the same: the same sockets in the kernel's
// order, the same target (new connections still reach it), the anchor
// in force again with the group, each generation's member found by its fd
// under the socket's spec, and when members were steered away from. Every
// member's fd is among those kept open across the exec.
func TestUpgradeStateSteering(t *testing.T) {
	anchor, ms := steeredGroup(t, 3)
	grp := anchor.Group()
	if err := grp.Steer(ms[2]); err != nil {
		t.Fatal(err)
	}
	away := time.Now().Add(-time.Second).Round(0)
	s := &Supervisor{listeners: []*socketact.Listener{anchor}, awayAt: map[*os.File]time.Time{}}
	s.awayAt[ms[0].File] = away
	if err := s.steerHandable(); err != nil {
		t.Fatal(err)
	}
	gen, err := ms[1].Respec(anchor.Spec) // a generation's member, as socketsFor gives it
	if err != nil {
		t.Fatal(err)
	}
	st := &Upgrade{Version: upgradeVersion, Listeners: []socketact.ListenerState{anchor.State()}, Steered: s.steerStates(),
		Gens: []GenState{{Num: 2, Sockets: []int{int(gen.File.Fd())}}}}
	fds := st.fds()
	for _, m := range ms {
		if !slices.Contains(fds, int(m.File.Fd())) {
			t.Fatalf("member fd %d is not kept open across the exec (fds %v)", m.File.Fd(), fds)
		}
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back Upgrade
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	asNewImage(t, &back)

	held, err := back.RestoreSockets()
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].Group() == nil {
		t.Fatalf("restored: %d sockets, the first steered: %v", len(held), len(held) > 0 && held[0].Group() != nil)
	}
	t.Cleanup(func() { held[0].Close() })
	rg := held[0].Group()
	rms := rg.Sockets()
	if len(rms) != len(ms) || rg.Index(rg.Target()) != 2 || rms[0].File != held[0].File {
		t.Fatalf("restored group: %d members, target %d, anchor first %v", len(rms), rg.Index(rg.Target()), rms[0].File == held[0].File)
	}
	for i := range ms {
		if !sameSocket(t, int(ms[i].File.Fd()), int(rms[i].File.Fd())) {
			t.Fatalf("member %d is not the same socket after the round trip", i)
		}
	}
	// New connections still go to the target, and to nothing else.
	c, err := net.Dial("tcp", net.JoinHostPort(anchor.Bound.Host, strconv.Itoa(anchor.Bound.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pfd := []unix.PollFd{{Fd: int32(rms[2].File.Fd()), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, int(waitLimit/time.Millisecond)); err != nil || n != 1 {
		t.Fatalf("the connection did not reach the target: %d, %v", n, err)
	}
	for i := range 2 {
		if q, err := rg.Queued(rms[i]); err != nil || q != 0 {
			t.Fatalf("member %d holds %d connections (%v); the target has them", i, q, err)
		}
	}

	s2 := &Supervisor{awayAt: map[*os.File]time.Time{}}
	byFD := map[int]*socketact.Listener{int(held[0].File.Fd()): held[0]}
	s2.resumeSteer(&back, held, byFD)
	m, ok := byFD[back.Gens[0].Sockets[0]]
	if !ok || m.Group() != rg || rg.Index(m) != 1 || m.Spec.FDName() != "http" {
		t.Fatalf("generation's member after the round trip: found %v, index %d", ok, rg.Index(m))
	}
	if at, ok := s2.awayAt[rms[0].File]; !ok || !at.Equal(away) || len(s2.awayAt) != 1 {
		t.Fatalf("steered away at %v (%v), %d recorded; want %v", at, ok, len(s2.awayAt), away)
	}
}

// TestUpgradeSteeringAnchorGone: a group whose first socket a program shut
// down (it left the kernel's group) cannot be handed over: the new image
// would take another socket for its anchor. The upgrade says why.
func TestUpgradeSteeringAnchorGone(t *testing.T) {
	anchor, ms := steeredGroup(t, 2)
	grp := anchor.Group()
	if err := grp.Steer(ms[1]); err != nil {
		t.Fatal(err)
	}
	if err := unix.Shutdown(int(anchor.File.Fd()), unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	if _, err := grp.Check(); err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{listeners: []*socketact.Listener{anchor}}
	if err := s.steerHandable(); err == nil || !strings.Contains(err.Error(), "socket http: its first socket left its steering group") {
		t.Fatalf("upgrade with the anchor out of its group: %v", err)
	}
}

// TestUpgradeSteeringLeftSocketHeld: a socket that left its group since
// the last look (its program shut it down) while a generation still holds
// it: the upgrade first mirrors the kernel's order, then refuses, since
// nothing would hand that socket over and both images would fail to take
// the generation back (found by review).
func TestUpgradeSteeringLeftSocketHeld(t *testing.T) {
	anchor, ms := steeredGroup(t, 3)
	grp := anchor.Group()
	if err := grp.Steer(ms[2]); err != nil {
		t.Fatal(err)
	}
	g := &generation{num: 1, state: StateDraining, listeners: []*socketact.Listener{ms[1]}}
	s := &Supervisor{listeners: []*socketact.Listener{anchor}, gens: []*generation{g}, awayAt: map[*os.File]time.Time{},
		log: slog.New(slog.DiscardHandler)}
	if err := unix.Shutdown(int(ms[1].File.Fd()), unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	err := s.steerHandable()
	if err == nil || !strings.Contains(err.Error(), "socket http left its steering group (a program shut it down) and a generation still holds it") {
		t.Fatalf("upgrade with a held socket out of its group: %v", err)
	}
	if got := grp.Sockets(); len(got) != 2 || got[0] != anchor || got[1] != ms[2] || grp.Target() != ms[2] {
		t.Fatalf("the group was not mirrored before the state: %d members", len(got))
	}
}
