package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// Issue 18: N instances of a program per generation, on the same sockets,
// with real programs (hello, Debian's node and python3): N distinct
// processes serve, swaps (all at once and rolling) lose no request, a
// rolling swap that fails half-way leaves N old instances serving, a
// killed instance is restarted alone, scaling is live, and the signal
// strategy reaches every instance.

// instControl is h's control socket.
func instControl(h *Hupd) string {
	h.t.Helper()
	return h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
}

// instWaitStatus returns hupd's status once ok accepts it. Every change of
// an instance (started, ready, exited, restarted) is logged: the status is
// asked again after each line hupd logs, never on a timer, and the test
// fails if ok has not accepted it within the deadline.
func instWaitStatus(t *testing.T, h *Hupd, what string, ok func(supervisor.Status) bool) supervisor.Status {
	t.Helper()
	ctl := instControl(h)
	start := time.Now()
	for {
		h.mu.Lock()
		seen := len(h.events)
		h.mu.Unlock()
		st := ctlStatus(t, ctl)
		if ok(st) {
			return st
		}
		if time.Since(start) > deadline {
			t.Fatalf("%s: not within %s; status: %s", what, deadline, instDescribe(st))
		}
		if !h.waitFor(what, func() bool { return len(h.events) > seen }) {
			t.Fatalf("hupd exited (%v) before %s; status: %s", h.err, what, instDescribe(st))
		}
	}
}

// instDescribe is a status's generations and instances, for messages.
func instDescribe(st supervisor.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "instances %d, reloads %d, restarts %d;", st.Instances, st.Reloads, st.Restarts)
	for _, g := range st.Generations {
		fmt.Fprintf(&b, " gen %d %s pid %d [", g.Gen, g.State, g.PID)
		for _, in := range g.Instances {
			fmt.Fprintf(&b, " #%d pid %d %s restarts %d", in.Index, in.PID, in.State, in.Restarts)
		}
		b.WriteString(" ]")
	}
	return b.String()
}

// instReadyGen reports whether st has exactly one generation, gen, with n
// instances, indexes 0..n-1, each ready with a PID.
func instReadyGen(st supervisor.Status, gen, n int) bool {
	if len(st.Generations) != 1 {
		return false
	}
	g := st.Generations[0]
	if g.Gen != gen || g.State != supervisor.StateReady || len(g.Instances) != n {
		return false
	}
	for i, in := range g.Instances {
		if in.Index != i || in.PID <= 0 || in.State != supervisor.StateReady {
			return false
		}
	}
	return true
}

// instWaitReady waits until generation gen is the only one and runs n
// ready instances; it returns their PIDs by index.
func instWaitReady(t *testing.T, h *Hupd, gen, n int) []int {
	t.Helper()
	st := instWaitStatus(t, h, fmt.Sprintf("generation %d alone with %d ready instances", gen, n),
		func(st supervisor.Status) bool { return instReadyGen(st, gen, n) })
	return instPIDs(st.Generations[0])
}

// instPIDs are a generation's instance PIDs by index.
func instPIDs(g supervisor.GenerationStatus) []int {
	pids := make([]int, len(g.Instances))
	for i, in := range g.Instances {
		pids[i] = in.PID
	}
	return pids
}

// instCollect sends GET / to addr over a new connection per request, from
// four clients at once (the kernel gives each new connection to one of
// the processes waiting in accept on the shared socket; concurrent
// clients keep several of them busy), until done accepts the bodies seen
// so far (body → count). Every request must be answered 200; the test
// fails if done has not accepted within the deadline.
func instCollect(t *testing.T, addr string, done func(map[string]int) bool) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var (
		mu     sync.Mutex
		bodies = map[string]int{}
		errs   []string
		wg     sync.WaitGroup
	)
	finished := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(errs) > 0 || done(bodies)
	}
	for range 4 {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			for ctx.Err() == nil && !finished() {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						errs = append(errs, err.Error())
						mu.Unlock()
					}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				if err != nil || resp.StatusCode != 200 {
					errs = append(errs, fmt.Sprintf("status %d, body %q, %v", resp.StatusCode, b, err))
				} else {
					bodies[string(b)]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("requests to %s failed: %v", addr, errs)
	}
	if !done(bodies) {
		t.Fatalf("answers from %s within %s: %v", addr, deadline, bodies)
	}
	return bodies
}

// instAnsweredBy is a done function for instCollect: every PID of pids has
// answered (bodies start with "pid N").
func instAnsweredBy(pids []int) func(map[string]int) bool {
	return func(bodies map[string]int) bool {
		seen := map[int]bool{}
		for b := range bodies {
			seen[swapPID(b)] = true
		}
		for _, p := range pids {
			if !seen[p] {
				return false
			}
		}
		return true
	}
}

