package integration

// Edits of hupd.toml while hupd runs: what needs a new generation gets
// exactly one, what does not is applied in place, and what is not valid
// changes nothing until it is fixed. The child is watch-serve (see
// watch_test.go for the helpers and the sentinel that makes reload counts
// exact); its -tag shows which command line a generation runs.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// rcApplied waits for the n-th "configuration applied" and checks whether
// it asked for a new generation and how many sockets it opened and dropped.
func rcApplied(w *wtHupd, n int, newGen bool, opened, dropped int) Event {
	w.t.Helper()
	e := w.WaitEvent(logev.ConfigApplied, n, nil)
	if e["new_generation"] != newGen || e.Int("sockets_opened") != opened || e.Int("sockets_dropped") != dropped {
		w.t.Fatalf("%v: want new_generation %v, sockets opened %d, dropped %d", e, newGen, opened, dropped)
	}
	if newGen && e.Str("strategy") != string(supervisor.StrategySwap) {
		w.t.Fatalf("%v: want a swap", e)
	}
	return e
}

// rcOnly fails the test unless generation 1, pid, is the only one and no
// reload has run.
func rcOnly(w *wtHupd, pid int) supervisor.Status {
	w.t.Helper()
	st := w.status()
	if len(st.Generations) != 1 || st.Generations[0].Gen != 1 || st.Generations[0].PID != pid || st.Reloads != 0 {
		w.t.Fatalf("status %+v: want gen 1 (pid %d) alone, no reload", st, pid)
	}
	return st
}

// rcLine is the 1-based line of text on which needle starts.
func rcLine(t *testing.T, text, needle string) int {
	t.Helper()
	i := strings.Index(text, needle)
	if i < 0 {
		t.Fatalf("%q not in %q", needle, text)
	}
	return 1 + strings.Count(text[:i], "\n")
}

// TestReconfigCommand: a new command line in hupd.toml is applied with one
// reload that starts a new generation, which runs it: a swap, a restart
// with the restart strategy, and a swap with the signal strategy (a
// signal cannot start a new program). hupd status then shows that
// generation serving with the content hash in force, a new one.
func TestReconfigCommand(t *testing.T) {
	t.Parallel()
	for _, strategy := range []supervisor.Strategy{supervisor.StrategySwap, supervisor.StrategyRestart, supervisor.StrategySignal} {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			want := strategy
			if strategy == supervisor.StrategySignal {
				want = supervisor.StrategySwap
			}
			sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
			tables := []string{wtHTTP, wtWatch("swap", wtDebounce, sent), fmt.Sprintf("[reload]\nstrategy = %q\n", strategy)}
			w, conf := wtStartConf(t, t.TempDir(), wtTOML([]string{"-tag", "v1", sent}, tables...))
			if e := w.WaitEvent(logev.Watching, 1, nil); e.Str("action") != "apply-config" || !slices.Equal(wtStrings(e, "paths"), []string{conf}) {
				t.Fatalf("%v: want hupd.toml watched first", e)
			}
			if r := w.startReport(1); r.Tag != "v1" {
				t.Fatalf("gen 1: %+v", r)
			}
			st0 := w.status()
			if len(st0.Hash) != 16 || st0.ConfigHash != st0.Hash || st0.Generations[0].ConfigHash != st0.Hash {
				t.Fatalf("status at start: hash %q, config_hash %q, generations %+v", st0.Hash, st0.ConfigHash, st0.Generations)
			}

			wtWrite(t, conf, wtTOML([]string{"-tag", "v2", sent}, tables...))
			e := w.WaitEvent(logev.ConfigApplied, 1, nil)
			if e["new_generation"] != true || e.Str("strategy") != string(want) {
				t.Fatalf("%v: want a new generation by %s", e, want)
			}
			done := w.reloaded(1)
			if st := w.started()[0]; st.Str("cause") != "hupd.toml changed" || st.Str("strategy") != string(want) {
				t.Fatalf("reload %v, want a %s caused by hupd.toml changed", st, want)
			}
			if r := w.report(done.Int("pid")); r.Tag != "v2" {
				t.Fatalf("gen 2 runs %+v, want -tag v2", r)
			}
			st := w.status()
			g := slices.IndexFunc(st.Generations, func(g supervisor.GenerationStatus) bool { return g.Gen == 2 })
			if st.Hash == st0.Hash || st.ConfigHash != st.Hash || g < 0 || st.Generations[g].ConfigHash != st.Hash || st.ConfigError != "" {
				t.Fatalf("status after the edit: hash %q (was %q), config_hash %q, error %q, generations %+v; want gen 2 serving with the new hash",
					st.Hash, st0.Hash, st.ConfigHash, st.ConfigError, st.Generations)
			}
			if ws := st.Watches[0]; ws.Action != "apply-config" || ws.Changes != 1 {
				t.Fatalf("status of hupd.toml's watch: %+v; want one change", ws)
			}
			w.sentinel(sent, 1)
			w.stop()
		})
	}
}

