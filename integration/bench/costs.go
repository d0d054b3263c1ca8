package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hupd/hupd/socketact"
)

// costScenario is 7: what hupd itself costs.
func costScenario(ctx context.Context, env *benchEnv, rep *Report, _ *baseline) {
	if err := runningCosts(ctx, env, rep); err != nil {
		rep.fail(sc7, err)
	}
	if err := spawnCosts(env, rep); err != nil {
		rep.fail(sc7, err)
	}
}

// runningCosts measures hupd's CPU and RSS over an idle window and over a
// window of load, then its share of swaps.
func runningCosts(ctx context.Context, env *benchEnv, rep *Report) error {
	s := env.s
	h, err := startHupd(ctx, env, helloArgs(env)...)
	if err != nil {
		return err
	}
	defer h.stop()
	pid := h.pid()
	window := s.IdleFor.d()

	c0, err := cpuTime(pid)
	if err != nil {
		return err
	}
	sleepCtx(ctx, window) // the idle window measured
	c1, _ := cpuTime(pid)
	rss, _ := rssKiB(pid)
	rep.info(sc7, "hupd idle: CPU, RSS", "%s in %s, %s", fdur(c1-c0), window, fmib(rss))
	if sen, err := sentinelCost(pid); err == nil {
		rep.info(sc7, "hupd's sentinel: RSS, its own (anonymous), PSS", "%s", sen)
	} else {
		rep.fail(sc7, err)
	}

	m := startMix(h.addrs[0], s)
	c0, _ = cpuTime(pid)
	sleepCtx(ctx, window) // the loaded window measured
	c1, _ = cpuTime(pid)
	res := m.stop()
	rss, _ = rssKiB(pid)
	rep.info(sc7, "hupd under load: CPU, RSS", "%s in %s while hello answered %s/s, %s", fdur(c1-c0), window,
		fint(int64(res[kaIdx].PerSecond+res[ncIdx].PerSecond)), fmib(rss))

	var took, exec, handover, ready []float64
	for range s.CostSwaps {
		if !sleepCtx(ctx, scaleGap) {
			return ctx.Err()
		}
		t0 := time.Now()
		r, err := h.reload(ctx)
		if err != nil {
			return err
		}
		took = append(took, msf(time.Since(t0)))
		exec = append(exec, msf(time.Duration(r.ExecAfter)))
		handover = append(handover, msf(time.Duration(r.HandoverTook)))
		ready = append(ready, msf(time.Duration(r.ReadyAfter)))
	}
	rss, _ = rssKiB(pid)
	rep.info(sc7, "swaps, idle, one every "+scaleGap.String(), "%d, p50 / p90 of each below", s.CostSwaps)
	rep.info(sc7, "swap as `hupd reload` sees it", "%s / %s", fms(pctf(took, 50)), fms(pctf(took, 90)))
	rep.info(sc7, "trigger to the new child's exec (standby shim)", "%s / %s", fms(pctf(exec, 50)), fms(pctf(exec, 90)))
	rep.info(sc7, "hello's start to its READY=1", "%s / %s", fms(pctf(ready, 50)), fms(pctf(ready, 90)))
	rep.info(sc7, "READY=1 received to the old child's stop signal", "%s / %s", fms(pctf(handover, 50)), fms(pctf(handover, 90)))
	rep.info(sc7, "hupd RSS after the swaps", "%s", fmib(rss))
	return nil
}

// spawnCosts compares starting /bin/true directly with starting it
// through hupd's shim (cold: the shim's Go runtime starts, sets
// LISTEN_PID, execs), each until it has exited, alternating.
func spawnCosts(env *benchEnv, rep *Report) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		return err
	}
	defer f.Close()
	truePath := "/bin/true"
	var direct, shim []float64
	for range env.s.Spawns {
		t0 := time.Now()
		p, err := os.StartProcess(truePath, []string{"true"}, &os.ProcAttr{Files: []*os.File{nil, nil, nil},
			Sys: &syscall.SysProcAttr{Setpgid: true}})
		if err != nil {
			return err
		}
		p.Wait()
		direct = append(direct, msf(time.Since(t0)))

		c := &socketact.Command{Shim: env.hupd, Path: truePath, Args: []string{"true"}, UID: -1, GID: -1,
			Env: socketact.ChildEnv(nil, nil, []string{"http"}), Sockets: []*os.File{f}, Sys: &syscall.SysProcAttr{Setpgid: true}}
		t0 = time.Now()
		p, execd, err := c.Start()
		if err != nil {
			return err
		}
		_, err = execd()
		p.Wait()
		if err != nil {
			return err
		}
		shim = append(shim, msf(time.Since(t0)))
	}
	d50, s50 := pctf(direct, 50), pctf(shim, 50)
	rep.info(sc7, fmt.Sprintf("spawn /bin/true: direct / via cold shim, p50 of %d", env.s.Spawns), "%s / %s: the shim adds %s",
		fms(d50), fms(s50), fms(s50-d50))
	return nil
}

// sentinelCost describes the memory of hupd's sentinel (its child named
// hupd-sentinel): most of its resident set is hupd's binary, shared with
// hupd; its own share is the anonymous part.
func sentinelCost(hupd int) (string, error) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", hupd))
	for _, f := range tasks {
		kids, _ := os.ReadFile(f)
		for _, k := range strings.Fields(string(kids)) {
			pid, _ := strconv.Atoi(k)
			if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); !strings.HasPrefix(string(cmd), "hupd-sentinel\x00") {
				continue
			}
			var kib [3]int
			for i, m := range [][2]string{{"status", "VmRSS:"}, {"status", "RssAnon:"}, {"smaps_rollup", "Pss:"}} {
				v, err := procKiB(pid, m[0], m[1])
				if err != nil {
					return "", err
				}
				kib[i] = v
			}
			return fmt.Sprintf("%s, %s, %s", fmib(kib[0]), fmib(kib[1]), fmib(kib[2])), nil
		}
	}
	return "", fmt.Errorf("hupd %d has no sentinel", hupd)
}

// procKiB reads the "KEY: N kB" line key of /proc/PID/file.
func procKiB(pid int, file, key string) (int, error) {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/%s", key, pid, file)
}
