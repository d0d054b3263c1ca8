package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hupd/hupd/internal/logev"
)

// scaleGap is the time between two reloads of scenarios 6 and 7: enough
// for hupd to start its next standby shim, as between real-world reloads.
// It is the measured interval, not a synchronisation.
const scaleGap = 100 * time.Millisecond

// debounce is hupd's default for --watch (watch.DefaultDebounce).
const debounce = 200 * time.Millisecond

// swapTimes reloads h n times, scaleGap apart, and returns how long each
// took as `hupd reload` sees it.
func swapTimes(ctx context.Context, h *hupdProc, n int) ([]float64, error) {
	var took []float64
	for range n {
		if !sleepCtx(ctx, scaleGap) {
			return nil, ctx.Err()
		}
		t0 := time.Now()
		if _, err := h.reload(ctx); err != nil {
			return nil, err
		}
		took = append(took, msf(time.Since(t0)))
	}
	return took, nil
}

// scaleScenario is 6: how swap time and hupd's memory grow with the
// number of sockets, of connections draining from the old generation and
// of watched files. One socket, no connections and no watch first, as
// the reference.
func scaleScenario(ctx context.Context, env *benchEnv, rep *Report, _ *baseline) {
	s := env.s
	cases := []struct {
		name string
		run  func() error
	}{
		{"1 socket (reference)", func() error {
			h, err := startHupd(ctx, env, helloArgs(env)...)
			if err != nil {
				return err
			}
			defer h.stop()
			return swapRows(ctx, rep, h, "1 socket", s.ScaleSwaps)
		}},
		{fmt.Sprintf("%d sockets", s.Listeners), func() error {
			args := []string{"--listen", "http=tcp://127.0.0.1:0"}
			for range s.Listeners - 1 {
				args = append(args, "--listen", "tcp://127.0.0.1:0")
			}
			h, err := startHupd(ctx, env, append(args, "--", env.hello, "-grace", "5s")...)
			if err != nil {
				return err
			}
			defer h.stop()
			if err := swapRows(ctx, rep, h, fmt.Sprintf("%s sockets", fint(int64(s.Listeners))), s.ScaleSwaps); err != nil {
				return err
			}
			// The last socket serves too: every one was handed over.
			return waitServing(ctx, h.addrs[len(h.addrs)-1])
		}},
		{fmt.Sprintf("%d idle connections", s.IdleConns), func() error { return idleConns(ctx, env, rep) }},
		{fmt.Sprintf("%d watched files", s.WatchFiles), func() error { return watchedFiles(ctx, env, rep) }},
	}
	for _, c := range cases {
		if ctx.Err() != nil {
			return
		}
		if err := c.run(); err != nil {
			rep.fail(sc6, fmt.Errorf("%s: %w", c.name, err))
		}
	}
}

// swapRows measures n swaps of h and adds their median and hupd's RSS.
func swapRows(ctx context.Context, rep *Report, h *hupdProc, what string, n int) error {
	took, err := swapTimes(ctx, h, n)
	if err != nil {
		return err
	}
	rss, err := rssKiB(h.pid())
	if err != nil {
		return err
	}
	rep.info(sc6, what+": swap p50 / max, hupd RSS", "%s / %s, %s", fms(pctf(took, 50)), fms(pctf(took, 100)), fmib(rss))
	return nil
}

