package control

import (
	"context"
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
// about the programs a request names (none: all), says which name is
// unknown (BadProgram), and refuses the requests it does not answer yet in
// one line; a hupd of one program refuses a request that names programs.
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
	for _, cmd := range []string{CmdUpgrade, CmdScale, CmdRollback, CmdLogs, CmdPlan} {
		req := Request{Cmd: cmd}
		if cmd == CmdScale {
			req.Instances = 2
		}
		rep := call(t, s.Path(), req)
		if rep.OK || rep.Error != cmd+": not supported with several programs yet" {
			t.Fatalf("%s: %+v", cmd, rep)
		}
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdLogs, Follow: true}); rep.OK || rep.Error != "logs: not supported with several programs yet" {
		t.Fatalf("logs --follow: %+v", rep)
	}
	if rep := call(t, s.Path(), Request{Cmd: CmdPing}); !rep.OK {
		t.Fatalf("ping: %+v", rep)
	}

	one := startControl(t, &fakeControl{status: supervisor.Status{Name: "web"}})
	rep = call(t, one.Path(), Request{Cmd: CmdStatus, Programs: []string{"a"}})
	if rep.OK || !rep.BadProgram || rep.Error != errOneProgram.Error() {
		t.Fatalf("a program named to a hupd of one: %+v", rep)
	}
	if rep := call(t, one.Path(), Request{Cmd: CmdStatus}); !rep.OK || rep.Status == nil || rep.Programs != nil {
		t.Fatalf("status of a hupd of one: %+v", rep)
	}
}
