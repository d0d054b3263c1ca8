package run

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/sdnotify"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
)

// fakeManager is a service manager's notify socket: a datagram socket
// the notifier of the test's fleetSystemd sends to. Sends are
// synchronous, so what a call sent is queued when it returns.
type fakeManager struct {
	t  *testing.T
	fd int
}

func newFleetSystemd(t *testing.T) (*fleetSystemd, *fakeManager) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", path)
	n, err := sdnotify.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &fleetSystemd{sd: &systemd{n: n, log: log}, progs: map[*program]*sdProgram{}}, &fakeManager{t, fd}
}

var monotonic = regexp.MustCompile(`MONOTONIC_USEC=\d+`)

// take returns the datagrams sent so far, each with its lines joined by
// "|" and MONOTONIC_USEC's value as N.
func (m *fakeManager) take() []string {
	var out []string
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(m.fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		if err != nil {
			m.t.Fatal(err)
		}
		msg := strings.ReplaceAll(strings.TrimSuffix(string(buf[:n]), "\n"), "\n", "|")
		out = append(out, monotonic.ReplaceAllString(msg, "MONOTONIC_USEC=N"))
	}
}

func (m *fakeManager) want(what string, want ...string) {
	m.t.Helper()
	if got := m.take(); !slices.Equal(got, want) {
		m.t.Fatalf("%s: sent\n%q\nwant\n%q", what, got, want)
	}
}

// testProgram is a program with ready and stop timeouts of its own.
func testProgram(name string, ready, stop time.Duration) *program {
	spec := &config.ProgramSpec{Name: name}
	spec.Options.Ready.Timeout, spec.Options.StopTimeout = ready, stop
	spec.Options.Reload = supervisor.StrategySwap
	return &program{name: name, spec: spec}
}

func view(p *program, state int32, ready bool) sdView {
	return sdView{p: p, opts: p.spec.Options, ready: ready, waiting: state == progWaiting, running: state == progRunning, ended: state == progEnded}
}

func usec(d time.Duration) string { return sdnotify.ExtendTimeout(d) }

// TestFleetSystemdReady: READY=1 waits until every program that runs or
// waits to run has been ready once; each start until then asks for its
// ready timeout; STATUS= lists the programs in start order.
func TestFleetSystemdReady(t *testing.T) {
	s, m := newFleetSystemd(t)
	app, web := testProgram("app", time.Minute, 10*time.Second), testProgram("web", 2*time.Minute, 20*time.Second)
	ah, wh := s.hooks(app, app.spec.Options), s.hooks(web, web.spec.Options)
	s.settle([]sdView{view(app, progRunning, false), view(web, progWaiting, false)}, false)
	m.want("nothing ready")
	ah.Started(1, 10)
	m.want("app starts", "STATUS=app: starting gen 1; web: waiting|"+usec(time.Minute+budgetMargin))
	ah.Ready(1, 10, 0)
	m.want("app ready, web waits")
	s.settle([]sdView{view(app, progRunning, true), view(web, progRunning, false)}, false)
	m.want("web started by the loop")
	wh.Started(1, 20)
	m.want("web starts", "STATUS=app: gen 1 (pid 10); web: starting gen 1|"+usec(2*time.Minute+budgetMargin))
	wh.Ready(1, 20, 0)
	m.want("both ready", "READY=1|STATUS=app: gen 1 (pid 10); web: gen 1 (pid 20)")
	// A crash of web and its restart: the status says so, READY=1 once.
	wh.Started(2, 21)
	m.want("a restart after READY=1")
	wh.Ready(2, 21, 0)
	m.want("restarted", "STATUS=app: gen 1 (pid 10); web: gen 2 (pid 21)")
	s.settle([]sdView{view(app, progRunning, true), view(web, progRunning, true)}, false)
	m.want("nothing changed")
}

// TestFleetSystemdEndedDoesNotHold: a program that ended (on_exit
// "ignore", or one that never starts because a program it starts after
// ended) does not hold READY=1 back.
func TestFleetSystemdEndedDoesNotHold(t *testing.T) {
	s, m := newFleetSystemd(t)
	job, app := testProgram("job", time.Minute, time.Second), testProgram("app", time.Minute, time.Second)
	_ = s.hooks(job, job.spec.Options)
	ah := s.hooks(app, app.spec.Options)
	s.settle([]sdView{view(job, progRunning, false), view(app, progRunning, false)}, false)
	ah.Ready(1, 30, 0)
	m.want("job not ready yet")
	s.settle([]sdView{view(job, progEnded, false), view(app, progRunning, true)}, false)
	m.want("job ended", "READY=1|STATUS=job: ended; app: gen 1 (pid 30)")
}