// instEnviron is process pid's initial environment (/proc/PID/environ:
// what it was started with, whatever it unset since).
func instEnviron(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("environment of %d: %v", pid, err)
	}
	env := map[string]string{}
	for kv := range strings.SplitSeq(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// instDistinct fails t unless pids holds no PID twice.
func instDistinct(t *testing.T, what string, pids []int) {
	t.Helper()
	s := slices.Clone(pids)
	slices.Sort(s)
	if len(slices.Compact(s)) != len(pids) {
		t.Fatalf("%s: PIDs %v are not distinct", what, pids)
	}
}

// instStop stops hupd (exit 0 wanted) and fails t if any process of pids
// outlived it: hupd waits for its children before it exits.
func instStop(t *testing.T, h *Hupd, want int, pids ...[]int) {
	t.Helper()
	if code := h.Stop(); code != want {
		t.Fatalf("hupd exited %d, want %d", code, want)
	}
	for _, ps := range pids {
		for _, p := range ps {
			if processAlive(p) {
				t.Errorf("process %d outlived hupd", p)
			}
		}
	}
}

// instStarted is the PIDs hupd logged as started for generation gen.
func instStarted(h *Hupd, gen int) []int {
	var pids []int
	for _, e := range h.Events(logev.ChildStarted) {
		if e.Int(supervisor.KeyGen) == gen {
			pids = append(pids, e.Int(supervisor.KeyPID))
		}
	}
	return pids
}

// instScale runs `hupd scale N` against h; it must succeed.
func instScale(t *testing.T, h *Hupd, n int) oneShotResult {
	t.Helper()
	r := oneShot(t, "", nil, "scale", "--control", instControl(h), strconv.Itoa(n))
	if r.code != 0 {
		t.Fatalf("hupd scale %d: exit %d, stdout %q, stderr %q", n, r.code, r.stdout, r.stderr)
	}
	return r
}

// TestInstancesHello: hello with --instances 3 runs three processes on the
// one socket, and all three answer new connections: each its own PID, its
// own HUPD_INSTANCE (and {instance} in its arguments: each reads its own
// config file), LISTEN_PID its own PID (hello's go-systemd takes no socket
// otherwise), its own NOTIFY_SOCKET and cgroup. `hupd status --json`
// lists them; nothing outlives hupd.
func TestInstancesHello(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 3 {
		writeFile(t, dir, fmt.Sprintf("conf%d", i), fmt.Sprintf("file of instance %d\n", i))
	}
	h := StartHupd(t, "run", "--instances", "3", "--ready", "notify", "--listen", "http=tcp://127.0.0.1:0",
		"--", helloBin, "-config", filepath.Join(dir, "conf{instance}"))
	addr := HostPort(h.Listening("http"))
	pids := instWaitReady(t, h, 1, 3)
	instDistinct(t, "instances", pids)

	// status --json, as a script reads it.
	st := rdStatus(t, h)
	if st.Instances != 3 || !instReadyGen(st, 1, 3) {
		t.Fatalf("hupd status --json: %s; want instances 3, generation 1 with 3 ready instances", instDescribe(st))
	}
	notify, cgroups := map[string]int{}, map[string]int{}
	for i, in := range st.Generations[0].Instances {
		env := instEnviron(t, in.PID)
		if env["HUPD_INSTANCE"] != strconv.Itoa(i) || env["HUPD_INSTANCES"] != "3" || env["LISTEN_PID"] != strconv.Itoa(in.PID) ||
			env["LISTEN_FDS"] != "1" || env["NOTIFY_SOCKET"] == "" {
			t.Errorf("instance %d (pid %d): HUPD_INSTANCE=%q HUPD_INSTANCES=%q LISTEN_PID=%q LISTEN_FDS=%q NOTIFY_SOCKET=%q",
				i, in.PID, env["HUPD_INSTANCE"], env["HUPD_INSTANCES"], env["LISTEN_PID"], env["LISTEN_FDS"], env["NOTIFY_SOCKET"])
		}
		notify[env["NOTIFY_SOCKET"]]++
		if in.Cgroup != "" {
			cgroups[in.Cgroup]++
		}
	}
	if len(notify) != 3 {
		t.Errorf("NOTIFY_SOCKET of the instances: %v; want one each", notify)
	}
	if len(cgroups) != 0 && len(cgroups) != 3 {
		t.Errorf("cgroups of the instances: %v; want one each", cgroups)
	}

	// Every instance answers, with its own config file.
	bodies := instCollect(t, addr, instAnsweredBy(pids))
	for b, n := range bodies {
		i := slices.Index(pids, swapPID(b))
		if i < 0 || !strings.HasSuffix(b, fmt.Sprintf("config file of instance %d\n", i)) {
			t.Errorf("%d answers %q: want pid of instance i and its config file (instances %v)", n, b, pids)
		}
	}
	t.Logf("answers: %v", bodies)
	instStop(t, h, 0, pids)
}

// TestInstancesNodeSwapUnderLoad: examples/node (Debian's node; no npm
// package) with its hupd.toml, two instances: both serve on fd 3, each
// with its own HUPD_INSTANCE, and three swaps under clients of both kinds
// (a new connection per request, keep-alive) lose no request. server.js
// says READY=1 through systemd-notify (ready = "notify" here, so that
// this is what counted) and drains on TERM.
func TestInstancesNodeSwapUnderLoad(t *testing.T) {
	needTool(t, "/usr/bin/node", "node", "nodejs")
	root := copyExample(t, "node", []string{"hupd.toml", "server.js"}, map[string][][2]string{
		"hupd.toml": {{`address = "tcp://127.0.0.1:8080"`, `address = "tcp://127.0.0.1:0"`}},
	})
	h := StartHupdIn(t, root, "examples/node/hupd.toml", "--ready", "notify")
	addr := HostPort(h.Listening("http"))
	if e := h.WaitEvent(logev.ChildReady, 1, nil); e.Str("ready") != "READY=1" {
		t.Fatalf("%v: want node's READY=1 (through systemd-notify)", e)
	}
	pids := instWaitReady(t, h, 1, 2)
	instDistinct(t, "node instances", pids)
	bodies := instCollect(t, addr, instAnsweredBy(pids))
	for b := range bodies {
		i := slices.Index(pids, swapPID(b))
		if want := fmt.Sprintf("pid %d\ninstance %d\n", swapPID(b), i); i < 0 || b != want {
			t.Fatalf("node answered %q, want %q (instances %v)", b, want, pids)
		}
	}

	load := swapStartLoad(t, addr, 2, 2)
	load.waitOK(t, 20, pids[1])
	all := [][]int{pids}
	const swaps = 3
	for i := range swaps {
		old := all[len(all)-1]
		rdReloadOK(t, h, supervisor.StrategySwap)
		cur := instWaitReady(t, h, i+2, 2)
		for _, p := range old {
			waitGone(t, p) // drained and exited: the next swap is a real hand-over
		}
		if slices.ContainsFunc(cur, func(p int) bool { return slices.Contains(old, p) }) {
			t.Fatalf("swap %d: instances %v, before %v: want new processes", i+1, cur, old)
		}
		load.waitOK(t, 0, cur[0])
		all = append(all, cur)
	}
	res := load.Stop()
	swapNoFailures(t, res, 50)
	t.Logf("%d PIDs answered across %d swaps of 2 node instances; %d requests retried by the client transport", len(res.ByPID), swaps, res.Retried)
	h.Sync()
	for _, e := range h.Events(logev.ChildExited) {
		if e.Str("status") != "exit status 0" {
			t.Errorf("%v: want every old node to drain and exit 0", e)
		}
	}
	instStop(t, h, 0, all...)
}

// TestInstancesPythonLegacy: Debian's python3 -m http.server, unmodified,
// binding its own port, as two instances under --legacy redirect: each
// instance's bind is given hupd's one socket, both serve it (each its own
// directory, through {instance}), and three swaps under a new-connection
// client refuse nothing. http.server does not drain (stopped, it ends the
// requests its threads are answering): as in TestLegacyPythonHTTPServer,
// a request cut by its stop is counted, not failed; a refused or failed
// connect fails the test.
func TestInstancesPythonLegacy(t *testing.T) {
	t.Parallel()
	python := needTool(t, "/usr/bin/python3", "python3")
	dir := t.TempDir()
	for i := range 2 {
		d := filepath.Join(dir, fmt.Sprintf("i%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, d, "index.html", fmt.Sprintf("served by instance %d\n", i))
	}
	h := StartHupd(t, "run", "--instances", "2", "--legacy", "redirect", "--listen", "http=tcp4://127.0.0.1:0", "--stop-signal", "TERM",
		"--", python, "-m", "http.server", "--bind", "127.0.0.1", "--directory", filepath.Join(dir, "i{instance}"), "{port:http}")
	addr := HostPort(h.Listening("http"))
	pids := instWaitReady(t, h, 1, 2)
	instDistinct(t, "python instances", pids)
	// Each instance bound the address itself and was given the held
	// socket (generation 1's two are the first: no other has started).
	for i := range 2 {
		if e := h.WaitEvent(logev.BindRedirected, i+1, nil); e.Str("socket") != "http" {
			t.Fatalf("%v: want a bind redirected to socket http", e)
		}
	}
	instCollect(t, addr, func(bodies map[string]int) bool {
		return bodies["served by instance 0\n"] > 0 && bodies["served by instance 1\n"] > 0
	})

	const swaps = 3
	valid := func(body string) bool { return body == "served by instance 0\n" || body == "served by instance 1\n" }
	n, cut, _ := loadAcrossSwaps(t, h, "tcp", addr, swaps, valid, true)
	t.Logf("%d requests across %d swaps of 2 python3 -m http.server instances, none refused; %d cut by its stop", n, swaps, cut)
	// One client, one request at a time: a stopped instance can cut at
	// most the one it is answering.
	if cut > 2*swaps {
		t.Errorf("%d requests cut across %d swaps of 2 instances: more than the stops can cut (one each)", cut, swaps)
	}
	cur := instWaitReady(t, h, swaps+1, 2)
	h.WaitEvent(logev.BindRedirected, 2*(swaps+1), nil) // two per generation
	instCollect(t, addr, func(bodies map[string]int) bool {
		return bodies["served by instance 0\n"] > 0 && bodies["served by instance 1\n"] > 0
	})
	instStop(t, h, 128+int(syscall.SIGTERM), pids, cur)
}

// TestInstancesRolling: hello --instances 3 --rolling K (1, and 2, which
// does not divide 3) under clients of both kinds: a swap replaces K
// instances at a time (new instance K+1 starts only after an old one was
// told to stop), loses no request, and leaves the new generation alone
// with 3 ready instances, the old processes gone.
func TestInstancesRolling(t *testing.T) {
	for _, k := range []int{1, 2} {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) { instRolling(t, k) })
	}
}

func instRolling(t *testing.T, k int) {
	h := StartHupd(t, swapArgs("notify", []string{helloBin, "-grace", "10s"}, "--instances", "3", "--rolling", strconv.Itoa(k))...)
	addr := HostPort(h.Listening("http"))
	old := instWaitReady(t, h, 1, 3)
	load := swapStartLoad(t, addr, 2, 2)
	load.waitOK(t, 20, 0)

	r := rdReloadOK(t, h, supervisor.StrategySwap)
	if r.OldGen != 1 || r.NewGen != 2 {
		t.Errorf("reload %+v: want gen 1 -> gen 2", r.ReloadResult)
	}
	cur := instWaitReady(t, h, 2, 3)
	// The result names each generation by its instance 0, as status does
	// (GenerationStatus.PID) and as `hupd reload` prints it.
	if r.OldPID != old[0] || r.NewPID != cur[0] {
		t.Errorf("reload result: pid %d -> %d; want instance 0's, %d -> %d (instances %v -> %v)", r.OldPID, r.NewPID, old[0], cur[0], old, cur)
	}
	for _, p := range old {
		waitGone(t, p)
	}
	load.waitOK(t, 0, cur[2])
	res := load.Stop()
	swapNoFailures(t, res, 50)

	// Rolling, not all at once: instance K+1 of generation 2 was started
	// after the first old instance was told to stop, and K of them before.
	nextStart := swapEventIndex(h, logev.ChildStarted, k+1, swapGen(2))
	lastStart := swapEventIndex(h, logev.ChildStarted, k, swapGen(2))
	firstDrain := swapEventIndex(h, logev.Draining, 1, swapGen(1))
	if nextStart < firstDrain || lastStart > firstDrain {
		t.Errorf("generation 2's instance %d started at log line %d, instance %d at %d, generation 1's first drain at %d: not %d at a time",
			k, lastStart, k+1, nextStart, firstDrain, k)
	}
	if slices.ContainsFunc(cur, func(p int) bool { return slices.Contains(old, p) }) {
		t.Errorf("instances after the swap %v, before %v: want new processes", cur, old)
	}
	instStop(t, h, 0, old, cur)
}

// instNotReadyScript is a wrapper around hello whose instance 2 never gets
// ready while the file $MARKER exists: it sleeps instead of starting hello
// (no READY=1).
const instNotReadyScript = `#!/bin/sh
if [ "$HUPD_INSTANCE" = 2 ] && [ -e "$MARKER" ]; then
	exec sleep 600
fi
exec "$HELLO" -grace 10s
`

// TestInstancesRollingFailure: a rolling swap (3 instances, one at a time)
// whose third new instance never gets ready. Instances 0 and 1 have been
// replaced and their old processes drained by then: the reload fails, the
// new instances are stopped, old instance 2 serves on untouched and old
// instances 0 and 1 are started again with the old settings. Afterwards
// one generation runs 3 ready instances, and clients of both kinds lost
// no request across it all.
func TestInstancesRollingFailure(t *testing.T) {
	dir := t.TempDir()
	script := writeFile(t, dir, "wrapper.sh", instNotReadyScript)
	os.Chmod(script, 0o755)
	marker := filepath.Join(dir, "marker")
	h := StartHupd(t, swapArgs("notify", []string{script}, "--instances", "3", "--rolling", "1", "--ready-timeout", "3s",
		"--env", "MARKER="+marker, "--env", "HELLO="+helloBin)...)
	addr := HostPort(h.Listening("http"))
	old := instWaitReady(t, h, 1, 3)
	load := swapStartLoad(t, addr, 2, 2)
	load.waitOK(t, 20, 0)

	writeFile(t, dir, "marker", "instance 2 never gets ready\n")
	r := rdReload(t, h)
	if r.code == 0 || r.OK {
		t.Fatalf("reload: exit %d, %+v; want it failed (instance 2 never ready)", r.code, r.ReloadResult)
	}
	t.Logf("reload failed: %s", r.Reason)
	// The new generation's processes are gone, all three.
	h.Sync()
	newPIDs := instStarted(h, 2)
	if len(newPIDs) != 3 {
		t.Errorf("generation 2 started %v, want 3 instances (two ready and replacing, the third never ready)", newPIDs)
	}
	for _, p := range newPIDs {
		waitGone(t, p)
	}
	// Old instances 0 and 1 were drained during the swap: gone.
	waitGone(t, old[0])
	waitGone(t, old[1])
	st := instWaitStatus(t, h, "one generation with 3 ready instances", func(st supervisor.Status) bool {
		return len(st.Generations) == 1 && st.Generations[0].Gen != 2 && instReadyGen(st, st.Generations[0].Gen, 3)
	})
	cur := instPIDs(st.Generations[0])
	if st.Generations[0].Gen != 1 || cur[2] != old[2] {
		t.Errorf("after the failed reload: %s; want generation 1 with old instance 2 (pid %d) untouched", instDescribe(st), old[2])
	}
	if cur[0] == old[0] || cur[1] == old[1] {
		t.Errorf("instances %v, before %v: want instances 0 and 1 started again", cur, old)
	}
	instDistinct(t, "instances after the failed reload", cur)
	load.waitOK(t, 0, cur[0])
	load.waitOK(t, 0, cur[1])
	res := load.Stop()
	swapNoFailures(t, res, 50)
	instCollect(t, addr, instAnsweredBy(cur))
	instStop(t, h, 0, old, newPIDs, cur)
}

// TestInstancesKillOne: SIGKILL to one of three hello instances under
// load. That instance alone is started again (a new PID for its index,
// restarts 1), the other two keep their PIDs, no reload is counted.
// Connections not yet accepted wait in the shared socket for the others;
// what is lost is only what the killed process had accepted: at most one
// request in flight per client (each client has one at a time), never a
// refused connection.
func TestInstancesKillOne(t *testing.T) {
	h := StartHupd(t, swapArgs("notify", []string{helloBin, "-grace", "10s"}, "--instances", "3")...)
	addr := HostPort(h.Listening("http"))
	old := instWaitReady(t, h, 1, 3)
	const newConn, keepAlive = 2, 2
	load := swapStartLoad(t, addr, newConn, keepAlive)
	load.waitOK(t, 20, old[1])

	procKill(t, old[1], syscall.SIGKILL)
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int(supervisor.KeyPID) == old[1] })
	st := instWaitStatus(t, h, "instance 1 started again and ready", func(st supervisor.Status) bool {
		return instReadyGen(st, 1, 3) && st.Generations[0].Instances[1].PID != old[1]
	})
	g := st.Generations[0]
	if g.Instances[0].PID != old[0] || g.Instances[2].PID != old[2] {
		t.Errorf("instances %v, before %v: want 0 and 2 untouched", instPIDs(g), old)
	}
	for i, in := range g.Instances {
		want := 0
		if i == 1 {
			want = 1
		}
		if in.Restarts != want {
			t.Errorf("instance %d: restarts %d, want %d", i, in.Restarts, want)
		}
	}
	h.Sync()
	if st.Reloads != 0 || len(h.Events(logev.ReloadStarted)) != 0 {
		t.Errorf("%s; reloads logged %d: want no reload", instDescribe(st), len(h.Events(logev.ReloadStarted)))
	}
	load.waitOK(t, 0, g.Instances[1].PID)
	res := load.Stop()
	t.Logf("load across the kill: %s", res)
	// A request the client transport sent again on a new connection (Go's
	// does for a GET whose connection closed before any answer) was lost
	// by the killed process too: it counts with the failures.
	if lost := res.Failures() + res.Retried; res.Refused != 0 || lost > newConn+keepAlive {
		t.Errorf("%d requests lost (refused %d, retried by the transport %d): want no refusal and at most one per client (%d), those the killed process held",
			lost, res.Refused, res.Retried, newConn+keepAlive)
	}
	instStop(t, h, 0, old, instPIDs(g))
}

