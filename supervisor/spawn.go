package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/legacy"
	"github.com/hupd/hupd/sdnotify"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// procRef ties a started process to the generation it becomes; nil while
// it is a standby shim. Run's goroutine sets gen; the goroutine that waits
// for the process reads it.
type procRef struct{ gen atomic.Pointer[generation] }

// exitMarker is the datagram hupd sends to a generation's own notify
// socket once the generation's process has exited (see forwardExit).
const exitMarker = "HUPD_EXITED=1"

// forwardExit hands the exit of ref's process to Run. For a generation it
// goes through the generation's notify reader: the exit is parked and a
// marker datagram queued behind whatever the process sent before it died,
// so Run sees every datagram (MAINPID=, STOPPING=1, …) before the exit.
// Unix datagram queues are first in, first out.
func (s *Supervisor) forwardExit(ref *procRef, e signals.Exit) {
	if g := ref.gen.Load(); g != nil {
		select {
		case g.exitParked <- e:
			if sendMarker(g.notify.Path) == nil {
				return
			}
			<-g.exitParked // the marker cannot be sent: deliver it directly
		default:
		}
	}
	s.post(event{kind: evExit, ref: ref, exit: e})
}

func sendMarker(path string) error { return sdnotify.SendTo(path, []byte(exitMarker)) }

// standby is a shim started ahead of time for the next generation (see
// socketact.Standby): it holds the sockets and its own output pipes.
type standby struct {
	ref        *procRef
	sb         *socketact.Standby
	grp        *contain.Group // the cgroup of the generation it is for
	pid        int
	pidfd      int // -1 if none; closed once it is used or discarded
	proc       *os.Process
	outR, errR *os.File
	listeners  []*socketact.Listener // the sockets it holds (socketsFor)
}

// discardStandby discards the standby shim: it sees EOF and exits (the
// reaper collects it), and its generation's cgroup goes with it.
func (s *Supervisor) discardStandby() {
	st := s.standby
	s.standby = nil
	st.sb.Close()
	st.release()
	s.cg.Retire(st.grp)
}

// release lets go of what hupd holds of the standby's process.
func (st *standby) release() {
	st.proc.Release()
	closeFiles(st.outR, st.errR)
	if st.pidfd >= 0 {
		unix.Close(st.pidfd)
		st.pidfd = -1
	}
}

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// childCmd is the command for generation num with notify socket ns and
// sockets ls (socketsFor).
func (s *Supervisor) childCmd(ns *socketact.NotifySocket, num int, ls []*socketact.Listener) (*socketact.Command, error) {
	return childCmd(&s.opts, ns, num, 0, ls)
}

// childCmd is the command for instance inst of generation num, with the
// options o it starts with.
func childCmd(o *Options, ns *socketact.NotifySocket, num, inst int, ls []*socketact.Listener) (*socketact.Command, error) {
	files, names := listenerFiles(ls)
	if o.Legacy != "" {
		// The program binds its own ports: the sockets reach it through
		// its bind calls, not as inherited fds.
		files, names = nil, nil
	}
	args, err := socketact.ExpandArgs(o.Args, ls)
	if err != nil {
		return nil, err
	}
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, ArgInstance, strconv.Itoa(inst))
	}
	extra := append(slices.Clone(o.Env), socketact.HandoffEnv(o.Handoff, ls, num)...)
	extra = append(extra, EnvInstance+"="+strconv.Itoa(inst), EnvInstances+"="+strconv.Itoa(max(o.Instances, 1)))
	env := socketact.ChildEnv(os.Environ(), extra, names)
	env = append(env, socketact.EnvNotifySocket+"="+ns.Path)
	if o.Control != "" {
		env = append(env, EnvControl+"="+o.Control)
	}
	if o.Watchdog > 0 {
		env = append(env, socketact.EnvWatchdogUSec+"="+strconv.FormatInt(o.Watchdog.Microseconds(), 10))
	}
	return &socketact.Command{
		Shim: o.Shim, Path: o.Path, Args: args, Dir: o.Dir, Env: env,
		UID: o.UID, GID: o.GID, Groups: o.Groups,
		Sockets: files, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr,
		Sys:  &syscall.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL},
		Trap: o.Legacy != "",
	}, nil
}