// TestReconfigAddListener: a [[listen]] added to hupd.toml is opened at
// once and passed to the next generation (LISTEN_FDS=2, both names); the
// old socket serves throughout the swap, without a refused connection.
func TestReconfigAddListener(t *testing.T) {
	t.Parallel()
	sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
	args := []string{sent}
	w, conf := wtStartConf(t, t.TempDir(), wtTOML(args, wtHTTP, wtWatch("", wtDebounce, sent)))
	pid1 := w.ChildPID(1)
	if r := w.startReport(1); r.ListenFDs != 1 || !slices.Equal(r.Names, []string{"http"}) {
		t.Fatalf("gen 1: %+v", r)
	}
	httpAddr := HostPort(w.Listening("http"))
	load := swapStartLoad(t, httpAddr, 2, 2)
	load.waitOK(t, 20, pid1)

	wtWrite(t, conf, wtTOML(args, wtHTTP, wtListen("admin", "tcp://127.0.0.1:0"), wtWatch("", wtDebounce, sent)))
	rcApplied(w, 1, true, 1, 0)
	adminAddr := HostPort(w.Listening("admin"))
	pid2 := w.reloaded(1).Int("pid")
	if r := w.report(pid2); r.ListenFDs != 2 || !slices.Equal(r.Names, []string{"http", "admin"}) {
		t.Fatalf("gen 2: %+v; want LISTEN_FDS=2 named http, admin", r)
	}
	load.mu.Lock()
	n := load.res.OK
	load.mu.Unlock()
	load.waitOK(t, n+20, pid2)
	swapNoFailures(t, load.Stop(), 40)
	w.WaitEvent(logev.ChildExited, 1, swapGen(1))
	for _, addr := range []string{httpAddr, adminAddr} {
		if body := fetch(t, "tcp", addr, "/"); swapPID(body) != pid2 {
			t.Fatalf("%s answered %q, want pid %d", addr, body, pid2)
		}
	}
	if st := w.status(); len(st.Listeners) != 2 || st.Listeners[1].Name != "admin" || st.Listeners[1].Address != "tcp://"+adminAddr {
		t.Fatalf("status listeners %+v", st.Listeners)
	}
	w.sentinel(sent, 1)
	w.stop()
}

// TestReconfigRemoveListener: [[listen]] tables removed from hupd.toml (a
// TCP and a unix socket): the next generation gets the one socket left;
// the removed ones are closed once the old generation has exited, and
// then refuse connections; the unix socket's file is removed.
func TestReconfigRemoveListener(t *testing.T) {
	t.Parallel()
	sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
	sock := filepath.Join(sockDir(t), "local.sock")
	args := []string{sent}
	w, conf := wtStartConf(t, t.TempDir(), wtTOML(args, wtHTTP, wtListen("admin", "tcp://127.0.0.1:0"),
		wtListen("local", "unix://"+sock), wtWatch("", wtDebounce, sent)))
	pid1 := w.ChildPID(1)
	if r := w.startReport(1); !slices.Equal(r.Names, []string{"http", "admin", "local"}) {
		t.Fatalf("gen 1: %+v", r)
	}
	adminAddr := HostPort(w.Listening("admin"))
	if body := fetch(t, "tcp", adminAddr, "/"); swapPID(body) != pid1 {
		t.Fatalf("admin answered %q, want pid %d", body, pid1)
	}

	wtWrite(t, conf, wtTOML(args, wtHTTP, wtWatch("", wtDebounce, sent)))
	rcApplied(w, 1, true, 0, 2)
	pid2 := w.reloaded(1).Int("pid")
	if r := w.report(pid2); r.ListenFDs != 1 || !slices.Equal(r.Names, []string{"http"}) {
		t.Fatalf("gen 2: %+v; want LISTEN_FDS=1 named http", r)
	}
	for _, name := range []string{"admin", "local"} {
		w.WaitEvent(logev.SocketClosed, 1, func(e Event) bool { return e.Str("socket") == name })
		exited := swapEventIndex(w.Hupd, logev.ChildExited, 1, swapGen(1))
		if i := swapEventIndex(w.Hupd, logev.SocketClosed, 1, func(e Event) bool { return e.Str("socket") == name }); exited < 0 || i < exited {
			t.Fatalf("socket %s closed at log line %d, gen 1 exited at %d: want it closed after", name, i, exited)
		}
	}
	// A status round trip: hupd has done what it logged.
	if st := w.status(); len(st.Listeners) != 1 || st.Listeners[0].Name != "http" {
		t.Fatalf("status listeners %+v", st.Listeners)
	}
	// The standby shim started for gen 1 held the old sockets too; the
	// new configuration discarded it, and it exits on its own.
	applied := swapEventIndex(w.Hupd, logev.ConfigApplied, 1, nil)
	for i, e := range w.Events(logev.StandbyReady) {
		if swapEventIndex(w.Hupd, logev.StandbyReady, i+1, nil) < applied {
			waitGone(t, e.Int("pid"))
		}
	}
	if c, err := net.Dial("tcp", adminAddr); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("connect to the removed %s: %v, want connection refused", adminAddr, err)
	}
	assertGone(t, sock)
	w.sentinel(sent, 1)
	w.stop(sock)
}

