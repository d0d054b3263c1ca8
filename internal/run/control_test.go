package run

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// answerRefresh plays reconf's loop for one request: it takes the request
// and answers it with rep, then runs then (if not nil) on the request.
// The request it took arrives on the returned channel.
func answerRefresh(t *testing.T, rc *reconf, rep refreshReply, then func(refreshRequest)) <-chan refreshRequest {
	t.Helper()
	took := make(chan refreshRequest, 1)
	go func() {
		select {
		case req := <-rc.refresh:
			req.reply <- rep
			if then != nil {
				then(req)
			}
			took <- req
		case <-t.Context().Done():
		}
	}()
	return took
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// TestControlHandlerReload: a control reload goes to reconf's loop first
// (hupd.toml is read again); what the loop answers decides the reply. The
// branch that asks the supervisor for a plain reload is covered end to end
// (integration TestReload*, TestControl*).
func TestControlHandlerReload(t *testing.T) {
	t.Run("invalid hupd.toml", func(t *testing.T) {
		rc := &reconf{refresh: make(chan refreshRequest)}
		took := answerRefresh(t, rc, refreshReply{err: errors.New("hupd.toml:3: invalid strategy")}, nil)
		res := controlHandler{rc: rc}.Reload(t.Context())
		if res.OK || res.Cause != "hupd reload" ||
			res.Reason != "hupd.toml not applied, nothing changed: hupd.toml:3: invalid strategy" ||
			res.Started.IsZero() || res.Finished.Before(res.Started) {
			t.Errorf("result %+v", res)
		}
		req := waitFor(t, took, "the refresh request")
		if req.cause != "hupd reload" || req.reply == nil || req.done == nil || req.trigger {
			t.Errorf("request %+v: want cause \"hupd reload\", a reply and a done channel, no trigger", req)
		}
	})
	t.Run("applying starts the reload", func(t *testing.T) {
		rc := &reconf{refresh: make(chan refreshRequest)}
		want := supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap, Cause: "hupd reload", NewGen: 2, NewPID: 4242}
		answerRefresh(t, rc, refreshReply{respawn: true}, func(req refreshRequest) { req.done <- want })
		if res := (controlHandler{rc: rc}).Reload(t.Context()); res.OK != want.OK || res.NewGen != 2 || res.NewPID != 4242 {
			t.Errorf("result %+v, want the applying reload's %+v", res, want)
		}
	})
	// Fake time (synctest): the handler's waits end by ctx alone, and
	// synctest.Wait says when the handler is blocked in one.
	t.Run("applying reload outlives the wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rc := &reconf{refresh: make(chan refreshRequest)}
			ctx, cancel := context.WithCancel(t.Context())
			took := answerRefresh(t, rc, refreshReply{respawn: true}, nil)
			got := make(chan supervisor.ReloadResult, 1)
			go func() { got <- controlHandler{rc: rc}.Reload(ctx) }()
			waitFor(t, took, "the refresh request")
			synctest.Wait() // the handler took the reply and waits for the reload
			cancel()
			if res := waitFor(t, got, "the handler"); res.OK || res.Reason != "timed out waiting for the reload; it goes on" {
				t.Errorf("result %+v", res)
			}
		})
	})
	t.Run("loop busy", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rc := &reconf{refresh: make(chan refreshRequest)} // nobody reads it
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			res := controlHandler{rc: rc}.Reload(ctx)
			if res.OK || res.TimedOut || res.Reason != "the caller gave up before hupd.toml was read: nothing was reloaded" {
				t.Errorf("result %+v", res)
			}
		})
	})
	t.Run("loop takes the request, then stalls", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rc := &reconf{refresh: make(chan refreshRequest, 1)} // taken, never answered
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			res := controlHandler{rc: rc}.Reload(ctx)
			if res.OK || !res.TimedOut || res.Reason != "gave up while hupd.toml was read" || len(rc.refresh) != 1 {
				t.Errorf("result %+v, %d requests queued", res, len(rc.refresh))
			}
		})
	})
}

// TestControlReloadFlowsThroughRun: a reload sent to the control socket
// reaches the wiring's handler, and its answer is the reply: control →
// run (→ supervisor).
func TestControlReloadFlowsThroughRun(t *testing.T) {
	rc := &reconf{refresh: make(chan refreshRequest)}
	took := answerRefresh(t, rc, refreshReply{err: errors.New("hupd.toml:7: unknown key")}, nil)
	srv, err := control.Listen(filepath.Join(t.TempDir(), "x.sock"), controlHandler{rc: rc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	defer func() {
		srv.Close()
		if err := waitFor(t, served, "Serve to return"); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	rep, err := control.Call(ctx, srv.Path(), control.Request{Cmd: control.CmdReload})
	if err != nil {
		t.Fatal(err)
	}
	const reason = "hupd.toml not applied, nothing changed: hupd.toml:7: unknown key"
	if rep.OK || rep.Reload == nil || rep.Reload.Reason != reason || rep.Error != "reload failed: "+reason {
		t.Errorf("reply %+v", rep)
	}
	waitFor(t, took, "the refresh request")
}

// TestControlHandlerScale: a scale goes to the supervisor as it is, with
// the number asked for and the caller's context (here one that ended
// before the supervisor took it: nothing changes), and a number out of
// range is the supervisor's refusal.
func TestControlHandlerScale(t *testing.T) {
	sup, err := supervisor.New(supervisor.Options{Path: "/bin/true", Args: []string{"true"}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	h := controlHandler{sup: sup}
	if res := h.Scale(ctx, 3); res.OK || res.To != 3 || res.Reason != "the caller gave up before the scale started: nothing was changed" {
		t.Errorf("scale with the caller gone: %+v", res)
	}
	if res := h.Scale(t.Context(), supervisor.MaxInstances+1); res.OK || res.To != supervisor.MaxInstances+1 || res.Reason != supervisor.ValidInstances(supervisor.MaxInstances+1).Error() {
		t.Errorf("scale to %d: %+v", supervisor.MaxInstances+1, res)
	}
}