// outputPipes gives cmd fresh stdout and stderr pipes (unless output is
// inherited) and returns the read ends; the caller closes the write ends
// in cmd once the process has started.
func (s *Supervisor) outputPipes(cmd *socketact.Command) (outR, errR *os.File, err error) {
	return outputPipes(&s.opts, cmd)
}

func outputPipes(o *Options, cmd *socketact.Command) (outR, errR *os.File, err error) {
	if o.Output == OutputInherit {
		return nil, nil, nil
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeFiles(outR, outW)
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	return outR, errR, nil
}

// prestart starts a standby shim for the next generation when nothing is
// going on: no reload, no stop, the serving generation ready.
func (s *Supervisor) prestart() {
	if s.standby != nil || s.standbyLost || s.stopping || s.tx != nil || s.restartT != nil {
		return
	}
	if cur := s.current(); cur == nil || cur.state != StateReady {
		return
	}
	ls, err := s.socketsFor(nil)
	if err != nil {
		return
	}
	cmd, err := s.childCmd(&socketact.NotifySocket{}, 0, ls) // only its sockets and pipes are used
	if err != nil {
		return
	}
	outR, errR, err := s.outputPipes(cmd)
	if err != nil {
		s.log.Warn(logev.StandbyNoPipes, KeyError, err)
		return
	}
	// It becomes the next generation: it starts in that one's cgroup.
	grp := s.newGroup(s.nextGen + 1)
	startIn(cmd, grp)
	res := s.sp.prestart(cmd)
	if outR != nil {
		closeFiles(cmd.Stdout, cmd.Stderr)
	}
	if res.err != nil {
		closeFiles(outR, errR)
		s.cg.Retire(grp)
		s.log.Warn(logev.StandbyStartFailed, KeyError, res.err)
		return
	}
	grp.SetLeader(res.pid)
	st := &standby{ref: &procRef{}, sb: res.standby, grp: grp, listeners: ls, pid: res.pid, pidfd: res.pidfd, proc: res.proc, outR: outR, errR: errR}
	s.standby = st
	go func() { s.forwardExit(st.ref, <-res.exited) }()
	go func() {
		// Ready once it waits with stray signals ignored (its runtime is up).
		if st.sb.ArmErr() == nil {
			s.log.Debug(logev.StandbyReady, KeyPID, st.pid)
		}
	}()
}

// spawn starts the next generation: every instance of it (see
// Options.Instances), or the first count of a rolling swap. It returns the
// generation's first instance once its target has been exec'd. When an
// instance cannot start, those started are stopped and the error returned.
func (s *Supervisor) spawn() (*generation, error) { return s.spawnGen(max(s.opts.Instances, 1)) }

func (s *Supervisor) spawnGen(count int) (*generation, error) {
	set := newGenSet(s.nextGen+1, s.opts)
	set.hash = s.hash
	s.addSet(set)
	var first *generation
	for i := range count {
		g, err := s.spawnInst(set, i)
		if err != nil {
			s.drainSet(set)
			s.pruneSets()
			return nil, err
		}
		if first == nil {
			first = g
		}
		if i == 0 && count > 1 && set.opts.Legacy == LegacyAdopt && slices.ContainsFunc(set.listeners, (*socketact.Listener).Pending) {
			// Adopt mode, a socket no program has bound yet: the first
			// instance binds it and hupd adopts it; the others start once
			// it is ready, and their binds are given that socket. Started
			// together, the second bind of the same address would fail.
			set.later = count
			break
		}
	}
	return first, nil
}

// spawnInst starts instance inst of set's generation with its own notify
// socket and output pipes, arms its readiness, and returns once the
// target has been exec'd. A new generation's first instance uses the
// standby shim when there is one.
func (s *Supervisor) spawnInst(set *genSet, inst int) (*generation, error) {
	num := set.num
	o := &set.opts
	name := "gen-" + strconv.Itoa(num)
	if inst > 0 {
		name += "-" + strconv.Itoa(inst)
	}
	if set.starts[inst]++; set.starts[inst] > 1 {
		// Restarted alone (or again after a scale or a rolling swap): the
		// instance it replaces may not have closed its socket yet.
		name += "." + strconv.Itoa(set.starts[inst])
	}
	ns, err := socketact.ListenNotify(filepath.Join(s.notifyDir, name+".sock"), o.UID, o.GID)
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	ls := set.listeners
	if ls == nil {
		// The generation's first instance chooses its sockets; the
		// others share them.
		var prefer []*socketact.Listener
		if s.standby != nil {
			prefer = s.standby.listeners
		}
		ls, err = s.socketsFor(prefer)
		if err == nil && s.standby != nil && !sameFiles(ls, prefer) {
			// It holds other members of a steered socket's group.
			s.discardStandby()
		}
		if err != nil {
			ns.Close()
			return nil, err
		}
	}
	cmd, err := childCmd(o, ns, num, inst, ls)
	if err != nil {
		ns.Close()
		return nil, err
	}
	set.listeners = ls
	g := &generation{num: num, inst: inst, start: set.starts[inst], set: set, state: StateStarting, notify: ns, out: &output{}, watchdogDur: o.Watchdog, forking: o.Forking, forks: o.Forking, pidfile: o.Pidfile,
		exitParked: make(chan signals.Exit, 1), configHash: set.hash,
		listeners: ls, stopSignal: o.StopSignal, stopTimeout: o.StopTimeout, uid: o.UID}
	t0 := time.Now()
	var (
		ref        *procRef
		outR, errR *os.File
		warm       bool
		trap       *os.File
	)
	if st := s.standby; st != nil && inst == 0 && num == s.nextGen+1 {
		s.standby = nil
		// Registered before it execs the program, as a cold start is.
		g.grp = st.grp
		s.guard(g, st.pid, st.pidfd)
		var ee *socketact.ExecError
		var err error
		switch trap, err = st.sb.Exec(cmd); {
		case err == nil:
			ref, outR, errR, warm = st.ref, st.outR, st.errR, true
			g.pid, g.pgid, g.proc = st.pid, st.pid, st.proc
			ns.SetOrigin(st.pidfd) // the notify socket owns it now
		case errors.As(err, &ee):
			s.unguard(g)
			st.release()
			s.cg.Retire(st.grp)
			ns.Close()
			return nil, err // the shim exits; its exit is a standby's, ignored
		default:
			// The standby died (its exit is not handled yet) or could not
			// be told what to run: start cold instead, in a new cgroup.
			s.log.Warn(logev.StandbyUnusable, KeyPID, st.pid, KeyError, err)
			s.unguard(g)
			st.release()
			s.cg.Retire(st.grp) // with what is left of the shim
			g.grp = nil
		}
	}
	if !warm {
		if outR, errR, err = outputPipes(o, cmd); err != nil {
			ns.Close()
			return nil, err
		}
		grp := s.newInstanceGroup(num, inst)
		startIn(cmd, grp)
		g.grp = grp // registered with the sentinel as the process starts
		origin := -1
		res := s.sp.start(cmd, func(pid, pidfd int) {
			s.guard(g, pid, pidfd)
			if pidfd >= 0 {
				origin, _ = unix.FcntlInt(uintptr(pidfd), unix.F_DUPFD_CLOEXEC, 0)
			}
		})
		ns.SetOrigin(origin) // the notify socket owns it now
		if outR != nil {
			closeFiles(cmd.Stdout, cmd.Stderr)
		}
		if res.err != nil {
			s.unguard(g)
			ns.Close()
			closeFiles(outR, errR)
			if res.proc != nil {
				grp.SetLeader(res.pid)
				res.proc.Release() // the failed shim exits; the reaper collects it
			}
			s.cg.Retire(grp)
			return nil, res.err
		}
		ref = &procRef{}
		trap = res.trap
		grp.SetLeader(res.pid)
		g.pid, g.pgid, g.proc, g.grp = res.pid, res.pid, res.proc, grp
		go func() { s.forwardExit(ref, <-res.exited) }()
	}
	g.origin.Store(int64(g.pid))
	g.ref = ref
	ref.gen.Store(g)
	s.nextGen = max(s.nextGen, num)
	s.standbyLost = false
	g.started = time.Now()
	s.gens = append(s.gens, g)
	attrs := []any{KeyGen, num, KeyPID, g.pid, KeyAfter, g.started.Sub(t0).Round(time.Microsecond), "standby", warm, "config", g.configHash}
	if set.multi() {
		attrs = append(attrs, KeyInst, inst)
	}
	s.log.Info(logev.ChildStarted, attrs...)
	if h := s.hooks.Started; h != nil && inst == 0 && g.start == 1 {
		h(num, g.pid) // once per generation
	}

	g.out.gen, g.out.inst, g.out.pid = num, inst, g.pid
	if set.multi() {
		g.out.size = ringSize(set.n)
	}
	s.book.add(g.out)
	if outR != nil {
		g.outR, g.errR = outR, errR
		stdout, stderr := s.sinks(o, num, inst, g.pid)
		g.out.copy(outR, stdout)
		g.out.copy(errR, stderr)
	}
	go s.readNotify(g)
	s.armReadiness(g, o)
	if trap != nil {
		s.serveTrap(g, trap)
	}
	return g, nil
}

// serveTrap answers generation g's trapped bind and listen calls with the
// sockets it was started with (package legacy), for as long as any of its
// processes lives. With readiness "listen", g is ready once it has called
// listen on every stream socket and bind on every datagram one. In adopt
// mode a socket no program has bound yet is taken from g when it does.
func (s *Supervisor) serveTrap(g *generation, notify *os.File) {
	held := make([]legacy.Socket, 0, len(g.listeners))
	names := make([]string, 0, len(g.listeners))
	for _, l := range g.listeners {
		h, err := describeHeld(l)
		if err != nil {
			s.log.Warn(logev.BindSocketLeftOut, KeyGen, g.num, "socket", l.Bound.String(), KeyError, err)
			continue
		}
		held, names = append(held, h), append(names, l.Spec.FDName())
	}
	var (
		seen    = make([]bool, len(held))
		left    = len(held)
		onReady = g.ready.Kind == ReadyListen
		num     = g.num
	)
	srv := legacy.NewServer(notify, held, s.log, func(ev legacy.Event) {
		h := held[ev.Socket]
		pid := ev.Process // the caller's process; its thread is ev.PID
		if pid == 0 {
			pid = ev.PID
		}
		switch {
		case ev.Adopted:
			s.log.Info(logev.SocketAdopted, KeyGen, num, KeyPID, pid, KeyTID, ev.PID, "fd", ev.FD, "address", ev.Addr.String(), "socket", names[ev.Socket])
		case ev.Listen:
			s.log.Debug(logev.ListenAnswered, KeyGen, num, KeyPID, pid, KeyTID, ev.PID, "fd", ev.FD, "socket", names[ev.Socket])
		default:
			s.log.Info(logev.BindRedirected, KeyGen, num, KeyPID, pid, KeyTID, ev.PID, "fd", ev.FD, "address", ev.Addr.String(), "socket", names[ev.Socket])
		}
		if (ev.Listen || !h.Stream) && !seen[ev.Socket] {
			seen[ev.Socket] = true
			if left--; left == 0 && onReady {
				s.post(event{kind: evListening, gen: g})
			}
		}
	})
	g.trap, g.trapSrv = notify, srv
	go srv.Serve()
}

// describeHeld describes l for bind redirection: as bound, or (adopt mode,
// not bound yet) as configured.
func describeHeld(l *socketact.Listener) (legacy.Socket, error) {
	if !l.Pending() {
		return legacy.Describe(l.File)
	}
	_, sa, err := l.Spec.Sockaddr()
	if err != nil {
		return legacy.Socket{}, err
	}
	return legacy.Expect(l.File, l.Spec.Address.Stream(), sa, l.Spec.IPv6Only()), nil
}

// readNotify posts g's notify datagrams to Run, and g's exit once the
// marker that forwardExit queued behind them arrives. A datagram counts
// only when its sender is verified as a member of g at the time it is read,
// here, right after recvmsg: a short-lived sender (a shell script's
// systemd-notify) may be gone by the time Run handles it. Others are
// dropped, and logged at most once a second.
//
// What Debian's systemd-notify (systemd 252) does, seen with strace: it
// sends its fields (READY=1, STATUS=…) in one datagram with
// SCM_CREDENTIALS naming its parent's PID (getppid(), or the --pid= value),
// which only root may claim; as another user that sendmsg fails with EPERM
// and it sends again without credentials, so the kernel stamps its own.
// Unless --no-block, it then sends BARRIER=1 from a second socket with the
// write end of a pipe and waits up to 5 s for POLLHUP on the read end: it
// is alive when its first datagram is read here. --pid=PID adds
// MAINPID=PID (--pid alone: its parent). With --no-block as another user,
// the sender may be gone (and reaped by the shell) before its datagram is
// read: nothing can place it then, and it is refused.
func (s *Supervisor) readNotify(g *generation) {
	self := os.Getpid()
	check := func(pid int) bool { return s.member(g, pid) }
	var (
		logged     time.Time
		suppressed int
	)
	for {
		m, err := g.notify.ReceiveChecked(check)
		if err == socketact.ErrNotifyClosed {
			return
		}
		if err != nil {
			if m.Barrier != nil {
				m.Barrier.Close()
			}
			continue
		}
		if m.PID == self && m.Flag("HUPD_EXITED") {
			select {
			case e := <-g.exitParked:
				s.post(event{kind: evExit, ref: g.ref, exit: e})
			default: // not ours
			}
			continue
		}
		if !m.Verified && m.CgroupID != 0 && m.CgroupID == g.grp.ID() {
			// Gone before it could be placed (systemd-notify --no-block
			// exits at once), but its pidfd still names the cgroup it
			// was in: the generation's. Cgroup ids are never reused.
			m.Verified = true
		}
		if !m.Verified {
			if m.Barrier != nil {
				m.Barrier.Close()
			}
			if now := time.Now(); now.Sub(logged) >= refusalLogEvery {
				s.log.Warn(logev.NotifyOutsider, KeyGen, g.num, KeySender, m.PID,
					KeyUID, m.UID, KeySuppressed, suppressed)
				logged, suppressed = now, 0
			} else {
				suppressed++
			}
			continue
		}
		ev := event{kind: evNotify, gen: g, msg: m, at: time.Now()}
		if pid, ok := m.MainPID(); ok {
			ev.main = s.vetMainPID(g, pid) // now: see vetMainPID
		}
		s.post(ev)
	}
}

// refusalLogEvery bounds how often refused notify datagrams are logged per
// generation: a stranger flooding the socket cannot flood the log. Each
// line counts the refusals not logged since the previous one.
const refusalLogEvery = time.Second

func orStdout(f *os.File) *os.File {
	if f == nil {
		return os.Stdout
	}
	return f
}

func orStderr(f *os.File) *os.File {
	if f == nil {
		return os.Stderr
	}
	return f
}

// armReadiness starts whatever decides that g is ready, as o says.
func (s *Supervisor) armReadiness(g *generation, o *Options) {
	r := o.Ready
	g.ready = r
	g.readyBy = time.Now().Add(r.Timeout)
	s.after(g, r.Timeout, evReadyTimeout)
	s.after(g, min(readyWarnAfter, r.Timeout/2), evReadyWarn)
	switch {
	case r.Kind == ReadyAuto && g.forking:
		// Ready when its first process exits 0 leaving the daemon
		// (forked), as systemd's Type=forking.
	case r.Kind == ReadyDelay || r.Kind == ReadyAuto:
		s.after(g, r.Delay, evDelay)
	case r.Kind == ReadyExec:
		ctx, cancel := context.WithCancel(context.Background())
		g.stopProbe = cancel
		po := instanceAux(*o, g.inst)
		po.Env = append(po.Env, EnvPID+"="+strconv.Itoa(g.pid))
		go s.probe(ctx, g, po)
	}
}

// instanceAux is o for a helper about instance inst (the readiness
// probe): it learns which instance it judges as the instance itself does,
// by {instance} in its arguments and HUPD_INSTANCE in its environment.
func instanceAux(o Options, inst int) Options {
	o.Env = append(slices.Clone(o.Env), EnvInstance+"="+strconv.Itoa(inst), EnvInstances+"="+strconv.Itoa(max(o.Instances, 1)))
	ready := o.Ready
	ready.Command = slices.Clone(ready.Command)
	for i, a := range ready.Command {
		ready.Command[i] = strings.ReplaceAll(a, ArgInstance, strconv.Itoa(inst))
	}
	o.Ready = ready
	return o
}

// probe runs the readiness command until it exits 0 or ctx ends. It runs
// on its own goroutine, with its own copy of the options.
func (s *Supervisor) probe(ctx context.Context, g *generation, o Options) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pid, exited, err := s.startAux(o, o.Ready.Command, nil)
		if err != nil {
			s.log.Error(logev.ProbeStartFailed, KeyGen, g.num, KeyError, err)
			return
		}
		select {
		case e := <-exited:
			if e.Success() {
				s.post(event{kind: evProbeOK, gen: g})
				return
			}
		case <-ctx.Done():
			unix.Kill(-pid, unix.SIGKILL) // no longer needed: the generation is ready or gone
			<-exited
			return
		}
		t.Reset(o.Ready.Interval)
	}
}

