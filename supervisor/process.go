package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// NotFoundError reports a command that cannot be found or run; a shell would
// exit 127 (not found) or 126 (found, not executable).
type NotFoundError struct {
	Name string
	Code int
	Err  error
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("command %q: %v", e.Name, e.Err) }
func (e *NotFoundError) Unwrap() error { return e.Err }

// LookPath resolves name as a shell would for a child that runs in dir with
// the PATH from env (or hupd's own PATH when env has none): a name with a
// slash is taken relative to dir, a bare name is searched in PATH.
func LookPath(name, dir string, env []string) (string, error) {
	if name == "" {
		return "", &NotFoundError{Name: name, Code: socketact.ExitNotFound, Err: errors.New("empty command")}
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", err.(*NotFoundError).named(name)
		}
		return filepath.Abs(p)
	}
	path := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	var firstErr *NotFoundError
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		err := executable(p)
		if err == nil {
			return filepath.Abs(p)
		}
		if e := err.(*NotFoundError); e.Code == socketact.ExitCannotExec && firstErr == nil {
			firstErr = e
		}
	}
	if firstErr != nil {
		return "", firstErr.named(name)
	}
	return "", &NotFoundError{Name: name, Code: socketact.ExitNotFound, Err: errors.New("not found in PATH")}
}

func executable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &NotFoundError{Code: socketact.ExitNotFound, Err: errors.New("no such file")}
	case err != nil:
		return &NotFoundError{Code: socketact.ExitCannotExec, Err: err}
	case fi.IsDir():
		return &NotFoundError{Code: socketact.ExitCannotExec, Err: errors.New("is a directory")}
	case unix.Access(p, unix.X_OK) != nil:
		return &NotFoundError{Code: socketact.ExitCannotExec, Err: errors.New("permission denied")}
	}
	return nil
}

func (e *NotFoundError) named(name string) *NotFoundError { e.Name = name; return e }

// Spawner starts every process of a supervisor (its generations, their
// standby shims, the helpers of reloads and upgrades) and runs an
// upgrade's exec. The default is the thread spawner (startSpawner); the
// package's tests script others. Its methods are unexported: what it
// hands back (a process, a standby, a seccomp fd, the reaper's channel) is
// the supervisor's own business, so only this package implements it.
type Spawner interface {
	// start runs cmd. On an exec failure (*socketact.ExecError) the
	// process has been started (and will exit): the result carries both.
	// started, if not nil, is called as soon as the process exists (see
	// spawnReq).
	start(cmd *socketact.Command, started func(pid, pidfd int)) spawnResult
	// prestart starts a standby shim for cmd's sockets and stdio.
	prestart(cmd *socketact.Command) spawnResult
	// exec runs f (hupd's re-exec) on the thread that forked the
	// children; it returns only if f fails.
	exec(f func() error) error
	// stop ends the spawner; a start after it fails (errSpawnerStopped).
	stop()
}

// spawner starts every child from one OS thread that lives as long as the
// spawner: a child's parent-death signal follows the thread that forked it,
// not the process, so a thread that ends would kill its children. In hupd
// that thread is the main thread (Options.Thread is mainthread.Do), which
// an in-place upgrade's exec keeps; elsewhere (tests) it is a thread of its
// own.
type spawner struct {
	reqs chan spawnReq
	quit chan struct{} // closed by stop; reqs is never closed
}

// errSpawnerStopped is what a start asked for after stop gets (a readiness
// probe's goroutine can ask just as Run returns).
var errSpawnerStopped = errors.New("supervisor: spawner stopped")

type spawnReq struct {
	cmd      *socketact.Command
	prestart bool // start a standby shim instead
	// exec, if set, runs instead of a start: hupd's own re-exec
	// (upgrade), which must come from the thread that forked the children.
	exec func() error
	// started, if set, is called with the process's PID and a pidfd for
	// it (borrowed; -1 if none could be opened) once it exists, before
	// its program is exec'd.
	started func(pid, pidfd int)
	reply   chan spawnResult
}

type spawnResult struct {
	pid     int
	proc    *os.Process
	standby *socketact.Standby
	trap    *os.File // the seccomp notify fd of a Trap command
	pidfd   int      // a standby's pidfd (the caller's to close), or -1
	exited  <-chan signals.Exit
	err     error
}

// startSpawner starts a spawner on a locked OS thread of its own.
func startSpawner(r *signals.Reaper) *spawner { return startSpawnerOn(r, nil) }

// startSpawnerOn starts a spawner whose every start and exec runs through
// thread (Options.Thread), or on a locked OS thread of its own if nil.
func startSpawnerOn(r *signals.Reaper, thread func(func())) *spawner {
	s := &spawner{reqs: make(chan spawnReq), quit: make(chan struct{})}
	onThread := thread
	if onThread == nil {
		onThread = func(f func()) { f() }
	}
	go func() {
		if thread == nil {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		}
		for {
			var req spawnReq
			select {
			case req = <-s.reqs:
			case <-s.quit:
				return
			}
			var res spawnResult
			onThread(func() { res = s.handle(r, req) })
			req.reply <- res
		}
	}()
	return s
}
func (s *spawner) handle(r *signals.Reaper, req spawnReq) spawnResult {
	res := spawnResult{pidfd: -1}
	if req.exec != nil {
		res.err = req.exec()
		return res
	}
	var wait func() (*os.File, error)
	res.pid, res.exited, res.err = r.Start(func() (int, error) {
		if req.prestart {
			sb, err := req.cmd.Prestart()
			if err != nil {
				return 0, err
			}
			res.proc, res.standby, wait = sb.Process, sb, func() (*os.File, error) { return nil, nil }
			// Under the reaper's lock: the PID cannot be reaped and
			// reused before the pidfd holds it.
			res.pidfd = pidfdOpen(sb.Process.Pid)
			return sb.Process.Pid, nil
		}
		p, w, err := req.cmd.Start()
		if err != nil {
			return 0, err
		}
		res.proc, wait = p, w
		if req.started != nil {
			res.pidfd = pidfdOpen(p.Pid)
		}
		return p.Pid, nil
	})
	if res.err == nil && req.started != nil {
		req.started(res.pid, res.pidfd)
		if res.pidfd >= 0 {
			unix.Close(res.pidfd)
			res.pidfd = -1
		}
	}
	if res.err == nil {
		res.trap, res.err = wait()
	}
	return res
}

// exec runs f (hupd's re-exec) on the spawner's thread; it returns only if
// f fails.
func (s *spawner) exec(f func() error) error {
	return s.do(spawnReq{exec: f}).err
}

// start runs cmd on the spawner's thread. On an exec failure the process
// has been started (and will exit): the result carries both. started, if
// not nil, is called as soon as the process exists (see spawnReq).
func (s *spawner) start(cmd *socketact.Command, started func(pid, pidfd int)) spawnResult {
	return s.do(spawnReq{cmd: cmd, started: started})
}

// prestart starts a standby shim for cmd's sockets and stdio.
func (s *spawner) prestart(cmd *socketact.Command) spawnResult {
	return s.do(spawnReq{cmd: cmd, prestart: true})
}

func (s *spawner) do(req spawnReq) spawnResult {
	req.reply = make(chan spawnResult, 1)
	select {
	case s.reqs <- req:
		return <-req.reply // a request taken is always answered
	case <-s.quit:
		return spawnResult{err: errSpawnerStopped}
	}
}

// stop ends the spawner's goroutine and with it its thread.
func (s *spawner) stop() { close(s.quit) }