// TestReconfigInvalid: an edit that is not valid (a TOML syntax error; an
// unknown signal name) changes nothing: the same child serves, status
// names hupd.toml and the line, and hupd reload fails with that reason.
// Fixing the file applies it.
func TestReconfigInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, bad string
		at        string // the line the error is on starts with this
		want      string
	}{
		{"syntax", "[process\n", "[process", "expected '.' or ']' to end table name"},
		{"signal", "[process]\nstop_signal = \"HUPP\"\n", "stop_signal", `process.stop_signal: invalid signal "HUPP": valid signals are HUP, INT`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
			tables := []string{wtHTTP, wtWatch("", wtDebounce, sent)}
			w, conf := wtStartConf(t, t.TempDir(), wtTOML([]string{"-tag", "v1", sent}, tables...))
			pid := w.ChildPID(1)
			w.startReport(1)

			bad := wtTOML([]string{"-tag", "v2", sent}, append(tables, tc.bad)...)
			where := fmt.Sprintf("%s:%d", conf, rcLine(t, bad, "\n"+tc.at)+1)
			wtWrite(t, conf, bad)
			e := w.WaitEvent(logev.ConfigNotApplied, 1, nil)
			if msg := e.Str("error"); !strings.HasPrefix(msg, where+": ") || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q: want it to start with %s and say %q", msg, where, tc.want)
			}
			// hupd reload reads hupd.toml again first; once it has
			// answered, status shows the error too (hupd logs the error
			// before status has it).
			r := oneShot(t, "", nil, "reload", "--control", w.ctl)
			if r.code != 1 || !strings.Contains(r.stderr, "reload failed: hupd.toml not applied, nothing changed: "+where+": ") {
				t.Fatalf("hupd reload: exit %d, stderr %q; want 1 naming %s", r.code, r.stderr, where)
			}
			if st := rcOnly(w, pid); st.ConfigError != e.Str("error") {
				t.Fatalf("status config_error %q, want %q", st.ConfigError, e.Str("error"))
			}
			// As hupd status prints it, in JSON and for people.
			r = oneShot(t, "", nil, "status", "--json", "--control", w.ctl)
			var js map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &js); r.code != 0 || err != nil || js["config_error"] != e.Str("error") {
				t.Fatalf("hupd status --json: exit %d, %v, config_error %q; want %q", r.code, err, js["config_error"], e.Str("error"))
			}
			if r = oneShot(t, "", nil, "status", "--control", w.ctl); !strings.Contains(r.stdout, "config not applied: "+where+": ") {
				t.Fatalf("hupd status:\n%s\nwant a line naming %s", r.stdout, where)
			}
			if body := fetch(t, "tcp", HostPort(w.Listening("http")), "/"); swapPID(body) != pid {
				t.Fatalf("answered %q, want pid %d", body, pid)
			}

			wtWrite(t, conf, wtTOML([]string{"-tag", "v2", sent}, tables...))
			rcApplied(w, 1, true, 0, 0)
			if r := w.report(w.reloaded(1).Int("pid")); r.Tag != "v2" {
				t.Fatalf("gen 2 runs %+v, want -tag v2", r)
			}
			if st := w.status(); st.ConfigError != "" {
				t.Fatalf("status config_error %q after the fix", st.ConfigError)
			}
			w.sentinel(sent, 1)
			w.stop()
		})
	}
}

