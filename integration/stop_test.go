package integration

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

func init() {
	// close-on-stop: print "ready PID"; on USR1 (its stop signal in the
	// test) close its listening sockets (fds from 3, as LISTEN_FDS says)
	// and print "closed", as a server that starts draining does; exit 0 on
	// TERM.
	childModes["close-on-stop"] = func([]string) {
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM)
		fmt.Println("ready", os.Getpid())
		for s := range sigs {
			if s == syscall.SIGTERM {
				return
			}
			var n int
			fmt.Sscan(os.Getenv("LISTEN_FDS"), &n)
			for fd := 3; fd < 3+n; fd++ {
				syscall.Close(fd)
			}
			fmt.Println("closed")
		}
	}
}

// TestStopRefusesNewConnections: once hupd stops and the child has closed
// its sockets, a client that connects is refused at once: hupd has closed
// its own copy (and its standby shim's) when the stop began, instead of
// keeping the socket listening with nobody to accept, until hupd's exit
// resets what queued.
func TestStopRefusesNewConnections(t *testing.T) {
	t.Parallel()
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "delay:1ms",
		"--stop-signal", "USR1", "--"}, childCmd("close-on-stop")...)...)
	addr := HostPort(h.Listening("http"))
	child := procReady(t, h)
	h.WaitEvent(logev.StandbyReady, 1, nil)
	h.Signal(syscall.SIGTERM)
	h.Stdout.NextWith(t, "closed")
	// The standby shim held the sockets too; discarded, it exits.
	h.WaitEvent(logev.StandbyDiscardedExited, 1, nil)
	conn, err := net.Dial("tcp", addr)
	if err == nil {
		conn.Close()
		t.Fatal("a connection made while hupd stops was accepted into a queue nobody serves")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial during the stop: %v, want connection refused", err)
	}
	syscall.Kill(child, syscall.SIGTERM)
	if code := h.Wait(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// TestStopDoesNotCutDrains: a stop while max_draining generations
// drain already is graceful for all of them: none is killed before the
// stop timeout (README: the stop signal, SIGKILL after --stop-timeout).
func TestStopDoesNotCutDrains(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hupd.toml")
	if err := os.WriteFile(cfg, []byte("[reload]\nmax_draining = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := StartHupd(t, append([]string{"run", "-c", cfg, "--listen", "http=tcp://127.0.0.1:0", "--ready", "delay:20ms",
		"--stop-timeout", "1s", "--"}, childCmd("ignore-term")...)...)
	control := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	// Each child prints "ready PID" once it ignores TERM; "ready" by the
	// 20ms delay does not mean that yet, and the swap sends gen 1 TERM.
	h.Stdout.NextWith(t, "ready")
	if r := ctlReloadResult(t, ctlReload(control)); !r.OK {
		t.Fatalf("reload: %+v", r)
	}
	h.Stdout.NextWith(t, "ready")
	h.Signal(syscall.SIGTERM)
	h.Wait()
	if ev := h.Events(logev.TooManyDraining); len(ev) != 0 {
		t.Errorf("a draining generation was killed at once by the stop: %v", ev)
	}
	if n := len(h.Events(logev.StopTimeout)); n != 2 {
		t.Errorf("%d generations killed at the stop timeout, want both", n)
	}
}