// TestFleetSystemdReload: SIGHUP says RELOADING=1 at once, with the
// longest reload budget of the programs; READY=1 comes once every program
// it was handed to has ended its reload (a failure too: STATUS= says
// which), not when the first one has; a reload of one program alone (a
// watched file) is RELOADING=1 then READY=1 around it; nothing but STATUS=
// follows STOPPING=1, which asks for the running programs' stop timeouts
// one after another.
func TestFleetSystemdReload(t *testing.T) {
	s, m := newFleetSystemd(t)
	app, web := testProgram("app", time.Minute, 10*time.Second), testProgram("web", 2*time.Minute, 20*time.Second)
	web.spec.Options.Reload = supervisor.StrategyRestart
	ah, wh := s.hooks(app, app.spec.Options), s.hooks(web, web.spec.Options)
	both := []sdView{view(app, progRunning, true), view(web, progRunning, true)}
	ah.Ready(1, 10, 0)
	wh.Ready(1, 20, 0)
	s.settle(both, false)
	m.want("ready", "READY=1|STATUS=app: gen 1 (pid 10); web: gen 1 (pid 20)")

	webBudget := reloadBudget(budgeted(web.spec.Options), supervisor.StrategyRestart)
	release := s.hold()
	m.want("SIGHUP", "RELOADING=1|MONOTONIC_USEC=N|STATUS=reloading (SIGHUP)|"+usec(webBudget))
	s.expect(app)
	s.expect(web)
	m.want("handed out", usec(webBudget), usec(webBudget))
	ah.Reloading(supervisor.StrategySwap, "SIGHUP")
	m.want("app's reload began", usec(webBudget))
	ah.Ready(2, 11, 0)
	ah.Reloaded(supervisor.ReloadResult{OK: true, NewGen: 2, NewPID: 11})
	m.want("app's reload ended before web's began")
	release()
	m.want("web's reload still expected")
	wh.Reloading(supervisor.StrategyRestart, "SIGHUP")
	m.want("web's reload began", usec(webBudget))
	wh.Reloaded(supervisor.ReloadResult{Reason: "not ready in time"})
	m.want("every reload ended", "READY=1|STATUS=app: gen 2 (pid 11); web: gen 1 (pid 20), last reload failed")

	ah.Reloading(supervisor.StrategySwap, "changed: app.conf")
	appBudget := reloadBudget(budgeted(app.spec.Options), supervisor.StrategySwap)
	m.want("a watched file", "RELOADING=1|MONOTONIC_USEC=N|STATUS=reloading app (swap: changed: app.conf)|"+usec(appBudget))
	ah.Reloaded(supervisor.ReloadResult{OK: true, NewGen: 3, NewPID: 12})
	m.want("its end", "READY=1|STATUS=app: gen 3 (pid 12); web: gen 1 (pid 20), last reload failed")

	// A reload asked of a program that ends before it began: its end
	// ends the wait.
	release = s.hold()
	s.expect(app)
	release()
	m.want("asked", "RELOADING=1|MONOTONIC_USEC=N|STATUS=reloading (SIGHUP)|"+usec(webBudget), usec(webBudget))
	s.settle([]sdView{view(app, progEnded, true), view(web, progRunning, true)}, false)
	m.want("app ended", "READY=1|STATUS=app: ended; web: gen 1 (pid 20), last reload failed")

	s.settle(both, true)
	m.want("stop", "STOPPING=1|STATUS=stopping|"+usec(10*time.Second+20*time.Second+budgetMargin))
	ah.Reloading(supervisor.StrategySwap, "x")
	ah.Reloaded(supervisor.ReloadResult{OK: true, NewGen: 4, NewPID: 13})
	s.hold()()
	s.settle(both, true)
	m.want("after STOPPING=1")
}

