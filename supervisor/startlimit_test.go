package supervisor

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

func TestParseStartLimit(t *testing.T) {
	for in, want := range map[string]StartLimit{
		"5/10s":   {Burst: 5, Interval: 10 * time.Second},
		"1/1ms":   {Burst: 1, Interval: time.Millisecond},
		"100/1h":  {Burst: 100, Interval: time.Hour},
		"3/2m30s": {Burst: 3, Interval: 150 * time.Second},
		"off":     {},
		"0":       {},
	} {
		got, err := ParseStartLimit(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
		if back, err := ParseStartLimit(got.String()); err != nil || back != got {
			t.Errorf("%q: String %q reads back as %+v, %v", in, got.String(), back, err)
		}
	}
	for in, says := range map[string]string{
		"":       "want BURST/INTERVAL",
		"5":      "want BURST/INTERVAL",
		"5/":     "want BURST/INTERVAL",
		"/10s":   "want BURST/INTERVAL",
		"x/10s":  `burst "x": want a positive whole number`,
		"-5/10s": `burst "-5"`,
		"0/10s":  `burst "0"`,
		"5/0s":   `interval "0s": want a positive duration`,
		"5/-1s":  `interval "-1s"`,
		"5/10":   `interval "10": want a positive duration with its unit`,
		"5/soon": `interval "soon"`,
		"on":     "want BURST/INTERVAL",
		" 3/10s": `burst " 3"`,
		"off ":   "want BURST/INTERVAL",
	} {
		if got, err := ParseStartLimit(in); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%q: %+v, %v; want an error saying %q", in, got, err, says)
		}
	}
	if s := (StartLimit{}).String(); s != "off" {
		t.Errorf("no limit reads %q", s)
	}
}

// TestStartWindow: systemd's window opens at the first failure counted
// and lasts the interval; a failure after it opens a new one.
func TestStartWindow(t *testing.T) {
	l := StartLimit{Burst: 3, Interval: 10 * time.Second}
	t0 := time.Unix(1_000_000, 0)
	var w startWindow
	if n := w.count(l, t0); n != 0 {
		t.Fatalf("empty window counts %d", n)
	}
	w.add(l, t0, 1)
	w.add(l, t0.Add(4*time.Second), 2)
	w.add(l, t0.Add(10*time.Second), 3) // the window's last instant
	if n, code := w.count(l, t0.Add(10*time.Second)), w.code; n != 3 || code != 3 {
		t.Fatalf("count %d, code %d; want 3, 3", n, code)
	}
	if n := w.count(l, t0.Add(10*time.Second+time.Nanosecond)); n != 0 {
		t.Fatalf("%d failures counted after the window closed", n)
	}
	w.add(l, t0.Add(11*time.Second), 4) // opens a new window
	if n := w.count(l, t0.Add(11*time.Second)); n != 1 || w.code != 4 {
		t.Fatalf("new window: count %d, code %d; want 1, 4", n, w.code)
	}
}

// TestSuccessStatusHas: a code matches the exit code hupd reports (128+n
// for a signal, as tini's -e), a signal only a death by it.
func TestSuccessStatusHas(t *testing.T) {
	exited := func(code int) signals.Exit { return signals.Exit{Status: syscall.WaitStatus(code << 8)} }
	killed := func(sig syscall.Signal) signals.Exit { return signals.Exit{Status: syscall.WaitStatus(sig)} }
	ss := SuccessStatus{Codes: []int{143, 75}, Signals: []syscall.Signal{unix.SIGHUP}}
	for _, tc := range []struct {
		e    signals.Exit
		want bool
	}{
		{exited(143), true},
		{killed(unix.SIGTERM), true}, // 128+15
		{exited(75), true},
		{killed(unix.SIGHUP), true},
		{exited(129), false}, // exit 129 is not a death by HUP
		{exited(0), false},   // exit 0 is a success anyway, not one of ss
		{exited(1), false},
		{killed(unix.SIGKILL), false},
	} {
		if got := ss.Has(tc.e); got != tc.want {
			t.Errorf("%s: Has = %v, want %v", tc.e, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		code int
		sig  syscall.Signal
		says string
	}{
		{"143", 143, 0, ""}, {"0", 0, 0, ""}, {"TERM", 0, unix.SIGTERM, ""}, {"sigterm", 0, unix.SIGTERM, ""},
		{"RTMIN+1", 0, 35, ""}, {"256", 0, 0, "exit codes go from 0 to 255"}, {"-1", 0, 0, "exit codes go from 0 to 255"},
		{"TREM", 0, 0, `want an exit code (0 to 255) or a signal name: invalid signal "TREM"`}, {" ", 0, 0, "empty"},
	} {
		code, sig, err := ParseExitStatus(tc.in)
		if tc.says != "" {
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%q: %d %v %v; want an error saying %q", tc.in, code, sig, err, tc.says)
			}
			continue
		}
		if err != nil || code != tc.code || sig != tc.sig {
			t.Errorf("%q: %d %v %v; want %d %v", tc.in, code, sig, err, tc.code, tc.sig)
		}
	}
}

// giveUps returns the StartLimitReached records so far.
func (h *supervisorUnderTest) giveUps() []recordedEvent {
	return h.events.matching(isMsg(logev.StartLimitReached, 0))
}

// TestStartLimitEndsACrashLoop: a program that exits at once is started
// BURST times, then hupd gives up: one error naming the limit, Run
// returns the program's exit code.
func TestStartLimitEndsACrashLoop(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"exit:7"}, func(o *Options) {
		o.StartLimit = StartLimit{Burst: 3, Interval: time.Hour}
	}).run()
	if o := h.wait(); o.code != 7 || o.err != nil {
		t.Fatalf("Run: %+v, want code 7", o)
	}
	if n := len(h.events.matching(isMsg("hook started", 0))); n != 3 {
		t.Errorf("%d generations started, want 3", n)
	}
	gu := h.giveUps()
	if len(gu) != 1 || gu[0].attrs[KeyLimit] != "3/1h0m0s" || gu[0].int(KeyFailures) != 3 || gu[0].int(KeyExitCode) != 7 {
		t.Fatalf("give-up records: %v", gu)
	}
	if n := len(h.events.matching(isMsg("hook stopping", 0))); n != 1 {
		t.Errorf("%d stopping hooks, want 1", n)
	}
	restarts := h.events.matching(isMsg(logev.RestartingChild, 0))
	if len(restarts) != 2 || restarts[1].int(KeyFailures) != 2 || restarts[1].attrs[KeyLimit] != "3/1h0m0s" {
		t.Errorf("restarts: %v, want 2 saying how many failures the limit counts", restarts)
	}
}

