package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// These tests run the supervisor on one steered TCP socket (a reuseport
// group of hupd's own) with real children, and look at where the kernel
// puts a fresh connection: in the accept queue of one member. The
// children ("ready", "extend", "ignore-term") never accept, so whatever
// reaches a member stays in its queue until the test, which holds every
// member as hupd does, accepts it.

// newSteered is a supervisor under test on one steered socket on
// 127.0.0.1, port 0.
func newSteered(t *testing.T, modes []string, edit func(*Options)) *supervisorUnderTest {
	t.Helper()
	spec, err := socketact.ParseListenFlag("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	spec.Steer = true
	return newSupervisorUnderTestOn(t, spec, modes, edit)
}

// steerView is the steering group as Run sees it at one moment.
type steerView struct {
	members []*os.File // the group's sockets, in the kernel's order
	target  *os.File
	gens    map[int]*os.File // each live generation's member
	standby *os.File         // the standby shim's member, nil if none
}

func (h *supervisorUnderTest) steerView() steerView {
	h.t.Helper()
	var v steerView
	h.onRun(func(s *Supervisor) {
		grp := s.listeners[0].Group()
		if grp == nil {
			return
		}
		for _, m := range grp.Sockets() {
			v.members = append(v.members, m.File)
		}
		v.target = grp.Target().File
		v.gens = map[int]*os.File{}
		for _, g := range s.gens {
			v.gens[g.num] = g.listeners[0].File
		}
		if s.standby != nil {
			v.standby = s.standby.listeners[0].File
		}
	})
	if v.members == nil {
		h.t.Fatal("the socket is not steered")
	}
	return v
}

// memberOf is generation gen's member, and whether it is the target.
func (h *supervisorUnderTest) memberOf(gen int) (*os.File, bool) {
	h.t.Helper()
	v := h.steerView()
	f := v.gens[gen]
	if f == nil {
		h.t.Fatalf("generation %d is not running", gen)
	}
	return f, f == v.target
}

// queuedOn is the length of f's accept queue (0 once it does not listen).
func queuedOn(t *testing.T, f *os.File) int {
	t.Helper()
	ti, err := unix.GetsockoptTCPInfo(int(f.Fd()), unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		t.Fatalf("TCP_INFO: %v", err)
	}
	if ti.State != 10 { // TCP_LISTEN
		return 0
	}
	return int(ti.Unacked)
}

// land opens a connection to the steered address and returns the member
// whose queue it reached. Only members with an empty queue are watched
// (poll(2) says when one has a connection to accept): a test that leaves
// one queued learns that the next did not land there by its landing
// elsewhere.
func (h *supervisorUnderTest) land() *os.File {
	t := h.t
	t.Helper()
	var watch []*os.File
	var fds []unix.PollFd
	for _, f := range h.steerView().members {
		if queuedOn(t, f) == 0 {
			watch = append(watch, f)
			fds = append(fds, unix.PollFd{Fd: int32(f.Fd()), Events: unix.POLLIN})
		}
	}
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(h.sockets[0].Bound.String(), "tcp://"), waitLimit)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(waitLimit)
	for {
		n, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds()))
		if err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatalf("poll: %v", err)
		}
		for i, p := range fds {
			if n > 0 && p.Revents&unix.POLLIN != 0 {
				return watch[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connection reached no empty member within %s", waitLimit)
		}
	}
}