// startAux starts a helper command (check, probe) as the child would run:
// same user, directory and environment, no sockets, in its own process
// group that is killed once it exits. Output goes to out (nil: /dev/null).
func (s *Supervisor) startAux(o Options, argv []string, out *os.File) (int, <-chan signals.Exit, error) {
	path, err := LookPath(argv[0], o.Dir, o.Env)
	if err != nil {
		return 0, nil, err
	}
	return s.startAuxPath(o, path, argv, out)
}

// startAuxPath is startAux running the executable at path (resolved
// already) with argv.
func (s *Supervisor) startAuxPath(o Options, path string, argv []string, out *os.File) (int, <-chan signals.Exit, error) {
	cmd := &socketact.Command{
		Shim: o.Shim, Path: path, Args: argv, Dir: o.Dir,
		Env: socketact.ChildEnv(os.Environ(), o.Env, nil),
		UID: o.UID, GID: o.GID, Groups: o.Groups, Stdout: out, Stderr: out,
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL},
		// Not the service: signals meant for it (systemctl kill -s HUP
		// reaches the check the HUP's reload starts) must not end it.
		Helper: true,
	}
	res := s.sp.start(cmd, nil)
	if res.err != nil {
		if res.proc != nil {
			res.proc.Release()
		}
		return 0, nil, res.err
	}
	res.proc.Release()
	s.helpers.add(res.pid)
	exited := make(chan signals.Exit, 1)
	go func() {
		e := <-res.exited
		s.helpers.end(res.pid)
		exited <- e
	}()
	return res.pid, exited, nil
}