// TestReconfigInPlace: edits that need no new generation (timeouts,
// max_draining, a comment, the log level) are applied without a reload.
// The log level takes effect at once: debug lines appear. (hupd runs
// here without the harness's --log-level flag, which would win over the
// file.)
func TestReconfigInPlace(t *testing.T) {
	t.Parallel()
	sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
	base := wtTOML([]string{sent}, wtHTTP, wtWatch("", wtDebounce, sent))
	conf := filepath.Join(t.TempDir(), "hupd.toml")
	wtWrite(t, conf, base)
	h := StartHupdCmd(t, exec.Command(hupdBin, "run", "--log-format", "json", "-c", conf))
	w := &wtHupd{Hupd: h, ctl: h.WaitEvent(logev.ControlSocket, 1, nil).Str("path"), reports: map[int][]WatchReport{}}
	pid := w.ChildPID(1)
	w.startReport(1)
	edits := []string{
		"[reload]\nready_timeout = \"30s\"\n",
		"[reload]\nready_timeout = \"30s\"\nmax_draining = 3\n",
		"[reload]\nready_timeout = \"30s\"\nmax_draining = 3\n[process]\nstop_timeout = \"20s\"\n",
		"[reload]\nready_timeout = \"30s\"\nmax_draining = 3\n[process]\nstop_timeout = \"20s\"\n# a comment\n",
		"[reload]\nready_timeout = \"30s\"\nmax_draining = 3\n[process]\nstop_timeout = \"20s\"\n# a comment\n[log]\nlevel = \"debug\"\n",
	}
	for i, edit := range edits {
		if i == len(edits)-1 {
			h.Sync() // every line hupd logged at level info is read
		}
		if i == len(edits)-1 && len(h.Events(logev.StandbyReady)) != 0 {
			t.Fatalf("debug lines logged at level info: %v", h.Events(logev.StandbyReady))
		}
		wtWrite(t, conf, base+edit)
		rcApplied(w, i+1, false, 0, 0)
		rcOnly(w, pid)
	}
	st := w.status()
	if st.Hash != st.ConfigHash || len(st.Generations) != 1 || st.Generations[0].ConfigHash != st.Hash {
		// Nothing of these edits needs a new generation: the serving one
		// is up to date with the configuration in force.
		t.Fatalf("status hash %s, serving generation's %s (%+v) after edits applied in place", st.Hash, st.ConfigHash, st.Generations)
	}
	w.sentinel(sent, 0)
	// The swap's drain signal is logged at debug level, before "reload
	// done".
	if e := h.Events(logev.SignalSent); len(e) != 1 || e[0].Str("level") != "DEBUG" || e[0].Int("pid") != pid || e[0].Str("signal") != "TERM" {
		t.Fatalf("debug lines %v: want TERM to pid %d", e, pid)
	}
	w.stop()
}

// TestReconfigWatchConfigOff: with --watch-config=false an edit of
// hupd.toml is not applied when saved (a reload caused by a watched file
// still runs the old command line); hupd reload or SIGHUP applies it, with
// one reload.
func TestReconfigWatchConfigOff(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"hupd reload", "SIGHUP"} {
		t.Run(strings.ReplaceAll(how, " ", "_"), func(t *testing.T) {
			t.Parallel()
			sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
			tables := []string{wtHTTP, wtWatch("", wtDebounce, sent)}
			w, conf := wtStartConf(t, t.TempDir(), wtTOML([]string{"-tag", "v1", sent}, tables...), "--watch-config=false")
			if e := w.WaitEvent(logev.Watching, 1, nil); e.Str("action") != "reload" {
				t.Fatalf("%v: hupd.toml must not be watched", e)
			}
			w.startReport(1)

			wtWrite(t, conf, wtTOML([]string{"-tag", "v2", sent}, tables...))
			if r := w.sentinel(sent, 0); r.Tag != "v1" {
				t.Fatalf("gen 2 runs %+v: the edit was applied without a reload", r)
			}
			w.Sync()
			if evs := w.Events(logev.ConfigApplied); len(evs) != 0 {
				t.Fatalf("applied: %v", evs)
			}

			if how == "SIGHUP" {
				w.Signal(syscall.SIGHUP)
			} else if r := oneShot(t, "", nil, "reload", "--control", w.ctl); r.code != 0 {
				t.Fatalf("hupd reload: exit %d, stderr %q", r.code, r.stderr)
			}
			rcApplied(w, 1, true, 0, 0)
			if r := w.report(w.reloaded(2).Int("pid")); r.Tag != "v2" {
				t.Fatalf("gen 3 runs %+v, want -tag v2", r)
			}
			if st := w.started(); how == "hupd reload" && len(st) != 2 {
				t.Fatalf("hupd reload answered after %d reloads, want 2 (the sentinel's, then one that applies hupd.toml): %v", len(st), st)
			}
			w.sentinel(sent, 2)
			w.stop()
		})
	}
}

