package integration

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

func init() {
	// rv-ctl: print "armed PID"; on USR2 send READY=1, on USR1 exit 3, on
	// TERM exit 0. The test signals each generation by its PID.
	childModes["rv-ctl"] = func([]string) {
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

// rvStart runs hupd with one TCP socket, notify readiness and the rv-ctl
// child, plus extra flags; it returns hupd and its control socket.
func rvStart(t *testing.T, extra ...string) (*Hupd, string) {
	t.Helper()
	args := append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "notify"}, extra...)
	h := StartHupd(t, append(append(args, "--"), childCmd("rv-ctl")...)...)
	return h, h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
}

// rvArmed waits until generation gen's child has its signal handlers and
// returns its PID.
func rvArmed(t *testing.T, h *Hupd, gen int) int {
	t.Helper()
	pid := h.ChildPID(gen)
	h.Stdout.NextWith(t, fmt.Sprintf("armed %d", pid))
	return pid
}

func rvKill(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill %d %v: %v", pid, sig, err)
	}
}

// rvReload starts a reload through the control socket; the result (or the
// error) arrives on the channel.
func rvReload(sock string) <-chan control.Reply {
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

func rvResult(t *testing.T, ch <-chan control.Reply) supervisor.ReloadResult {
	t.Helper()
	rep := <-ch
	if rep.Reload == nil {
		t.Fatalf("reload: no result: %+v", rep)
	}
	return *rep.Reload
}

func rvStatus(t *testing.T, sock string) supervisor.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	rep, err := control.Call(ctx, sock, control.Request{Cmd: control.CmdStatus})
	if err != nil || rep.Status == nil {
		t.Fatalf("status: %v %+v", err, rep)
	}
	return *rep.Status
}

// TestReviewServingCrashDuringSwap: the serving generation crashes while a
// swap waits for the new one. The new generation is about to take over: a
// crash restart on top of it would start a generation nobody asked for,
// which would then serve next to the new one (or, started before the new
// one is ready, be taken for the serving generation).
func TestReviewServingCrashDuringSwap(t *testing.T) {
	h, control := rvStart(t)
	p1 := rvArmed(t, h, 1)
	rvKill(t, p1, syscall.SIGUSR2)
	h.WaitEvent(logev.ChildReady, 1, func(e Event) bool { return e.Int("gen") == 1 })

	reply := rvReload(control)
	p2 := rvArmed(t, h, 2)
	rvKill(t, p1, syscall.SIGUSR1) // the serving generation crashes (exit 3)
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	rvKill(t, p2, syscall.SIGUSR2)
	if r := rvResult(t, reply); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v, want gen 2 ready", r)
	}
	st := rvStatus(t, control)
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

// TestReviewServingCrashDuringSwapNewFails: the serving generation
// crashes during a swap and then the new one fails too: nothing serves,
// so the restart policy takes over as after a crash.
func TestReviewServingCrashDuringSwapNewFails(t *testing.T) {
	h, control := rvStart(t)
	p1 := rvArmed(t, h, 1)
	rvKill(t, p1, syscall.SIGUSR2)
	h.WaitEvent(logev.ChildReady, 1, func(e Event) bool { return e.Int("gen") == 1 })

	reply := rvReload(control)
	p2 := rvArmed(t, h, 2)
	rvKill(t, p1, syscall.SIGUSR1)
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	rvKill(t, p2, syscall.SIGUSR1) // the new one exits before it is ready
	if r := rvResult(t, reply); r.OK {
		t.Fatalf("reload: %+v, want failed", r)
	}
	p3 := rvArmed(t, h, 3) // the crash restart
	rvKill(t, p3, syscall.SIGUSR2)
	h.WaitEvent(logev.ChildReady, 1, func(e Event) bool { return e.Int("gen") == 3 })
	rvEndAlone(t, h, control, 3)
}

// TestReviewReloadAfterFirstNotReady: the first generation is not ready
// within the readiness timeout. A reload (with a fixed program, say) must
// not wait behind it forever: nothing is starting any more.
func TestReviewReloadAfterFirstNotReady(t *testing.T) {
	h, control := rvStart(t, "--ready-timeout", "300ms")
	rvArmed(t, h, 1)
	h.WaitEvent(logev.NotReady, 1, func(e Event) bool { return e.Int("gen") == 1 })

	reply := rvReload(control)
	p2 := rvArmed(t, h, 2)
	rvKill(t, p2, syscall.SIGUSR2)
	if r := rvResult(t, reply); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v, want gen 2 ready", r)
	}
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	rvEndAlone(t, h, control, 2)
}

// TestReviewDeadStandby: a standby shim that has just died, before hupd
// has seen its exit, must not make a reload fail: hupd starts the new
// generation cold instead.
func TestReviewDeadStandby(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "delay:20ms", "--"}, childCmd("sleep")...)...)
	control := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	for i := 1; i <= 10; i++ {
		sb := h.WaitEvent(logev.StandbyReady, i, nil).Int("pid")
		rvKill(t, sb, syscall.SIGKILL)
		r := rvResult(t, rvReload(control))
		if !r.OK {
			t.Fatalf("reload %d right after its standby died: %+v", i, r)
		}
		if strings.Contains(r.Reason, "standby") {
			t.Fatalf("reload %d: %+v", i, r)
		}
	}
	h.Stop()
}

// TestReviewReloadDuringBackoff: a reload while a crash restart waits out
// its backoff starts the generation that serves; the pending restart must
// not start another one beside it when its delay is up.
func TestReviewReloadDuringBackoff(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hupd.toml")
	if err := os.WriteFile(cfg, []byte("[restart]\nmin_delay = \"1s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, control := rvStart(t, "-c", cfg)
	p1 := rvArmed(t, h, 1)
	rvKill(t, p1, syscall.SIGUSR2)
	h.WaitEvent(logev.ChildReady, 1, func(e Event) bool { return e.Int("gen") == 1 })
	rvKill(t, p1, syscall.SIGUSR1)
	h.WaitEvent(logev.RestartingChild, 1, nil)
	crashed := time.Now()

	reply := rvReload(control)
	p2 := rvArmed(t, h, 2)
	rvKill(t, p2, syscall.SIGUSR2)
	if r := rvResult(t, reply); !r.OK || r.NewGen != 2 {
		t.Fatalf("reload: %+v, want gen 2 ready", r)
	}
	// An absence can only be seen by waiting: past the restart's delay.
	time.Sleep(time.Until(crashed.Add(1500 * time.Millisecond)))
	rvEndAlone(t, h, control, 2)
}

// TestReviewStopDoesNotCutDrains: a stop while max_draining generations
// drain already is graceful for all of them: none is killed before the
// stop timeout (README: the stop signal, SIGKILL after --stop-timeout).
func TestReviewStopDoesNotCutDrains(t *testing.T) {
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
	if r := rvResult(t, rvReload(control)); !r.OK {
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

// rvEndAlone checks that generation gen alone is left, then stops hupd,
// which must exit 0.
func rvEndAlone(t *testing.T, h *Hupd, control string, gen int) {
	t.Helper()
	if st := rvStatus(t, control); len(st.Generations) != 1 || st.Generations[0].Gen != gen {
		t.Errorf("generations %+v; want gen %d alone", st.Generations, gen)
	}
	if code := h.Stop(); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}