// helperGroups are the process groups of the helpers running (checks,
// probes, an upgrade's checks): each is killed once its leader exits, and
// every one left when Run returns (a check still running when hupd stops:
// what it started must not outlive hupd). Any goroutine.
type helperGroups struct {
	mu   sync.Mutex
	pgid map[int]bool
	done bool // Run returned: a helper that starts now is killed at once
}

func (h *helperGroups) add(pgid int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		unix.Kill(-pgid, unix.SIGKILL)
		return
	}
	if h.pgid == nil {
		h.pgid = map[int]bool{}
	}
	h.pgid[pgid] = true
}

// end kills the group of a helper whose leader has exited (under the lock:
// killAll cannot kill a reused group id after it).
func (h *helperGroups) end(pgid int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	unix.Kill(-pgid, unix.SIGKILL)
	delete(h.pgid, pgid)
}

// killAll kills every helper's group; later helpers are killed as they
// start.
func (h *helperGroups) killAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done = true
	for pgid := range h.pgid {
		unix.Kill(-pgid, unix.SIGKILL)
	}
}

// status builds a snapshot, with each generation's group (and each
// instance's, for a generation of several) to sample; Run's goroutine only.
func (s *Supervisor) status() (Status, []*contain.Group, [][]*contain.Group) {
	now := time.Now()
	st := Status{Name: s.opts.Name, PID: os.Getpid(), Strategy: s.opts.Reload, LastReload: s.last, Note: s.note, Containment: s.containment(),
		Reloads: s.reloads, Restarts: s.restarts, Upgrades: s.upgrades, RolledBack: s.rolledBack, Version: s.opts.Version, Stopping: s.stopping, Listeners: []ListenerStatus{}, Generations: []GenerationStatus{}}
	for i, l := range s.listeners {
		st.Listeners = append(st.Listeners, ListenerStatus{FD: 3 + i, Name: l.Spec.FDName(), Address: l.Bound.String(), Inherited: l.Inherited, Pending: l.Pending()})
	}
	var groups []*contain.Group
	var inst [][]*contain.Group
	var done []*genSet
	for _, g := range s.gens {
		if !g.set.multi() {
			st.Generations = append(st.Generations, g.statusOf(now))
			groups, inst = append(groups, g.grp), append(inst, nil)
			continue
		}
		if slices.Contains(done, g.set) {
			continue
		}
		done = append(done, g.set)
		gs, grps := s.setStatus(g.set, now)
		st.Generations = append(st.Generations, gs)
		groups, inst = append(groups, nil), append(inst, grps)
	}
	// A generation whose every instance waits for its restart.
	for _, set := range s.sets {
		if set.multi() && !slices.Contains(done, set) && len(set.pending) > 0 {
			gs, grps := s.setStatus(set, now)
			st.Generations = append(st.Generations, gs)
			groups, inst = append(groups, nil), append(inst, grps)
		}
	}
	st.Instances, st.Rolling = max(s.opts.Instances, 1), s.opts.Rolling
	if cur := s.current(); cur != nil {
		st.ConfigHash = cur.configHash
	}
	st.StartLimit = s.opts.StartLimit.String()
	st.Ready, st.ReadyTimeout = s.opts.Ready.String(), Duration(s.opts.Ready.Timeout)
	if !s.opts.StartLimit.Off() {
		st.StartFailures = s.startFails.count(s.opts.StartLimit, now)
	}
	return st, groups, inst
}

// sameFiles reports whether a and b are the same sockets in the same order.
func sameFiles(a, b []*socketact.Listener) bool {
	return slices.EqualFunc(a, b, func(x, y *socketact.Listener) bool { return x.File == y.File })
}
