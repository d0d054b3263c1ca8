package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
)

// swapsUnderLoad runs a client that makes a new connection per request
// (dialing network, addr) while `hupd reload` swaps h's child swaps times,
// each old generation exiting before the next swap. Every answer must be
// 200 and pass valid. It returns the number of requests and the bodies
// seen (trimmed), and reports every failure.
func swapsUnderLoad(t *testing.T, h *Hupd, network, addr string, swaps int, valid func(body string) bool) (int64, map[string]bool) {
	t.Helper()
	ok, _, bodies := loadAcrossSwaps(t, h, network, addr, swaps, valid, false)
	return ok, bodies
}

// loadAcrossSwaps is swapsUnderLoad; with cutsAllowed, a request whose
// connection was accepted and then closed unanswered (the program's stop
// ended it mid-request) is counted, not failed, and returned second. A
// refused or failed connect always fails.
func loadAcrossSwaps(t *testing.T, h *Hupd, network, addr string, swaps int, valid func(body string) bool, cutsAllowed bool) (int64, int64, map[string]bool) {
	t.Helper()
	l := startLoad(t, network, addr, valid, cutsAllowed)
	for i := range swaps {
		cmd := exec.Command(hupdBin, "reload")
		cmd.Env = h.Cmd.Env // the same private runtime directory
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "reload ok (swap)") {
			l.stop()
			t.Fatalf("reload %d: %v: %s", i+1, err, out)
		}
		// The old generation is gone before the next swap: each swap is
		// served across by a real hand-over, not by a leftover.
		h.WaitEvent(logev.ChildExited, 1, swapGen(i+1))
	}
	return l.finish(fmt.Sprintf("%d swaps", swaps))
}

// load is a client making a new connection per request, one after the
// other, until stopped: every failure is reported (with its time) as it
// happens.
type load struct {
	t               *testing.T
	ok, failed, cut atomic.Int64
	bodies          map[string]bool // written by the client goroutine only, read after done
	stopCh, doneCh  chan struct{}
	stopped         bool
}

func startLoad(t *testing.T, network, addr string, valid func(body string) bool, cutsAllowed bool) *load {
	var dialFailed atomic.Bool // set by the dialer, read after the request; one client goroutine
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			dialFailed.Store(err != nil)
			return c, err
		}}}
	l := &load{t: t, bodies: map[string]bool{}, stopCh: make(chan struct{}), doneCh: make(chan struct{})}
	go func() {
		defer close(l.doneCh)
		for {
			select {
			case <-l.stopCh:
				return
			default:
			}
			dialFailed.Store(false)
			resp, err := client.Get("http://server/")
			if err != nil && cutsAllowed && !dialFailed.Load() {
				l.cut.Add(1)
				continue
			}
			if err != nil {
				l.failed.Add(1)
				t.Errorf("request: %v at %s", err, time.Now().UTC().Format("15:04:05.000000"))
				continue
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil && cutsAllowed {
				l.cut.Add(1)
				continue
			}
			if err != nil || resp.StatusCode != 200 || !valid(string(body)) {
				l.failed.Add(1)
				t.Errorf("answer %d %q, %v", resp.StatusCode, body, err)
				continue
			}
			l.ok.Add(1)
			l.bodies[strings.TrimSpace(string(body))] = true
		}
	}()
	t.Cleanup(l.stop)
	return l
}

// stop ends the client and waits for it.
func (l *load) stop() {
	if !l.stopped {
		l.stopped = true
		close(l.stopCh)
		<-l.doneCh
	}
}

// finish stops the client and fails the test unless every request across
// what (for the message) was answered: it returns the requests answered,
// the ones cut, and the bodies seen.
func (l *load) finish(what string) (int64, int64, map[string]bool) {
	l.t.Helper()
	l.stop()
	if l.failed.Load() != 0 || l.ok.Load() == 0 {
		l.t.Fatalf("%d requests ok, %d failed across %s", l.ok.Load(), l.failed.Load(), what)
	}
	return l.ok.Load(), l.cut.Load(), l.bodies
}