// TestReconfigPortInUse: a [[listen]] added with an address in use is not
// applied: the error names hupd.toml's line and the address, the running
// generation keeps serving, alone. Saved again once the port is free, the
// file is applied.
func TestReconfigPortInUse(t *testing.T) {
	t.Parallel()
	sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	addr := blocker.Addr().String()
	w, conf := wtStartConf(t, t.TempDir(), wtTOML([]string{sent}, wtHTTP, wtWatch("", wtDebounce, sent)))
	pid := w.ChildPID(1)
	w.startReport(1)
	httpAddr := HostPort(w.Listening("http"))

	edited := wtTOML([]string{sent}, wtHTTP, wtListen("admin", "tcp://"+addr), wtWatch("", wtDebounce, sent))
	where := fmt.Sprintf("%s:%d", conf, rcLine(t, edited, "address = \"tcp://"+addr))
	wtWrite(t, conf, edited)
	e := w.WaitEvent(logev.ConfigNotApplied, 1, nil)
	if msg := e.Str("error"); !strings.HasPrefix(msg, where+": ") || !strings.Contains(msg, addr) || !strings.Contains(msg, "address already in use") {
		t.Fatalf("error %q: want %s, the address %s and why", msg, where, addr)
	}
	r := oneShot(t, "", nil, "reload", "--control", w.ctl)
	if r.code != 1 || !strings.Contains(r.stderr, "reload failed: hupd.toml not applied, nothing changed: "+where+": ") || !strings.Contains(r.stderr, addr) {
		t.Fatalf("hupd reload: exit %d, stderr %q; want 1 naming %s and %s", r.code, r.stderr, where, addr)
	}
	if st := rcOnly(w, pid); st.ConfigError != e.Str("error") || len(st.Listeners) != 1 {
		t.Fatalf("status: config_error %q, listeners %+v", st.ConfigError, st.Listeners)
	}
	if body := fetch(t, "tcp", httpAddr, "/"); swapPID(body) != pid {
		t.Fatalf("answered %q, want pid %d", body, pid)
	}

	blocker.Close()
	wtWrite(t, conf, edited+"# the port is free now\n")
	rcApplied(w, 1, true, 1, 0)
	pid2 := w.reloaded(1).Int("pid")
	if r := w.report(pid2); !slices.Equal(r.Names, []string{"http", "admin"}) {
		t.Fatalf("gen 2: %+v", r)
	}
	if body := fetch(t, "tcp", addr, "/"); swapPID(body) != pid2 {
		t.Fatalf("%s answered %q, want pid %d", addr, body, pid2)
	}
	w.sentinel(sent, 1)
	w.stop()
}

// TestReconfigWatchTable: a [[watch]] table changed in hupd.toml takes
// effect without a new generation: the new paths are watched, the old
// one no longer is; then its action changes, on the same path.
func TestReconfigWatchTable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := writeFile(t, dir, "a.conf", "a1\n")
	b := writeFile(t, dir, "b.conf", "b1\n")
	sent := writeFile(t, dir, "sentinel", "s0\n")
	args := []string{a, b, sent}
	w, conf := wtStartConf(t, t.TempDir(), wtTOML(args, wtHTTP, wtWatch("", wtDebounce, a)))
	w.startReport(1)

	wtWrite(t, conf, wtTOML(args, wtHTTP, wtWatch("", wtDebounce, b, sent)))
	rcApplied(w, 1, false, 0, 0)
	st := w.status()
	var paths [][]string
	for _, ws := range st.Watches {
		paths = append(paths, ws.Paths)
	}
	if len(paths) != 2 || !slices.Equal(paths[0], []string{conf}) || !slices.Equal(paths[1], []string{b, sent}) {
		t.Fatalf("status watches %q, want hupd.toml and [%s %s]", paths, b, sent)
	}

	wtWrite(t, a, "a2\n") // no longer watched
	wtWrite(t, b, "b2\n")
	w.changed(1, b)
	r := w.report(w.reloaded(1).Int("pid"))
	w.reads(r, a, "a2\n")
	w.reads(r, b, "b2\n")
	w.sentinel(sent, 1)

	// Same path, another action.
	wtWrite(t, conf, wtTOML(args, wtHTTP, wtWatch("signal:USR1", wtDebounce, b), wtWatch("", wtDebounce, sent)))
	rcApplied(w, 2, false, 0, 0)
	wtWrite(t, b, "b3\n")
	if e := w.changed(3, b); e.Str("action") != "signal:USR1" {
		t.Fatalf("%v: want action signal:USR1", e)
	}
	done := w.reloaded(3)
	if done.Str("strategy") != "signal" || done.Int("pid") != w.ChildPID(3) {
		t.Fatalf("%v: want a signal to gen 3", done)
	}
	if r := w.report(done.Int("pid")); r.Why != "USR1" || r.Files[b] != "b3\n" {
		t.Fatalf("gen 3 after USR1: %+v", r)
	}
	w.sentinel(sent, 3)
	w.stop()
}

