package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
)

// costScenario is 7: what hupd itself costs.
func costScenario(ctx context.Context, env *benchEnv, rep *Report, _ *baseline) {
	if err := runningCosts(ctx, env, rep); err != nil {
		rep.fail(sc7, err)
	}
	if err := configCosts(ctx, env, rep); err != nil {
		rep.fail(sc7, err)
	}
	if err := spawnCosts(env, rep); err != nil {
		rep.fail(sc7, err)
	}
}

// runningCosts measures hupd's CPU and memory over an idle window and
// over a window of load, then its share of swaps, with and without its
// containment (containSwaps).
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
	mem, err := memOf(pid)
	if err != nil {
		return err
	}
	rep.info(sc7, "hupd idle: CPU; RSS, its own (anonymous), peak RSS", "%s in %s; %s", fdur(c1-c0), window, mem)
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
	mem, _ = memOf(pid)
	rep.info(sc7, "hupd under load: CPU; RSS, its own (anonymous), peak RSS", "%s in %s while hello answered %s/s; %s", fdur(c1-c0), window,
		fint(int64(res[kaIdx].PerSecond+res[ncIdx].PerSecond)), mem)

	off, err := startHupd(ctx, env, helloArgs(env, "--cgroup", "off")...)
	if err != nil {
		return err
	}
	defer off.stop()
	return containSwaps(ctx, env, rep, h, off)
}

// configCosts measures hupd's memory idle when a hupd.toml configures it
// (it reads the file, decodes it, watches it for edits): with one program
// (top-level command and [[listen]]), then with two ([[program]] tables),
// each serving hello on a socket of its own.
func configCosts(ctx context.Context, env *benchEnv, rep *Report) error {
	hello := strconv.Quote(env.hello)
	program := func(name string) string {
		return "[[program]]\nname = \"" + name + "\"\ncommand = [" + hello + ", \"-grace\", \"5s\"]\n" +
			"[[program.listen]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:0\"\n"
	}
	for _, c := range []struct {
		what, toml string
		ready      int // the children that must be ready
	}{
		{"one program", "command = [" + hello + ", \"-grace\", \"5s\"]\n[[listen]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:0\"\n", 1},
		{"two programs ([[program]] tables)", program("a") + program("b"), 2},
	} {
		file := filepath.Join(env.dir, fmt.Sprintf("hupd-%d.toml", c.ready))
		if err := os.WriteFile(file, []byte(c.toml), 0o644); err != nil {
			return err
		}
		h, err := startHupd(ctx, env, "-c", file)
		if err != nil {
			return fmt.Errorf("hupd.toml, %s: %w", c.what, err)
		}
		if _, err := h.wait(ctx, logev.ChildReady, c.ready, nil); err != nil {
			h.stop()
			return fmt.Errorf("hupd.toml, %s: %w", c.what, err)
		}
		sleepCtx(ctx, env.s.IdleFor.d()) // the idle window measured
		mem, err := memOf(h.pid())
		h.stop()
		if err != nil {
			return err
		}
		rep.info(sc7, "hupd idle, "+c.what+" from hupd.toml: RSS, its own (anonymous), peak RSS", "%s", mem)
	}
	return nil
}

// swapSeries is one hupd's swaps, each as `hupd reload` sees it and hupd's
// own shares (ReloadResult), in ms, in the order they ran.
type swapSeries struct {
	took, exec, handover, ready []float64
}

// swap reloads h once and adds it to the series.
func (sr *swapSeries) swap(ctx context.Context, h *hupdProc) error {
	t0 := time.Now()
	r, err := h.reload(ctx)
	if err != nil {
		return err
	}
	sr.took = append(sr.took, msf(time.Since(t0)))
	sr.exec = append(sr.exec, msf(time.Duration(r.ExecAfter)))
	sr.handover = append(sr.handover, msf(time.Duration(r.HandoverTook)))
	sr.ready = append(sr.ready, msf(time.Duration(r.ReadyAfter)))
	return nil
}

