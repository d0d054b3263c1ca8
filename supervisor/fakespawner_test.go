package supervisor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// scriptedSpawner is the Spawner of the unit tests. A test scripts what
// each start does; what it lets through is carried out by a real thread
// spawner, so that whatever runs is a real process: its process group,
// pidfd, parent-death signal, reaping, signals and notify datagrams (its
// membership in its generation) are the kernel's, not imitations. What it
// fakes is only what no real child can be made to do on demand: a start
// that fails before any process exists, a standby shim that cannot start,
// and hupd's own re-exec (which would replace the test binary).
//
// How each child behaves once it runs is the test binary's helper mode for
// its generation (childModesEnv), which also holds for a warm start through
// a standby shim: that start does not go through the spawner at all.
type scriptedSpawner struct {
	real *spawner

	mu sync.Mutex
	// gens is the script for the next starts of a generation, in order;
	// once it is used up every start runs for real (startReal).
	gens []startStep
	// standbys is the script for the next standby shims; once it is used
	// up, every one does standbyAfter (standbyReal unless set).
	standbys     []standbyStep
	standbyAfter standbyStep
	// execErr is what hupd's re-exec fails with (it never runs); nil
	// runs the exec function for real: only for a test that made sure
	// the exec itself fails.
	execErr error
	// beforeExec, if set, is called on Run's goroutine (which waits for the
	// exec) when hupd's re-exec is asked for, before it fails or runs.
	beforeExec func()
	calls      []spawnCall
}

// startStep is what one start of a generation does.
type startStep int

const (
	startReal     startStep = iota // the command runs
	startFails                     // fails before any process exists
	startExecFail                  // the shim runs, but cannot exec the target
)

// standbyStep is what one standby shim does.
type standbyStep int

const (
	standbyReal  standbyStep = iota
	standbyFails             // cannot start
	standbyDies              // starts, then is killed before it is used
)

// spawnCall records one request to the spawner, as the supervisor made it.
type spawnCall struct {
	kind    string   // "generation", "helper" (check, probe, upgrade check), "standby" or "exec"
	args    []string // argv
	env     []string
	sockets int // inherited sockets (fds 3…)
	pid     int // 0 when no process started
	err     error
}

// errScriptedStart is the error of a scripted start failure.
var errScriptedStart = errors.New("scripted: cannot start")

// errScriptedExec is what the re-exec of an upgrade fails with by default.
var errScriptedExec = errors.New("scripted: no re-exec in unit tests")

func newScriptedSpawner(r *signals.Reaper) *scriptedSpawner {
	return &scriptedSpawner{real: startSpawner(r), execErr: errScriptedExec}
}

// script appends steps for the next starts of a generation.
func (f *scriptedSpawner) script(steps ...startStep) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gens = append(f.gens, steps...)
}

// scriptStandby appends steps for the next standby shims.
func (f *scriptedSpawner) scriptStandby(steps ...standbyStep) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.standbys = append(f.standbys, steps...)
}

// noStandby makes every standby shim fail to start from now on: every
// generation starts cold, through start, where the script applies.
func (f *scriptedSpawner) noStandby() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.standbys, f.standbyAfter = nil, standbyFails
}

// recorded returns the calls of kind so far.
func (f *scriptedSpawner) recorded(kind string) []spawnCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []spawnCall
	for _, c := range f.calls {
		if c.kind == kind {
			out = append(out, c)
		}
	}
	return out
}

func (f *scriptedSpawner) record(c spawnCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func callOf(kind string, cmd *socketact.Command) spawnCall {
	return spawnCall{kind: kind, args: slices.Clone(cmd.Args), env: slices.Clone(cmd.Env), sockets: len(cmd.Sockets)}
}

// start: spawn passes a started callback for a generation; helpers have
// none.
func (f *scriptedSpawner) start(cmd *socketact.Command, started func(pid, pidfd int)) spawnResult {
	kind := "helper"
	step := startReal
	if started != nil {
		kind = "generation"
		f.mu.Lock()
		if len(f.gens) > 0 {
			step, f.gens = f.gens[0], f.gens[1:]
		}
		f.mu.Unlock()
	}
	c := callOf(kind, cmd)
	var res spawnResult
	switch step {
	case startFails:
		res = spawnResult{pidfd: -1, err: errScriptedStart}
	case startExecFail:
		// The real shim, asked to exec what is not there: a real
		// *socketact.ExecError, from a process that exists and exits.
		bad := *cmd
		bad.Path = "/nonexistent/hupd-scripted-exec-failure"
		res = f.real.start(&bad, started)
	default:
		res = f.real.start(cmd, started)
	}
	c.pid, c.err = res.pid, res.err
	f.record(c)
	return res
}

func (f *scriptedSpawner) prestart(cmd *socketact.Command) spawnResult {
	f.mu.Lock()
	step := f.standbyAfter
	if len(f.standbys) > 0 {
		step, f.standbys = f.standbys[0], f.standbys[1:]
	}
	f.mu.Unlock()
	c := callOf("standby", cmd)
	var res spawnResult
	switch step {
	case standbyFails:
		res = spawnResult{pidfd: -1, err: errScriptedStart}
	default:
		res = f.real.prestart(cmd)
		if step == standbyDies && res.err == nil {
			// Dead before it is used: its exit reaches Run as a
			// standby's (the process and its reaping are real).
			if err := unix.Kill(res.pid, unix.SIGKILL); err != nil {
				res.err = fmt.Errorf("scripted standby death: %w", err)
			}
		}
	}
	c.pid, c.err = res.pid, res.err
	f.record(c)
	return res
}

func (f *scriptedSpawner) exec(fn func() error) error {
	f.mu.Lock()
	err, before := f.execErr, f.beforeExec
	f.mu.Unlock()
	f.record(spawnCall{kind: "exec", err: err})
	if before != nil {
		before()
	}
	if err != nil {
		return err
	}
	return f.real.exec(fn)
}

func (f *scriptedSpawner) stop() { f.real.stop() }

// envValue is the value of key in env, "" if it has none.
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

var _ Spawner = (*scriptedSpawner)(nil)