// TestInstancesScale: `hupd scale 4` then `hupd scale 2` on a generation
// of two hello instances, live under clients of both kinds: no swap, no
// request lost; status shows 4 instances (the new ones, 2 and 3, serve)
// then 2, instances 0 and 1 the same processes throughout; a reload then
// starts 2.
func TestInstancesScale(t *testing.T) {
	h := StartHupd(t, swapArgs("notify", []string{helloBin, "-grace", "10s"}, "--instances", "2")...)
	addr := HostPort(h.Listening("http"))
	first := instWaitReady(t, h, 1, 2)
	load := swapStartLoad(t, addr, 2, 2)
	load.waitOK(t, 20, 0)

	if r := instScale(t, h, 4); !strings.HasPrefix(r.stdout, "scaled generation 1 from 2 to 4 instances") {
		t.Errorf("hupd scale 4 printed %q", r.stdout)
	}
	up := instWaitReady(t, h, 1, 4)
	if !slices.Equal(up[:2], first) {
		t.Errorf("after scale 4: instances %v, before %v: want 0 and 1 untouched", up, first)
	}
	instDistinct(t, "4 instances", up)
	if st := ctlStatus(t, instControl(h)); st.Instances != 4 {
		t.Errorf("status after scale 4: instances %d", st.Instances)
	}
	load.waitOK(t, 0, up[2])
	load.waitOK(t, 0, up[3])

	if r := instScale(t, h, 2); !strings.HasPrefix(r.stdout, "scaled generation 1 from 4 to 2 instances") {
		t.Errorf("hupd scale 2 printed %q", r.stdout)
	}
	waitGone(t, up[2])
	waitGone(t, up[3])
	down := instWaitReady(t, h, 1, 2)
	if !slices.Equal(down, first) {
		t.Errorf("after scale 2: instances %v, want %v (the lowest indexes, untouched)", down, first)
	}
	st := ctlStatus(t, instControl(h))
	h.Sync()
	if st.Instances != 2 || st.Reloads != 0 || len(h.Events(logev.ReloadStarted)) != 0 {
		t.Errorf("status after scale 2: %s; want instances 2 and no reload", instDescribe(st))
	}
	// A reload after the scale starts as many instances as it left.
	rdReloadOK(t, h, supervisor.StrategySwap)
	next := instWaitReady(t, h, 2, 2)
	load.waitOK(t, 0, next[1])
	res := load.Stop()
	swapNoFailures(t, res, 50)
	instStop(t, h, 0, up, next)
}

