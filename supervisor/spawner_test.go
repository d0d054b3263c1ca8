package supervisor

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
)

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
