package control

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// fakeLogs is a Handler that is a LogSource: it keeps kept, and a follower
// gets the lines sent on lines; stopped is closed when the follower stops.
type fakeLogs struct {
	fakeControl
	kept         []supervisor.OutputLine
	gotGen, gotN atomic.Int64 // what it was asked, set before it answers
	lines        chan supervisor.OutputLine
	following    chan struct{}
	stopped      chan struct{}
}

func (f *fakeLogs) Logs(gen, n int) []supervisor.OutputLine {
	f.gotGen.Store(int64(gen))
	f.gotN.Store(int64(n))
	return f.kept
}

func (f *fakeLogs) FollowLogs(gen, n int) ([]supervisor.OutputLine, <-chan supervisor.OutputLine, func() int) {
	f.gotGen.Store(int64(gen))
	f.gotN.Store(int64(n))
	close(f.following)
	return f.kept, f.lines, func() int { close(f.stopped); return 0 }
}

func newFakeLogs() *fakeLogs {
	return &fakeLogs{
		kept:  []supervisor.OutputLine{{Gen: 2, PID: 7, Stream: supervisor.StreamStderr, Text: "bind: address already in use"}},
		lines: make(chan supervisor.OutputLine), following: make(chan struct{}), stopped: make(chan struct{}),
	}
}

func TestLogsRequest(t *testing.T) {
	f := newFakeLogs()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	listenControl(t, path, f).serve(t)
	rep, err := Call(testCtx(t), path, Request{Cmd: CmdLogs, Gen: 2, Lines: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Logs) != 1 || rep.Logs[0] != f.kept[0] || f.gotGen.Load() != 2 || f.gotN.Load() != 5 {
		t.Fatalf("reply %+v (asked gen %d, n %d), want the kept line for gen 2, n 5", rep, f.gotGen.Load(), f.gotN.Load())
	}
	rep, err = Call(testCtx(t), path, Request{Cmd: CmdLogs, Lines: -1})
	if err != nil || rep.OK || !strings.Contains(rep.Error, "invalid logs request") {
		t.Fatalf("lines -1: reply %+v, %v; want an invalid request", rep, err)
	}
}

func TestLogsRefusedWithoutLogSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	listenControl(t, path, &fakeControl{}).serve(t)
	rep, err := Call(testCtx(t), path, Request{Cmd: CmdLogs})
	if err != nil || rep.OK || rep.Error != errNoLogs.Error() {
		t.Fatalf("reply %+v, %v; want %q", rep, err, errNoLogs)
	}
	err = Follow(testCtx(t), path, Request{Cmd: CmdLogs, Follow: true}, func(Reply) error { return nil })
	if err == nil || err.Error() != errNoLogs.Error() {
		t.Fatalf("follow: %v, want %q", err, errNoLogs)
	}
}

// TestFollowLogs: a following client gets the kept lines, then each line
// as it comes; when it hangs up, the server stops following.
func TestFollowLogs(t *testing.T) {
	f := newFakeLogs()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	listenControl(t, path, f).serve(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	got := make(chan Reply, 4)
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, path, Request{Cmd: CmdLogs, Follow: true, Gen: 2}, func(r Reply) error { got <- r; return nil })
	}()
	deadline := time.After(20 * time.Second)
	var first Reply
	select {
	case first = <-got:
	case <-deadline:
		t.Fatal("no first reply")
	}
	if !first.OK || len(first.Logs) != 1 || first.Logs[0] != f.kept[0] || f.gotGen.Load() != 2 {
		t.Fatalf("first reply %+v, want the kept line", first)
	}
	later := supervisor.OutputLine{Gen: 2, PID: 7, Stream: supervisor.StreamStdout, Text: "later"}
	select {
	case f.lines <- later:
	case <-deadline:
		t.Fatal("the server does not follow")
	}
	select {
	case r := <-got:
		if !r.OK || r.Line == nil || *r.Line != later {
			t.Fatalf("followed %+v, want %+v", r, later)
		}
	case <-deadline:
		t.Fatal("no followed line")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow after its context ended: %v", err)
		}
	case <-deadline:
		t.Fatal("Follow goes on after its context ended")
	}
	select {
	case <-f.stopped:
	case <-deadline:
		t.Fatal("the server goes on following a client that hung up")
	}
}

func TestFollowErrorEndsIt(t *testing.T) {
	f := newFakeLogs()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	listenControl(t, path, f).serve(t)
	stopHere := errors.New("enough")
	if err := Follow(testCtx(t), path, Request{Cmd: CmdLogs, Follow: true}, func(Reply) error { return stopHere }); !errors.Is(err, stopHere) {
		t.Fatalf("Follow: %v, want fn's error", err)
	}
	select {
	case <-f.stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("the server goes on following a client that hung up")
	}
}
