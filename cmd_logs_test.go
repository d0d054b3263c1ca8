package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// followingHupd is a fake hupd whose followers get the lines sent on
// lines.
type followingHupd struct {
	fakeHupd
	lines chan supervisor.OutputLine
}

func (f *followingHupd) Logs(int, int) []supervisor.OutputLine { return nil }
func (f *followingHupd) FollowLogs(int, int) ([]supervisor.OutputLine, <-chan supervisor.OutputLine, func() int) {
	return nil, f.lines, func() int { return 0 }
}

// TestLogsFollowReportsDrops: hupd logs -f says how many lines were lost
// where they were lost (hupd does not queue lines for a client that does
// not keep up), on stderr: "-- N lines dropped --".
func TestLogsFollowReportsDrops(t *testing.T) {
	controlDir(t)
	f := &followingHupd{fakeHupd: fakeHupd{name: "web", pid: 11}, lines: make(chan supervisor.OutputLine)}
	s, err := control.Listen(control.DefaultPath("web"), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Close()
	var out bytes.Buffer // stdout and stderr, in the order written
	done := make(chan error, 1)
	go func() { done <- newApp(&out, &out).Run([]string{"hupd", "logs", "--name", "web", "-f"}) }()
	at := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	for _, l := range []supervisor.OutputLine{
		{Time: at, Gen: 2, PID: 7, Stream: supervisor.StreamStdout, Text: "before"},
		{Time: at, Gen: 2, PID: 7, Stream: supervisor.StreamStdout, Text: "after", Dropped: 42},
		{Time: at, Gen: 2, PID: 7, Stream: supervisor.StreamStdout, Text: "last"}, // taken once "after" is sent
	} {
		select {
		case f.lines <- l:
		case <-time.After(20 * time.Second):
			t.Fatalf("hupd logs -f does not follow: %q", out.String())
		}
	}
	s.Close() // the client reads what was sent, then ends
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("hupd logs -f goes on after the server closed")
	}
	want := "2026-12-07T05:00:00.000Z gen 2 pid 7 stdout: before\n-- 42 lines dropped --\n2026-12-07T05:00:00.000Z gen 2 pid 7 stdout: after\n"
	if got := out.String(); !strings.HasPrefix(got, want) || strings.Count(got, "dropped") != 1 {
		t.Errorf("hupd logs -f wrote\n%s\nwant it to start\n%s", got, want)
	}
}
