package supervisor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// TestStopDuringASwap: a stop signal fails the reload in progress, drains
// both generations, and hupd exits with the serving generation's code.
func TestStopDuringASwap(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready", "extend"}, nil).run()
	h.ready(1)
	reload := h.reloadAsync(ActionReload, "test")
	h.started(2)
	h.logged(logev.ReadyTimeoutExtended, 2, 1)
	h.signal(unix.SIGTERM)
	if res := h.result(reload); res.OK || res.Reason != "hupd is stopping" {
		t.Fatalf("reload: %+v", res)
	}
	if o := h.wait(); o.code != 0 || o.err != nil {
		t.Fatalf("Run: %+v", o)
	}
	for gen := 1; gen <= 2; gen++ {
		if e := h.exited(gen); e.attrs["state"] != string(StateDraining) || e.attrs[KeyStatus] != "exit status 0" {
			t.Fatalf("generation %d: %v", gen, e)
		}
	}
	if st := h.sup.Status(); !st.Stopping {
		t.Fatalf("status after Run returned: %+v", st)
	}
}

// TestReloadWhileStoppingFails at once.
func TestReloadWhileStoppingFails(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ignore-term"}, nil).run()
	h.ready(1)
	h.signal(unix.SIGTERM)
	h.logged("hook stopping", 0, 1)
	if res := h.reload(ActionReload); res.OK || res.Reason != "hupd is stopping" {
		t.Fatalf("reload: %+v", res)
	}
	// A second stop signal is forwarded as received: INT, which it does
	// not handle, ends it.
	h.signal(unix.SIGINT)
	if o := h.wait(); o.code != 128+int(unix.SIGINT) {
		t.Fatalf("Run: %+v, want 130", o)
	}
}

// TestStopTimeoutKillsTheGroup: a generation that ignores its stop signal
// is killed at the stop timeout; hupd exits 128+9.
func TestStopTimeoutKillsTheGroup(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ignore-term"}, func(o *Options) { o.StopTimeout = 100 * time.Millisecond }).run()
	h.ready(1)
	h.signal(unix.SIGTERM)
	if o := h.wait(); o.code != 137 {
		t.Fatalf("Run: %+v", o)
	}
	h.logged(logev.StopTimeout, 1, 1)
}

// TestOtherSignalsAreRelayedToTheServingGeneration: USR1 to hupd reaches
// the child (which exits 3 on it); with restart never, hupd exits 3.
func TestOtherSignalsAreRelayedToTheServingGeneration(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Restart = RestartNever }).run()
	h.ready(1)
	h.signal(unix.SIGUSR1)
	if o := h.wait(); o.code != 3 || o.err != nil {
		t.Fatalf("Run: %+v", o)
	}
	h.logged(logev.NotRestarting, 0, 1)
}

// TestRestartPolicy: which exits start the child again.
func TestRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy  RestartPolicy
		sig     unix.Signal // sent to the child: TERM exits 0, USR1 exits 3, KILL is 137
		restart bool
		code    int // hupd's exit code when not restarted
	}{
		{RestartOnFailure, unix.SIGUSR1, true, 0},
		{RestartOnFailure, unix.SIGTERM, false, 0},
		{RestartAlways, unix.SIGTERM, true, 0},
		{RestartNever, unix.SIGUSR1, false, 3},
		{RestartNever, unix.SIGKILL, false, 137},
	} {
		t.Run(string(tc.policy)+"/"+unix.SignalName(tc.sig), func(t *testing.T) {
			h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Restart = tc.policy }).run()
			h.kill(h.ready(1), tc.sig)
			if tc.restart {
				h.ready(2)
				if st := h.sup.Status(); st.Restarts != 1 {
					t.Fatalf("%d restarts", st.Restarts)
				}
				return
			}
			if o := h.wait(); o.code != tc.code || o.err != nil {
				t.Fatalf("Run: %+v, want code %d", o, tc.code)
			}
		})
	}
}

// TestFirstGenerationThatCannotStart: Run returns the start's error and
// the exit code a shell would give.
func TestFirstGenerationThatCannotStart(t *testing.T) {
	for _, tc := range []struct {
		step startStep
		code int
	}{{startFails, 1}, {startExecFail, socketact.ExitNotFound}} {
		h := newSupervisorUnderTest(t, []string{"ready"}, nil)
		h.spawner.script(tc.step)
		o := h.run().wait()
		var ee *socketact.ExecError
		if o.err == nil || o.code != tc.code || (tc.step == startExecFail) != errors.As(o.err, &ee) {
			t.Fatalf("step %d: Run: %+v, want code %d", tc.step, o, tc.code)
		}
	}
}

// TestReloadDuringBackoffStartsAtOnce: a reload while a crashed child
// waits for its restart starts the next generation at once.
func TestReloadDuringBackoffStartsAtOnce(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready", "ready"}, func(o *Options) {
		o.Backoff = Backoff{Min: time.Hour, Max: time.Hour}
	}).run()
	h.kill(h.ready(1), unix.SIGUSR1)
	if e := h.logged(logev.RestartingChild, 0, 1); e.attrs[KeyDelay] != time.Hour {
		t.Fatalf("restart: %v", e)
	}
	res := h.reload(ActionReload)
	if !res.OK || res.NewGen != 2 || res.OldGen != 0 {
		t.Fatalf("reload during the backoff: %+v", res)
	}
	keepsServing(t, h, 2)
}

// TestCrashLoopRestartsUntilAGenerationServes: generations that exit at
// once are restarted (with the backoff) until one is ready.
func TestCrashLoopRestartsUntilAGenerationServes(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"exit:2", "exit:2", "ready"}, nil).run()
	h.ready(3)
	if st := h.sup.Status(); st.Restarts != 2 {
		t.Fatalf("%d restarts, want 2", st.Restarts)
	}
	if n := len(h.events.matching(isMsg(logev.RestartingChild, 0))); n != 2 {
		t.Fatalf("%d restarts scheduled", n)
	}
}

// TestStatusReportsTheVersionAndSockets: Status tells what Options gave.
func TestStatusReportsTheVersionAndSockets(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, nil).run()
	pid := h.ready(1)
	st := h.sup.Status()
	if st.Version != "v-test" || st.Name != "test" || len(st.Listeners) != 1 || st.Listeners[0].FD != 3 ||
		!strings.HasPrefix(st.Listeners[0].Address, "tcp://127.0.0.1:") || len(st.Generations) != 1 || st.Generations[0].PID != pid {
		t.Fatalf("status: %+v", st)
	}
	if u := h.sup.StatusUsage(); len(u.Generations) != 1 {
		t.Fatalf("status with usage: %+v", u)
	}
}