// TestStartLimitCountsStartsThatCannotExec: a restart whose program cannot
// be exec'd is a failed start too; giving up then exits as a shell would
// for it (127).
func TestStartLimitCountsStartsThatCannotExec(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"exit:2"}, func(o *Options) {
		o.StartLimit = StartLimit{Burst: 3, Interval: time.Hour}
	})
	h.spawner.noStandby()
	h.spawner.script(startReal, startFails, startExecFail)
	h.run()
	if o := h.wait(); o.code != socketact.ExitNotFound || o.err != nil {
		t.Fatalf("Run: %+v, want code %d", o, socketact.ExitNotFound)
	}
	if n := len(h.spawner.recorded("generation")); n != 3 {
		t.Errorf("%d starts, want 3", n)
	}
}

// TestStartLimitNotReached: fewer failures than the burst, then a
// generation that serves; status counts the failures in the window.
func TestStartLimitNotReached(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"exit:1", "exit:1", "exit:1", "ready"}, func(o *Options) {
		o.StartLimit = StartLimit{Burst: 4, Interval: time.Hour}
	}).run()
	h.ready(4)
	st := h.sup.Status()
	if st.StartFailures != 3 || st.StartLimit != "4/1h0m0s" || st.Restarts != 3 {
		t.Fatalf("status: %d failed starts, limit %q, %d restarts; want 3, 4/1h0m0s, 3", st.StartFailures, st.StartLimit, st.Restarts)
	}
	if gu := h.giveUps(); len(gu) != 0 {
		t.Fatalf("gave up: %v", gu)
	}
}

// TestNoStartLimitRestartsForever: with no limit (the zero value) the
// program is restarted as long as it fails.
func TestNoStartLimitRestartsForever(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"exit:1", "exit:1", "exit:1", "exit:1", "exit:1", "exit:1", "ready"}, nil).run()
	h.ready(7)
	if st := h.sup.Status(); st.StartFailures != 0 || st.StartLimit != "off" {
		t.Fatalf("status: %d failed starts, limit %q", st.StartFailures, st.StartLimit)
	}
}

// TestStartLimitSparesTheServingGeneration: failed reloads beside a
// serving generation do not count (the limit is "while nothing serves"):
// more of them than the burst, then a crash of the serving generation,
// and hupd restarts it as after any crash, without giving up.
func TestStartLimitSparesTheServingGeneration(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready", "exit:5", "exit:5", "exit:5", "ready"}, func(o *Options) {
		o.StartLimit = StartLimit{Burst: 2, Interval: time.Hour}
	}).run()
	pid := h.ready(1)
	for i := range 3 {
		if res := h.reload(ActionReload); res.OK || !strings.Contains(res.Reason, "exited before it was ready: exit status 5") {
			t.Fatalf("reload %d: %+v", i, res)
		}
	}
	st := h.sup.Status() // after every reload's end, on Run's goroutine
	if st.StartFailures != 0 {
		t.Errorf("status: %d failed starts counted beside a serving generation, want 0", st.StartFailures)
	}
	keepsServing(t, h, 1)
	h.kill(pid, unix.SIGUSR1) // exits 3: restarted
	h.ready(5)
	if gu := h.giveUps(); len(gu) != 0 {
		t.Fatalf("gave up after failed reloads and one crash: %v", gu)
	}
	restarts := h.events.matching(isMsg(logev.RestartingChild, 0))
	if len(restarts) != 1 || restarts[0].int(KeyFailures) != 1 {
		t.Errorf("restarts: %v, want 1 counting the crash alone", restarts)
	}
}