// TestInstancesSignalStrategy: --reload signal with two hello instances
// relays the reload signal to both: each reads its config file again, and
// both then answer with the new content.
func TestInstancesSignalStrategy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := writeFile(t, dir, "hello.conf", "v1\n")
	h := StartHupd(t, "run", "--instances", "2", "--reload", "signal", "--ready", "notify", "--listen", "http=tcp://127.0.0.1:0",
		"--", helloBin, "-config", conf)
	addr := HostPort(h.Listening("http"))
	pids := instWaitReady(t, h, 1, 2)
	saying := func(v string) func(map[string]int) bool {
		return func(bodies map[string]int) bool {
			seen := map[int]bool{}
			for b := range bodies {
				if strings.HasSuffix(b, "config "+v+"\n") {
					seen[swapPID(b)] = true
				}
			}
			return seen[pids[0]] && seen[pids[1]]
		}
	}
	instCollect(t, addr, saying("v1"))
	writeFile(t, dir, "hello.conf", "v2\n")
	rdReloadOK(t, h, supervisor.StrategySignal)
	instCollect(t, addr, saying("v2"))
	if cur := instWaitReady(t, h, 1, 2); !slices.Equal(cur, pids) {
		t.Errorf("instances %v after the signal reload, before %v: want the same processes", cur, pids)
	}
	instStop(t, h, 0, pids)
}

