package control

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// TestWireFormat pins protocol version 1's bytes: a request line as Call
// writes it, and the reply lines the server writes for a reload, a status
// and an error. A change here breaks every hupd client already installed.
func TestWireFormat(t *testing.T) {
	req, err := json.Marshal(Request{V: ProtocolVersion, Cmd: CmdReload, Timeout: "1m0s", Binary: ""})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"cmd":"reload","timeout":"1m0s"}`; string(req) != want {
		t.Errorf("request line\n got %s\nwant %s", req, want)
	}
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	h := &fakeControl{
		reload: func(context.Context) supervisor.ReloadResult {
			return supervisor.ReloadResult{OK: false, Strategy: supervisor.StrategySwap, Cause: "hupd reload", Reason: "new generation exited with status 3",
				OldGen: 1, OldPID: 100, NewGen: 2, NewPID: 200, Started: start, Finished: start.Add(1500 * time.Millisecond),
				ReadyAfter: supervisor.Duration(250 * time.Millisecond), ExecAfter: supervisor.Duration(3 * time.Millisecond),
				HandoverTook: supervisor.Duration(time.Millisecond), Output: []string{"boom"}}
		},
		status: supervisor.Status{Name: "web", PID: 7, Version: "v1.2.3", Strategy: supervisor.StrategySwap,
			Listeners:   []supervisor.ListenerStatus{{FD: 3, Name: "http", Address: "tcp://127.0.0.1:8080"}},
			Generations: []supervisor.GenerationStatus{{Gen: 2, PID: 200, State: supervisor.StateReady, Started: start, Uptime: supervisor.Duration(time.Minute), Processes: 1, MemoryBytes: 4096, MemoryPeakBytes: 8192, CPUSeconds: 0.5}},
			Reloads:     1, Instances: 1, Note: supervisor.Note{Hash: "abcd"}},
	}
	s := startControl(t, h)
	c := dialRaw(t, s.Path())
	for _, tc := range []struct{ send, want string }{
		{string(req),
			`{"v":1,"ok":false,"error":"reload failed: new generation exited with status 3","reload":{"ok":false,"strategy":"swap","cause":"hupd reload","reason":"new generation exited with status 3","old_gen":1,"old_pid":100,"new_gen":2,"new_pid":200,"started":"2026-12-06T10:00:00Z","finished":"2026-12-06T10:00:01.5Z","ready_after":"250ms","exec_after":"3ms","handover_took":"1ms","output":["boom"]}}`},
		{`{"v":1,"cmd":"status"}`,
			`{"v":1,"ok":true,"status":{"name":"web","pid":7,"version":"v1.2.3","strategy":"swap","listeners":[{"fd":3,"name":"http","address":"tcp://127.0.0.1:8080"}],"generations":[{"gen":2,"pid":200,"state":"ready","started":"2026-12-06T10:00:00Z","uptime":"1m0s","processes":1,"memory_bytes":4096,"memory_peak_bytes":8192,"cpu_seconds":0.5}],"reloads":1,"restarts":0,"start_failures":0,"hash":"abcd","instances":1}}`},
		{`{"v":1,"cmd":"ping"}`, `{"v":1,"ok":true}`},
		{`{"v":2,"cmd":"ping"}`, `{"v":1,"ok":false,"error":"unsupported protocol version 2: this hupd speaks version 1"}`},
	} {
		c.send(t, tc.send)
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", tc.send, err)
		}
		if line != tc.want+"\n" {
			t.Errorf("reply to %s\n got %s\nwant %s", tc.send, line, tc.want)
		}
	}
}

// TestWireProgress pins the opt-in progress lines of a reload request: a
// request with "progress":true gets {"v":1,"progress":{…}} lines (no "ok")
// before its reply; a request without it gets exactly one line however
// long the reload takes, as clients of protocol 1 always had. CallProgress
// hands the lines to its callback and returns the reply.
func TestWireProgress(t *testing.T) {
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	release := make(chan struct{})
	h := &fakeControl{
		reload: func(ctx context.Context) supervisor.ReloadResult {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap, NewGen: 2, NewPID: 200, Started: start, Finished: start}
		},
		status: supervisor.Status{Name: "web", Ready: "notify", ReadyTimeout: supervisor.Duration(time.Minute),
			Generations: []supervisor.GenerationStatus{
				{Gen: 1, PID: 100, State: supervisor.StateReady},
				{Gen: 2, PID: 200, State: supervisor.StateStarting, Uptime: supervisor.Duration(1200 * time.Millisecond)}}},
	}
	s := startControl(t, h)
	c := dialRaw(t, s.Path())
	reply := `{"v":1,"ok":true,"reload":{"ok":true,"strategy":"swap","new_gen":2,"new_pid":200,"started":"2026-12-06T10:00:00Z","finished":"2026-12-06T10:00:00Z"}}` + "\n"

	c.send(t, `{"v":1,"cmd":"reload","progress":true}`)
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"progress":{"gen":2,"pid":200,"ready":"notify","elapsed":"1.2s","timeout":"1m0s"}}` + "\n"; line != want {
		t.Errorf("progress line\n got %s\nwant %s", line, want)
	}
	release <- struct{}{}
	for strings.Contains(line, `"progress"`) {
		if line, err = c.r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if line != reply {
		t.Errorf("reply after progress\n got %s\nwant %s", line, reply)
	}

	// Without "progress": one line, though the reload outlasts a few
	// progress intervals.
	h.reload = func(context.Context) supervisor.ReloadResult {
		time.Sleep(3 * ProgressEvery) // the scenario: a reload longer than the interval
		return supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap, NewGen: 2, NewPID: 200, Started: start, Finished: start}
	}
	c.send(t, `{"v":1,"cmd":"reload"}`)
	if line, err = c.r.ReadString('\n'); err != nil || line != reply {
		t.Errorf("reply without progress: %q, %v; want %s", line, err, reply)
	}

	var got []Progress
	h.reload = func(ctx context.Context) supervisor.ReloadResult {
		<-release
		return supervisor.ReloadResult{OK: true, NewGen: 2}
	}
	rep, err := CallProgress(context.Background(), s.Path(), Request{Cmd: CmdReload}, func(p Progress) {
		if got = append(got, p); len(got) == 1 {
			close(release)
		}
	})
	if err != nil || !rep.OK || rep.Reload == nil || rep.Reload.NewGen != 2 {
		t.Fatalf("CallProgress: %+v, %v", rep, err)
	}
	if len(got) == 0 || got[0] != (Progress{Gen: 2, PID: 200, Ready: "notify", Elapsed: supervisor.Duration(1200 * time.Millisecond), Timeout: supervisor.Duration(time.Minute)}) {
		t.Errorf("progress seen: %+v", got)
	}
}