// TestStartLimitBoundsTheRetryAfterAFailedRestart: the restart strategy
// stops the old generation first; when the new one fails, hupd retries by
// itself (the restart policy, as after a crash). Those retries are bounded
// by the limit too.
func TestStartLimitBoundsTheRetryAfterAFailedRestart(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready", "exit:4"}, func(o *Options) {
		o.Reload = StrategyRestart
		o.StartLimit = StartLimit{Burst: 3, Interval: time.Hour}
	}).run()
	h.ready(1)
	reload := h.reloadAsync(ActionReload, "test")
	if res := h.result(reload); res.OK || res.NewGen != 2 {
		t.Fatalf("reload: %+v", res)
	}
	if o := h.wait(); o.code != 4 || o.err != nil {
		t.Fatalf("Run: %+v, want code 4", o)
	}
	// The reload's generation, then two retries.
	if n := len(h.events.matching(isMsg("hook started", 0))); n != 4 {
		t.Errorf("%d generations started, want 4 (1 serving, then 3 that fail)", n)
	}
	if gu := h.giveUps(); len(gu) != 1 {
		t.Fatalf("give-up records: %v", gu)
	}
}

// TestStartLimitAfterACleanExitLoop: "always" restarts a program that
// exits 0 at once; giving up is still a failure: exit code 1.
func TestStartLimitAfterACleanExitLoop(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"exit:0"}, func(o *Options) {
		o.Restart = RestartAlways
		o.StartLimit = StartLimit{Burst: 2, Interval: time.Hour}
	}).run()
	if o := h.wait(); o.code != 1 || o.err != nil {
		t.Fatalf("Run: %+v, want code 1", o)
	}
}

// TestSuccessExitStatus: a status listed as a success is not restarted by
// on-failure, and hupd exits 0 in its place (as tini -e); "always"
// restarts it still.
func TestSuccessExitStatus(t *testing.T) {
	for _, tc := range []struct {
		name    string
		policy  RestartPolicy
		ss      SuccessStatus
		sig     unix.Signal // sent to the child ("term-exits:143": TERM exits 143)
		restart bool
		code    int
	}{
		{"143 listed", RestartOnFailure, SuccessStatus{Codes: []int{143}}, unix.SIGTERM, false, 0},
		{"143 not listed", RestartOnFailure, SuccessStatus{Codes: []int{1}}, unix.SIGTERM, true, 0},
		{"signal listed", RestartOnFailure, SuccessStatus{Signals: []syscall.Signal{unix.SIGKILL}}, unix.SIGKILL, false, 0},
		{"code of a signal listed", RestartOnFailure, SuccessStatus{Codes: []int{137}}, unix.SIGKILL, false, 0},
		{"other signal listed", RestartOnFailure, SuccessStatus{Signals: []syscall.Signal{unix.SIGTERM}}, unix.SIGKILL, true, 0},
		{"always", RestartAlways, SuccessStatus{Codes: []int{143}}, unix.SIGTERM, true, 0},
		{"never", RestartNever, SuccessStatus{Codes: []int{143}}, unix.SIGTERM, false, 0},
		{"never, not listed", RestartNever, SuccessStatus{}, unix.SIGTERM, false, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newSupervisorUnderTest(t, []string{"term-exits:143"}, func(o *Options) {
				o.Restart, o.SuccessExitStatus = tc.policy, tc.ss
			}).run()
			h.kill(h.ready(1), tc.sig)
			if tc.restart {
				h.ready(2)
				return
			}
			if o := h.wait(); o.code != tc.code || o.err != nil {
				t.Fatalf("Run: %+v, want code %d", o, tc.code)
			}
			h.logged(logev.NotRestarting, 0, 1)
		})
	}
}

// TestSuccessExitStatusAtAStop: the serving generation's status at a
// stop is hupd's exit code, 0 when it is listed as a success.
func TestSuccessExitStatusAtAStop(t *testing.T) {
	for _, tc := range []struct {
		ss   SuccessStatus
		code int
	}{{SuccessStatus{}, 143}, {SuccessStatus{Codes: []int{143}}, 0}} {
		h := newSupervisorUnderTest(t, []string{"term-exits:143"}, func(o *Options) { o.SuccessExitStatus = tc.ss }).run()
		h.ready(1)
		h.signal(unix.SIGTERM)
		if o := h.wait(); o.code != tc.code || o.err != nil {
			t.Fatalf("%+v: Run: %+v, want code %d", tc.ss, o, tc.code)
		}
	}
}
