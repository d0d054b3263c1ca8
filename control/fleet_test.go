package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/hupd/hupd/supervisor"
)

// fakeFleet is a Handler of several programs: a and b.
type fakeFleet struct {
	fakeControl
	reloaded chan []string
}

func (f *fakeFleet) pick(names []string) ([]string, error) {
	if len(names) == 0 {
		return []string{"a", "b"}, nil
	}
	for _, n := range names {
		if n != "a" && n != "b" {
			return nil, fmt.Errorf("%w %q", ErrUnknownProgram, n)
		}
	}
	return names, nil
}

func (f *fakeFleet) StatusPrograms(names []string) ([]ProgramReply, error) {
	ns, err := f.pick(names)
	var out []ProgramReply
	for _, n := range ns {
		out = append(out, ProgramReply{Name: n, State: ProgramRunning, Status: &supervisor.Status{Name: "x", PID: 7}})
	}
	return out, err
}

func (f *fakeFleet) Program(name string) (Handler, error) {
	if _, err := f.pick([]string{name}); err != nil {
		return nil, err
	}
	return &fakeProgram{name: name}, nil
}

// fakeProgram is one program's Handler: it scales, rolls back and keeps
// one output line.
type fakeProgram struct {
	fakeControl
	name string
}

func (p *fakeProgram) Scale(_ context.Context, n int) supervisor.ScaleResult {
	return supervisor.ScaleResult{OK: true, To: n, Reason: p.name}
}

func (p *fakeProgram) Rollback(context.Context) supervisor.ReloadResult {
	return supervisor.ReloadResult{OK: true, Cause: p.name}
}

func (p *fakeProgram) Logs(gen, n int) []supervisor.OutputLine {
	return []supervisor.OutputLine{{Gen: gen, Text: p.name}}
}

func (p *fakeProgram) FollowLogs(gen, n int) ([]supervisor.OutputLine, <-chan supervisor.OutputLine, func() int) {
	return p.Logs(gen, n), make(chan supervisor.OutputLine), func() int { return 0 }
}

func (f *fakeFleet) ReloadPrograms(ctx context.Context, names []string) ([]ProgramReply, error) {
	ns, err := f.pick(names)
	if err != nil {
		return nil, err
	}
	f.reloaded <- ns
	var out []ProgramReply
	for _, n := range ns {
		out = append(out, ProgramReply{Name: n, State: ProgramRunning, Reload: &supervisor.ReloadResult{OK: n == "a", Reason: "no " + n}})
	}
	return out, nil
}

