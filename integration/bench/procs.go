package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
)

// waitLimit bounds every wait for a process to say something or to exit;
// reaching it is an error, not a reason to wait longer.
const waitLimit = 30 * time.Second

// groups holds the process group of every process the bench started and
// has not seen exit, so that an error or an interrupt kills them all.
// hupd's children die with hupd (it starts them with a parent-death
// signal); each bare server is a group of its own.
var groups = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

func track(pgid int)   { groups.Lock(); groups.m[pgid] = true; groups.Unlock() }
func untrack(pgid int) { groups.Lock(); delete(groups.m, pgid); groups.Unlock() }

// killAll sends SIGKILL to every process group still tracked.
func killAll() {
	groups.Lock()
	defer groups.Unlock()
	for pg := range groups.m {
		syscall.Kill(-pg, syscall.SIGKILL)
		delete(groups.m, pg)
	}
}

// event is one line of hupd's JSON log.
type event map[string]any

func (e event) msg() string         { s, _ := e["msg"].(string); return s }
func (e event) str(k string) string { s, _ := e[k].(string); return s }
func (e event) num(k string) int    { f, _ := e[k].(float64); return int(f) }
func (e event) time() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.str("time"))
	return t
}

// hupdProc is a running `hupd run` whose JSON log the bench reads.
type hupdProc struct {
	cmd     *exec.Cmd
	control string   // its control socket
	addrs   []string // the bound addresses (host:port), in --listen order

	mu     sync.Mutex
	cond   *sync.Cond
	events []event
	exited bool
	done   chan struct{}
}

// startHupd runs `hupd run --log-format json ARGS` with its own runtime
// directory and returns once its first generation is ready.
func startHupd(ctx context.Context, env *benchEnv, args ...string) (*hupdProc, error) {
	rt, err := os.MkdirTemp(env.dir, "rt-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(env.hupd, append([]string{"run", "--log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+rt)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	track(cmd.Process.Pid)
	h := &hupdProc{cmd: cmd, done: make(chan struct{})}
	h.cond = sync.NewCond(&h.mu)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e event
			if json.Unmarshal(sc.Bytes(), &e) != nil || e["msg"] == nil {
				continue // the children's own output
			}
			h.mu.Lock()
			h.events = append(h.events, e)
			h.cond.Broadcast()
			h.mu.Unlock()
		}
		cmd.Wait()
		untrack(cmd.Process.Pid)
		h.mu.Lock()
		h.exited = true
		h.cond.Broadcast()
		h.mu.Unlock()
		close(h.done)
	}()
	if _, err := h.wait(ctx, logev.ChildReady, 1, nil); err != nil {
		h.kill()
		return nil, err
	}
	h.mu.Lock()
	for _, e := range h.events {
		switch e.msg() {
		case logev.ControlSocket:
			h.control = e.str("path")
		case logev.Listening:
			_, hp, _ := strings.Cut(e.str("address"), "://")
			h.addrs = append(h.addrs, hp)
		}
	}
	h.mu.Unlock()
	if h.control == "" || len(h.addrs) == 0 {
		h.kill()
		return nil, errors.New("hupd logged no control socket or no listening address")
	}
	return h, nil
}

// pid is hupd's PID.
func (h *hupdProc) pid() int { return h.cmd.Process.Pid }

// wait blocks until the n-th event msg that match accepts (nil: any) has
// been logged and returns it; it fails if hupd exits first, ctx ends or
// waitLimit passes.
func (h *hupdProc) wait(ctx context.Context, msg string, n int, match func(event) bool) (event, error) {
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { h.mu.Lock(); h.cond.Broadcast(); h.mu.Unlock() })
	defer stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		seen := 0
		for _, e := range h.events {
			if e.msg() == msg && (match == nil || match(e)) {
				if seen++; seen == n {
					return e, nil
				}
			}
		}
		switch {
		case h.exited:
			return nil, fmt.Errorf("hupd exited before logging %q #%d", msg, n)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("hupd: no %q #%d: %w", msg, n, ctx.Err())
		}
		h.cond.Wait()
	}
}

// count is how many events msg that match accepts were logged so far.
func (h *hupdProc) count(msg string, match func(event) bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		if e.msg() == msg && (match == nil || match(e)) {
			n++
		}
	}
	return n
}

