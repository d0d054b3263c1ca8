package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
	var dialFailed atomic.Bool // set by the dialer, read after the request; one client goroutine
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			dialFailed.Store(err != nil)
			return c, err
		}}}
	var ok, failed, cut atomic.Int64
	bodies := map[string]bool{} // written by the client goroutine only, read after done
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			dialFailed.Store(false)
			resp, err := client.Get("http://server/")
			if err != nil && cutsAllowed && !dialFailed.Load() {
				cut.Add(1)
				continue
			}
			if err != nil {
				failed.Add(1)
				t.Errorf("request: %v at %s", err, time.Now().UTC().Format("15:04:05.000000"))
				continue
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil && cutsAllowed {
				cut.Add(1)
				continue
			}
			if err != nil || resp.StatusCode != 200 || !valid(string(body)) {
				failed.Add(1)
				t.Errorf("answer %d %q, %v", resp.StatusCode, body, err)
				continue
			}
			ok.Add(1)
			bodies[strings.TrimSpace(string(body))] = true
		}
	}()
	for i := range swaps {
		cmd := exec.Command(hupdBin, "reload")
		cmd.Env = h.Cmd.Env // the same private runtime directory
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "reload ok (swap)") {
			close(stop)
			<-done
			t.Fatalf("reload %d: %v: %s", i+1, err, out)
		}
		// The old generation is gone before the next swap: each swap is
		// served across by a real hand-over, not by a leftover.
		h.WaitEvent("child exited", 1, swapGen(i+1))
	}
	close(stop)
	<-done
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d requests ok, %d failed across %d swaps", ok.Load(), failed.Load(), swaps)
	}
	return ok.Load(), cut.Load(), bodies
}
