package run

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/supervisor"
	"github.com/hupd/hupd/watch"
)

// upgradeFleet is a fleet of programs named names, in that state each
// (progRunning unless set), for the upgrade's unit tests.
func upgradeFleet(names ...string) *fleet {
	f := &fleet{cur: &config.ResolvedMulti{ConfigFile: "h.toml"}, log: slog.New(slog.DiscardHandler)}
	for _, n := range names {
		spec := &config.ProgramSpec{Name: n}
		p := f.newProgram(spec)
		p.state.Store(progRunning)
		p.ran.Store(true)
		f.progs = append(f.progs, p)
	}
	return f
}

// TestFleetUpgradable: each state in which an upgrade is refused says why
// in one line, naming the program.
func TestFleetUpgradable(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(f *fleet)
		want string
	}{
		{"running", func(*fleet) {}, ""},
		{"one ended", func(f *fleet) { f.progs[0].state.Store(progEnded) }, ""},
		{"stopping", func(f *fleet) { f.stopping = true }, "hupd is stopping"},
		{"removed, stopping", func(f *fleet) { f.gone = []*program{f.progs[1]} }, "program web, removed from hupd.toml, is still stopping: try again once it has ended"},
		{"removed, ended, its cgroup closing", func(f *fleet) { f.progs[1].state.Store(progEnded); f.gone = []*program{f.progs[1]} },
			"program web, removed from hupd.toml, has ended and its cgroup is being removed: try again in a moment"},
		{"edit refused", func(f *fleet) { f.cfgErr = "bad" }, "h.toml's last edit was refused: fix it (hupd reload applies it) or undo it, then upgrade"},
		{"waiting", func(f *fleet) { f.progs[1].state.Store(progWaiting); f.progs[1].spec.After = []string{"app", "db"} },
			"program web waits for app, db to be ready: try again once it runs"},
		{"none runs", func(f *fleet) { f.progs[0].state.Store(progEnded); f.progs[1].state.Store(progEnded) }, "no program runs"},
		{"hupd reload answering", func(f *fleet) { f.reloads.Add(1) }, "a reload is in progress: try again when it is over"},
		{"SIGHUP handed out", func(f *fleet) { f.sd = &fleetSystemd{progs: map[*program]*sdProgram{}, held: true} },
			"a reload is in progress: try again when it is over"},
		{"reload expected", func(f *fleet) {
			f.sd = &fleetSystemd{progs: map[*program]*sdProgram{}}
			f.sd.prog(f.progs[1]).expected = true
		}, "a reload is in progress: try again when it is over"},
		{"READY=1 not said", func(f *fleet) { f.sd = &fleetSystemd{progs: map[*program]*sdProgram{}, reloading: true} },
			"a reload is in progress: try again when it is over"},
		{"under a manager, no reload", func(f *fleet) { f.sd = &fleetSystemd{progs: map[*program]*sdProgram{}, ready: true} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := upgradeFleet("app", "web")
			tc.edit(f)
			got := ""
			if err := f.upgradable(); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("upgradable: %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFleetUpgradeStateRoundTrip: what the fleet hands over of itself
// (program ids, ended/ran/ready, sentinel registrations, watch hashes,
// exit codes, hupd.toml's hash) comes back in the new image through JSON:
// the sentinel keys map each (program, key) to the same registration and
// the next one given is past them; the watch groups start from their
// hashes.
func TestFleetUpgradeStateRoundTrip(t *testing.T) {
	f := upgradeFleet("app", "web", "once")
	app, web, once := f.progs[0], f.progs[1], f.progs[2]
	app.ready, web.ready = true, true
	once.state.Store(progEnded)
	f.code, f.ignoredCode, f.cfgHash = 0, 3, "cafe"
	f.keys = &sentinelKeys{ids: map[[2]int]int{{app.id, 1}: 1, {web.id, 1}: 2, {app.id, 2}: 4}, next: 4}
	wa, wb := config.WatchSpec{Paths: []string{"/a"}}, config.WatchSpec{Paths: []string{"/b"}}
	f.watches = []fleetWatch{{prog: web, spec: wa, hash: "h1"}, {prog: web, spec: wb, hash: "h2"}}
	fl := f.upgradeState()
	fl.Programs[0].Part = &supervisor.Upgrade{Upgrades: 1}
	fl.Programs[1].Part = &supervisor.Upgrade{Upgrades: 1}
	data, err := json.Marshal(supervisor.FleetUpgradeState(nil, nil, fl))
	if err != nil {
		t.Fatal(err)
	}
	var up supervisor.Upgrade
	if err := json.Unmarshal(data, &up); err != nil {
		t.Fatal(err)
	}

	m := &config.ResolvedMulti{ConfigFile: "h.toml", Programs: []config.ProgramSpec{
		{Name: "web", Watch: []config.WatchSpec{wa, wb}}, {Name: "app"}, {Name: "once"}}}
	tk, err := newTakeOver(&up, m)
	if err != nil {
		t.Fatal(err)
	}
	g := &fleet{cur: m, log: f.log}
	for i := range m.Programs {
		spec := &m.Programs[i]
		p := g.newProgram(spec)
		p.id = tk.state(spec.Name).ID
		g.progs = append(g.progs, p)
	}
	keys := &sentinelKeys{ids: map[[2]int]int{}}
	tk.sentinelKeys(keys)
	if !maps.Equal(keys.ids, f.keys.ids) || keys.next != 4 {
		t.Fatalf("sentinel keys %v next %d, want %v next 4", keys.ids, keys.next, f.keys.ids)
	}
	if id, _ := keys.id(app.id, 3, true); id != 5 {
		t.Fatalf("the next registration is %d, want 5", id)
	}
	tk.watches(g)
	if len(g.watches) != 2 || g.watches[0].hash != "h1" || g.watches[1].hash != "h2" || g.watches[0].prog.name != "web" {
		t.Fatalf("watches %+v", g.watches)
	}
	for _, tc := range []struct {
		name             string
		ended, ran, part bool
		ready            bool
	}{{"app", false, true, true, true}, {"web", false, true, true, true}, {"once", true, true, false, false}} {
		ps := tk.state(tc.name)
		if ps.Ended != tc.ended || ps.Ran != tc.ran || (ps.Part != nil) != tc.part || ps.Ready != tc.ready {
			t.Fatalf("%s: %+v", tc.name, ps)
		}
	}
	if tk.fl.ConfigHash != "cafe" || tk.fl.IgnoredCode != 3 || tk.fl.NextID != 3 || up.Upgrades != 0 {
		t.Fatalf("fleet state %+v", tk.fl)
	}
}

// TestFleetTakeOverRefusals: the new image goes back when the state is a
// single program's, or its programs are not those of hupd.toml on disk.
func TestFleetTakeOverRefusals(t *testing.T) {
	m := &config.ResolvedMulti{Programs: []config.ProgramSpec{{Name: "app"}, {Name: "web"}}}
	if _, err := newTakeOver(&supervisor.Upgrade{}, m); err == nil ||
		err.Error() != "the previous image ran one program; hupd.toml on disk has several ([[program]]): restart hupd to run them" {
		t.Fatalf("a single program's state: %v", err)
	}
	up := &supervisor.Upgrade{Fleet: &supervisor.FleetState{Programs: []supervisor.ProgramState{{Name: "app"}, {Name: "db"}}}}
	if _, err := newTakeOver(up, m); err == nil || err.Error() != "the previous image ran the programs app, db; hupd.toml on disk has app, web" {
		t.Fatalf("other programs: %v", err)
	}
}

// TestProgramUpgradeRefused: an upgrade asked of one program (the control
// server refuses it before) is refused: it is hupd's, every program's.
func TestProgramUpgradeRefused(t *testing.T) {
	if err := (programHandler{}).Upgrade(context.Background(), ""); !errors.Is(err, errUpgradeProgram) {
		t.Fatalf("upgrade of one program: %v", err)
	}
}

// TestFleetUpgradeWaitsForTrigger: a change of watched files handed to a
// program's supervisor (onWatch) and not taken by it yet refuses an
// upgrade: the exec would hand the new hash over and the change would
// never be acted on. Once the supervisor took it (here: it ended), the
// upgrade may go.
func TestFleetUpgradeWaitsForTrigger(t *testing.T) {
	f := upgradeFleet("app", "web")
	web := f.progs[1]
	sup, err := supervisor.New(supervisor.Options{Path: "/bin/true", Args: []string{"true"}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	web.sup = sup // never runs: its Trigger waits until it ended
	f.watches = []fleetWatch{{prog: web, spec: config.WatchSpec{Paths: []string{"/etc/web"}}, hash: "h1"}}
	f.onWatch(watch.Event{Group: 0, Hash: "h2", Changed: []string{"/etc/web/a"}})
	if err := f.upgradable(); err == nil || err.Error() != "a change of watched files is being handed to its program: try again" {
		t.Fatalf("upgradable with a change not taken: %v", err)
	}
	sup.Ended()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for f.upgradable() != nil {
		if ctx.Err() != nil {
			t.Fatalf("upgradable once the change was taken: %v", f.upgradable())
		}
		runtime.Gosched()
	}
}

// TestFleetUpgradeCheckedAgainBeforeExec: right before the exec, once
// every program is frozen (the loop held meanwhile), a signal waiting for
// the loop or an edit of hupd.toml saved since the check refuses the
// upgrade, nothing executed: the signal would die with the exec (a
// SIGTERM upgrading hupd instead of stopping it), and the new image would
// take the edit as the version in force, never applied; so does a hupd
// reload taken meanwhile (its answer would be cut).
func TestFleetUpgradeCheckedAgainBeforeExec(t *testing.T) {
	for _, tc := range []struct {
		name         string
		signals      int
		edit, reload bool
		want         string
	}{
		{"nothing meanwhile", 0, false, false, ""},
		{"a signal meanwhile", 1, false, false, "a signal arrived meanwhile: try again"},
		{"an edit meanwhile", 0, true, false, " is not the version in force (edited since): apply it with hupd reload, or undo the edit, then upgrade"},
		{"a hupd reload taken meanwhile", 0, false, true, "a reload is in progress: try again when it is over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hupd.toml")
			if err := os.WriteFile(path, []byte("# in force\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			f := upgradeFleet("app")
			f.cur.ConfigFile, f.cfgHash = path, watch.Hash([]string{path})
			f.progs[0].state.Store(progEnded) // nothing to freeze here
			var execd *supervisor.Upgrade
			f.execFleet = func(st *supervisor.Upgrade, _ string, _ *os.File, _ []*supervisor.Frozen) error {
				execd = st
				return errors.New("exec")
			}
			calls := 0
			pending := func() int {
				calls++
				if tc.edit {
					if err := os.WriteFile(path, []byte("# edited\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if tc.reload {
					f.reloads.Store(1)
				}
				return tc.signals
			}
			err := f.execUpgrade("hupd", nil, pending)
			if calls == 0 {
				t.Fatal("pending signals not checked")
			}
			if tc.want == "" {
				if execd == nil || execd.Fleet.ConfigHash != f.cfgHash {
					t.Fatalf("not executed (%v), or with another hupd.toml's hash: %+v", err, execd)
				}
				return
			}
			if execd != nil || err == nil || !strings.HasSuffix(err.Error(), tc.want) {
				t.Fatalf("executed: %v, error %v, want %q", execd != nil, err, tc.want)
			}
		})
	}
}

// TestFleetTakeOverEdited: a new image that read hupd.toml edited after
// the previous image's last check (its hash is not the state's) takes
// that file as in force and reloads every running program taken over,
// which it built from it: the edit is applied, not only recorded. A file
// as handed over (or no hash known) reloads nothing.
func TestFleetTakeOverEdited(t *testing.T) {
	for _, tc := range []struct {
		name, hash, want string
		edited           bool
	}{
		{"edited", "E", "E", true},
		{"as handed over", "C", "C", false},
		{"no hash", "", "C", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &config.ResolvedMulti{ConfigFile: "h.toml", Programs: []config.ProgramSpec{{Name: "app"}, {Name: "once"}}}
			up := &supervisor.Upgrade{Fleet: &supervisor.FleetState{ConfigHash: "C", Programs: []supervisor.ProgramState{
				{Name: "app", ID: 1}, {Name: "once", ID: 2, Ended: true}}}}
			tk, err := newTakeOver(up, m)
			if err != nil {
				t.Fatal(err)
			}
			f := &fleet{cur: m, log: slog.New(slog.DiscardHandler), cfgHash: tc.hash} // as RunMulti read it
			if err := tk.sockets(f, m); err != nil {
				t.Fatal(err)
			}
			if f.cfgHash != tc.want || tk.edited != tc.edited {
				t.Fatalf("hupd.toml in force %q, edited %v; want %q, %v", f.cfgHash, tk.edited, tc.want, tc.edited)
			}
			app := f.progs[0]
			app.sup, err = supervisor.New(supervisor.Options{Path: "/bin/true", Args: []string{"true"}}, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			app.resumed = true // as resume makes a running one
			tk.applyEdited(f)  // a state without hupd.toml's bytes: reloadEdited
			want := int32(0)
			if tc.edited {
				want = 1 // app's reload, waiting for its supervisor to take it
			}
			if n := f.triggers.Load(); n != want {
				t.Fatalf("%d reloads asked for, want %d", n, want)
			}
			app.sup.Ended()
		})
	}
}

// TestFleetTakeOverCgroupIsChild: a program's cgroup handed over by an
// image that did not yet say "child" (contain.State.Child) is taken over
// as a program's (its Close removes its prog-NAME and never moves hupd),
// not as hupd's base; one in the fallback stays in it.
func TestFleetTakeOverCgroupIsChild(t *testing.T) {
	// As the older image wrote it: no "child".
	const old = `{"fleet":{"programs":[` +
		`{"name":"app","part":{"cgroup":{"mount":"/sys/fs/cgroup","base":"/sys/fs/cgroup/hupd/prog-app","start":"/sys/fs/cgroup/hupd","owned":true}}},` +
		`{"name":"web","part":{"cgroup":{"reason":"no cgroup v2"}}},` +
		`{"name":"once"}]}}`
	var up supervisor.Upgrade
	if err := json.Unmarshal([]byte(old), &up); err != nil {
		t.Fatal(err)
	}
	m := &config.ResolvedMulti{Programs: []config.ProgramSpec{{Name: "app"}, {Name: "web"}, {Name: "once"}}}
	tk, err := newTakeOver(&up, m)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{cur: m, log: slog.New(slog.DiscardHandler)}
	app, web, once := f.newProgram(&m.Programs[0]), f.newProgram(&m.Programs[1]), f.newProgram(&m.Programs[2])
	cg := tk.cgroup(app)
	if cg == nil || !cg.Enabled() || !cg.State().Child || cg.Base() != "/sys/fs/cgroup/hupd/prog-app" {
		t.Fatalf("app's cgroup %+v, want the program's child manager", cg.State())
	}
	if cg := tk.cgroup(web); cg == nil || cg.Enabled() || cg.State().Child || cg.State().Reason != "no cgroup v2" {
		t.Fatalf("web's cgroup %+v, want the fallback", cg.State())
	}
	if cg := tk.cgroup(once); cg != nil {
		t.Fatalf("once, ended, has a cgroup %+v", cg.State())
	}
}
