package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// waitLimit bounds every wait of these tests for something the supervisor
// or a child does: far above what it takes, so that only a hang fails.
const waitLimit = 20 * time.Second

// recordedEvent is one log record or hook call of a supervisor under test.
type recordedEvent struct {
	at    time.Time
	msg   string
	attrs map[string]any
}

func (e recordedEvent) int(key string) int {
	switch v := e.attrs[key].(type) {
	case int:
		return v
	case int64:
		return int(v)
	}
	return 0
}

func (e recordedEvent) String() string {
	return fmt.Sprintf("%s %q %v", e.at.Format("15:04:05.000000"), e.msg, e.attrs)
}

// recordedEvents keeps what a supervisor under test said, in order, for
// tests to wait on: its log records, and its hooks as "hook NAME" events.
type recordedEvents struct {
	mu      sync.Mutex
	list    []recordedEvent
	changed chan struct{} // closed and replaced at every add
}

func newRecordedEvents() *recordedEvents { return &recordedEvents{changed: make(chan struct{})} }

func (r *recordedEvents) add(msg string, kv ...any) {
	e := recordedEvent{at: time.Now(), msg: msg, attrs: map[string]any{}}
	for i := 0; i+1 < len(kv); i += 2 {
		e.attrs[kv[i].(string)] = kv[i+1]
	}
	r.mu.Lock()
	r.list = append(r.list, e)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// matching returns the events that match so far.
func (r *recordedEvents) matching(match func(recordedEvent) bool) []recordedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recordedEvent
	for _, e := range r.list {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitN waits until n events match and returns them.
func (r *recordedEvents) waitN(t *testing.T, n int, what string, match func(recordedEvent) bool) []recordedEvent {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if got := r.matching(match); len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within %s; events:\n%s", what, waitLimit, r.dump())
		}
	}
}

func (r *recordedEvents) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.list {
		fmt.Fprintln(&b, "  ", e)
	}
	return b.String()
}

// isMsg matches the events with message msg, of generation gen when gen
// is not 0.
func isMsg(msg string, gen int) func(recordedEvent) bool {
	return func(e recordedEvent) bool { return e.msg == msg && (gen == 0 || e.int(KeyGen) == gen) }
}

// recordingHandler is a slog.Handler that adds every record to events.
type recordingHandler struct {
	events *recordedEvents
	attrs  []any
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordingHandler) Handle(_ context.Context, rec slog.Record) error {
	kv := append([]any(nil), h.attrs...)
	rec.Attrs(func(a slog.Attr) bool {
		kv = append(kv, a.Key, a.Value.Any())
		return true
	})
	h.events.add(rec.Message, kv...)
	return nil
}

func (h recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	kv := append([]any(nil), h.attrs...)
	for _, a := range as {
		kv = append(kv, a.Key, a.Value.Any())
	}
	return recordingHandler{events: h.events, attrs: kv}
}

func (h recordingHandler) WithGroup(string) slog.Handler { return h }

// supervisorUnderTest is a Supervisor run by a test: its children are the
// test binary in helper modes (childModesEnv), started through a
// scriptedSpawner; everything it logs and every hook is recorded.
type supervisorUnderTest struct {
	t       *testing.T
	sup     *Supervisor
	spawner *scriptedSpawner
	events  *recordedEvents
	sigs    chan os.Signal
	done    chan runOutcome
	outcome *runOutcome
	running bool
	opts    Options // as given to New
	sockets []*socketact.Listener
}

type runOutcome struct {
	code int
	err  error
}