// idleConns opens s.IdleConns keep-alive connections to hello, each
// answered once and then idle, swaps, and measures the swap, the old
// generation's drain (until it exited) and hupd's RSS; every connection
// must then have been closed by the old generation.
func idleConns(ctx context.Context, env *benchEnv, rep *Report) error {
	n := env.s.IdleConns
	h, err := startHupd(ctx, env, helloArgs(env)...)
	if err != nil {
		return err
	}
	defer h.stop()
	conns, err := openIdle(ctx, h.addrs[0], n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return err
	}
	rssBefore, _ := rssKiB(h.pid())
	t0 := time.Now()
	if _, err := h.reload(ctx); err != nil {
		return err
	}
	took := time.Since(t0)
	exited, err := h.wait(ctx, logev.ChildExited, 1, func(e event) bool { return e.num("gen") == 1 })
	if err != nil {
		return err
	}
	drained := exited.time().Sub(t0)
	rss, _ := rssKiB(h.pid())
	// Each connection must read EOF now: closed by the old generation,
	// not left open. A deadline bounds a connection that is not.
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			closed++
		}
	}
	what := fmt.Sprintf("%s idle keep-alive connections", fint(int64(n)))
	rep.info(sc6, what+": swap, old generation drained", "%s, %s (hello closes idle connections after 1 s)", fdur(took), fdur(drained))
	rep.info(sc6, what+": hupd RSS before / after", "%s / %s", fmib(rssBefore), fmib(rss))
	rep.goal(sc6, what+": closed by the old generation", fmt.Sprintf("%s of %s", fint(int64(closed)), fint(int64(n))), "all", closed == n, true)
	return nil
}

// openIdle opens n connections to addr, each with one request answered.
func openIdle(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 64 {
		wg.Go(func() {
			var d net.Dialer
			for i := range next {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					errs[i] = err
					continue
				}
				conns[i] = c
				c.SetDeadline(time.Now().Add(waitLimit))
				req, _ := http.NewRequest("GET", "http://bench/", nil)
				if err := req.Write(c); err != nil {
					errs[i] = err
					continue
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), req)
				if err != nil {
					errs[i] = err
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Close {
					errs[i] = fmt.Errorf("connection %d: status %d, close %v", i, resp.StatusCode, resp.Close)
				}
				c.SetDeadline(time.Time{})
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	var out []net.Conn
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	return out, errors.Join(errs...)
}

// watchedFiles runs hupd watching a tree of s.WatchFiles files and
// measures swaps, an edit's way to its reload, and hupd's RSS.
func watchedFiles(ctx context.Context, env *benchEnv, rep *Report) error {
	n := env.s.WatchFiles
	root := filepath.Join(env.dir, "watched")
	dirs := max(n/100, 1)
	for d := range dirs {
		sub := filepath.Join(root, fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		for f := range n / dirs {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d.conf", f)), fmt.Appendf(nil, "key = %d\n", d*100+f), 0o644); err != nil {
				return err
			}
		}
	}
	t0 := time.Now()
	h, err := startHupd(ctx, env, helloArgs(env, "--watch", root)...)
	if err != nil {
		return err
	}
	defer h.stop()
	started := time.Since(t0)
	what := fmt.Sprintf("%s watched files", fint(int64(n)))
	if err := swapRows(ctx, rep, h, what, env.s.ScaleSwaps); err != nil {
		return err
	}
	// An editor's save (a new file renamed over the old one) to the reload
	// it causes: detection, the debounce, and hashing the tree again.
	target := filepath.Join(root, "d000", "f000.conf")
	var lat []float64
	for i := range env.s.ScaleSwaps {
		before := h.count(logev.ReloadDone, nil)
		if !sleepCtx(ctx, scaleGap) { // between two edits, as between reloads
			return ctx.Err()
		}
		tmp := target + ".tmp"
		if err := os.WriteFile(tmp, fmt.Appendf(nil, "edit %d\n", i), 0o644); err != nil {
			return err
		}
		t0 := time.Now()
		if err := os.Rename(tmp, target); err != nil {
			return err
		}
		started, err := h.wait(ctx, logev.ReloadStarted, before+1, nil)
		if err != nil {
			return err
		}
		if _, err := h.wait(ctx, logev.ReloadDone, before+1, nil); err != nil {
			return err
		}
		lat = append(lat, msf(started.time().Sub(t0)-debounce))
	}
	rep.info(sc6, what+": start to ready, edit to reload p50", "%s, %s (less the %s debounce)", fdur(started), fms(pctf(lat, 50)), debounce)
	return nil
}