// TestInstancesConfigEdit: saving hupd.toml with [process] instances 2 → 3
// scales the serving generation live (hupd applies the edit as hupd scale
// does): a third instance starts, the first two keep their PIDs, no swap
// and no reload; 3 → 1 stops instances 2 and 1 and leaves instance 0.
func TestInstancesConfigEdit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := writeFile(t, dir, "hupd.toml", fmt.Sprintf(`command = [%q, "-grace", "10s"]

[[listen]]
name = "http"
address = "tcp://127.0.0.1:0"

[process]
instances = 2

[reload]
ready = "notify"
`, helloBin))
	h := StartHupd(t, "run", "-c", conf)
	addr := HostPort(h.Listening("http"))
	first := instWaitReady(t, h, 1, 2)

	editExample(t, conf, "instances = 2", "instances = 3")
	h.WaitEvent(logev.ConfigApplied, 1, nil)
	up := instWaitReady(t, h, 1, 3)
	if !slices.Equal(up[:2], first) {
		t.Errorf("after instances = 3: instances %v, before %v: want 0 and 1 untouched", up, first)
	}
	instCollect(t, addr, instAnsweredBy(up))

	editExample(t, conf, "instances = 3", "instances = 1")
	h.WaitEvent(logev.ConfigApplied, 2, nil)
	waitGone(t, up[1])
	waitGone(t, up[2])
	st := instWaitStatus(t, h, "generation 1 alone with instance 0", func(st supervisor.Status) bool {
		return len(st.Generations) == 1 && st.Generations[0].Gen == 1 && st.Generations[0].PID == up[0] && st.Instances == 1 &&
			len(st.Generations[0].Instances) <= 1
	})
	h.Sync()
	if st.Reloads != 0 || len(h.Events(logev.ReloadStarted)) != 0 {
		t.Errorf("%s: want no reload", instDescribe(st))
	}
	instCollect(t, addr, instAnsweredBy(up[:1]))
	instStop(t, h, 0, up)
}

