package run

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
	"github.com/hupd/hupd/watch"
)

// TestDiffers: a program differs when what runs differs (its command's
// environment, a socket), not when only where it is written (lines added
// above it), its after, its on_exit or its watches change.
func TestDiffers(t *testing.T) {
	const base = `name = "fleet"

[[program]]
name = "app"
command = ["true"]
[[program.listen]]
address = "tcp://127.0.0.1:8080"

[[program]]
name = "web"
command = ["false"]
`
	resolve := func(src string) *config.ResolvedMulti {
		t.Helper()
		c, err := config.Parse("/etc/hupd.toml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.ResolveMulti()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	was := resolve(base)
	for _, tc := range []struct {
		what, src string
		differs   bool
	}{
		{"the same", base, false},
		{"lines above", "# a comment\n\n" + strings.Replace(base, `name = "web"`, "# web\nname = \"web\"", 1), false},
		{"after and on_exit", strings.Replace(base, "command = [\"true\"]\n", "command = [\"true\"]\nafter = [\"web\"]\non_exit = \"ignore\"\n", 1), false},
		{"a watch", strings.Replace(base, "command = [\"true\"]\n", "command = [\"true\"]\n[[program.watch]]\npaths = [\"/etc/app.conf\"]\n", 1), false},
		{"its env", strings.Replace(base, "[[program.listen]]", "[program.process]\nenv = { A = \"1\" }\n[[program.listen]]", 1), true},
		{"its socket", strings.Replace(base, "8080", "8081", 1), true},
		{"its command", strings.Replace(base, `["true"]`, `["true", "-v"]`, 1), true},
	} {
		if (tc.src == base) != (tc.what == "the same") {
			t.Fatalf("%s: the edit changed nothing", tc.what)
		}
		now := resolve(tc.src)
		if got := differs(was.Program("app"), now.Program("app")); got != tc.differs {
			t.Errorf("%s: app differs %v, want %v", tc.what, got, tc.differs)
		}
		if differs(was.Program("web"), now.Program("web")) {
			t.Errorf("%s: web differs", tc.what)
		}
	}
}

// TestReadConfigHashesWhatItParsed: an edit of hupd.toml written while the
// fleet resolves it (after its read) is not hashed with the version
// resolved: the hash recorded is that of the bytes parsed, so the next
// read sees the edit as a change (and applies it) instead of taking it
// for the version in force.
func TestReadConfigHashesWhatItParsed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hupd.toml")
	first, edited := []byte("name = \"first\"\n"), []byte("name = \"edited\"\n")
	if err := os.WriteFile(path, first, 0o644); err != nil {
		t.Fatal(err)
	}
	var parsed [][]byte
	f := &fleet{cur: &config.ResolvedMulti{ConfigFile: path}}
	f.load = func() (*config.ResolvedMulti, error) { t.Fatal("load called: parse is set"); return nil, nil }
	f.parse = func(data []byte) (*config.ResolvedMulti, error) {
		parsed = append(parsed, data)
		if len(parsed) == 1 {
			// The edit lands while the first version is resolved.
			if err := os.WriteFile(path, edited, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return &config.ResolvedMulti{Name: string(data)}, nil
	}
	h, data, next, err := f.readConfig()
	if err != nil || next.Name != string(first) || string(data) != string(first) {
		t.Fatalf("first read: %v, %+v", err, next)
	}
	if h != watch.HashData(path, first) || h == watch.Hash([]string{path}) {
		t.Fatalf("hash %s is not the first version's %s (the file's is now %s)", h, watch.HashData(path, first), watch.Hash([]string{path}))
	}
	h2, data, next, err := f.readConfig()
	if err != nil || next.Name != string(edited) || string(data) != string(edited) || h2 == h || h2 != watch.Hash([]string{path}) {
		t.Fatalf("second read: hash %s (first %s), %v, %+v", h2, h, err, next)
	}

	// A file that cannot be read: its error, named by the path.
	os.Remove(path)
	if _, data, _, err := f.readConfig(); err == nil || data != nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestWatchRetargetOnFailure: when no new watcher can start after an edit
// (an inotify limit), the old watcher's groups follow the programs as they
// are now: a group a replaced program still wants points at its
// replacement (the old one pointed at the ended program, and the new one's
// files were watched for nobody), one whose program was removed or that
// no program wants alike is dropped, and the error names what is not
// watched. The next edit tries again, and a watcher that starts takes
// every group.
func TestWatchRetargetOnFailure(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf"), filepath.Join(dir, "c.conf")
	ws := func(paths ...string) []config.WatchSpec {
		return []config.WatchSpec{{Paths: paths, Action: supervisor.ActionReload}}
	}
	f := &fleet{log: slog.New(slog.DiscardHandler)}
	prog := func(name string, w []config.WatchSpec) *program {
		return &program{name: name, spec: &config.ProgramSpec{Name: name, Watch: w}, log: f.log}
	}
	web, gone, app := prog("web", ws(a)), prog("gone", ws(b)), prog("app", ws(c))
	f.progs = []*program{web, gone, app}
	if err := f.watch(); err != nil {
		t.Fatal(err)
	}
	defer func() { f.w.Close() }()
	old := f.w

	// web replaced (a new program), gone removed, app's watch edited,
	// and the new watcher cannot start.
	web2, app2 := prog("web", ws(a)), prog("app", ws(c, b))
	f.progs = []*program{web2, app2}
	limit := errors.New("inotify limit")
	f.newWatcher = func([]watch.Group) (*watch.Watcher, error) { return nil, limit }
	err := f.watch()
	if !errors.Is(err, limit) || !strings.Contains(err.Error(), "app: "+c+", "+b) || strings.Contains(err.Error(), "web") {
		t.Fatalf("watch: %v", err)
	}
	if f.w != old || len(f.watches) != 3 || f.watches[0].prog != web2 || f.watches[1].prog != nil || f.watches[2].prog != nil {
		t.Fatalf("after the failure: %+v", f.watches)
	}
	// An event of a dropped group acts on nothing.
	f.onWatch(watch.Event{Group: 1, Hash: "x"})

	// The next edit tries again.
	f.newWatcher = nil
	if err := f.watch(); err != nil {
		t.Fatal(err)
	}
	if f.w == old || len(f.watches) != 2 || f.watches[0].prog != web2 || f.watches[1].prog != app2 {
		t.Fatalf("after the retry: %+v", f.watches)
	}
}

// TestReconfReadConfigHashesWhatItParsed: the single program's reread
// hashes the bytes it resolved too (TestReadConfigHashesWhatItParsed).
func TestReconfReadConfigHashesWhatItParsed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hupd.toml")
	first, edited := []byte("name = \"first\"\n"), []byte("name = \"edited\"\n")
	if err := os.WriteFile(path, first, 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	rc := &reconf{cur: &config.Resolved{ConfigFile: path}}
	rc.load = func() (*config.Resolved, error) { t.Fatal("load called: parse is set"); return nil, nil }
	rc.parse = func(data []byte) (*config.Resolved, error) {
		if n++; n == 1 {
			if err := os.WriteFile(path, edited, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return &config.Resolved{LogFormat: string(data)}, nil
	}
	h, data, next, err := rc.readConfig()
	if err != nil || next.LogFormat != string(first) || string(data) != string(first) || h != watch.HashData(path, first) || h == watch.Hash([]string{path}) {
		t.Fatalf("first read: hash %s, %v, %+v", h, err, next)
	}
	if h2, data, next, err := rc.readConfig(); err != nil || next.LogFormat != string(edited) || string(data) != string(edited) || h2 == h {
		t.Fatalf("second read: hash %s (first %s), %v, %+v", h2, h, err, next)
	}
}

// TestNewReconfHashesWhatWasParsed: the single program's first hash is
// that of the bytes hupd run resolved (Setup.ConfigHash), not of hupd.toml
// as on disk when Run starts: an edit written in between is a change for
// the next reread (before, it was taken for the version in force, and
// hupd reload reloaded nothing).
func TestNewReconfHashesWhatWasParsed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hupd.toml")
	first, edited := []byte("name = \"first\"\n"), []byte("name = \"edited\"\n")
	// hupd run read first; the edit landed before Run.
	if err := os.WriteFile(path, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := newReconf(&config.Resolved{ConfigFile: path}, nil, watch.HashData(path, first), first, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rc.w != nil {
		t.Cleanup(func() { rc.w.Close() })
	}
	if rc.cfgHash != watch.HashData(path, first) || rc.applied != rc.cfgHash || string(rc.inForceData()) != string(first) {
		t.Fatalf("first hash %s, applied %s (%q), want the first version's %s", rc.cfgHash, rc.applied, rc.inForceData(), watch.HashData(path, first))
	}
	rc.parse = func(data []byte) (*config.Resolved, error) { return &config.Resolved{LogFormat: string(data)}, nil }
	if h, _, next, err := rc.readConfig(); err != nil || h == rc.cfgHash || next.LogFormat != string(edited) {
		t.Fatalf("the reread after the edit: hash %s (first %s), %v, %+v", h, rc.cfgHash, err, next)
	}

	// Without a hash: hupd.toml as on disk.
	rc, err = newReconf(&config.Resolved{ConfigFile: path}, nil, "", nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rc.w != nil {
		t.Cleanup(func() { rc.w.Close() })
	}
	if rc.cfgHash != watch.Hash([]string{path}) || rc.inForceData() != nil {
		t.Fatalf("hash without one given: %s (%q), want the file's %s and no bytes", rc.cfgHash, rc.inForceData(), watch.Hash([]string{path}))
	}
}

// TestWatchFailsAtStart: when the first watcher cannot start, the error is
// the watcher's, and says nothing of a later edit of hupd.toml: hupd exits
// 1 then (it said the files were "not watched until an edit of hupd.toml
// starts a new watcher").
func TestWatchFailsAtStart(t *testing.T) {
	f := &fleet{log: slog.New(slog.DiscardHandler)}
	path := filepath.Join(t.TempDir(), "a.conf")
	f.progs = []*program{{name: "web", log: f.log, spec: &config.ProgramSpec{Name: "web", Watch: []config.WatchSpec{{Paths: []string{path}, Action: supervisor.ActionReload}}}}}
	limit := errors.New("inotify limit")
	f.newWatcher = func([]watch.Group) (*watch.Watcher, error) { return nil, limit }
	if err := f.watch(); !errors.Is(err, limit) || err.Error() != limit.Error() || f.w != nil {
		t.Fatalf("watch at start: %v, watcher %v", err, f.w)
	}
}

// TestReleaseOffTheLoop: a removed program's cgroup is closed off the
// fleet's loop (closing waits up to contain's stale wait per cgroup, and
// every signal, reload and plan waited meanwhile): release returns while
// the Close goes on, the program stays in gone until the loop hears of
// its end, so that a namesake is refused meanwhile, and only then is its
// release logged (with the Close's error, if any).
func TestReleaseOffTheLoop(t *testing.T) {
	var logs strings.Builder
	f := &fleet{log: slog.New(slog.NewTextHandler(&logs, nil)), releasedc: make(chan programReleased)}
	p := &program{name: "extra", log: f.log, cg: contain.Restore(contain.State{Base: t.TempDir(), Child: true}), removed: true}
	p.state.Store(progEnded)
	closing, unblock := make(chan *contain.Manager, 1), make(chan struct{})
	left := errors.New("busy")
	f.closeCgroup = func(m *contain.Manager) error {
		closing <- m
		<-unblock
		return left
	}
	defer close(unblock) // on a failure: the goroutine ends
	cg := p.cg
	returned := make(chan struct{})
	go func() {
		f.release(p)
		close(returned)
	}()
	deadline := time.After(10 * time.Second)
	for n := 0; n < 2; n++ {
		select {
		case m := <-closing:
			if m != cg {
				t.Fatalf("closed %p, want the program's cgroup %p", m, cg)
			}
		case <-returned:
		case <-deadline:
			t.Fatal("release waits for the cgroup's Close (on the fleet's loop)")
		}
	}
	if !slices.Contains(f.gone, p) || p.cg != nil || strings.Contains(logs.String(), logev.ProgramReleased) {
		t.Fatalf("while its cgroup closes: gone %v, cg %v, logs %q", f.gone, p.cg, logs.String())
	}
	_, err := f.planProgram(t.Context(), &config.ProgramSpec{Name: "extra"})
	if !errors.Is(err, errProgramReleasing) || err.Error() != `: program "extra" was removed and has ended; its cgroup is being removed: apply hupd.toml again in a moment` {
		t.Fatalf("a namesake while it is released: %v, want %v", err, errProgramReleasing)
	}
	p.state.Store(progRunning) // as it was while it stopped
	_, err = f.planProgram(t.Context(), &config.ProgramSpec{Name: "extra"})
	if !errors.Is(err, errProgramStopping) || err.Error() != `: program "extra" is still stopping after its removal: apply hupd.toml again once it ended` {
		t.Fatalf("a namesake while it stops: %v, want %v", err, errProgramStopping)
	}
	p.state.Store(progEnded)
	unblock <- struct{}{}
	select {
	case r := <-f.releasedc:
		f.released(r)
	case <-deadline:
		t.Fatal("no end of the release")
	}
	if len(f.gone) != 0 || !strings.Contains(logs.String(), logev.CgroupsLeftBehind) || !strings.Contains(logs.String(), logev.ProgramReleased) {
		t.Fatalf("after its release: gone %v, logs %q", f.gone, logs.String())
	}
}

// TestPlanRefusedWhileStopping: while hupd stops, hupd plan is refused as
// an edit is (errFleetStopping): hupd.toml is not even read (it planned
// against programs that were stopping).
func TestPlanRefusedWhileStopping(t *testing.T) {
	f := &fleet{stopping: true, cur: &config.ResolvedMulti{}}
	f.load = func() (*config.ResolvedMulti, error) { t.Fatal("hupd.toml read while hupd stops"); return nil, nil }
	if _, err := f.planData(t.Context(), nil); !errors.Is(err, errFleetStopping) {
		t.Fatalf("plan while stopping: %v, want %v", err, errFleetStopping)
	}
}

// TestReleaseWithoutCgroupAtOnce: a removed program without a cgroup of
// its own (none, or the fallback) has nothing to close: it is released at
// once, on the loop, so that a namesake may be added right away (it waited
// in gone for the loop to hear of a release that did nothing).
func TestReleaseWithoutCgroupAtOnce(t *testing.T) {
	for _, cg := range []*contain.Manager{nil, contain.Off("test")} {
		var logs strings.Builder
		f := &fleet{log: slog.New(slog.NewTextHandler(&logs, nil)), releasedc: make(chan programReleased, 1)}
		f.closeCgroup = func(*contain.Manager) error { t.Error("a cgroup closed that there is not"); return nil }
		p := &program{name: "extra", log: f.log, cg: cg, removed: true}
		f.gone = []*program{p} // removed while it ran, now ended
		f.release(p)
		if len(f.gone) != 0 || len(f.releasedc) != 0 || !strings.Contains(logs.String(), logev.ProgramReleased) {
			t.Fatalf("cgroup %v: gone %v, %d releases for the loop, logs %q", cg, f.gone, len(f.releasedc), logs.String())
		}
		if _, err := f.planProgram(t.Context(), &config.ProgramSpec{Name: "extra"}); err != nil {
			t.Fatalf("cgroup %v: a namesake: %v", cg, err)
		}
	}
}

// TestReconfTakesEndedRelease: a request that reaches the loop while a
// removed program's release has ended but its end is not taken yet (the
// loop's select picks at random among ready cases) takes that end first:
// a namesake is not refused as "still stopping", long after it ended.
func TestReconfTakesEndedRelease(t *testing.T) {
	var logs strings.Builder
	next := &config.ResolvedMulti{Programs: []config.ProgramSpec{{Name: "extra"}}}
	f := &fleet{log: slog.New(slog.NewTextHandler(&logs, nil)), releasedc: make(chan programReleased, 1), cur: &config.ResolvedMulti{},
		load: func() (*config.ResolvedMulti, error) { return next, nil }, parse: func([]byte) (*config.ResolvedMulti, error) { return next, nil }}
	p := &program{name: "extra", log: f.log, removed: true}
	p.state.Store(progEnded)
	f.gone = []*program{p}
	f.releasedc <- programReleased{p: p} // its Close returned; the loop has not taken it
	reply := f.onReconf(reconfRequest{plan: true, ctx: t.Context(), data: []byte("edited")})
	if reply.err != nil || len(reply.plan.Programs) != 1 || reply.plan.Programs[0].Name != "extra" {
		t.Fatalf("plan adding a namesake of a released program: %+v, %v", reply.plan, reply.err)
	}
	if len(f.gone) != 0 || !strings.Contains(logs.String(), logev.ProgramReleased) {
		t.Fatalf("gone %v, logs %q", f.gone, logs.String())
	}
}

// TestPlanProgramStopping: a running program whose supervisor no longer
// plans (it is stopping, which lasts up to its stop timeout, or has just
// ended) refuses a plan saying so, for its removal and for a change
// (it said "it has just ended" while it could still be stopping).
func TestPlanProgramStopping(t *testing.T) {
	f := upgradeFleet("web")
	web := f.progs[0]
	web.spec.Options.Path, web.spec.Options.Args = "/bin/true", []string{"true"}
	sup, err := supervisor.New(supervisor.Options{Path: "/bin/true", Args: []string{"true"}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sup.Ended() // its Run has returned: it plans no more
	web.sup = sup
	const want = "program web is stopping: plan again once it has ended"
	if _, err := f.planRemoval(t.Context(), web); !errors.Is(err, errPlanStopping) || err.Error() != want {
		t.Fatalf("its removal planned: %v, want %q", err, want)
	}
	changed := *web.spec
	changed.Options.Args = []string{"true", "-v"}
	if _, err := f.planProgram(t.Context(), &changed); !errors.Is(err, errPlanStopping) || err.Error() != want {
		t.Fatalf("its change planned: %v, want %q", err, want)
	}
}
