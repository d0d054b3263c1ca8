package integration

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hupd/hupd/internal/logev"
)

func init() {
	// steer-lazy DIR: the first child started (the one that makes
	// DIR/first) says READY=1 and never accepts, until TERM; every other
	// one is bare. Connections queued for the first one stay queued.
	childModes["steer-lazy"] = func(args []string) {
		if len(args) == 0 || os.Mkdir(filepath.Join(args[0], "first"), 0o755) != nil {
			childModes["bare"](nil)
			return
		}
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); !ok {
			fmt.Fprintf(os.Stderr, "child steer-lazy: READY=1 not sent (%v)\n", err)
			os.Exit(3)
		}
		<-sigs
	}
}

// Steering survives an in-place upgrade of hupd: every generation's own
// socket and the BPF program go over with the exec.

// steerUpgrade runs `hupd upgrade` (to hupd's own binary) and waits for
// the n-th take-over.
func steerUpgrade(t *testing.T, h *Hupd, n int) {
	t.Helper()
	if out, code := hupdCtl(t, h, "upgrade"); code != 0 || !strings.HasPrefix(out, "upgrade ok: ") {
		t.Fatalf("hupd upgrade: exit %d: %s", code, out)
	}
	h.WaitEvent(logev.Upgraded, n, nil)
}

