package integration

// Reloads that meet a crash of the serving generation, a crash restart's
// backoff or a first generation that never got ready. The child is
// sig-driven: the test makes each generation ready, crash or leave by
// signalling it.

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

func init() {
	// sig-driven: print "armed PID"; on USR2 send READY=1, on USR1 exit 3, on
	// TERM exit 0. The test signals each generation by its PID.
	childModes["sig-driven"] = func([]string) {
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2)
		fmt.Println("armed", os.Getpid())
		for s := range sigs {
			switch s {
			case syscall.SIGTERM:
				os.Exit(0)
			case syscall.SIGUSR1:
				os.Exit(3)
			case syscall.SIGUSR2:
				rdMustNotify("READY=1")
			}
		}
	}
}

// drivenStart runs hupd with one TCP socket, notify readiness and the rv-ctl
// child, plus extra flags; it returns hupd and its control socket.
func drivenStart(t *testing.T, extra ...string) (*Hupd, string) {
	t.Helper()
	args := append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "notify"}, extra...)
	h := StartHupd(t, append(append(args, "--"), childCmd("sig-driven")...)...)
	return h, h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
}

// drivenArmed waits until generation gen's child has its signal handlers and
// returns its PID.
func drivenArmed(t *testing.T, h *Hupd, gen int) int {
	t.Helper()
	pid := h.ChildPID(gen)
	h.Stdout.NextWith(t, fmt.Sprintf("armed %d", pid))
	return pid
}

func killPID(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill %d %v: %v", pid, sig, err)
	}
}

// ctlReload starts a reload through the control socket; the result (or the
// error) arrives on the channel.
func ctlReload(sock string) <-chan control.Reply {
	ch := make(chan control.Reply, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		rep, err := control.Call(ctx, sock, control.Request{Cmd: control.CmdReload})
		if err != nil {
			rep.Error = "call: " + err.Error()
		}
		ch <- rep
	}()
	return ch
}

func ctlReloadResult(t *testing.T, ch <-chan control.Reply) supervisor.ReloadResult {
	t.Helper()
	rep := <-ch
	if rep.Reload == nil {
		t.Fatalf("reload: no result: %+v", rep)
	}
	return *rep.Reload
}

func ctlStatus(t *testing.T, sock string) supervisor.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	rep, err := control.Call(ctx, sock, control.Request{Cmd: control.CmdStatus})
	if err != nil || rep.Status == nil {
		t.Fatalf("status: %v %+v", err, rep)
	}
	return *rep.Status
}

// TestServingCrashDuringSwap: the serving generation crashes while a
// swap waits for the new one. The new generation is about to take over: a
// crash restart on top of it would start a generation nobody asked for,
// which would then serve next to the new one (or, started before the new
// one is ready, be taken for the serving generation).
func TestServingCrashDuringSwap(t *testing.T) {
	h, control := drivenStart(t)
	p1 := drivenArmed(t, h, 1)
	killPID(t, p1, syscall.SIGUSR2)
	h.WaitEvent(logev.ChildReady, 1, func(e Event) bool { return e.Int("gen") == 1 })

	reply := ctlReload(control)
	p2 := drivenArmed(t, h, 2)
	killPID(t, p1, syscall.SIGUSR1) // the serving generation crashes (exit 3)
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	killPID(t, p2, syscall.SIGUSR2)
	if r := ctlReloadResult(t, reply); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v, want gen 2 ready", r)
	}
	st := ctlStatus(t, control)
	h.Sync() // a restart scheduled before the status reply is logged by now
	if ev := h.Events(logev.RestartingChild); len(ev) > 0 {
		t.Errorf("a crash restart was scheduled while the reload's new generation was starting: %v", ev)
	}
	if len(st.Generations) != 1 || st.Generations[0].Gen != 2 || st.Restarts != 0 {
		t.Errorf("status: %d restarts, generations %+v; want gen 2 alone", st.Restarts, st.Generations)
	}
	if code := h.Stop(); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if n := len(h.Events(logev.ChildStarted)); n != 2 {
		t.Errorf("%d generations started, want 2", n)
	}
}

// TestServingCrashDuringSwapNewFails: the serving generation
// crashes during a swap and then the new one fails too: nothing serves,
// so the restart policy takes over as after a crash.
func TestServingCrashDuringSwapNewFails(t *testing.T) {
	h, control := drivenStart(t)
	p1 := drivenArmed(t, h, 1)
	killPID(t, p1, syscall.SIGUSR2)
	h.WaitEvent(logev.ChildReady, 1, func(e Event) bool { return e.Int("gen") == 1 })

	reply := ctlReload(control)
	p2 := drivenArmed(t, h, 2)
	killPID(t, p1, syscall.SIGUSR1)
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	killPID(t, p2, syscall.SIGUSR1) // the new one exits before it is ready
	if r := ctlReloadResult(t, reply); r.OK {
		t.Fatalf("reload: %+v, want failed", r)
	}
	p3 := drivenArmed(t, h, 3) // the crash restart
	killPID(t, p3, syscall.SIGUSR2)
	h.WaitEvent(logev.ChildReady, 1, func(e Event) bool { return e.Int("gen") == 3 })
	endAlone(t, h, control, 3)
}