// containSwaps runs the same swap series on two hupds serving hello, def
// with the default containment (a cgroup per generation where hupd may
// make one) and off with --cgroup off (process groups), in alternating
// rounds (def first in odd rounds, off first in even ones; one swap each,
// scaleGap apart) so that a noisy neighbour hurts both alike, and reports
// them side by side and what containment adds to a swap.
func containSwaps(ctx context.Context, env *benchEnv, rep *Report, def, off *hupdProc) error {
	n := env.s.CostSwaps
	defMode, err := containment(ctx, env, def)
	if err != nil {
		return err
	}
	offMode, err := containment(ctx, env, off)
	if err != nil {
		return err
	}
	var ds, ofs swapSeries
	for i := range n {
		sides := []struct {
			h  *hupdProc
			sr *swapSeries
		}{{def, &ds}, {off, &ofs}}
		if i%2 == 1 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, sd := range sides {
			if !sleepCtx(ctx, scaleGap) {
				return ctx.Err()
			}
			if err := sd.sr.swap(ctx, sd.h); err != nil {
				return err
			}
		}
	}
	// Each round's difference, before pctf sorts the series.
	paired := make([]float64, n)
	for i := range n {
		paired[i] = ds.took[i] - ofs.took[i]
	}
	defMem, err := memOf(def.pid())
	if err != nil {
		return err
	}
	offMem, err := memOf(off.pid())
	if err != nil {
		return err
	}

	dn, on := defMode.Mode, offMode.Mode
	rep.info(sc7, fmt.Sprintf("swaps, idle, one every %s, alternating: default | --cgroup off", scaleGap),
		"%d | %d; in force (hupd status --json): %s | %s", n, n, containText(defMode), containText(offMode))
	both := func(v []float64, w []float64) string {
		return fmt.Sprintf("%s %s / %s | %s %s / %s", dn, fms(pctf(v, 50)), fms(pctf(v, 90)), on, fms(pctf(w, 50)), fms(pctf(w, 90)))
	}
	rep.info(sc7, "swap as `hupd reload` sees it, p50 / p90", "%s", both(ds.took, ofs.took))
	rep.info(sc7, "trigger to the new child's exec (standby shim)", "%s", both(ds.exec, ofs.exec))
	rep.info(sc7, "hello's start to its READY=1", "%s", both(ds.ready, ofs.ready))
	rep.info(sc7, "READY=1 received to the old child's stop signal", "%s", both(ds.handover, ofs.handover))
	rep.info(sc7, "hupd after the swaps: RSS, its own (anonymous), peak RSS", "%s %s | %s %s", dn, defMem, on, offMem)
	// hupd returns what a burst used to the OS every 250 ms during it and
	// once more 250 ms after its last reload or exit (trimAfter in package
	// supervisor): what it keeps is measured past that.
	if !sleepCtx(ctx, trimWait) {
		return ctx.Err()
	}
	if defMem, err = memOf(def.pid()); err != nil {
		return err
	}
	if offMem, err = memOf(off.pid()); err != nil {
		return err
	}
	rep.info(sc7, fmt.Sprintf("hupd %s after the swaps (it trims 250ms after a reload or exit): RSS, its own, peak", trimWait), "%s %s | %s %s", dn, defMem, on, offMem)

	add := pctf(ds.took, 50) - pctf(ofs.took, 50)
	value := fmt.Sprintf("%s (trigger to exec %s; median of the rounds' differences %s)", fdiff(add),
		fdiff(pctf(ds.exec, 50)-pctf(ofs.exec, 50)), fdiff(pctf(paired, 50)))
	checked := !env.s.Short
	if defMode.Mode != supervisor.ContainCgroup {
		// Both sides are process groups: there is nothing to compare.
		value = "no cgroup here, both sides are process groups: " + value
		checked = false
	}
	rep.goal(sc7, "what containment adds to a swap: p50 "+dn+" − p50 "+on, value, "≤ 1 ms", add <= 1, checked)
	return nil
}

// trimWait is how long after a burst of swaps the bench measures again:
// past hupd's last trim, 250 ms after its last reload or exit.
const trimWait = 2 * time.Second

// containment asks h, as `hupd status --json` does (that very command),
// how it keeps its generations together.
func containment(ctx context.Context, env *benchEnv, h *hupdProc) (*supervisor.Containment, error) {
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, env.hupd, "status", "--json", "--control", h.control).Output()
	if err != nil {
		return nil, fmt.Errorf("hupd status --json: %w", err)
	}
	var st supervisor.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("hupd status --json: %w", err)
	}
	if st.Containment == nil {
		return nil, errors.New("hupd status --json: no containment")
	}
	return st.Containment, nil
}