// A bare-Shutdown child under new-connection load: a swap, hupd upgrade,
// two more swaps. No request fails; the generation serving at the upgrade
// is kept; afterwards the port has no more listening sockets than before
// (the group's members went over, none was opened again) and new
// connections go to the newest generation only (the program steers to its
// socket). No stop signal was sent with connections still queued.
func TestSteerUpgradeUnderLoad(t *testing.T) {
	h, addr := startBare(t, "--steer")
	_, port, _ := net.SplitHostPort(addr)
	l := startSteerLoad(t, addr, 4)
	steerSwap(t, h, 1)
	serving := h.ChildPID(2)
	before := listeningOn(t, port)

	steerUpgrade(t, h, 1)
	if pids := genPIDs(statusOf(t, h)); len(pids) != 1 || pids[0] != serving {
		t.Fatalf("generations %v after the upgrade, want [%d]", pids, serving)
	}
	if bad := leftovers(t, h.Cmd.Process.Pid); len(bad) > 0 {
		t.Errorf("left open by the upgrade: %v", bad)
	}
	steerAnswers(t, addr, 5, serving, "after the upgrade")

	steerSwap(t, h, 2)
	steerSwap(t, h, 3)
	l.stop()
	t.Logf("%d requests ok, %d failed across a swap, an upgrade and two swaps", l.ok.Load(), l.failed.Load())
	if l.failed.Load() != 0 || l.ok.Load() == 0 {
		t.Fatalf("%d requests ok, %d failed across a swap, an upgrade and two swaps with --steer", l.ok.Load(), l.failed.Load())
	}
	newest := h.ChildPID(4)
	steerAnswers(t, addr, 10, newest, "after two swaps past the upgrade")
	if n := listeningOn(t, port); n > before {
		t.Fatalf("%d listening sockets on port %s after the upgrade and two swaps, %d before it", n, port, before)
	}
	if n := len(h.Events(logev.SteerQueueLeft)); n != 0 {
		t.Errorf("%d stop signals sent with connections still queued", n)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// An upgrade while the old generation settles hands the window over: the
// upgraded hupd shows it settling, hupd rollback steers back to it (its
// PID answers every new connection again) and stops the new generation;
// no request fails.
func TestSteerUpgradeWhileSettling(t *testing.T) {
	h, addr, old, newPID, l := steerSettled(t, 2)

	steerUpgrade(t, h, 1)
	steerAnswers(t, addr, 5, newPID, "settling, after the upgrade")
	st := statusOf(t, h)
	gens, _ := st["generations"].([]any)
	if len(gens) != 2 {
		t.Fatalf("status after the upgrade: %v", st)
	}
	first, _ := gens[0].(map[string]any)
	if first["state"] != "settling" || first["settle_left"] == nil || first["settle_left"] == "" {
		t.Fatalf("generation 1 after the upgrade: %v; want settling with time left", first)
	}
	if out, code := hupdCtl(t, h, "rollback"); code != 0 {
		t.Fatalf("hupd rollback after the upgrade: exit %d: %s", code, out)
	}
	steerAnswers(t, addr, 5, old, "rolled back after the upgrade")
	h.WaitEvent(logev.ChildExited, 1, swapGen(2))
	l.stop()
	if l.failed.Load() != 0 || l.ok.Load() == 0 {
		t.Fatalf("%d requests ok, %d failed across a swap, an upgrade and a rollback", l.ok.Load(), l.failed.Load())
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// A new binary that cannot take over hands the state back: the previous
// image gets its steering groups back intact (nothing was closed): no
// request fails, the port has the same listening sockets, and it swaps on
// with new connections going to the newest generation only.
func TestSteerUpgradeRollback(t *testing.T) {
	_, failing := upgradeBins(t)
	h, addr := startBare(t, "--steer")
	_, port, _ := net.SplitHostPort(addr)
	l := startSteerLoad(t, addr, 4)
	steerSwap(t, h, 1)
	serving := h.ChildPID(2)
	before := listeningOn(t, port)

	out, code := hupdCtl(t, h, "upgrade", "--binary", failing)
	if code != 1 || !strings.Contains(out, "the new binary could not take over; the previous one took its state back") {
		t.Fatalf("upgrade to a failing binary: exit %d %q", code, out)
	}
	h.WaitEvent(logev.UpgradeTakeOverFailed, 1, nil)
	st := statusOf(t, h)
	if pids := genPIDs(st); len(pids) != 1 || pids[0] != serving || st["rolled_back"] != true {
		t.Fatalf("after the rollback: generations %v (want [%d]), rolled_back %v", pids, serving, st["rolled_back"])
	}
	if n := listeningOn(t, port); n != before {
		t.Fatalf("%d listening sockets on port %s after the rollback, %d before", n, port, before)
	}
	steerAnswers(t, addr, 5, serving, "after the rollback")
	steerSwap(t, h, 2)
	steerSwap(t, h, 3)
	l.stop()
	if l.failed.Load() != 0 || l.ok.Load() == 0 {
		t.Fatalf("%d requests ok, %d failed across a failed upgrade and two swaps", l.ok.Load(), l.failed.Load())
	}
	steerAnswers(t, addr, 10, h.ChildPID(4), "after two swaps past the rollback")
	if n := listeningOn(t, port); n > before {
		t.Fatalf("%d listening sockets on port %s after two swaps past the rollback, %d before", n, port, before)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// An upgrade while an old generation waits for its steered queue to empty
// (it never accepts the connections queued for it) hands the wait over:
// the upgraded hupd goes on waiting until --steer-wait after the swap and
// only then sends the stop signal (with a warning of what was left
// queued), rather than treating the generation as one already told to
// stop.
func TestSteerUpgradeWhileQueueWaits(t *testing.T) {
	dir := t.TempDir()
	h := StartHupd(t, append([]string{"run", "--steer", "--steer-wait", "10s", "--listen", "http=127.0.0.1:0", "--"}, childCmd("steer-lazy", dir)...)...)
	addr := HostPort(h.Listening("http"))
	h.WaitEvent(logev.ChildReady, 1, swapGen(1))
	for range 2 { // queued in generation 1's socket, never accepted
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if out, err := hupdReload(h); err != nil || !strings.HasPrefix(out, "reload ok (swap)") {
		t.Fatalf("reload: %v: %s", err, out)
	}
	steerUpgrade(t, h, 1)
	upgraded := swapEventIndex(h, logev.Upgraded, 1, nil)
	steerAnswers(t, addr, 5, h.ChildPID(2), "after the upgrade")
	left := h.WaitEvent(logev.SteerQueueLeft, 1, swapGen(1))
	if i := swapEventIndex(h, logev.SteerQueueLeft, 1, swapGen(1)); i < upgraded || left.Int("queued") != 2 {
		t.Fatalf("queue left %v at line %d, upgraded at line %d: want the upgraded hupd to wait on for the 2 queued", left, i, upgraded)
	}
	if i := swapEventIndex(h, logev.Draining, 1, swapGen(1)); i < upgraded {
		t.Fatalf("generation 1 told to stop at line %d, before the upgrade at %d", i, upgraded)
	}
	h.WaitEvent(logev.ChildExited, 1, swapGen(1))
	if n := len(h.Events(logev.StopTimeout)); n != 0 {
		t.Fatalf("%d generations killed at a stop timeout", n)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// Under --legacy redirect with --steer, each generation's bind takes its
// own member of the group; after an upgrade the new image redirects the
// next generation's bind to a member of the restored group, loses nothing
// across the swap, and does not poll any member (the program made them
// non-blocking: the new image must not put them in its runtime's epoll).
func TestSteerUpgradeLegacy(t *testing.T) {
	h := StartHupd(t, "run", "--legacy", "redirect", "--steer", "--listen", "http=tcp://:0", "--", goserverBin, "-addr", ":{port:http}")
	port := h.Listening("http")[strings.LastIndex(h.Listening("http"), ":")+1:]
	h.WaitEvent(logev.ChildReady, 1, nil)
	l := startLoad(t, "tcp", "127.0.0.1:"+port, func(body string) bool { return strings.HasPrefix(body, "goserver pid ") }, false)
	if out, err := hupdReload(h); err != nil || !strings.HasPrefix(out, "reload ok (swap)") {
		t.Fatalf("reload: %v: %s", err, out)
	}
	steerUpgrade(t, h, 1)
	if out, err := hupdReload(h); err != nil || !strings.HasPrefix(out, "reload ok (swap)") {
		t.Fatalf("reload after the upgrade: %v: %s", err, out)
	}
	h.WaitEvent(logev.BindRedirected, 3, nil)
	if polled := polledListeners(t, h.Cmd.Process.Pid); len(polled) > 0 {
		t.Errorf("the upgraded hupd polls its listening sockets: fds %v", polled)
	}
	l.finish("a swap, an upgrade and a swap with steering")
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}
