package control

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// scaleControl is a fakeControl that scales: each scale request is
// recorded (n, and the wait limit its ctx carries) and answered by result.
type scaleControl struct {
	fakeControl
	asked  chan scaleAsked
	result func(n int) supervisor.ScaleResult
}

type scaleAsked struct {
	n     int
	limit time.Duration // 0: none
}

func (f *scaleControl) Scale(ctx context.Context, n int) supervisor.ScaleResult {
	wctx, cancel := supervisor.WaitContext(ctx)
	defer cancel()
	var limit time.Duration
	if d, ok := wctx.Deadline(); ok {
		limit = time.Until(d).Round(time.Minute)
	}
	f.asked <- scaleAsked{n, limit}
	return f.result(n)
}

// TestWireScale pins a scale request's bytes and its replies: the result
// is the reply's "scale", a failure's reason is in "error" as for a
// reload, the request's timeout becomes the handler's wait limit, a
// number of instances out of range (missing, 0, negative, above
// supervisor.MaxInstances) or a bad timeout is refused before the handler
// is asked, and a hupd whose handler cannot scale says so.
func TestWireScale(t *testing.T) {
	req, err := json.Marshal(Request{V: ProtocolVersion, Cmd: CmdScale, Instances: 4, Timeout: "1m0s"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"cmd":"scale","timeout":"1m0s","instances":4}`; string(req) != want {
		t.Errorf("request line\n got %s\nwant %s", req, want)
	}
	start := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	h := &scaleControl{asked: make(chan scaleAsked, 1), result: func(n int) supervisor.ScaleResult {
		if n == 1 {
			return supervisor.ScaleResult{From: 2, To: 1, Gen: 3, Reason: "a reload is in progress", Started: start, Finished: start}
		}
		return supervisor.ScaleResult{OK: true, From: 2, To: n, Gen: 3, Started: start, Finished: start.Add(450 * time.Millisecond), Added: []int{301, 302}}
	}}
	c := dialRaw(t, startControl(t, h).Path())
	for _, tc := range []struct {
		send  string
		asked *scaleAsked // nil: the handler is not asked
		want  string
	}{
		{string(req), &scaleAsked{4, time.Minute},
			`{"v":1,"ok":true,"scale":{"ok":true,"from":2,"to":4,"gen":3,"started":"2026-12-07T08:00:00Z","finished":"2026-12-07T08:00:00.45Z","added":[301,302]}}`},
		{`{"v":1,"cmd":"scale","instances":1}`, &scaleAsked{1, 0},
			`{"v":1,"ok":false,"error":"scale failed: a reload is in progress","scale":{"ok":false,"reason":"a reload is in progress","from":2,"to":1,"gen":3,"started":"2026-12-07T08:00:00Z","finished":"2026-12-07T08:00:00Z"}}`},
		{`{"v":1,"cmd":"scale"}`, nil, `{"v":1,"ok":false,"error":"invalid scale request: instances 0: want 1 to 1024"}`},
		{`{"v":1,"cmd":"scale","instances":0}`, nil, `{"v":1,"ok":false,"error":"invalid scale request: instances 0: want 1 to 1024"}`},
		{`{"v":1,"cmd":"scale","instances":-3}`, nil, `{"v":1,"ok":false,"error":"invalid scale request: instances -3: want 1 to 1024"}`},
		{`{"v":1,"cmd":"scale","instances":1025}`, nil, `{"v":1,"ok":false,"error":"invalid scale request: instances 1025: want 1 to 1024"}`},
		{`{"v":1,"cmd":"scale","instances":"4"}`, nil, `{"v":1,"ok":false,"error":"malformed request: json: cannot unmarshal string into Go struct field Request.instances of type int"}`},
		{`{"v":1,"cmd":"scale","instances":2,"timeout":"-1s"}`, nil, `{"v":1,"ok":false,"error":"invalid scale timeout \"-1s\": must be positive"}`},
	} {
		c.send(t, tc.send)
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != tc.want+"\n" {
			t.Errorf("reply to %s\n got %s\nwant %s", tc.send, line, tc.want)
		}
		select {
		case a := <-h.asked:
			if tc.asked == nil || a != *tc.asked {
				t.Errorf("%s: the handler was asked %+v, want %+v", tc.send, a, tc.asked)
			}
		default:
			if tc.asked != nil {
				t.Errorf("%s: the handler was not asked", tc.send)
			}
		}
	}
	c = dialRaw(t, startControl(t, &fakeControl{}).Path())
	c.send(t, string(req))
	line, err := c.r.ReadString('\n')
	if want := `{"v":1,"ok":false,"error":"this hupd cannot scale"}` + "\n"; err != nil || line != want {
		t.Errorf("without a Scaler: %q, %v; want %s", line, err, want)
	}
}

// TestScaleClientHangupCancelsWait: a client that hangs up during a scale
// ends the handler's wait (its ctx), as for a reload; the next request on
// another connection is answered.
func TestScaleClientHangupCancelsWait(t *testing.T) {
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	eof := make(chan bool, 1)
	h := &hangScaler{started: started, ended: ended}
	ts := listenControl(t, filepath.Join(t.TempDir(), "x.sock"), h)
	ts.testHookEOF = func(gone bool) { eof <- gone }
	s := ts.serve(t)

	c := dialRaw(t, s.Path())
	c.send(t, `{"v":1,"cmd":"scale","instances":3}`)
	recv(t, started, "the scale to start")
	c.Close()
	if !recv(t, eof, "the server to see the hangup") {
		t.Error("a closed connection was taken for a half-closed one")
	}
	if err := recv(t, ended, "the handler's ctx to end"); !errors.Is(err, context.Canceled) {
		t.Errorf("handler ctx: %v, want Canceled", err)
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdPing}); !rep.OK {
		t.Errorf("ping after the hangup: %+v", rep)
	}
}

// hangScaler's Scale waits for its ctx to end.
type hangScaler struct {
	fakeControl
	started chan<- struct{}
	ended   chan<- error
}

func (h *hangScaler) Scale(ctx context.Context, n int) supervisor.ScaleResult {
	h.started <- struct{}{}
	<-ctx.Done()
	h.ended <- ctx.Err()
	return supervisor.ScaleResult{To: n, Reason: "the caller gave up"}
}
