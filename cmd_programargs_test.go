package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
)

// fakeFleet is a hupd of several programs ("web" and "api") that records
// the program names of each reload and status request.
type fakeFleet struct {
	mu    sync.Mutex
	asked [][]string
}

func (f *fakeFleet) Status() supervisor.Status                      { return supervisor.Status{Name: "fleet"} }
func (f *fakeFleet) Reload(context.Context) supervisor.ReloadResult { return supervisor.ReloadResult{} }
func (f *fakeFleet) Upgrade(context.Context, string) error          { return control.ErrSeveralPrograms }
func (f *fakeFleet) Program(string) (control.Handler, error)        { return nil, errors.New("not here") }

func (f *fakeFleet) record(names []string) []control.ProgramReply {
	f.mu.Lock()
	f.asked = append(f.asked, names)
	f.mu.Unlock()
	if len(names) == 0 {
		names = []string{"web", "api"}
	}
	var out []control.ProgramReply
	for _, n := range names {
		out = append(out, control.ProgramReply{Name: n, State: control.ProgramRunning})
	}
	return out
}

func (f *fakeFleet) ReloadPrograms(_ context.Context, names []string) ([]control.ProgramReply, error) {
	out := f.record(names)
	for i := range out {
		now := time.Now()
		out[i].Reload = &supervisor.ReloadResult{OK: true, Strategy: supervisor.StrategySwap, NewGen: 2, NewPID: 20, Started: now, Finished: now}
	}
	return out, nil
}

func (f *fakeFleet) StatusPrograms(names []string) ([]control.ProgramReply, error) {
	return f.record(names), nil
}

func (f *fakeFleet) last() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.asked) == 0 {
		return []string{"(none asked)"}
	}
	return f.asked[len(f.asked)-1]
}

// TestProgramNamesThenFlags: hupd reload and hupd status take their flags
// after the program names too ("hupd reload web -q" took "-q" for a
// program), value flags with their value (--name fleet finds the hupd),
// an alias too (-c FILE finds the hupd FILE names, not another one), "--"
// ends the flags before or after the first name (a name may then start
// with "-"), and an unknown flag after a name is a usage error.
func TestProgramNamesThenFlags(t *testing.T) {
	controlDir(t)
	f, other := &fakeFleet{}, &fakeFleet{}
	for name, h := range map[string]*fakeFleet{"fleet": f, "other": other} {
		s, err := control.Listen(control.DefaultPath(name), h, nil)
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve()
		t.Cleanup(func() { s.Close() })
	}
	cfg := filepath.Join(t.TempDir(), "hupd.toml")
	if err := os.WriteFile(cfg, []byte("name = \"fleet\"\ncommand = [\"sh\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		args  []string
		names []string
		out   string // a part of stdout
	}{
		{[]string{"reload", "web", "-q", "--name", "fleet"}, []string{"web"}, "web: reload ok (swap): gen 0 pid 0 -> gen 2 pid 20"},
		{[]string{"reload", "web", "--name=fleet", "api", "--json"}, []string{"web", "api"}, `{"programs":[{"name":"web"`},
		{[]string{"reload", "--name", "fleet", "-q", "web", "--timeout", "1m", "api"}, []string{"web", "api"}, "api: reload ok"},
		{[]string{"reload", "--name", "fleet", "-q", "--", "-odd"}, []string{"-odd"}, "-odd: reload ok"},
		{[]string{"reload", "--name", "fleet", "web", "--", "-q"}, []string{"web", "-q"}, "-q: reload ok"},
		{[]string{"reload", "--name", "fleet", "--", "web", "--json"}, []string{"web", "--json"}, "--json: reload ok"},
		{[]string{"reload", "--name", "fleet", "--", "web", "-q"}, []string{"web", "-q"}, "-q: reload ok"},
		{[]string{"reload", "web", "-c", cfg}, []string{"web"}, "web: reload ok"},
		{[]string{"reload", "api", "-q", "-c=" + cfg}, []string{"api"}, "api: reload ok"},
		{[]string{"status", "web", "-c", cfg}, []string{"web"}, "web"},
		{[]string{"status", "api", "--name", "fleet", "--json"}, []string{"api"}, `"name": "api"`},
	} {
		code, out, errOut := runApp(t, tc.args...)
		if code != 0 || !strings.Contains(out, tc.out) || !slices.Equal(f.last(), tc.names) {
			t.Errorf("hupd %s: exit %d, names %q (want %q), stdout %q, stderr %q", strings.Join(tc.args, " "), code, f.last(), tc.names, out, errOut)
		}
		if tc.args[0] == "reload" && slices.Contains(tc.args[:len(tc.args)-1], "-q") && !slices.Contains(tc.args, "--") && errOut != "" {
			t.Errorf("hupd %s: -q after a name, yet progress on stderr: %q", strings.Join(tc.args, " "), errOut)
		}
	}
	if other.mu.Lock(); len(other.asked) > 0 {
		t.Errorf("the other hupd was asked: %q", other.asked)
	}
	other.mu.Unlock()
	if code, _, errOut := runApp(t, "reload", "web", "--bogus", "--name", "fleet"); code != 2 || !strings.Contains(errOut, "flag provided but not defined: --bogus") {
		t.Errorf("unknown flag after a name: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runApp(t, "reload", "web", "--timeout"); code != 2 || !strings.Contains(errOut, "flag needs an argument: --timeout") {
		t.Errorf("a value flag without its value after a name: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runApp(t, "status", "web", "api", "--name", "fleet"); code != 2 || !strings.Contains(errOut, "at most one PROGRAM, got 2") {
		t.Errorf("status of two programs: exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := runApp(t, "reload", "web", "-h"); code != 0 || !strings.Contains(out, "hupd reload") {
		t.Errorf("reload web -h: exit %d, stdout %q", code, out)
	}
}

// TestOneProgramRefusesNames: a hupd of one program refuses hupd reload
// NAME, hupd status NAME and hupd logs --program NAME, followed or not,
// with exit 2 and one line naming the command (hupd logs -f --program x
// followed the one program's lines instead).
func TestOneProgramRefusesNames(t *testing.T) {
	controlDir(t)
	serveFake(t, control.DefaultPath("web"), &fakeHupd{name: "web", pid: 11})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"reload", "app", "-q"}, "hupd: this hupd runs one program: hupd reload takes no program name\n"},
		{[]string{"status", "app"}, "hupd: this hupd runs one program: hupd status takes no program name\n"},
		{[]string{"logs", "--program", "app"}, "hupd: this hupd runs one program: hupd logs takes no --program\n"},
		{[]string{"logs", "-f", "--program", "app"}, "hupd: this hupd runs one program: hupd logs takes no --program\n"},
	} {
		code, out, errOut := runApp(t, tc.args...)
		if code != 2 || errOut != tc.want || out != "" {
			t.Errorf("hupd %s: exit %d, stdout %q, stderr %q, want exit 2 and %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
}