// reload asks hupd to reload over its control socket and waits for the
// outcome, as `hupd reload --json` does.
func (h *hupdProc) reload(ctx context.Context) (*supervisor.ReloadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	rep, err := control.Call(ctx, h.control, control.Request{Cmd: control.CmdReload, Timeout: waitLimit.String()})
	if err != nil {
		return nil, err
	}
	if rep.Reload == nil {
		return nil, fmt.Errorf("reload: %s", rep.Error)
	}
	if !rep.Reload.OK {
		return rep.Reload, fmt.Errorf("reload failed: %s", rep.Reload.Reason)
	}
	return rep.Reload, nil
}

// stop sends SIGTERM and waits for hupd (and so its children) to exit;
// past waitLimit it kills the group.
func (h *hupdProc) stop() error {
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
		return nil
	case <-time.After(waitLimit):
		h.kill()
		return fmt.Errorf("hupd %d did not stop within %s", h.pid(), waitLimit)
	}
}

func (h *hupdProc) kill() {
	syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	<-h.done
}

// bareServer is examples/hello without a supervisor: the bench binds its
// socket and hands it over the way systemd does, then lets go of it, so
// the socket lives exactly as long as this one server (like a server that
// binds its own port).
//
// LISTEN_PID must be the server's own PID, which a Go parent cannot set
// between fork and exec. The bench borrows hupd's exec shim for that (the
// same binary, started as hupd starts every child, through
// socketact.Command): the shim sets LISTEN_PID to getpid() and execs
// hello, which keeps the PID. After the exec nothing of hupd is left: the
// bench is hello's parent and the data path is hello's alone, which is
// what a baseline needs. (systemd-socket-activate would do the same, but
// it binds by itself, is one more program to install, and the bench could
// not choose when the socket closes.)
type bareServer struct {
	p    *os.Process
	addr string
	done chan struct{}
}

// startBare binds addr (host:port; port 0 picks one), starts hello on it,
// and returns once hello has answered a request.
func startBare(ctx context.Context, env *benchEnv, addr string) (*bareServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f, err := l.(*net.TCPListener).File()
	addr = l.Addr().String()
	l.Close() // f is a duplicate: the socket stays open through it
	if err != nil {
		return nil, err
	}
	defer f.Close() // once hello has it: then only hello holds the socket
	c := &socketact.Command{Shim: env.hupd, Path: env.hello, Args: []string{env.hello, "-grace", "5s"},
		Env: socketact.ChildEnv(os.Environ(), nil, []string{"http"}), UID: -1, GID: -1,
		Sockets: []*os.File{f}, Sys: &syscall.SysProcAttr{Setpgid: true}}
	p, execd, err := c.Start()
	if err != nil {
		return nil, err
	}
	track(p.Pid)
	b := &bareServer{p: p, addr: addr, done: make(chan struct{})}
	go func() {
		p.Wait()
		untrack(p.Pid)
		close(b.done)
	}()
	if _, err := execd(); err != nil {
		b.kill()
		return nil, fmt.Errorf("starting hello: %w", err)
	}
	if err := waitServing(ctx, addr); err != nil {
		b.kill()
		return nil, err
	}
	return b, nil
}

// stop sends SIGTERM (hello drains) and waits until hello has exited.
func (b *bareServer) stop() error {
	b.p.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
		return nil
	case <-time.After(waitLimit):
		b.kill()
		return fmt.Errorf("hello %d did not stop within %s", b.p.Pid, waitLimit)
	}
}

func (b *bareServer) kill() {
	syscall.Kill(-b.p.Pid, syscall.SIGKILL)
	<-b.done
}

// waitServing sends one request to addr and waits (up to waitLimit) for a
// 200: the socket is bound already, so the connection waits in the
// backlog until the server accepts it. No polling.
func waitServing(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s: no answer: %w", addr, err)
	}
	if !strings.HasPrefix(line, "HTTP/1.1 200 ") {
		return fmt.Errorf("%s answered %q", addr, strings.TrimSpace(line))
	}
	return nil
}

// rssKiB is pid's resident memory (VmRSS) in KiB.
func rssKiB(pid int) (int, error) {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicks = 100

// cpuTime is pid's CPU time so far, user plus system (fields 14 and 15 of
// /proc/PID/stat), with USER_HZ's 10 ms resolution.
func cpuTime(pid int) (time.Duration, error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(st)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(u+k) * time.Second / clockTicks, nil
}