// TestReconfigWatchTableAnnounced: watches that a hupd.toml edit starts
// are announced as those at start are: a "watching" line for each group
// whose paths are new (and, for a file that is a mount point of its own,
// the warning that goes with it).
func TestReconfigWatchTableAnnounced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := writeFile(t, dir, "a.conf", "a1\n")
	sent := writeFile(t, dir, "sentinel", "s0\n")
	args := []string{a, sent}
	w, conf := wtStartConf(t, t.TempDir(), wtTOML(args, wtHTTP, wtWatch("", wtDebounce, sent)))
	w.startReport(1)
	wtWrite(t, conf, wtTOML(args, wtHTTP, wtWatch("", wtDebounce, sent), wtWatch("restart", wtDebounce, a)))
	rcApplied(w, 1, false, 0, 0)
	w.sentinel(sent, 0) // whatever apply logs, it has logged by now
	if !slices.ContainsFunc(w.Events(logev.Watching), func(e Event) bool {
		return slices.Equal(wtStrings(e, "paths"), []string{a}) && e.Str("action") == "restart"
	}) {
		t.Errorf("no \"watching\" line for the [[watch]] table added to hupd.toml (paths [%s], action restart): %v", a, w.Events(logev.Watching))
	}
	w.stop()
}

// TestReconfigWatchHandover: a watched file that changes while a hupd.toml
// edit replaces the watches is not lost: the new watcher starts from the
// content last acted upon and reports the change, naming the file.
func TestReconfigWatchHandover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := writeFile(t, dir, "app.conf", "one\n")
	sent := writeFile(t, dir, "sentinel", "s0\n")
	args := []string{app, sent}
	// The long debounce holds app.conf's change in the first watcher
	// until the edit has replaced it.
	w, conf := wtStartConf(t, t.TempDir(), wtTOML(args, wtHTTP, wtWatch("", "10s", app), wtWatch("", wtDebounce, sent)))
	w.startReport(1)
	wtWrite(t, app, "two\n")
	wtWrite(t, conf, wtTOML(args, wtHTTP, wtWatch("", wtDebounce, app), wtWatch("", wtDebounce, sent)))
	rcApplied(w, 1, false, 0, 0)
	w.changed(1, app)
	w.reads(w.report(w.reloaded(1).Int("pid")), app, "two\n")
	w.sentinel(sent, 1)
	w.stop()
}