// rollbackControl is a fakeControl that answers rollback requests with
// the results of rollback, in turn.
type rollbackControl struct {
	fakeControl
	rollback []supervisor.ReloadResult
}

func (f *rollbackControl) Rollback(context.Context) supervisor.ReloadResult {
	r := f.rollback[0]
	f.rollback = f.rollback[1:]
	return r
}

// TestWireRollback pins a rollback request's bytes and its replies: the
// result is the reply's "reload" (strategy "rollback": new_gen is the
// generation serving again), a failure's reason is in "error" as for a
// reload, and a hupd whose handler cannot roll back says so.
func TestWireRollback(t *testing.T) {
	req, err := json.Marshal(Request{V: ProtocolVersion, Cmd: CmdRollback})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"cmd":"rollback"}`; string(req) != want {
		t.Errorf("request line\n got %s\nwant %s", req, want)
	}
	start := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	h := &rollbackControl{rollback: []supervisor.ReloadResult{
		{OK: true, Strategy: supervisor.StrategyRollback, Cause: "hupd rollback", OldGen: 2, OldPID: 200, NewGen: 1, NewPID: 100,
			Started: start, Finished: start.Add(2 * time.Millisecond)},
		{Strategy: supervisor.StrategyRollback, Reason: "no generation is settling: nothing to roll back to", Started: start, Finished: start},
	}}
	c := dialRaw(t, startControl(t, h).Path())
	for _, want := range []string{
		`{"v":1,"ok":true,"reload":{"ok":true,"strategy":"rollback","cause":"hupd rollback","old_gen":2,"old_pid":200,"new_gen":1,"new_pid":100,"started":"2026-12-07T05:00:00Z","finished":"2026-12-07T05:00:00.002Z"}}`,
		`{"v":1,"ok":false,"error":"rollback failed: no generation is settling: nothing to roll back to","reload":{"ok":false,"strategy":"rollback","reason":"no generation is settling: nothing to roll back to","started":"2026-12-07T05:00:00Z","finished":"2026-12-07T05:00:00Z"}}`,
	} {
		c.send(t, string(req))
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != want+"\n" {
			t.Errorf("reply to %s\n got %s\nwant %s", req, line, want)
		}
	}
	c = dialRaw(t, startControl(t, &fakeControl{}).Path())
	c.send(t, string(req))
	line, err := c.r.ReadString('\n')
	if want := `{"v":1,"ok":false,"error":"this hupd cannot roll back"}` + "\n"; err != nil || line != want {
		t.Errorf("without a Rollbacker: %q, %v; want %s", line, err, want)
	}
}

// TestWireFollowDropped pins a followed line's reply, and the count of the
// lines lost before it when the client did not keep up ("dropped", absent
// when none were), and the instance a line came from ("instance", absent
// for instance 0).
func TestWireFollowDropped(t *testing.T) {
	f := newFakeLogs()
	s := startControl(t, f)
	c := dialRaw(t, s.Path())
	c.send(t, `{"v":1,"cmd":"logs","follow":true}`)
	if line, err := c.r.ReadString('\n'); err != nil || line != `{"v":1,"ok":true,"logs":[{"time":"0001-01-01T00:00:00Z","gen":2,"pid":7,"stream":"stderr","line":"bind: address already in use"}]}`+"\n" {
		t.Fatalf("kept lines: %q, %v", line, err)
	}
	at := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		l    supervisor.OutputLine
		want string
	}{
		{supervisor.OutputLine{Time: at, Gen: 2, PID: 7, Stream: supervisor.StreamStdout, Text: "later"},
			`{"v":1,"ok":true,"line":{"time":"2026-12-07T05:00:00Z","gen":2,"pid":7,"stream":"stdout","line":"later"}}`},
		{supervisor.OutputLine{Time: at, Gen: 2, PID: 7, Stream: supervisor.StreamStdout, Text: "after a flood", Dropped: 3},
			`{"v":1,"ok":true,"line":{"time":"2026-12-07T05:00:00Z","gen":2,"pid":7,"stream":"stdout","line":"after a flood"},"dropped":3}`},
		{supervisor.OutputLine{Time: at, Gen: 2, PID: 9, Instance: 2, Stream: supervisor.StreamStderr, Text: "from instance 2"},
			`{"v":1,"ok":true,"line":{"time":"2026-12-07T05:00:00Z","gen":2,"pid":9,"instance":2,"stream":"stderr","line":"from instance 2"}}`},
	} {
		f.lines <- tc.l
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != tc.want+"\n" {
			t.Errorf("followed line\n got %s\nwant %s", line, tc.want)
		}
	}
}