// TestInstancesRestartStrategy: --reload restart with two hello instances
// stops both and starts two new ones.
func TestInstancesRestartStrategy(t *testing.T) {
	t.Parallel()
	h := StartHupd(t, "run", "--instances", "2", "--reload", "restart", "--ready", "notify", "--listen", "http=tcp://127.0.0.1:0",
		"--", helloBin, "-grace", "10s")
	addr := HostPort(h.Listening("http"))
	old := instWaitReady(t, h, 1, 2)
	rdReloadOK(t, h, supervisor.StrategyRestart)
	cur := instWaitReady(t, h, 2, 2)
	for _, p := range old {
		waitGone(t, p)
	}
	instDistinct(t, "instances before and after the restart", append(slices.Clone(old), cur...))
	instCollect(t, addr, instAnsweredBy(cur))
	instStop(t, h, 0, old, cur)
}

// TestInstancesLegacyAdopt: examples/legacy/goserver, which binds its own
// port, as two instances under --legacy adopt: one socket is adopted (the
// first bind, for real) and every other bind is given it; both instances
// serve it, and a swap under a new-connection client fails nothing.
func TestInstancesLegacyAdopt(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(fixedPort(t, "tcp"))
	h := StartHupd(t, "run", "--instances", "2", "--legacy", "adopt", "--listen", "http=tcp://:"+port,
		"--", goserverBin, "-addr", ":{port:http}")
	old := instWaitReady(t, h, 1, 2)
	addr := "127.0.0.1:" + port
	bodies := instCollect(t, addr, func(bodies map[string]int) bool {
		seen := 0
		for _, p := range old {
			if bodies[fmt.Sprintf("goserver pid %d\n", p)] > 0 {
				seen++
			}
		}
		return seen == len(old)
	})
	t.Logf("answers: %v", bodies)
	h.WaitEvent(logev.BindRedirected, 1, nil) // the other instance's bind
	n, _ := swapsUnderLoad(t, h, "tcp", addr, 1, func(body string) bool { return strings.HasPrefix(body, "goserver pid ") })
	cur := instWaitReady(t, h, 2, 2)
	h.WaitEvent(logev.BindRedirected, 3, nil) // and both of generation 2's
	h.Sync()
	if got := len(h.Events(logev.SocketAdopted)); got != 1 {
		t.Errorf("%d sockets adopted, want 1 (the first bind)", got)
	}
	t.Logf("%d requests across a swap of 2 adopted goserver instances", n)
	instStop(t, h, 0, old, cur)
}

// instCrashScript is a wrapper around hello whose instance 1 exits 3 at
// once while the file $MARKER exists: a crash loop of one instance.
const instCrashScript = `#!/bin/sh
if [ "$HUPD_INSTANCE" = 1 ] && [ -e "$MARKER" ]; then
	exit 3
fi
exec "$HELLO" -grace 10s
`

// TestInstancesCrashLoop: one of three instances crash-loops (killed
// once, it then exits 3 at every start). It is restarted alone with its
// backoff, the status shows its restarts and last exit, and at the start
// limit hupd gives up on that instance only: the other two serve on, hupd
// keeps running, no reload runs. Once the cause is gone, hupd scale 3
// starts it again.
func TestInstancesCrashLoop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeFile(t, dir, "wrapper.sh", instCrashScript)
	os.Chmod(script, 0o755)
	marker := filepath.Join(dir, "marker")
	h := StartHupd(t, swapArgs("notify", []string{script}, "--instances", "3", "--start-limit", "3/1m",
		"--env", "MARKER="+marker, "--env", "HELLO="+helloBin)...)
	addr := HostPort(h.Listening("http"))
	old := instWaitReady(t, h, 1, 3)

	writeFile(t, dir, "marker", "instance 1 exits 3\n")
	procKill(t, old[1], syscall.SIGKILL)
	h.WaitEvent(logev.InstanceGaveUp, 1, nil)
	st := ctlStatus(t, instControl(h))
	h.Sync()
	if len(st.Generations) != 1 || len(st.Generations[0].Instances) != 3 {
		t.Fatalf("status at the start limit: %s", instDescribe(st))
	}
	in := st.Generations[0].Instances
	if in[0].PID != old[0] || in[2].PID != old[2] || in[0].State != supervisor.StateReady || in[2].State != supervisor.StateReady {
		t.Errorf("instances 0 and 2: %s; want pids %d and %d ready, untouched", instDescribe(st), old[0], old[2])
	}
	if in[1].PID != 0 || in[1].State != supervisor.StateFailed || in[1].Restarts < 1 || in[1].LastExit != "exit status 3" {
		t.Errorf("instance 1: %+v; want no process, state failed, restarts ≥ 1, last exit \"exit status 3\"", in[1])
	}
	if n := len(h.Events(logev.RestartingInstance)); n < 2 {
		t.Errorf("%d restarts of instance 1 logged: want its crash loop restarted with its backoff until the limit", n)
	}
	if st.Reloads != 0 || len(h.Events(logev.ReloadStarted)) != 0 {
		t.Errorf("%s: want no reload", instDescribe(st))
	}
	instCollect(t, addr, instAnsweredBy([]int{old[0], old[2]}))

	// The cause is gone: hupd scale 3 starts instance 1 again.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	instScale(t, h, 3)
	cur := instWaitReady(t, h, 1, 3)
	if cur[0] != old[0] || cur[2] != old[2] || cur[1] == old[1] {
		t.Errorf("after hupd scale 3: instances %v, before %v: want 1 started again, 0 and 2 untouched", cur, old)
	}
	instCollect(t, addr, instAnsweredBy(cur))
	instStop(t, h, 0, old, cur)
}