// TestFleetRequests: a hupd of several programs answers reload and status
// about the programs a request names (none: all), scale, rollback and
// logs about the one program named (answered by its Handler), says which
// name is unknown (BadProgram), and refuses the requests it does not
// answer yet in one line; a hupd of one program refuses a request that
// names programs.
// A request without programs is written as before.
func TestFleetRequests(t *testing.T) {
	f := &fakeFleet{reloaded: make(chan []string, 4)}
	s := startControl(t, f)
	rep := call(t, s.Path(), Request{Cmd: CmdStatus, Programs: []string{"b"}})
	if !rep.OK || len(rep.Programs) != 1 || rep.Programs[0].Name != "b" || rep.Programs[0].Status == nil || rep.Status != nil {
		t.Fatalf("status b: %+v", rep)
	}
	rep = call(t, s.Path(), Request{Cmd: CmdReload})
	if got := recv(t, f.reloaded, "reload"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("reload of none reloaded %v, want every program", got)
	}
	if rep.OK || rep.Error != "reload failed: b: no b" || len(rep.Programs) != 2 {
		t.Fatalf("reload with b failing: %+v", rep)
	}
	rep = call(t, s.Path(), Request{Cmd: CmdReload, Programs: []string{"a"}})
	if got := recv(t, f.reloaded, "reload a"); !rep.OK || !slices.Equal(got, []string{"a"}) {
		t.Fatalf("reload a: %+v, reloaded %v", rep, got)
	}
	rep = call(t, s.Path(), Request{Cmd: CmdReload, Programs: []string{"a", "zz"}})
	if rep.OK || !rep.BadProgram || rep.Error != `control: unknown program "zz"` {
		t.Fatalf("reload of an unknown program: %+v", rep)
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdPlan}); rep.OK || rep.Error != "plan: hupd runs several programs" {
		t.Fatalf("plan: %+v", rep)
	}
	// An upgrade is hupd's, every program at once: its Handler's answer.
	if rep := call(t, s.Path(), Request{Cmd: CmdUpgrade}); rep.OK || rep.Error != "upgrade failed, hupd goes on as it was: fake: no upgrade" {
		t.Fatalf("upgrade: %+v", rep)
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdUpgrade, Programs: []string{"a"}}); rep.OK || rep.Error != "upgrade: it re-executes hupd with every program at once: name none" {
		t.Fatalf("upgrade of one program: %+v", rep)
	}
	// Scale, rollback and logs: one program each, answered by its Handler.
	for _, req := range []Request{{Cmd: CmdScale, Instances: 2}, {Cmd: CmdRollback}, {Cmd: CmdLogs}, {Cmd: CmdLogs, Follow: true}} {
		rep := call(t, s.Path(), req)
		if rep.OK || !rep.BadProgram || rep.Error != req.Cmd+": hupd runs several programs: name one program (--program NAME)" {
			t.Fatalf("%s without a program: %+v", req.Cmd, rep)
		}
		req.Programs = []string{"zz"}
		if rep := call(t, s.Path(), req); rep.OK || !rep.BadProgram || rep.Error != `control: unknown program "zz"` {
			t.Fatalf("%s of an unknown program: %+v", req.Cmd, rep)
		}
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdScale, Instances: 2, Programs: []string{"b"}}); !rep.OK || rep.Scale.To != 2 || rep.Scale.Reason != "b" {
		t.Fatalf("scale b: %+v", rep)
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdRollback, Programs: []string{"a"}}); !rep.OK || rep.Reload.Cause != "a" {
		t.Fatalf("rollback a: %+v", rep)
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdLogs, Gen: 3, Programs: []string{"b"}}); !rep.OK || len(rep.Logs) != 1 || rep.Logs[0].Text != "b" || rep.Logs[0].Gen != 3 {
		t.Fatalf("logs b: %+v", rep)
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdLogs, Follow: true, Programs: []string{"a"}}); !rep.OK || len(rep.Logs) != 1 || rep.Logs[0].Text != "a" {
		t.Fatalf("logs --follow a: %+v", rep)
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdPing}); !rep.OK {
		t.Fatalf("ping: %+v", rep)
	}

	one := startControl(t, &fakeControl{status: supervisor.Status{Name: "web"}})
	rep = call(t, one.Path(), Request{Cmd: CmdStatus, Programs: []string{"a"}})
	if rep.OK || !rep.BadProgram || rep.Error != "this hupd runs one program: hupd status takes no program name" {
		t.Fatalf("a program named to a hupd of one: %+v", rep)
	}
	// Followed logs too (they went to the one program, --program ignored).
	rep = call(t, one.Path(), Request{Cmd: CmdLogs, Follow: true, Programs: []string{"a"}})
	if rep.OK || !rep.BadProgram || rep.Error != "this hupd runs one program: hupd logs takes no --program" {
		t.Fatalf("logs --follow of a program named to a hupd of one: %+v", rep)
	}
	if rep := call(t, one.Path(), Request{Cmd: CmdStatus}); !rep.OK || rep.Status == nil || rep.Programs != nil {
		t.Fatalf("status of a hupd of one: %+v", rep)
	}
}

// planningFleet is a fakeFleet that plans: "bad" content is a bad file.
type planningFleet struct {
	fakeFleet
	got chan []byte
}

func (f *planningFleet) PlanPrograms(_ context.Context, data []byte) (FleetPlan, error) {
	f.got <- data
	if string(data) == "bad" {
		return FleetPlan{}, &ConfigError{Err: errors.New("hupd.toml:3: unknown program \"x\" in after")}
	}
	return FleetPlan{Programs: []ProgramPlan{{Name: "a", Change: ChangeChanged, Plan: &supervisor.Plan{NewGeneration: true}}, {Name: "b", Change: ChangeUnchanged}}}, nil
}

// TestFleetPlan: a hupd of several programs that plans answers a plan
// request in FleetPlan (per program), with the content sent (nil: as on
// disk); an error about the file is BadConfig. (A Fleet that does not
// plan refuses it: "plan: hupd runs several programs".)
func TestFleetPlan(t *testing.T) {
	f := &planningFleet{got: make(chan []byte, 4)}
	s := startControl(t, f)
	rep := call(t, s.Path(), Request{Cmd: CmdPlan})
	if got := recv(t, f.got, "plan"); got != nil || !rep.OK || rep.Plan != nil || rep.FleetPlan == nil || len(rep.FleetPlan.Programs) != 2 ||
		rep.FleetPlan.Programs[0].Change != ChangeChanged || rep.FleetPlan.Nothing() {
		t.Fatalf("plan as on disk: content %q, %+v", got, rep)
	}
	text := "bad"
	rep = call(t, s.Path(), Request{Cmd: CmdPlan, Config: &text})
	if got := recv(t, f.got, "plan bad"); string(got) != "bad" || rep.OK || !rep.BadConfig || rep.Error != `hupd.toml:3: unknown program "x" in after` {
		t.Fatalf("plan of a bad file: %+v", rep)
	}
	if (FleetPlan{Programs: []ProgramPlan{{Name: "a", Change: ChangeUnchanged}}}).Nothing() != true {
		t.Fatal("a plan of unchanged programs is not Nothing")
	}
}
