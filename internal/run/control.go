package run

import (
	"context"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// controlHandler is hupd run's control.Handler: the control server parses a
// request and hands it here; this decides what it means and asks the
// supervisor (control → run → supervisor). A reload reads hupd.toml again
// first (in rc's loop), and is refused while it is not valid; status,
// upgrade, rollback and scale go to the supervisor as they are.
type controlHandler struct {
	sup *supervisor.Supervisor
	rc  *reconf
}

func (h controlHandler) Status() supervisor.Status { return h.sup.StatusUsage() }

func (h controlHandler) Upgrade(ctx context.Context, binary string) error {
	return h.sup.Upgrade(ctx, binary)
}

// Plan says what applying a hupd.toml would do; data is its content, nil
// for hupd.toml as on disk. It is resolved in rc's loop, with the flags
// hupd runs with, as a reload would resolve it; hupd reads no file the
// client names.
func (h controlHandler) Plan(ctx context.Context, data []byte) (supervisor.Plan, error) {
	reply := make(chan planReply, 1)
	select {
	case h.rc.plans <- planRequest{ctx: ctx, data: data, reply: reply}:
	case <-ctx.Done():
		return supervisor.Plan{}, ctx.Err()
	}
	select {
	case r := <-reply:
		return r.plan, r.err
	case <-ctx.Done():
		return supervisor.Plan{}, ctx.Err()
	}
}

// A new hupd.toml that needs a new generation is applied by a reload of its
// own: that reload's result is the answer (another would be one too many).
func (h controlHandler) Reload(ctx context.Context) supervisor.ReloadResult {
	const cause = "hupd reload"
	reply := make(chan refreshReply, 1)
	done := make(chan supervisor.ReloadResult, 1)
	start := time.Now()
	fail := func(reason string) supervisor.ReloadResult {
		return supervisor.ReloadResult{Cause: cause, Reason: reason, Started: start, Finished: time.Now()}
	}
	timedOut := func(reason string) supervisor.ReloadResult { // ctx ended first: the outcome is unknown
		r := fail(reason)
		r.TimedOut = true
		return r
	}
	// Handing the reload over (reading hupd.toml first) is not cut short
	// by the caller's wait limit (supervisor.WithWaitLimit): only by the
	// caller going away.
	select {
	case h.rc.refresh <- refreshRequest{cause: cause, reply: reply, done: done}:
	case <-ctx.Done():
		return fail("the caller gave up before hupd.toml was read: nothing was reloaded")
	}
	var r refreshReply
	select {
	case r = <-reply:
	case <-ctx.Done():
		return timedOut("gave up while hupd.toml was read")
	}
	switch {
	case r.err != nil:
		return fail("hupd.toml not applied, nothing changed: " + r.err.Error())
	case !r.respawn:
		return h.sup.Reload(ctx)
	}
	ctx, cancel := supervisor.WaitContext(ctx)
	defer cancel()
	select {
	case res := <-done:
		return res
	case <-ctx.Done():
		return timedOut("timed out waiting for the reload; it goes on")
	}
}

// Scale sets the number of instances of the serving generation (hupd
// scale): it goes to the supervisor as it is; hupd.toml is not read, and
// its instances, if set, count again at its next edit.
func (h controlHandler) Scale(ctx context.Context, n int) supervisor.ScaleResult {
	return h.sup.Scale(ctx, n)
}

// The requests hupd run answers besides the Handler's.
var (
	_ control.Planner    = controlHandler{}
	_ control.Rollbacker = controlHandler{}
	_ control.Scaler     = controlHandler{}
	_ control.LogSource  = controlHandler{}
)

func (h controlHandler) Logs(gen, n int) []supervisor.OutputLine { return h.sup.Logs(gen, n) }

func (h controlHandler) FollowLogs(gen, n int) ([]supervisor.OutputLine, <-chan supervisor.OutputLine, func() int) {
	return h.sup.FollowLogs(gen, n)
}

// Rollback makes the settling generation serve again (hupd rollback): it
// goes to the supervisor as it is; hupd.toml is not read.
func (h controlHandler) Rollback(ctx context.Context) supervisor.ReloadResult {
	r := h.sup.Rollback(ctx)
	if r.Cause == "" {
		r.Cause = "hupd rollback"
	}
	return r
}