// TestReloadAfterFirstNotReady: the first generation is not ready
// within the readiness timeout. A reload (with a fixed program, say) must
// not wait behind it forever: nothing is starting any more.
func TestReloadAfterFirstNotReady(t *testing.T) {
	h, control := drivenStart(t, "--ready-timeout", "300ms")
	drivenArmed(t, h, 1)
	h.WaitEvent(logev.NotReady, 1, func(e Event) bool { return e.Int("gen") == 1 })

	reply := ctlReload(control)
	p2 := drivenArmed(t, h, 2)
	killPID(t, p2, syscall.SIGUSR2)
	if r := ctlReloadResult(t, reply); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v, want gen 2 ready", r)
	}
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	endAlone(t, h, control, 2)
}

// TestReloadDuringBackoff: a reload while a crash restart waits out
// its backoff starts the generation that serves; the pending restart must
// not start another one beside it when its delay is up.
func TestReloadDuringBackoff(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hupd.toml")
	if err := os.WriteFile(cfg, []byte("[restart]\nmin_delay = \"1s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, control := drivenStart(t, "-c", cfg)
	p1 := drivenArmed(t, h, 1)
	killPID(t, p1, syscall.SIGUSR2)
	h.WaitEvent(logev.ChildReady, 1, func(e Event) bool { return e.Int("gen") == 1 })
	killPID(t, p1, syscall.SIGUSR1)
	h.WaitEvent(logev.RestartingChild, 1, nil)

	reply := ctlReload(control)
	// The reload takes the restart's place: its timer is stopped (or, had
	// it fired, its event is stale and ignored; see the supervisor's unit
	// test of stale timer events).
	h.WaitEvent(logev.RestartCancelledByReload, 1, swapGen(2))
	p2 := drivenArmed(t, h, 2)
	killPID(t, p2, syscall.SIGUSR2)
	if r := ctlReloadResult(t, reply); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v, want gen 2 ready", r)
	}
	endAlone(t, h, control, 2)
}

// TestReloadQueuedDuringBackoff: a reload queued behind a crash
// restart's generation that is still starting, which then crashes too,
// must start at once, as a reload during a crash's backoff does, instead
// of waiting for the backoff and for the next crash restart to be ready.
// Reloads that arrive meanwhile are merged into it and waited as long.
func TestReloadQueuedDuringBackoff(t *testing.T) {
	t.Parallel()
	conf := filepath.Join(t.TempDir(), "hupd.toml")
	wtWrite(t, conf, "command = "+wtList(childCmd("sig-driven"))+"\n"+wtHTTP+
		"[reload]\nready = \"notify\"\n[restart]\nmin_delay = \"1s\"\n")
	h := StartHupd(t, "run", "-c", conf)
	control := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	p1 := drivenArmed(t, h, 1)
	killPID(t, p1, syscall.SIGUSR2)
	h.WaitEvent(logev.ChildReady, 1, swapGen(1))
	killPID(t, p1, syscall.SIGUSR1) // crash: gen 2 is its restart
	p2 := drivenArmed(t, h, 2)
	reply := ctlReload(control)
	h.WaitEvent(logev.ReloadQueued, 1, nil)
	killPID(t, p2, syscall.SIGUSR1) // crashes before it is ready

	p3 := drivenArmed(t, h, 3)
	if i, j := swapEventIndex(h, logev.ReloadStarted, 1, nil), swapEventIndex(h, logev.ChildStarted, 1, swapGen(3)); i < 0 || i > j {
		t.Fatalf("gen 3 started (log line %d) before the queued reload (line %d): the reload waited for the backoff", j, i)
	}
	killPID(t, p3, syscall.SIGUSR2)
	if res := ctlReloadResult(t, reply); !res.OK || res.NewPID != p3 {
		t.Fatalf("reload %+v: want it done by gen 3 (pid %d)", res, p3)
	}
	h.Stop()
}

// endAlone checks that generation gen alone is left, then stops hupd,
// which must exit 0.
func endAlone(t *testing.T, h *Hupd, sock string, gen int) {
	t.Helper()
	if st := ctlStatus(t, sock); len(st.Generations) != 1 || st.Generations[0].Gen != gen {
		t.Errorf("generations %+v; want gen %d alone", st.Generations, gen)
	}
	if code := h.Stop(); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}
