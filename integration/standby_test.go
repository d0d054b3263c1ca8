package integration

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// TestStandbyShim: hupd keeps a shim started ahead of time for the next
// generation. A generation started through it sees exactly the
// environment a cold start gives (LISTEN_PID its own, none of the shim's
// runtime settings); a standby that dies is replaced by a cold start.
func TestStandbyShim(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "delay:50ms", "--"}, childCmd("env")...)...)
	cold := readChildEnv(h)
	if e := h.WaitEvent(logev.ChildStarted, 1, nil); e["standby"] != false {
		t.Fatalf("gen 1 started with standby=%v, want a cold start", e["standby"])
	}
	sb := h.WaitEvent(logev.StandbyReady, 1, nil).Int("pid")
	ctl := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	reload := func() supervisor.ReloadResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		rep, err := control.Call(ctx, ctl, control.Request{Cmd: control.CmdReload})
		if err != nil || rep.Reload == nil || !rep.Reload.OK {
			t.Fatalf("reload: %v %+v", err, rep)
		}
		return *rep.Reload
	}

	r := reload()
	if r.NewPID != sb {
		t.Fatalf("gen 2 is pid %d, want the standby's %d", r.NewPID, sb)
	}
	if e := h.WaitEvent(logev.ChildStarted, 1, func(e Event) bool { return e.Int("gen") == 2 }); e["standby"] != true {
		t.Fatalf("gen 2 started with standby=%v", e["standby"])
	}
	warm := readChildEnv(h)
	if warm.PID != sb || warm.Env["LISTEN_PID"] != strconv.Itoa(sb) {
		t.Fatalf("gen 2: pid %d, LISTEN_PID %q; want %d", warm.PID, warm.Env["LISTEN_PID"], sb)
	}
	for _, ce := range []ChildEnv{cold, warm} {
		for k := range ce.Env {
			if strings.HasPrefix(k, "HUPD_SHIM") || k == "GOMAXPROCS" || k == "GOGC" || k == "GODEBUG" {
				t.Errorf("pid %d sees %s=%q, which only the shim's own runtime should", ce.PID, k, ce.Env[k])
			}
		}
	}
	for k, v := range cold.Env {
		switch k {
		case "LISTEN_PID", "NOTIFY_SOCKET":
			continue
		}
		if warm.Env[k] != v {
			t.Errorf("%s: cold start %q, standby %q", k, v, warm.Env[k])
		}
	}
	if len(warm.Env) != len(cold.Env) {
		t.Errorf("cold start has %d variables, standby %d", len(cold.Env), len(warm.Env))
	}

	// A standby that dies is noticed; the next generation starts cold and
	// only then is a new standby started (a failing one cannot loop).
	sb3 := h.WaitEvent(logev.StandbyReady, 2, nil).Int("pid")
	if err := syscall.Kill(sb3, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.WaitEvent(logev.StandbyExited, 1, func(e Event) bool { return e.Int("pid") == sb3 })
	r = reload()
	if r.NewPID == sb3 {
		t.Fatal("gen 3 is the dead standby")
	}
	if e := h.WaitEvent(logev.ChildStarted, 1, func(e Event) bool { return e.Int("gen") == 3 }); e["standby"] != false {
		t.Fatalf("gen 3 started with standby=%v, want a cold start", e["standby"])
	}
	readChildEnv(h)
	h.Stop()
}

// TestStandbyStraySignals: tools that signal a whole service (systemctl kill
// sends to every process of the unit, docker kill and kill -PGID to a group)
// also reach the standby shim kept for the next generation. It must survive
// them, so that the next reload still starts through it: before the standby
// ignored them, it died of the first HUP and the reload started cold (or,
// when the HUP came as it became the new generation, failed).
func TestStandbyStraySignals(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "delay:20ms", "--"}, childCmd("http")...)...)
	ctl := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	stray := []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGUSR1,
		syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGPIPE, syscall.SIGTSTP}
	for i := 1; i <= 10; i++ {
		sb := h.WaitEvent(logev.StandbyReady, i, nil).Int("pid")
		for _, sig := range stray {
			if err := syscall.Kill(sb, sig); err != nil {
				t.Fatalf("round %d: kill %d %v: %v", i, sb, sig, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		rep, err := control.Call(ctx, ctl, control.Request{Cmd: control.CmdReload})
		cancel()
		if err != nil || rep.Reload == nil || !rep.Reload.OK {
			t.Fatalf("round %d: reload: %v %+v", i, err, rep)
		}
		if rep.Reload.NewPID != sb {
			t.Fatalf("round %d: gen %d is pid %d, not the standby %d that got %v", i, rep.Reload.NewGen, rep.Reload.NewPID, sb, stray)
		}
	}
	if n := len(h.Events(logev.StandbyExited)); n != 0 {
		t.Fatalf("%d standby shims exited", n)
	}
	h.Stop()
}

// TestStandbyDeadBeforeReload: a standby shim that has just died, before hupd
// has seen its exit, must not make a reload fail: hupd starts the new
// generation cold instead.
func TestStandbyDeadBeforeReload(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "delay:20ms", "--"}, childCmd("sleep")...)...)
	control := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	for i := 1; i <= 10; i++ {
		sb := h.WaitEvent(logev.StandbyReady, i, nil).Int("pid")
		killPID(t, sb, syscall.SIGKILL)
		r := ctlReloadResult(t, ctlReload(control))
		if !r.OK {
			t.Fatalf("reload %d right after its standby died: %+v", i, r)
		}
		if strings.Contains(r.Reason, "standby") {
			t.Fatalf("reload %d: %+v", i, r)
		}
	}
	h.Stop()
}