// rcActivated starts hupd as a service manager would a socket-activated
// one: one TCP socket passed as fd 3 (LISTEN_FDS=1, named web), and a
// hupd.toml without [[listen]] that runs the fdstore-exec child with -tag
// v1 and watches a sentinel file. It returns the hupd, the hupd.toml, the
// sentinel, the [[watch]] tables and the socket's address.
func rcActivated(t *testing.T) (w *wtHupd, conf, sent string, tables []string, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	f, err := l.(*net.TCPListener).File()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // hupd holds it once started
	sent = writeFile(t, t.TempDir(), "sentinel", "s0\n")
	tables = []string{wtWatch("", wtDebounce, sent)}
	conf = filepath.Join(t.TempDir(), "hupd.toml")
	wtWrite(t, conf, wtTOML([]string{"-tag", "v1", sent}, tables...))
	argv := childCmd("fdstore-exec", append([]string{hupdBin}, withJSONLog([]string{"run", "-c", conf})...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=web")
	cmd.ExtraFiles = []*os.File{f}
	h := StartHupdCmd(t, cmd)
	w = &wtHupd{Hupd: h, ctl: h.WaitEvent(logev.ControlSocket, 1, nil).Str("path"), reports: map[int][]WatchReport{}}
	return w, conf, sent, tables, addr
}

// TestReconfigReceivedSocketsEndWithListen: the sockets hupd was started
// with (LISTEN_FDS, no [[listen]]) are passed on only until an edit adds
// [[listen]]: once that applied, they are the configuration's business.
// An edit that removes [[listen]] again, and the next one, run without
// sockets; neither opens the received address itself (a service manager
// still holds it: it would be refused).
func TestReconfigReceivedSocketsEndWithListen(t *testing.T) {
	t.Parallel()
	w, conf, sent, tables, _ := rcActivated(t)
	w.startReport(1)

	// [[listen]] added: its socket opens, the received one is dropped.
	wtWrite(t, conf, wtTOML([]string{"-tag", "v2", sent}, append([]string{wtHTTP}, tables...)...))
	rcApplied(w, 1, true, 1, 1)
	w.reloaded(1)
	// Removed again, then another edit without it: no socket opens.
	wtWrite(t, conf, wtTOML([]string{"-tag", "v3", sent}, tables...))
	rcApplied(w, 2, true, 0, 1)
	w.waitFor("end of reload #2, well or not", func() bool { // (called with the lock held)
		n := 0
		for _, e := range w.events {
			if m := e.Msg(); m == logev.ReloadDone || m == logev.ReloadFailed {
				n++
			}
		}
		return n == 2
	})
	wtWrite(t, conf, wtTOML([]string{"-tag", "v4", sent}, tables...))
	rcApplied(w, 3, true, 0, 0)
	w.stop()
}

// TestReconfigKeepsActivatedSockets: a hupd started with sockets of its own
// (LISTEN_FDS, as systemd passes a .socket unit's) and no [[listen]] passes
// them on as received; an edit of hupd.toml that still has no [[listen]]
// keeps them, and the next generation gets them as the first did.
func TestReconfigKeepsActivatedSockets(t *testing.T) {
	t.Parallel()
	w, conf, sent, tables, addr := rcActivated(t)
	if r := w.startReport(1); r.ListenFDs != 1 || !slices.Equal(r.Names, []string{"web"}) {
		t.Fatalf("gen 1: %+v; want the activated socket", r)
	}

	wtWrite(t, conf, wtTOML([]string{"-tag", "v2", sent}, tables...))
	rcApplied(w, 1, true, 0, 0)
	pid2 := w.reloaded(1).Int("pid")
	if r := w.report(pid2); r.Tag != "v2" || r.ListenFDs != 1 || !slices.Equal(r.Names, []string{"web"}) {
		t.Fatalf("gen 2: %+v; want -tag v2 on the activated socket", r)
	}
	w.WaitEvent(logev.ChildExited, 1, swapGen(1)) // gen 1 no longer accepts on it
	if body := fetch(t, "tcp", addr, "/"); swapPID(body) != pid2 {
		t.Fatalf("%s answered %q, want pid %d", addr, body, pid2)
	}
	if st := w.status(); len(st.Listeners) != 1 || st.Listeners[0].Name != "web" || !st.Listeners[0].Inherited {
		t.Fatalf("status listeners %+v", st.Listeners)
	}
	w.sentinel(sent, 1)
	w.stop()
}

// realUID returns the real uid of pid from /proc.
func realUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

// TestReconfigUserEditKeepsNotify: a hupd.toml edit that sets [process]
// user (hupd started without one) starts a new generation as that user.
// That generation must be able to reach its NOTIFY_SOCKET: the notify
// sockets' directory was made private to hupd's own user when hupd
// started, so the new child could not send READY=1 and every reload
// failed.
func TestReconfigUserEditKeepsNotify(t *testing.T) {
	procNeedRoot(t)
	t.Parallel()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	tables := []string{wtHTTP, "[reload]\nready = \"notify\"\nready_timeout = \"10s\"\n"}
	w, conf := wtStartConf(t, t.TempDir(), wtTOML([]string{"-tag", "v1"}, tables...))
	w.startReport(1)

	wtWrite(t, conf, wtTOML([]string{"-tag", "v1"}, append(tables, "[process]\nuser = \"nobody\"\n")...))
	rcApplied(w, 1, true, 0, 0)
	pid := w.reloaded(1).Int("pid")
	if got := realUID(t, pid); got != uid {
		t.Fatalf("gen 2 runs as uid %d, want %d (nobody)", got, uid)
	}
	w.stop()
}

// TestReconfigReadinessEditDuringStart: readiness edited while a generation
// is starting must not declare it ready by a timer of the old readiness.
// With ready = "auto" and a child that speaks sd_notify, hupd waits for
// READY=1; the edit to ready = "notify" (wait for READY=1, too) made the
// 2 s timer of "auto" mark the new generation ready without READY=1, and
// the serving generation was stopped for it.
func TestReconfigReadinessEditDuringStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := "command = " + wtList(childCmd("sig-driven")) + "\n" + wtHTTP + "[reload]\nready_timeout = \"4s\"\n"
	conf := filepath.Join(dir, "hupd.toml")
	wtWrite(t, conf, base)
	h := StartHupd(t, "run", "-c", conf)
	control := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	p1 := drivenArmed(t, h, 1)
	killPID(t, p1, syscall.SIGUSR2) // READY=1: this child speaks sd_notify
	h.WaitEvent(logev.ChildReady, 1, swapGen(1))

	reply := ctlReload(control)
	drivenArmed(t, h, 2) // never sends READY=1
	wtWrite(t, conf, base+"ready = \"notify\"\n")
	if e := h.WaitEvent(logev.ConfigApplied, 1, nil); e["new_generation"] != false {
		t.Fatalf("%v: want the readiness applied in place", e)
	}
	res := ctlReloadResult(t, reply)
	if res.OK || !strings.Contains(res.Reason, "not ready within") {
		t.Fatalf("reload %+v: want it failed, generation 2 never sent READY=1", res)
	}
	if !processAlive(p1) {
		t.Fatalf("gen 1 (pid %d) was stopped for a generation that never said READY=1", p1)
	}
	h.Stop()
}

// TestReconfigReaddDroppedSocket: a [[listen]] removed by an edit whose new
// generation then failed is still held open for the generation that
// serves on it. Restoring the previous hupd.toml must keep that socket:
// hupd tried to bind the address again, failed with "address already in
// use", and refused every edit that lists it for as long as that
// generation serves.
func TestReconfigReaddDroppedSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(sockDir(t), "admin.sock")
	admin := wtListen("admin", "unix://"+sock)
	orig := wtTOML(nil, wtHTTP, admin)
	w, conf := wtStartConf(t, t.TempDir(), orig)
	pid1 := w.startReport(1).PID

	// Drop admin, and start a command that fails: the swap fails and
	// gen 1 serves on, on both sockets.
	wtWrite(t, conf, "command = "+wtList(childCmd("exit", "3"))+"\n"+wtHTTP)
	rcApplied(w, 1, true, 0, 1)
	if e := w.WaitEvent(logev.ReloadFailed, 1, nil); e.Int("old_pid") != pid1 {
		t.Fatalf("%v: want the swap from pid %d failed", e, pid1)
	}
	if body := fetch(t, "unix", sock, "/"); swapPID(body) != pid1 {
		t.Fatalf("admin answered %q, want pid %d", body, pid1)
	}

	// Back to the original: it is applied, on the socket gen 1 holds.
	wtWrite(t, conf, orig+"# restored\n")
	if e := w.WaitEvent(logev.ConfigApplied, 2, nil); e["new_generation"] != true || e.Int("sockets_opened") != 0 {
		t.Fatalf("%v: want a new generation and no socket opened", e)
	}
	pid3 := w.reloaded(2).Int("pid")
	if r := w.report(pid3); !slices.Equal(r.Names, []string{"http", "admin"}) {
		t.Fatalf("gen 3: %+v; want LISTEN_FDS=2 named http, admin", r)
	}
	w.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("pid") == pid1 })
	if body := fetch(t, "unix", sock, "/"); swapPID(body) != pid3 {
		t.Fatalf("admin answered %q, want pid %d", body, pid3)
	}
	w.status() // hupd has handled gen 1's exit, when it closes what no one uses
	w.Sync()
	if evs := w.Events(logev.SocketClosed); len(evs) != 0 {
		t.Fatalf("closed %v, a socket the configuration lists again", evs)
	}
	w.stop(sock)
}