// TestFleetStatusBounded: a long STATUS= is cut, marked "...".
func TestFleetStatusBounded(t *testing.T) {
	if got := fleetStatus([]string{"a: gen 1 (pid 2)", "b: waiting"}); got != "a: gen 1 (pid 2); b: waiting" {
		t.Fatalf("short: %q", got)
	}
	var parts []string
	for range 100 {
		parts = append(parts, strings.Repeat("x", 64)+": gen 1000 (pid 4000000)")
	}
	got := fleetStatus(parts)
	if len(got) != maxStatus || !strings.HasSuffix(got, "...") {
		t.Fatalf("long: %d bytes, ends %q; want %d ending in ...", len(got), got[len(got)-10:], maxStatus)
	}
}

// TestFleetStoreNames: two programs' sockets of one name go into the fd
// store under names of their own (program/NAME); the names as received
// are the configured ones for their program only, and the sockets no
// program claimed keep the names they came with.
func TestFleetStoreNames(t *testing.T) {
	s, msgs, _ := fakeStore(t, 0)
	app, web := openFlags(t, "http=tcp://127.0.0.1:0"), openFlags(t, "http=tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
	s.syncSets([]storeSet{{storePrefix("app"), app}, {storePrefix("web"), web}})
	anon := "web/" + web[1].Spec.StoreName()
	wantMsgs(t, "first sync", take(msgs),
		sent{"FDSTORE=1 FDNAME=app/http", []sockID{id(t, app[0])}},
		sent{"FDSTORE=1 FDNAME=web/http", []sockID{id(t, web[0])}},
		sent{"FDSTORE=1 FDNAME=" + anon, []sockID{id(t, web[1])}})
	// web gone (removed from hupd.toml): its names only are removed.
	s.syncSets([]storeSet{{storePrefix("app"), app}})
	wantMsgs(t, "web removed", take(msgs),
		sent{lines: "FDSTOREREMOVE=1 FDNAME=web/http"},
		sent{lines: "FDSTOREREMOVE=1 FDNAME=" + anon})

	act := []socketact.Activated{{Name: "app/http", File: app[0].File}, {Name: "web/http", File: web[0].File}, {Name: "other", File: web[1].File}}
	received := forProgram(act, "web")
	if act[0].Name != "app/http" || act[1].Name != "http" || act[2].Name != "other" {
		t.Fatalf("as web sees them: %+v", act)
	}
	left := slices.Clone(act)
	storedNames(left, received)
	if left[1].Name != "web/http" {
		t.Fatalf("unclaimed: %+v, want web/http as received", left)
	}
}

// recv waits, under the deadline, for the next datagram.
func (m *fakeManager) recv() string {
	m.t.Helper()
	fds := []unix.PollFd{{Fd: int32(m.fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 10_000); err != nil || n == 0 {
		m.t.Fatalf("no datagram within 10s: %v", err)
	}
	got := m.take()
	if len(got) == 0 {
		m.t.Fatal("poll said a datagram was there")
	}
	return got[0]
}

// TestFleetWatchdog: WATCHDOG=1 goes once per ping the fleet's loop
// answered, never while the loop does not answer; stopping the watchdog
// while it waits for the loop returns.
func TestFleetWatchdog(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", "")
	s, m := newFleetSystemd(t)
	f := &fleet{sd: s, exited: make(chan struct{})}
	stop := f.startWatchdog()
	for i := range 3 {
		c := <-f.pingc // the loop answers
		close(c)
		if got := m.recv(); got != "WATCHDOG=1" {
			t.Fatalf("ping %d: sent %q", i, got)
		}
	}
	// The loop answers no more: the watchdog waits, and stops when asked.
	stop()
	if got := m.take(); len(got) != 0 {
		t.Fatalf("sent %q with no answer from the loop", got)
	}
	// An ended loop: answers says no, without waiting.
	close(f.exited)
	if f.answers(make(chan struct{})) {
		t.Fatal("answers: true once the loop ended")
	}
}

// TestFleetTellSystemdNothingLeft: the loop's view says STOPPING=1 once
// nothing is left to run (every program ended with on_exit "ignore"), not
// while a program runs.
func TestFleetTellSystemdNothingLeft(t *testing.T) {
	s, m := newFleetSystemd(t)
	job, app := testProgram("job", time.Minute, time.Second), testProgram("app", time.Minute, 2*time.Second)
	f := &fleet{sd: s, progs: []*program{job, app}}
	job.state.Store(progEnded)
	app.state.Store(progRunning)
	f.tellSystemd()
	m.want("app runs, not ready yet")
	app.state.Store(progEnded)
	f.tellSystemd()
	m.want("nothing left", "STOPPING=1|STATUS=stopping|"+usec(budgetMargin))
}

// TestFleetResumedUnderManager: a fleet that took over from a previous
// image (an in-place upgrade) says nothing at its start but the STATUS=
// that image said (each program's serving generation as handed over: the
// newest ready one, by its first instance; its last reload's failure), a
// reload says RELOADING=1 at once (READY=1 was said before), and its
// sockets are not stored again.
func TestFleetResumedUnderManager(t *testing.T) {
	s, m := newFleetSystemd(t)
	store, msgs, _ := fakeStore(t, 0)
	app := testProgram("app", time.Minute, time.Second)
	app.ls = openFlags(t, "http=tcp://127.0.0.1:0")
	app.state.Store(progRunning)
	f := &fleet{sd: s, store: store, progs: []*program{app}}
	_ = s.hooks(app, app.spec.Options)
	part := &supervisor.Upgrade{Gens: []supervisor.GenState{
		{Num: 2, PID: 20, State: supervisor.StateDraining},
		{Num: 3, PID: 30, State: supervisor.StateReady},
		{Num: 3, Inst: 1, PID: 31, State: supervisor.StateReady},
	}, Last: &supervisor.ReloadResult{OK: false}, Listeners: states(app.ls)}
	tk := &takeOver{fl: &supervisor.FleetState{Programs: []supervisor.ProgramState{{Name: "app", Part: part}}}}
	tk.noteStored()
	f.resumedUnderManager(tk)
	f.syncStore()
	if got := take(msgs); len(got) != 0 {
		t.Fatalf("stored again: %+v", got)
	}
	f.tellSystemd()
	m.want("resumed", "STATUS=app: gen 3 (pid 30), last reload failed")
	s.hold()()
	m.want("SIGHUP", "RELOADING=1|MONOTONIC_USEC=N|STATUS=reloading (SIGHUP)|"+usec(reloadBudget(budgeted(app.spec.Options), supervisor.StrategySwap)),
		"READY=1|STATUS=app: gen 3 (pid 30), last reload failed")
}

// storeProgram is a program of a fleet with an fd store: running, on a
// socket named http, started after after, ending with on_exit onExit.
func storeProgram(t *testing.T, name, onExit string, after ...string) *program {
	p := testProgram(name, time.Minute, time.Second)
	p.spec.OnExit, p.spec.After = onExit, after
	p.ls = openFlags(t, "http=tcp://127.0.0.1:0")
	p.spec.Listen = []socketact.Spec{p.ls[0].Spec}
	p.log = slog.New(slog.DiscardHandler)
	p.state.Store(progRunning)
	return p
}

// TestFleetStoreEnded: the fd store holds what hupd holds. A program that
// ends for good (on_exit "ignore") while hupd goes on leaves it, and so
// does one that will never run (a program it starts after ended first),
// whose sockets hupd closes; the others' stay. When hupd stops, or the
// last program ends (nothing left to run: hupd exits), the sockets stay
// for the next start.
func TestFleetStoreEnded(t *testing.T) {
	store, msgs, _ := fakeStore(t, 0)
	app := storeProgram(t, "app", config.OnExitStopAll)
	once := storeProgram(t, "once", config.OnExitIgnore)
	web := storeProgram(t, "web", config.OnExitIgnore, "once")
	web.state.Store(progWaiting)
	f := &fleet{store: store, progs: []*program{app, once, web}, log: slog.New(slog.DiscardHandler)}
	f.link()
	f.syncStore()
	if n := len(take(msgs)); n != 3 {
		t.Fatalf("%d sockets stored at the start, want 3", n)
	}
	f.onEnd(programEnd{p: once, code: 3})
	wantMsgs(t, "once ended, web never runs", take(msgs),
		sent{lines: "FDSTOREREMOVE=1 FDNAME=once/http"},
		sent{lines: "FDSTOREREMOVE=1 FDNAME=web/http"})
	if web.state.Load() != progEnded {
		t.Fatalf("web, after once which ended: state %d", web.state.Load())
	}
	f.stopAll(syscall.SIGTERM)
	app.sigs = make(chan os.Signal, 1)
	f.onEnd(programEnd{p: app})
	if got := take(msgs); len(got) != 0 {
		t.Fatalf("stored sockets changed as hupd stops: %+v", got)
	}
}

// TestFleetStoreEndedLast: the last program's end (nothing left to run)
// leaves its sockets in the store, for hupd's next start.
func TestFleetStoreEndedLast(t *testing.T) {
	store, msgs, _ := fakeStore(t, 0)
	once := storeProgram(t, "once", config.OnExitIgnore)
	f := &fleet{store: store, progs: []*program{once}, log: slog.New(slog.DiscardHandler)}
	f.syncStore()
	take(msgs)
	f.onEnd(programEnd{p: once, code: 3})
	if got := take(msgs); len(got) != 0 {
		t.Fatalf("the last program's end changed the store: %+v", got)
	}
}

// TestFleetStoreResumedEnded: a fleet that took over from a previous
// image takes out of the store the sockets of a program that had ended,
// which that image may have left there (it knows the names by the
// program's configuration), and sends nothing about the running ones'.
func TestFleetStoreResumedEnded(t *testing.T) {
	store, msgs, _ := fakeStore(t, 0)
	app := storeProgram(t, "app", config.OnExitStopAll)
	once := storeProgram(t, "once", config.OnExitIgnore)
	once.ls = nil // ended: the take-over gives it none
	once.state.Store(progEnded)
	f := &fleet{store: store, progs: []*program{app, once}, log: slog.New(slog.DiscardHandler)}
	tk := &takeOver{fl: &supervisor.FleetState{Programs: []supervisor.ProgramState{
		{Name: "app", Part: &supervisor.Upgrade{Listeners: states(app.ls)}}, {Name: "once", Ended: true, Ran: true}}}}
	tk.noteStored()
	f.resumedUnderManager(tk)
	wantMsgs(t, "resumed", take(msgs), sent{lines: "FDSTOREREMOVE=1 FDNAME=once/http"})
	f.syncStore()
	if got := take(msgs); len(got) != 0 {
		t.Fatalf("a sync after the take-over sent %+v", got)
	}
}

// states is what an image hands over of ls (supervisor.Upgrade.Listeners).
func states(ls []*socketact.Listener) []socketact.ListenerState {
	var out []socketact.ListenerState
	for _, l := range ls {
		out = append(out, l.State())
	}
	return out
}

// TestFleetStoreResumedEdited: a fleet that took over from a previous
// image, with hupd.toml edited since that image's last check (app's old
// socket dropped, an admin socket added), takes for stored what that image
// stored (its part's sockets), not what the edited file names: the added
// socket is stored, the dropped one's name removed, the kept one not sent
// again.
func TestFleetStoreResumedEdited(t *testing.T) {
	store, msgs, _ := fakeStore(t, 0)
	app := storeProgram(t, "app", config.OnExitStopAll)
	old := openFlags(t, "old=tcp://127.0.0.1:0")
	handed := states(append(slices.Clone(app.ls), old...))
	admin := openFlags(t, "admin=tcp://127.0.0.1:0")
	app.ls = append(app.ls, admin...) // the edit opened admin
	app.spec.Listen = []socketact.Spec{app.ls[0].Spec, admin[0].Spec}
	f := &fleet{store: store, progs: []*program{app}, log: slog.New(slog.DiscardHandler)}
	tk := &takeOver{edited: true, fl: &supervisor.FleetState{Programs: []supervisor.ProgramState{
		{Name: "app", Part: &supervisor.Upgrade{Listeners: handed}}}}}
	tk.noteStored()
	f.resumedUnderManager(tk)
	id, _ := idOf(admin[0].File)
	wantMsgs(t, "resumed", take(msgs),
		sent{lines: "FDSTOREREMOVE=1 FDNAME=app/old"},
		sent{lines: "FDSTORE=1 FDNAME=app/admin", ids: []sockID{id}})
	f.syncStore()
	if got := take(msgs); len(got) != 0 {
		t.Fatalf("a sync after the take-over sent %+v", got)
	}
}
