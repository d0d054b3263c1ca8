package supervisor

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
)

// fullQueue returns a supervisor whose event queue is full, as it is when
// a child floods its notify socket faster than Run handles the datagrams.
func fullQueue(t *testing.T) *Supervisor {
	t.Helper()
	s := &Supervisor{log: slog.New(slog.DiscardHandler), events: make(chan event, 64), quit: make(chan struct{})}
	for len(s.events) < cap(s.events) {
		s.events <- event{kind: evTrim}
	}
	t.Cleanup(func() { close(s.quit) }) // frees a blocked post
	return s
}

// mustReturn fails t when f blocks: Run's goroutine posting to its own
// queue would wait for itself forever.
func mustReturn(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked on Run's own full event queue: hupd would hang", what)
	}
}

// TestWatchdogTriggerFullQueue: WATCHDOG=trigger is handled on Run's
// goroutine; it must not wait for room in the queue that only Run empties.
func TestWatchdogTriggerFullQueue(t *testing.T) {
	s := fullQueue(t)
	g := &generation{num: 1, pid: os.Getpid(), state: StateReady, proc: &os.Process{Pid: -1}}
	m := socketact.NotifyMessage{PID: os.Getpid(), UID: os.Getuid(), GID: os.Getgid(), Verified: true,
		Fields: map[string]string{socketact.NotifyWatchdog: "trigger"}}
	g.pid = 1 << 30 // above any pid_max: killGroup must hit nothing
	m.PID = g.pid
	mustReturn(t, "onNotify(WATCHDOG=trigger)", func() { s.onNotify(g, m, time.Now(), mainVet{}) })
}

// TestCheckStartFailureFullQueue: a check command that cannot start is
// reported on Run's goroutine; that must not wait for queue room either.
func TestCheckStartFailureFullQueue(t *testing.T) {
	s := fullQueue(t)
	s.opts = Options{Check: []string{"/nonexistent/hupd-review-check"}}
	tx := &reloadTx{strategy: StrategySwap, checking: true}
	s.tx = tx
	mustReturn(t, "runCheck", func() { s.runCheck(tx) })
}

// TestSpawnerStartAfterStop: a readiness probe's goroutine may ask for a
// start just as Run returns and stops the spawner; that must be an error,
// not a panic (send on a closed channel) that takes hupd down.
func TestSpawnerStartAfterStop(t *testing.T) {
	sp := startSpawner(&signals.Reaper{})
	sp.stop()
	res := sp.start(&socketact.Command{Path: "/bin/true", Args: []string{"true"}}, nil)
	if res.err == nil {
		t.Fatalf("start after stop: %+v, want an error", res)
	}
}

// TestSpawnerStartedCallback: a start with a started callback hands it
// the process's PID and a pidfd for that very process (the sentinel's
// registration) before its program runs; the pidfd is closed after.
func TestSpawnerStartedCallback(t *testing.T) {
	r := &signals.Reaper{}
	done := make(chan struct{})
	defer close(done)
	go r.Run(done)
	sp := startSpawner(r)
	defer sp.stop()
	var gotPID, gotFD, calls int
	var fdinfo string
	res := sp.start(&socketact.Command{Shim: os.Args[0], Path: "/bin/true", Args: []string{"true"}}, func(pid, pidfd int) {
		calls++
		gotPID, gotFD = pid, pidfd
		b, _ := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(pidfd))
		fdinfo = string(b)
	})
	if res.err != nil {
		t.Fatal(res.err)
	}
	res.proc.Release()
	<-res.exited
	if calls != 1 || gotPID != res.pid || gotFD < 0 {
		t.Fatalf("started called %d times with pid %d pidfd %d; started pid %d", calls, gotPID, gotFD, res.pid)
	}
	if !strings.Contains(fdinfo, "\nPid:\t"+strconv.Itoa(res.pid)+"\n") {
		t.Fatalf("pidfd %d does not refer to pid %d:\n%s", gotFD, res.pid, fdinfo)
	}
	if res.pidfd != -1 {
		t.Fatalf("result pidfd %d: the spawner's to close", res.pidfd)
	}
}