// instProbeScript is a wrapper around hello that marks its instance
// ready with the file $DIR/ready$HUPD_INSTANCE, except instance 1 while
// $DIR/marker exists: that one never makes it, nor starts hello.
// hello says nothing on NOTIFY_SOCKET (a READY=1 counts whatever the
// readiness mode): only the probe decides.
const instProbeScript = `#!/bin/sh
if [ "$HUPD_INSTANCE" = 1 ] && [ -e "$DIR/marker" ]; then
	exec sleep 600
fi
touch "$DIR/ready$HUPD_INSTANCE"
unset NOTIFY_SOCKET
exec "$HELLO" -grace 10s
`

// instProbeCheck is the readiness probe: the instance it judges is $1
// ({instance} replaced by hupd) or else $HUPD_INSTANCE (each must agree
// with the other when both are given); it is ready when its file exists.
const instProbeCheck = `#!/bin/sh
i=$1
case $i in *[!0-9]*|'') i=$HUPD_INSTANCE ;; esac
[ -n "$i" ] && { [ -z "$HUPD_INSTANCE" ] || [ "$HUPD_INSTANCE" = "$i" ]; } && [ -e "$DIR/ready$i" ]
`

// TestInstancesExecProbe: readiness exec:COMMAND applies per instance, so
// the probe must know which instance it judges: {instance} in its
// arguments or HUPD_INSTANCE in its environment, as the program has them.
// Two instances get ready each by its own file; in a swap whose instance
// 1 never makes its file, the reload fails although instance 0's exists,
// and the old generation serves on.
func TestInstancesExecProbe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeFile(t, dir, "wrapper.sh", instProbeScript)
	probe := writeFile(t, dir, "probe.sh", instProbeCheck)
	os.Chmod(script, 0o755)
	os.Chmod(probe, 0o755)
	h := StartHupd(t, swapArgs("exec:"+probe+" {instance}", []string{script}, "--instances", "2", "--ready-timeout", "3s",
		"--env", "DIR="+dir, "--env", "HELLO="+helloBin)...)
	// Both ready by the probe, or one not ready in time (then at once).
	h.waitFor("instances 0 and 1 ready, or one not", func() bool {
		ready := 0
		for _, e := range h.events {
			switch e.Msg() {
			case logev.NotReady:
				return true
			case logev.ChildReady:
				ready++
			}
		}
		return ready == 2
	})
	h.Sync()
	if ev := h.Events(logev.NotReady); len(ev) > 0 {
		t.Fatalf("%v: the probe never judged the instance ready: it cannot tell which instance it checks", ev[0])
	}
	for _, e := range h.Events(logev.ChildReady) {
		if e.Str("ready") != "probe succeeded" {
			t.Fatalf("%v: want the instance ready by the probe", e)
		}
	}
	old := instWaitReady(t, h, 1, 2)

	writeFile(t, dir, "marker", "instance 1 never ready\n")
	// The old instance 1's file goes now: the new one's probe may run
	// before its wrapper has started, and must not find it.
	if err := os.Remove(filepath.Join(dir, "ready1")); err != nil {
		t.Fatal(err)
	}
	r := rdReload(t, h)
	if r.code == 0 || r.OK {
		t.Fatalf("reload: exit %d, %+v; want it failed (instance 1's probe never succeeds)", r.code, r.ReloadResult)
	}
	if cur := instWaitReady(t, h, 1, 2); !slices.Equal(cur, old) {
		t.Errorf("after the failed reload: instances %v, want %v untouched", cur, old)
	}
	instStop(t, h, 0, old)
}

// TestInstancesSwapFailure: an all-at-once swap of 3 instances whose third
// new instance never gets ready fails, stops the new instances, and never
// touches the old ones: the same 3 PIDs serve on, and clients of both
// kinds lose no request.
func TestInstancesSwapFailure(t *testing.T) {
	dir := t.TempDir()
	script := writeFile(t, dir, "wrapper.sh", instNotReadyScript)
	os.Chmod(script, 0o755)
	marker := filepath.Join(dir, "marker")
	h := StartHupd(t, swapArgs("notify", []string{script}, "--instances", "3", "--ready-timeout", "3s",
		"--env", "MARKER="+marker, "--env", "HELLO="+helloBin)...)
	addr := HostPort(h.Listening("http"))
	old := instWaitReady(t, h, 1, 3)
	load := swapStartLoad(t, addr, 2, 2)
	load.waitOK(t, 20, 0)

	writeFile(t, dir, "marker", "instance 2 never gets ready\n")
	r := rdReload(t, h)
	if r.code == 0 || r.OK {
		t.Fatalf("reload: exit %d, %+v; want it failed (instance 2 never ready)", r.code, r.ReloadResult)
	}
	h.Sync()
	newPIDs := instStarted(h, 2)
	if len(newPIDs) != 3 {
		t.Errorf("generation 2 started %v, want 3 instances at once", newPIDs)
	}
	for _, p := range newPIDs {
		waitGone(t, p)
	}
	if cur := instWaitReady(t, h, 1, 3); !slices.Equal(cur, old) {
		t.Errorf("after the failed swap: instances %v, want %v untouched", cur, old)
	}
	for _, e := range h.Events(logev.Draining) {
		if e.Int(supervisor.KeyGen) == 1 {
			t.Errorf("%v: no old instance may be told to stop by a swap that failed", e)
		}
	}
	res := load.Stop()
	swapNoFailures(t, res, 50)
	instStop(t, h, 0, old, newPIDs)
}