// newSupervisorUnderTest makes a supervisor whose generations behave as
// modes say (modes[i] for generation i+1, the last one for the rest: see
// runTestChild) with one TCP socket on 127.0.0.1, options edited by edit
// (may be nil). It is not running yet: see run.
func newSupervisorUnderTest(t *testing.T, modes []string, edit func(*Options)) *supervisorUnderTest {
	t.Helper()
	spec, err := socketact.ParseListenFlag("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return newSupervisorUnderTestOn(t, spec, modes, edit)
}

// newSupervisorUnderTestOn is newSupervisorUnderTest with one socket
// opened for spec (a TCP address for mode "bind").
func newSupervisorUnderTestOn(t *testing.T, spec socketact.Spec, modes []string, edit func(*Options)) *supervisorUnderTest {
	t.Helper()
	ls, err := socketact.Open([]socketact.Spec{spec})
	if err != nil {
		t.Fatal(err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	reaper := &signals.Reaper{}
	reaping := make(chan struct{})
	go reaper.Run(reaping)
	bin := testBinary(t)
	h := &supervisorUnderTest{t: t, spawner: newScriptedSpawner(reaper), events: newRecordedEvents(),
		sigs: make(chan os.Signal, 8), done: make(chan runOutcome, 1), sockets: ls}
	opts := Options{
		Name: "test", Path: bin, Args: []string{bin},
		Env: []string{childModesEnv + "=" + childModes(modes...), addrEnv + "=" + strings.TrimPrefix(ls[0].Bound.String(), "tcp://")},
		UID: -1, GID: -1, Ready: Readiness{Kind: ReadyNotify, Timeout: waitLimit},
		StopTimeout: waitLimit, Stdout: devnull, Stderr: devnull,
		Backoff: Backoff{Min: time.Millisecond, Max: time.Millisecond},
		Spawner: h.spawner, Version: "v-test",
		// Loopback: a handshake takes microseconds (the default grace
		// is for distant clients).
		SteerGrace: 20 * time.Millisecond,
	}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(opts, ls, reaper, slog.New(recordingHandler{events: h.events}))
	if err != nil {
		t.Fatal(err)
	}
	ev := h.events
	s.Observe(Hooks{
		Started:   func(gen, pid int) { ev.add("hook started", KeyGen, gen, KeyPID, pid) },
		Ready:     func(gen, pid int, after time.Duration) { ev.add("hook ready", KeyGen, gen, KeyPID, pid) },
		Reloading: func(st Strategy, cause string) { ev.add("hook reloading", KeyStrat, st, KeyCause, cause) },
		Reloaded:  func(r ReloadResult) { ev.add("hook reloaded", "result", r) },
		Stopping:  func() { ev.add("hook stopping") },
	})
	h.sup, h.opts = s, opts
	t.Cleanup(func() {
		if h.running && h.outcome == nil {
			select {
			case h.sigs <- unix.SIGTERM:
			default:
			}
			h.wait()
		}
		close(reaping)
		for _, l := range ls {
			l.Close()
		}
		if t.Failed() || os.Getenv("HUPD_TEST_DUMP") != "" {
			t.Logf("events:\n%s", h.events.dump())
		}
	})
	return h
}

// run starts Run on a goroutine of its own.
func (h *supervisorUnderTest) run() *supervisorUnderTest {
	h.running = true
	go func() {
		code, err := h.sup.Run(h.sigs)
		h.done <- runOutcome{code, err}
	}()
	return h
}

// wait waits for Run to return.
func (h *supervisorUnderTest) wait() runOutcome {
	h.t.Helper()
	if h.outcome != nil {
		return *h.outcome
	}
	select {
	case o := <-h.done:
		h.outcome = &o
		return o
	case <-time.After(waitLimit):
		h.t.Fatalf("Run did not return within %s; events:\n%s", waitLimit, h.events.dump())
	}
	return runOutcome{}
}

// ready waits for generation gen to be ready and returns its PID.
func (h *supervisorUnderTest) ready(gen int) int {
	h.t.Helper()
	return h.events.waitN(h.t, 1, fmt.Sprintf("generation %d ready", gen), isMsg("hook ready", gen))[0].int(KeyPID)
}

// started waits for generation gen to start and returns its PID.
func (h *supervisorUnderTest) started(gen int) int {
	h.t.Helper()
	return h.events.waitN(h.t, 1, fmt.Sprintf("generation %d started", gen), isMsg("hook started", gen))[0].int(KeyPID)
}

// exited waits for generation gen's main process to exit and returns the
// event ("child exited": its status and the state it was in).
func (h *supervisorUnderTest) exited(gen int) recordedEvent {
	h.t.Helper()
	return h.events.waitN(h.t, 1, fmt.Sprintf("generation %d exit", gen), isMsg(logev.ChildExited, gen))[0]
}

// logged waits for the n-th record with message msg (of generation gen
// unless 0).
func (h *supervisorUnderTest) logged(msg string, gen, n int) recordedEvent {
	h.t.Helper()
	got := h.events.waitN(h.t, n, fmt.Sprintf("%d× %q (gen %d)", n, msg, gen), isMsg(msg, gen))
	return got[n-1]
}

// reload asks for a and waits for its result.
func (h *supervisorUnderTest) reload(a Action) ReloadResult {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return h.sup.Do(ctx, a, "test")
}

// reloadAsync asks for a, and returns once Run has taken the request (so
// that whatever it does at once is done before Run takes the next one);
// the result arrives on the channel.
func (h *supervisorUnderTest) reloadAsync(a Action, cause string) <-chan ReloadResult {
	h.t.Helper()
	reply := make(chan ReloadResult, 1)
	select {
	case h.sup.reqs <- request{reload: reply, action: a, cause: cause}:
	case <-time.After(waitLimit):
		h.t.Fatalf("Run took no request within %s", waitLimit)
	}
	return reply
}

// result waits for a reload's result.
func (h *supervisorUnderTest) result(ch <-chan ReloadResult) ReloadResult {
	h.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitLimit):
		h.t.Fatalf("no reload result within %s; events:\n%s", waitLimit, h.events.dump())
	}
	return ReloadResult{}
}

// onRun runs f on Run's goroutine, between two of the requests, events
// and signals it handles, and returns once f has returned: the way for a
// test to look at the state Run owns (generations, steering groups).
func (h *supervisorUnderTest) onRun(f func(s *Supervisor)) {
	h.t.Helper()
	done := make(chan struct{})
	select {
	case h.sup.reqs <- request{probe: func() { defer close(done); f(h.sup) }}:
	case <-time.After(waitLimit):
		h.t.Fatalf("Run took no request within %s", waitLimit)
	}
	<-done
}

// signal delivers sig to the supervisor as hupd's signal intake would.
func (h *supervisorUnderTest) signal(sig unix.Signal) { h.sigs <- sig }

// kill sends sig to a child.
func (h *supervisorUnderTest) kill(pid int, sig unix.Signal) {
	h.t.Helper()
	if err := unix.Kill(pid, sig); err != nil {
		h.t.Fatalf("kill %d %v: %v", pid, sig, err)
	}
}

// becomeSubreaper makes the test process the reaper of its descendants'
// orphans for the rest of t, as hupd is: a daemon or MAINPID= process
// whose parent exits comes to it, and its status is known.
func becomeSubreaper(t *testing.T) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
}

// generations returns the generations Status lists: number → state.
func (h *supervisorUnderTest) generations() map[int]State {
	out := map[int]State{}
	for _, g := range h.sup.Status().Generations {
		out[g.Gen] = g.State
	}
	return out
}

// order returns the position of the first event that matches, -1 if none.
func (r *recordedEvents) order(match func(recordedEvent) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.list {
		if match(e) {
			return i
		}
	}
	return -1
}