// containText is c in a few words: "cgroup", "process-group: REASON".
func containText(c *supervisor.Containment) string {
	if c.Reason != "" {
		return c.Mode + ": " + c.Reason
	}
	return c.Mode
}

// fdiff is a signed difference of ms ("+0.00 ms" for what rounds to 0).
func fdiff(v float64) string {
	if v <= -0.005 {
		return "−" + fms(-v)
	}
	return "+" + fms(v)
}

// procMem is a process's resident memory: all of it (VmRSS), its own
// (RssAnon: heap, stacks, what no other process shares with it; the rest
// is its binary and files, shared) and the highest RSS it has had (VmHWM).
type procMem struct{ rss, anon, peak int }

func (m procMem) String() string {
	return fmt.Sprintf("%s, %s, %s", fmib(m.rss), fmib(m.anon), fmib(m.peak))
}

// memOf reads pid's procMem in KiB.
func memOf(pid int) (procMem, error) {
	var m procMem
	for _, f := range []struct {
		key string
		v   *int
	}{{"VmRSS:", &m.rss}, {"RssAnon:", &m.anon}, {"VmHWM:", &m.peak}} {
		v, err := procKiB(pid, "status", f.key)
		if err != nil {
			return m, err
		}
		*f.v = v
	}
	return m, nil
}

// spawnCosts compares starting /bin/true directly with starting it
// through hupd's shim (cold: the shim's Go runtime starts, sets
// LISTEN_PID, execs) as a generation in a process group, and as one in a
// cgroup of its own, made for it as hupd makes a generation's (package
// contain: mkdir, open, clone3 into it), each until it has exited, in
// turn.
func spawnCosts(env *benchEnv, rep *Report) (err error) {
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
	// The bench lays out cgroups as hupd does: it moves itself into the
	// supervisor leaf of a base of its own until Close moves it back.
	cg, _ := contain.Setup(contain.Options{Name: "bench"})
	defer func() { err = errors.Join(err, cg.Close()) }()
	truePath := "/bin/true"
	shimStart := func(grp *contain.Group) error {
		c := &socketact.Command{Shim: env.hupd, Path: truePath, Args: []string{"true"}, UID: -1, GID: -1,
			Env: socketact.ChildEnv(nil, nil, []string{"http"}), Sockets: []*os.File{f}, Sys: &syscall.SysProcAttr{Setpgid: true}}
		if fd := grp.FD(); fd >= 0 {
			c.Sys.UseCgroupFD, c.Sys.CgroupFD = true, fd
		}
		p, execd, err := c.Start()
		if err != nil {
			return err
		}
		_, err = execd()
		p.Wait()
		return err
	}
	var direct, shim, cgShim []float64
	for gen := range env.s.Spawns {
		t0 := time.Now()
		p, err := os.StartProcess(truePath, []string{"true"}, &os.ProcAttr{Files: []*os.File{nil, nil, nil},
			Sys: &syscall.SysProcAttr{Setpgid: true}})
		if err != nil {
			return err
		}
		p.Wait()
		direct = append(direct, msf(time.Since(t0)))

		t0 = time.Now()
		if err := shimStart(nil); err != nil {
			return err
		}
		shim = append(shim, msf(time.Since(t0)))

		if !cg.Enabled() {
			continue
		}
		t0 = time.Now()
		grp, err := cg.NewGroup(gen + 1)
		if err != nil {
			return err
		}
		err = shimStart(grp)
		cgShim = append(cgShim, msf(time.Since(t0)))
		cg.Retire(grp) // emptied and removed in the background, as hupd does
		if err != nil {
			return err
		}
	}
	d50, s50 := pctf(direct, 50), pctf(shim, 50)
	rep.info(sc7, fmt.Sprintf("spawn /bin/true: direct / via cold shim, p50 of %d", env.s.Spawns), "%s / %s: the shim adds %s",
		fms(d50), fms(s50), fms(s50-d50))
	measure := fmt.Sprintf("spawn a generation (/bin/true via cold shim): process group / own cgroup, p50 of %d", env.s.Spawns)
	if !cg.Enabled() {
		rep.info(sc7, measure, "%s / no cgroup here (%s)", fms(s50), cg.Reason())
		return nil
	}
	c50 := pctf(cgShim, 50)
	rep.info(sc7, measure, "%s / %s: the cgroup adds %s", fms(s50), fms(c50), fdiff(c50-s50))
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