// TestInstancesScaleFailure: `hupd scale 3` on two instances whose new
// instance 2 never gets ready fails (exit 1), stops what it started, and
// leaves the two instances as they were.
func TestInstancesScaleFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeFile(t, dir, "wrapper.sh", instNotReadyScript)
	os.Chmod(script, 0o755)
	marker := writeFile(t, dir, "marker", "instance 2 never gets ready\n")
	h := StartHupd(t, swapArgs("notify", []string{script}, "--instances", "2", "--ready-timeout", "2s",
		"--env", "MARKER="+marker, "--env", "HELLO="+helloBin)...)
	old := instWaitReady(t, h, 1, 2)
	r := oneShot(t, "", nil, "scale", "--control", instControl(h), "3")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "hupd: scale failed: ") {
		t.Fatalf("hupd scale 3: exit %d, stdout %q, stderr %q; want exit 1, scale failed", r.code, r.stdout, r.stderr)
	}
	h.Sync()
	started := instStarted(h, 1)
	if len(started) != 3 {
		t.Fatalf("generation 1 started %v, want its 2 instances and the one the scale added", started)
	}
	waitGone(t, started[2])
	st := instWaitStatus(t, h, "generation 1 with its 2 instances", func(st supervisor.Status) bool { return instReadyGen(st, 1, 2) })
	if cur := instPIDs(st.Generations[0]); !slices.Equal(cur, old) || st.Instances != 2 {
		t.Errorf("after the failed scale: %s; want instances 2, pids %v untouched", instDescribe(st), old)
	}
	instStop(t, h, 0, old, started)
}

// TestInstancesRestartNever: with --restart never, a killed instance is
// not started again: the other serves on and hupd keeps running; once
// the last instance is gone too, hupd exits with its status.
func TestInstancesRestartNever(t *testing.T) {
	t.Parallel()
	h := StartHupd(t, swapArgs("notify", []string{helloBin, "-grace", "10s"}, "--instances", "2", "--restart", "never")...)
	addr := HostPort(h.Listening("http"))
	old := instWaitReady(t, h, 1, 2)
	procKill(t, old[1], syscall.SIGKILL)
	if e := h.WaitEvent(logev.InstanceNotRestarted, 1, nil); e.Int(supervisor.KeyInst) != 1 || e.Int(supervisor.KeyGen) != 1 {
		t.Fatalf("%v: want instance 1 of generation 1 not restarted", e)
	}
	st := ctlStatus(t, instControl(h))
	if len(st.Generations) != 1 || len(st.Generations[0].Instances) != 2 || st.Generations[0].Instances[0].PID != old[0] ||
		st.Generations[0].Instances[0].State != supervisor.StateReady || st.Generations[0].Instances[1].PID != 0 {
		t.Errorf("status: %s; want instance 0 (pid %d) ready, instance 1 without a process", instDescribe(st), old[0])
	}
	instCollect(t, addr, instAnsweredBy(old[:1]))
	procKill(t, old[0], syscall.SIGKILL)
	if code := h.Wait(); code != 128+int(syscall.SIGKILL) {
		t.Errorf("hupd exited %d once no instance was left, want %d (the last one's status)", code, 128+int(syscall.SIGKILL))
	}
}

// TestInstancesUpgrade: `hupd upgrade` (hupd re-executing its binary in
// its own process) with three hello instances under clients of both
// kinds: the upgraded hupd keeps the generation with its three instances
// (same PIDs, ready), knows them as instances (a killed one is restarted
// alone, restarts 1), swaps them all, and no request is lost.
func TestInstancesUpgrade(t *testing.T) {
	h := StartHupd(t, swapArgs("notify", []string{helloBin, "-grace", "10s"}, "--instances", "3")...)
	addr := HostPort(h.Listening("http"))
	old := instWaitReady(t, h, 1, 3)
	load := swapStartLoad(t, addr, 2, 2)
	load.waitOK(t, 20, 0)

	if out, code := hupdCtl(t, h, "upgrade", "--control", instControl(h)); code != 0 || !strings.HasPrefix(out, "upgrade ok: ") {
		t.Fatalf("hupd upgrade: exit %d, %q", code, out)
	}
	h.WaitEvent(logev.Upgraded, 1, nil)
	if cur := instWaitReady(t, h, 1, 3); !slices.Equal(cur, old) {
		t.Fatalf("after the upgrade: instances %v, want %v kept", cur, old)
	}

	procKill(t, old[2], syscall.SIGKILL)
	st := instWaitStatus(t, h, "instance 2 started again by the upgraded hupd", func(st supervisor.Status) bool {
		return instReadyGen(st, 1, 3) && st.Generations[0].Instances[2].PID != old[2]
	})
	g := st.Generations[0]
	if g.Instances[0].PID != old[0] || g.Instances[1].PID != old[1] || g.Instances[2].Restarts != 1 || st.Reloads != 0 {
		t.Errorf("after killing instance 2: %s; want only instance 2 restarted (restarts 1), no reload", instDescribe(st))
	}
	killed := g.Instances[2].PID

	rdReloadOK(t, h, supervisor.StrategySwap)
	cur := instWaitReady(t, h, 2, 3)
	for _, p := range append(old[:2:2], killed) {
		waitGone(t, p)
	}
	load.waitOK(t, 0, cur[0])
	res := load.Stop()
	t.Logf("load across the upgrade, the kill and the swap: %s", res)
	// The kill may cut what instance 2 held (TestInstancesKillOne); the
	// upgrade and the swap nothing.
	if lost := res.Failures() + res.Retried; res.Refused != 0 || lost > 4 {
		t.Errorf("%d requests lost (refused %d): want no refusal and at most one per client, those the killed instance held", lost, res.Refused)
	}
	instStop(t, h, 0, old, []int{killed}, cur)
}