// TestReconfigInPlaceEditAfterFailedSwap: after a new command's swap
// failed, the generation that serves on still runs the old command; an
// edit applied in place (a timeout) must not mark it as running the
// configuration in force. hupd status showed it serving the new content
// hash, as if it ran the new command.
func TestReconfigInPlaceEditAfterFailedSwap(t *testing.T) {
	t.Parallel()
	w, conf := wtStartConf(t, t.TempDir(), wtTOML(nil, wtHTTP))
	w.startReport(1)
	failing := "command = " + wtList(childCmd("exit", "3")) + "\n" + wtHTTP
	wtWrite(t, conf, failing)
	rcApplied(w, 1, true, 0, 0)
	w.WaitEvent(logev.ReloadFailed, 1, nil)
	if st := w.status(); st.ConfigHash == st.Hash {
		t.Fatalf("after the failed swap: serving %s, content %s; want them different", st.ConfigHash, st.Hash)
	}
	wtWrite(t, conf, failing+"[reload]\nready_timeout = \"30s\"\n")
	rcApplied(w, 2, false, 0, 0)
	if st := w.status(); st.ConfigHash == st.Hash || len(st.Generations) != 1 || st.Generations[0].Gen != 1 {
		t.Fatalf("status %+v: gen 1 runs the old command, yet shows the hash in force", st)
	}
	w.stop()
}