// acceptOne accepts a connection queued on f (there is one: it does not
// block) and closes it.
func acceptOne(t *testing.T, f *os.File) {
	t.Helper()
	if queuedOn(t, f) == 0 {
		t.Fatal("nothing to accept")
	}
	nfd, _, err := unix.Accept4(int(f.Fd()), unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	unix.Close(nfd)
}

// extending waits for generation gen, in mode "extend", to have said
// EXTEND_TIMEOUT_USEC= (it handles its signals then) and returns its PID:
// SIGUSR2 makes it ready.
func (h *supervisorUnderTest) extending(gen int) int {
	h.t.Helper()
	h.logged(logev.ReadyTimeoutExtended, gen, 1)
	return h.started(gen)
}

// TestSteerSwap: the new generation of a swap gets a member of its own,
// which new connections reach only once it is ready; until then they go
// to the old generation's. The old generation's stop signal waits until
// what reached its member before the steering moved on has been
// accepted.
func TestSteerSwap(t *testing.T) {
	h := newSteered(t, []string{"ready", "extend"}, func(o *Options) { o.SteerWait = 10 * waitLimit }).run()
	h.ready(1)
	first, target := h.memberOf(1)
	if !target {
		t.Fatal("generation 1 did not get the target")
	}
	reply := h.reloadAsync(ActionReload, "test")
	pid2 := h.extending(2)
	second, target := h.memberOf(2)
	if second == first || target {
		t.Fatal("generation 2 did not get a member of its own")
	}
	if h.land() != first {
		t.Fatal("before generation 2 is ready, a new connection did not go to generation 1")
	}
	h.kill(pid2, unix.SIGUSR2) // ready
	if r := h.result(reply); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	if got := h.land(); got != second {
		t.Fatal("once generation 2 is ready, a new connection did not go to it")
	}
	acceptOne(t, second)
	w := h.logged(logev.SteerQueueWait, 1, 1)
	if w.int(KeyQueued) != 1 {
		t.Fatalf("waits for %v", w)
	}
	if got := h.events.matching(isMsg(logev.Draining, 1)); len(got) != 0 || h.generations()[1] != StateDraining {
		t.Fatalf("generation 1 was told to stop with a connection in its queue: %v", got)
	}
	h.onRun(func(s *Supervisor) {
		// It has polled its queue for at least the grace: with a timer
		// per poll, there would be one every queuePoll.
		if g := s.gens[0]; g.num != 1 || len(g.timers) > 1 {
			t.Errorf("generation %d, waiting for its queue, has %d timers", g.num, len(g.timers))
		}
	})
	acceptOne(t, first) // as its program would
	h.logged(logev.Draining, 1, 1)
	h.exited(1)
	if got := h.events.matching(isMsg(logev.SteerQueueLeft, 0)); len(got) != 0 {
		t.Fatalf("queue left: %v", got)
	}
}

// swapWithQueued swaps generation 1 (mode ready) for 2 (mode extend)
// with a connection queued on generation 1's member while 2 is not yet
// ready.
func swapWithQueued(t *testing.T, h *supervisorUnderTest) {
	t.Helper()
	h.ready(1)
	first, _ := h.memberOf(1)
	reply := h.reloadAsync(ActionReload, "test")
	pid2 := h.extending(2)
	if h.land() != first {
		t.Fatal("a connection before the ready did not go to generation 1")
	}
	h.kill(pid2, unix.SIGUSR2)
	if r := h.result(reply); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
}

// TestSteerWaitBoundsTheQueue: an old generation whose member keeps a
// connection nobody accepts gets its stop signal SteerWait after the
// swap, with a warning that says what was left.
func TestSteerWaitBoundsTheQueue(t *testing.T) {
	const wait = 300 * time.Millisecond
	h := newSteered(t, []string{"ready", "extend"}, func(o *Options) { o.SteerWait = wait }).run()
	swapWithQueued(t, h)
	ready := h.logged("hook ready", 2, 1)
	left := h.logged(logev.SteerQueueLeft, 1, 1)
	stop := h.logged(logev.Draining, 1, 1)
	if left.int(KeyQueued) != 1 || stop.at.Sub(ready.at) < wait {
		t.Fatalf("stop signal %s after the ready with %v", stop.at.Sub(ready.at), left)
	}
	h.exited(1)
}

// TestSteerRestartTakesTheTarget: when the serving generation crashes,
// nothing serves; the connections that arrive meanwhile wait in the
// target's queue, and the restarted generation takes that member.
func TestSteerRestartTakesTheTarget(t *testing.T) {
	h := newSteered(t, []string{"ready"}, func(o *Options) { o.Backoff = Backoff{Min: 200 * time.Millisecond, Max: 200 * time.Millisecond} }).run()
	pid := h.ready(1)
	first, _ := h.memberOf(1)
	h.kill(pid, unix.SIGUSR1)
	h.exited(1)
	if h.land() != first {
		t.Fatal("with nothing serving, a connection did not wait in the target")
	}
	h.ready(2)
	second, target := h.memberOf(2)
	if second != first || !target || queuedOn(t, second) != 1 {
		t.Fatalf("restarted generation: its member is generation 1's: %v, the target: %v, queued %d", second == first, target, queuedOn(t, second))
	}
}

// TestSteerRestartTakesATargetBeingStopped: the serving generation
// crashes during a swap, so new connections go to the new one (clients
// wait in its queue); the new one fails (never ready) and is stopped but
// does not exit (it ignores TERM): the restart takes the target it still
// holds, with what waits there, instead of leaving connections to queue
// in the socket of a generation that is going away (found by review).
func TestSteerRestartTakesATargetBeingStopped(t *testing.T) {
	h := newSteered(t, []string{"ready", "stuck", "ready"}, func(o *Options) { o.Ready.Timeout = 500 * time.Millisecond }).run()
	pid := h.ready(1)
	reply := h.reloadAsync(ActionReload, "test")
	pid2 := h.started(2)
	defer h.kill(pid2, unix.SIGKILL) // it would outlast the stop timeout
	h.kill(pid, unix.SIGUSR1)
	h.exited(1)
	if r := h.result(reply); r.OK {
		t.Fatalf("reload with a generation that is never ready: %+v", r)
	}
	second, target := h.memberOf(2)
	if !target {
		t.Fatal("generation 2 is not the target after the serving one crashed")
	}
	if h.land() != second {
		t.Fatal("a connection did not wait in generation 2's socket")
	}
	h.ready(3)
	third, target := h.memberOf(3)
	if third != second || !target || queuedOn(t, third) != 1 {
		t.Fatalf("restart: generation 2's member: %v, the target: %v, queued %d", third == second, target, queuedOn(t, third))
	}
	if st := h.generations(); st[2] != StateDraining {
		t.Fatalf("generation 2 is %s, want draining (it ignores TERM)", st[2])
	}
}

// TestSteerSteerFailureFailsTheSwap: a new generation whose member left
// the group (its program shut it down) cannot be steered to: the swap
// fails and the old generation keeps the new connections (before the
// fix, the old generation was stopped and new connections went on to
// its socket, with nobody to accept them).
func TestSteerSteerFailureFailsTheSwap(t *testing.T) {
	h := newSteered(t, []string{"ready", "extend"}, nil).run()
	h.ready(1)
	first, _ := h.memberOf(1)
	reply := h.reloadAsync(ActionReload, "test")
	pid2 := h.extending(2)
	second, _ := h.memberOf(2)
	// What a program does to its listening socket to stop accepting:
	// the socket (shared with hupd) leaves the group.
	if err := unix.Shutdown(int(second.Fd()), unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	h.kill(pid2, unix.SIGUSR2)
	r := h.result(reply)
	if r.OK || !strings.Contains(r.Reason, "generation 2 is ready, but new connections cannot be steered to it") {
		t.Fatalf("reload: %+v", r)
	}
	h.exited(2)
	keepsServing(t, h, 1)
	if h.land() != first {
		t.Fatal("a new connection did not go to generation 1")
	}
	// The socket generation 2's program shut down left the group, and
	// hupd's copy was closed with its last user.
	h.logged(logev.SteerSocketShut, 2, 1)
	if socketOpen(second) {
		t.Fatal("hupd still holds the socket that left the group")
	}
	if v := h.steerView(); slices.Contains(v.members, second) {
		t.Fatal("the socket that left is still a member")
	}
}

// TestSteerLeftSocketClosed: a serving generation's member that its
// program shut down (the target) is mirrored when it exits: hupd closes
// its copy, and the restarted generation takes the group's first member,
// which new connections go to.
func TestSteerLeftSocketClosed(t *testing.T) {
	h := newSteered(t, []string{"ready"}, nil).run()
	h.ready(1)
	first, _ := h.memberOf(1)
	if r := h.reload(ActionReload); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	h.exited(1)
	second, _ := h.memberOf(2)
	if err := unix.Shutdown(int(second.Fd()), unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	h.kill(h.ready(2), unix.SIGUSR1)
	if e := h.logged(logev.SteerSocketShut, 2, 1); !strings.Contains(fmt.Sprint(e.attrs[KeyError]), "steering target left") {
		t.Fatalf("shut down: %v", e)
	}
	h.ready(3)
	if socketOpen(second) {
		t.Fatal("hupd still holds the socket that left the group")
	}
	third, target := h.memberOf(3)
	if third != first || !target {
		t.Fatal("the restarted generation did not take the group's first member")
	}
	if h.land() != first {
		t.Fatal("a new connection did not go to the restarted generation")
	}
}

// settled swaps generation 1 for 2 with a settle window, and returns
// their members.
func settled(t *testing.T, h *supervisorUnderTest) (first, second *os.File) {
	t.Helper()
	h.ready(1)
	first, _ = h.memberOf(1)
	if r := h.reload(ActionReload); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	second, _ = h.memberOf(2)
	h.logged(logev.Settling, 1, 1)
	return first, second
}

func (h *supervisorUnderTest) rollback() ReloadResult {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return h.sup.Rollback(ctx)
}

// TestSteerSettleAndRollback: the old generation of a swap settles: it
// runs, hupd status shows the time left, and it gets no new connection.
// hupd rollback steers new connections back to it, starts nothing, and
// stops the new generation.
func TestSteerSettleAndRollback(t *testing.T) {
	h := newSteered(t, []string{"ready"}, func(o *Options) { o.Settle = 10 * waitLimit }).run()
	if r := h.rollback(); r.OK || r.Reason != "no generation is settling: nothing to roll back to" {
		t.Fatalf("rollback with nothing settling: %+v", r)
	}
	first, second := settled(t, h)
	for _, g := range h.sup.Status().Generations {
		if g.Gen == 1 && (g.State != StateSettling || time.Duration(g.SettleLeft) <= 0 || time.Duration(g.SettleLeft) > 10*waitLimit) {
			t.Fatalf("generation 1: %+v", g)
		}
	}
	if h.land() != second {
		t.Fatal("a new connection did not go to generation 2")
	}
	if queuedOn(t, first) != 0 {
		t.Fatal("the settling generation got a connection")
	}
	r := h.rollback()
	if !r.OK || r.Strategy != StrategyRollback || r.NewGen != 1 || r.OldGen != 2 {
		t.Fatalf("rollback: %+v", r)
	}
	if h.land() != first {
		t.Fatal("after the rollback, a new connection did not go to generation 1")
	}
	acceptOne(t, second) // generation 2 drains: its queue first
	h.logged(logev.Draining, 2, 1)
	h.exited(2)
	keepsServing(t, h, 1)
	if got := h.events.matching(isMsg("hook started", 3)); len(got) != 0 {
		t.Fatalf("the rollback started a generation: %v", got)
	}
}

// TestSteerSecondSwapWhileSettling: a rollback is refused while a reload
// runs; a swap while a generation settles stops the settling one, and
// its old generation settles in turn.
func TestSteerSecondSwapWhileSettling(t *testing.T) {
	h := newSteered(t, []string{"ready", "ready", "extend"}, func(o *Options) { o.Settle = 10 * waitLimit }).run()
	settled(t, h)
	reply := h.reloadAsync(ActionReload, "test")
	pid3 := h.extending(3)
	if r := h.rollback(); r.OK || r.Reason != "a reload is in progress" {
		t.Fatalf("rollback during a reload: %+v", r)
	}
	h.kill(pid3, unix.SIGUSR2)
	if r := h.result(reply); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	h.logged(logev.Draining, 1, 1)
	h.exited(1)
	h.logged(logev.Settling, 2, 1)
	if got := h.generations(); got[2] != StateSettling || got[3] != StateReady {
		t.Fatalf("generations: %v", got)
	}
	third, _ := h.memberOf(3)
	if h.land() != third {
		t.Fatal("a new connection did not go to generation 3")
	}
}

// TestSteerSettleEnds: at the end of the window the settling generation
// is stopped.
func TestSteerSettleEnds(t *testing.T) {
	h := newSteered(t, []string{"ready"}, func(o *Options) { o.Settle = 200 * time.Millisecond }).run()
	settled(t, h)
	settling := h.logged(logev.Settling, 1, 1)
	stop := h.logged(logev.Draining, 1, 1)
	if d := stop.at.Sub(settling.at); d < 200*time.Millisecond {
		t.Fatalf("stopped %s after it began to settle", d)
	}
	h.exited(1)
	keepsServing(t, h, 2)
}

// TestSteerCrashWithinTheWindowRollsBack: the new generation's crash
// within the settle window makes the settling one serve again, without a
// restart.
func TestSteerCrashWithinTheWindowRollsBack(t *testing.T) {
	h := newSteered(t, []string{"ready"}, func(o *Options) { o.Settle = 10 * waitLimit }).run()
	first, _ := settled(t, h)
	h.kill(h.ready(2), unix.SIGUSR1)
	h.logged(logev.SettleRollback, 1, 1)
	h.onRun(func(s *Supervisor) {
		if s.restartT != nil || len(s.gens) != 1 || s.gens[0].num != 1 || s.gens[0].state != StateReady || s.last.Strategy != StrategyRollback {
			t.Errorf("after the crash: restart pending %v, generations %d, last %+v", s.restartT != nil, len(s.gens), s.last)
		}
	})
	if h.land() != first {
		t.Fatal("a new connection did not go back to generation 1")
	}
	if got := h.events.matching(isMsg("hook started", 3)); len(got) != 0 {
		t.Fatalf("a generation started: %v", got)
	}
	// Reported as hupd rollback is (systemd's STATUS=, metrics): the
	// hook ran on Run's goroutine before the line above was waited for.
	hooks := h.events.matching(isMsg("hook reloaded", 0))
	if r, ok := hooks[len(hooks)-1].attrs["result"].(ReloadResult); !ok || r.Strategy != StrategyRollback || r.NewGen != 1 || r.OldGen != 2 {
		t.Fatalf("last reloaded hook: %v", hooks[len(hooks)-1])
	}
}

// TestSteerApply: a new configuration that keeps the steered socket
// keeps its group (the new generation gets a member of it); one that
// drops it closes the whole group only once no generation uses any of
// its members, whichever member that is.
func TestSteerApply(t *testing.T) {
	h := newSteered(t, []string{"ready", "ignore-term", "ready"}, nil).run()
	h.ready(1)
	anchor, _ := h.memberOf(1)
	next := h.opts
	next.Env = append(slices.Clone(next.Env), "HUPD_TEST_APPLIED=1")
	done := make(chan ReloadResult, 1)
	if _, err := h.applyNow(Update{Options: next, Listen: specsOf(h.sockets), Note: Note{Hash: "h2"}, Done: done}); err != nil {
		t.Fatal(err)
	}
	if r := h.result(done); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v", r)
	}
	h.exited(1)
	second, target := h.memberOf(2)
	if second == anchor || !target {
		t.Fatal("generation 2 did not get a member of the kept group")
	}
	if h.land() != second {
		t.Fatal("a new connection did not go to generation 2")
	}
	acceptOne(t, second)
	members := h.steerView().members

	// Dropped: generation 3 runs without it; generation 2 (which ignores
	// its stop signal) still uses a member, so none is closed.
	done = make(chan ReloadResult, 1)
	res, err := h.applyNow(Update{Options: next, Listen: []socketact.Spec{newTestSpec(t)}, Note: Note{Hash: "h3"}, Done: done})
	if err != nil || res.Retired != 1 {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	if r := h.result(done); !r.OK || r.NewGen != 3 {
		t.Fatalf("reload: %+v", r)
	}
	h.logged(logev.Draining, 2, 1)
	for i, f := range members {
		if !socketOpen(f) {
			t.Fatalf("member %d closed while generation 2 uses the group", i)
		}
	}
	h.kill(h.started(2), unix.SIGKILL)
	h.exited(2)
	h.onRun(func(*Supervisor) {}) // its exit handled (the event is logged first)
	for i, f := range members {
		if socketOpen(f) {
			t.Fatalf("member %d open once no generation uses the group", i)
		}
	}
}

// TestSteerMembersBounded: members are reused: after many swaps the group
// has no more members than generations and the standby ever held at once
// (the old generation, the new one, the standby), each its own.
func TestSteerMembersBounded(t *testing.T) {
	h := newSteered(t, []string{"ready"}, nil).run()
	h.ready(1)
	for gen := 2; gen <= 21; gen++ {
		if r := h.reload(ActionReload); !r.OK {
			t.Fatalf("reload %d: %+v", gen, r)
		}
		h.exited(gen - 1)
		v := h.steerView()
		held := []*os.File{v.gens[gen]}
		if v.standby != nil {
			held = append(held, v.standby)
		}
		if len(v.members) > 3 || len(v.gens) != 1 || v.gens[gen] != v.target || slices.Contains(held[1:], v.target) {
			t.Fatalf("after swap %d: %d members, generations %v, standby %v", gen-1, len(v.members), v.gens, v.standby)
		}
	}
	if n := len(h.spawner.recorded("standby")); n < 10 {
		t.Fatalf("only %d standby shims: the swaps did not go through them", n)
	}
}

// TestSteerStopWhileWaitingForTheQueue: hupd's stop sends a generation
// that waits for its queue its stop signal at once.
func TestSteerStopWhileWaitingForTheQueue(t *testing.T) {
	h := newSteered(t, []string{"ready", "extend"}, func(o *Options) { o.SteerWait = 10 * waitLimit }).run()
	swapWithQueued(t, h)
	h.logged(logev.SteerQueueWait, 1, 1)
	h.signal(unix.SIGTERM)
	h.logged(logev.Draining, 1, 1)
	h.wait()
	if got := h.events.matching(isMsg(logev.SteerQueueLeft, 0)); len(got) != 0 {
		t.Fatalf("queue left: %v", got)
	}
}

// TestSteerRollbackSteerFailure: a settling generation whose member its
// program shut down cannot be steered back to: hupd rollback fails and
// changes nothing (before the fix, the serving generation was stopped
// while new connections still went to it).
func TestSteerRollbackSteerFailure(t *testing.T) {
	h := newSteered(t, []string{"ready"}, func(o *Options) { o.Settle = 10 * waitLimit }).run()
	first, second := settled(t, h)
	if err := unix.Shutdown(int(first.Fd()), unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	r := h.rollback()
	if r.OK || !strings.Contains(r.Reason, "new connections cannot be steered back to generation 1") {
		t.Fatalf("rollback: %+v", r)
	}
	if got := h.generations(); got[1] != StateSettling || got[2] != StateReady {
		t.Fatalf("generations: %v", got)
	}
	if h.land() != second {
		t.Fatal("a new connection did not go to generation 2")
	}
}

// TestSteerShutDownWhileStopping: a generation told to stop whose program
// shuts its member down takes it out of the kernel's group at once, and
// the kernel moves the last member, the target here, into its slot:
// hupd notices while the program still runs and steers to the target's
// new index, so that new connections keep going to the serving
// generation (before, the group was checked only when the program
// exited, and meanwhile the kernel spread new connections over the
// members, the standby's included, where nobody accepts).
func TestSteerShutDownWhileStopping(t *testing.T) {
	h := newSteered(t, []string{"ready", "ignore-term", "ready"}, nil).run()
	h.ready(1)
	if r := h.reload(ActionReload); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	h.exited(1)
	if r := h.reload(ActionReload); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	h.logged(logev.Draining, 2, 1) // it ignores its stop signal
	second, _ := h.memberOf(2)
	third, target := h.memberOf(3)
	v := h.steerView()
	if !target || v.members[len(v.members)-1] != third || len(v.members) < 3 {
		t.Fatalf("want generation 3's member last of 3 or more, the target; members %d", len(v.members))
	}
	if err := unix.Shutdown(int(second.Fd()), unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	h.logged(logev.SteerSocketShut, 2, 1)
	for range 20 {
		if h.land() != third {
			t.Fatal("a new connection did not go to generation 3")
		}
		acceptOne(t, third)
	}
	h.kill(h.started(2), unix.SIGKILL)
	h.exited(2)
	h.onRun(func(*Supervisor) {}) // its exit handled (the event is logged first)
	if socketOpen(second) {
		t.Fatal("hupd still holds the socket that left the group")
	}
}

// TestSteerTargetGoneWhileNothingServes: the serving generation's program
// shut its member (the target) down and exited, while an older generation
// still runs after its stop signal. Check steers to the group's first
// member, that older generation's; hupd steers instead to a member no
// generation holds, where new connections wait for the restarted
// generation, which takes it.
func TestSteerTargetGoneWhileNothingServes(t *testing.T) {
	h := newSteered(t, []string{"ignore-term", "ready"}, func(o *Options) { o.Backoff = Backoff{Min: 500 * time.Millisecond, Max: 500 * time.Millisecond} }).run()
	h.ready(1)
	first, _ := h.memberOf(1)
	if r := h.reload(ActionReload); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	h.logged(logev.Draining, 1, 1) // it ignores its stop signal
	second, _ := h.memberOf(2)
	if err := unix.Shutdown(int(second.Fd()), unix.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	h.kill(h.ready(2), unix.SIGUSR1)
	h.exited(2)
	// Seen at generation 2's exit, or before by the checks of generation
	// 1's groups (it was told to stop).
	h.logged(logev.SteerSocketShut, 0, 1)
	waiting := h.land()
	if waiting == first {
		t.Fatal("with nothing serving, a new connection went to the generation told to stop")
	}
	h.ready(3)
	third, target := h.memberOf(3)
	if third != waiting || !target || queuedOn(t, third) != 1 {
		t.Fatal("the restarted generation did not take the member where the connection waits")
	}
	h.kill(h.started(1), unix.SIGKILL)
	h.exited(1)
}

// TestSteerWaitShorterThanTheGrace: a SteerWait that ends while the
// steering is too recent to know (Options.SteerGrace) sends the stop signal then
// without a warning about a queue that holds nothing.
func TestSteerWaitShorterThanTheGrace(t *testing.T) {
	h := newSteered(t, []string{"ready"}, func(o *Options) { o.SteerWait = time.Millisecond }).run()
	h.ready(1)
	if r := h.reload(ActionReload); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	h.logged(logev.Draining, 1, 1)
	h.exited(1)
	if got := h.events.matching(isMsg(logev.SteerQueueLeft, 0)); len(got) != 0 {
		t.Fatalf("warned of a queue: %v", got)
	}
}

// TestSteerRestartTakesTheNewName: an edit renames the steered socket (a
// swap: the child's LISTEN_FDNAMES change); when the generation it started
// crashes, the restart takes the target under the name in force, not the
// one its member was opened under (found by review: the target skipped
// the renaming).
func TestSteerRestartTakesTheNewName(t *testing.T) {
	h := newSteered(t, []string{"ready"}, nil).run()
	h.ready(1)
	renamed := specsOf(h.sockets)
	renamed[0].Name = "web"
	done := make(chan ReloadResult, 1)
	if _, err := h.applyNow(Update{Options: h.opts, Listen: renamed, Note: Note{Hash: "h2"}, Done: done}); err != nil {
		t.Fatal(err)
	}
	if r := h.result(done); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v", r)
	}
	h.exited(1)
	h.kill(h.ready(2), unix.SIGUSR1)
	h.exited(2)
	h.ready(3)
	h.onRun(func(s *Supervisor) {
		g := s.gens[len(s.gens)-1]
		if g.num != 3 || len(g.listeners) != 1 || g.listeners[0].Spec.FDName() != "web" {
			t.Errorf("generation %d's socket is named %q, want web", g.num, g.listeners[0].Spec.FDName())
		}
	})
}

// TestSteerRestartStrategy: the restart strategy stops the old generation
// first (no queue wait: its member is the target), and the new one takes
// that member with what queued there meanwhile.
func TestSteerRestartStrategy(t *testing.T) {
	h := newSteered(t, []string{"ready"}, func(o *Options) { o.Reload = StrategyRestart }).run()
	h.ready(1)
	first, _ := h.memberOf(1)
	if r := h.reload(ActionReload); !r.OK || r.Strategy != StrategyRestart || r.NewGen != 2 {
		t.Fatalf("reload: %+v", r)
	}
	second, target := h.memberOf(2)
	if second != first || !target {
		t.Fatalf("generation 2's member is generation 1's: %v, the target: %v", second == first, target)
	}
	if h.land() != second {
		t.Fatal("a new connection did not go to generation 2")
	}
	if got := h.events.matching(isMsg(logev.SteerQueueWait, 0)); len(got) != 0 {
		t.Fatalf("the restart waited for a queue: %v", got)
	}
}
