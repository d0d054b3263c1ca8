package socketact

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hupd/hupd/socketact/shim"
	"golang.org/x/sys/unix"
)

// Exit codes of a shim that could not exec its target, as a shell uses them.
const (
	ExitCannotExec = shim.ExitCannotExec
	ExitNotFound   = shim.ExitNotFound
)

// Command describes a target program to start through the shim.
type Command struct {
	Shim string   // the hupd binary; "" means os.Executable
	Path string   // resolved target executable
	Args []string // argv, including argv[0]
	Env  []string // complete environment (see ChildEnv)
	Dir  string
	// UID and GID to run as (-1 keeps hupd's); Groups are the
	// supplementary groups (nil: just GID).
	UID, GID int
	Groups   []int
	Sockets  []*os.File // become fds 3, 4, …
	Stdin    *os.File
	Stdout   *os.File
	Stderr   *os.File
	// Sys is passed to os.StartProcess; Setpgid and Pdeathsig belong here.
	Sys *syscall.SysProcAttr
	// Trap makes the shim trap the target's bind(2) and listen(2) with a
	// seccomp user-notification filter; the wait function of Start and
	// Standby.Exec return its notify fd (see package legacy).
	Trap bool
	// Helper marks a helper of the service (a reload check, a readiness
	// command, an upgrade's check): it starts with the reload signals meant
	// for the service ignored (shim.EnvHelper); end it with SIGKILL.
	Helper bool
}

// ExecError is what a shim reports when it could not become its target.
type ExecError struct {
	Code int // ExitCannotExec or ExitNotFound
	Msg  string
}

func (e *ExecError) Error() string { return e.Msg }

// Start starts the shim for c. The returned wait function blocks until the
// shim has exec'd the target (nil) or failed (*ExecError), and returns the
// seccomp notify fd when c.Trap; call it exactly once.
func (c *Command) Start() (p *os.Process, wait func() (*os.File, error), err error) {
	r, w, err := statusPair(false)
	if err != nil {
		return nil, nil, err
	}
	defer w.Close()
	argv := append([]string{shim.Argv0}, c.shimArgs()...)
	env := append(c.shimEnv(), shim.EnvMarker+"="+shim.MarkerVersion)
	env = append(env, shimRuntimeEnv(c.Env)...)
	if p, err = c.startShim(argv, env, w); err != nil {
		r.Close()
		return nil, nil, err
	}
	return p, func() (*os.File, error) { return readExecStatus(r, c.Trap) }, nil
}

// statusPair is the channel a shim reports on: EOF once it has exec'd, or
// "CODE message"; a socket so that it can carry the seccomp notify fd.
// With pollable, our end is non-blocking and read through the runtime's
// poller, so that Close ends a read in progress.
func statusPair(pollable bool) (ours, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	if pollable {
		if err := unix.SetNonblock(fds[0], true); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			return nil, nil, os.NewSyscallError("fcntl", err)
		}
	}
	return os.NewFile(uintptr(fds[0]), "shim status"), os.NewFile(uintptr(fds[1]), "shim status"), nil
}

// shimEnv is c.Env plus the shim's own settings for the exec.
func (c *Command) shimEnv() []string {
	env := c.Env[:len(c.Env):len(c.Env)]
	if c.Trap {
		env = append(env, shim.EnvTrap+"=1")
	}
	if c.Helper {
		env = append(env, shim.EnvHelper+"=1")
	}
	return env
}

// shimArgs is the shim's argv after argv[0] for c.
func (c *Command) shimArgs() []string {
	uid, gid := c.UID, c.GID
	if c.Groups != nil && gid < 0 {
		gid = os.Getgid()
	}
	groups := make([]string, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = strconv.Itoa(g)
	}
	return append([]string{
		strconv.Itoa(len(c.Sockets)), formatID(uid), formatID(gid),
		strings.Join(groups, shim.GroupsSep), c.Dir, strconv.Itoa(os.Getpid()), c.Path,
	}, c.Args...)
}

// startShim starts hupd's binary as a shim with c's stdio and sockets and
// status as the fd after the sockets.
func (c *Command) startShim(argv, env []string, status *os.File) (*os.Process, error) {
	bin := c.Shim
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	files := make([]*os.File, 0, 3+len(c.Sockets)+1)
	for _, f := range []*os.File{c.Stdin, c.Stdout, c.Stderr} {
		if f == nil { // a closed fd 0-2 would be reused by the target's first open
			var err error
			if f, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
				return nil, err
			}
			defer f.Close()
		}
		files = append(files, f)
	}
	files = append(files, c.Sockets...)
	files = append(files, status)
	p, err := os.StartProcess(bin, argv, &os.ProcAttr{Env: env, Files: files, Sys: c.Sys})
	if err != nil {
		return nil, tooLarge(bin, argv, env, err)
	}
	return p, nil
}

// Standby is a shim started ahead of time: it holds its sockets and stdio
// and waits, with the Go runtime already up, until Exec tells it what to
// become. That takes the shim's start-up off the path from a reload's
// trigger to the new child's exec.
type Standby struct {
	Process *os.Process
	ctl     *os.File
	nfds    int
	armed   chan struct{} // closed once the shim said it waits, or cannot
	armErr  error         // set before armed is closed: why it cannot
}

// StandbyArmTimeout bounds how long Exec waits for a standby that has not
// yet said it waits for its spec (its runtime is still starting).
const StandbyArmTimeout = time.Second

// ErrStandbyNotArmed is Exec's error for a standby that did not say in time
// that it waits; it has been discarded.
var ErrStandbyNotArmed = errors.New("socketact: standby shim not waiting yet")

// Prestart starts a standby shim. Of c it uses Shim, Sockets, Stdin,
// Stdout, Stderr and Sys; what to exec comes later, with Exec.
func (c *Command) Prestart() (*Standby, error) {
	ours, theirs, err := statusPair(true)
	if err != nil {
		return nil, err
	}
	defer theirs.Close()
	argv := []string{shim.Argv0, shim.StandbyArg, strconv.Itoa(len(c.Sockets))}
	// The spec replaces this environment wholesale, so the standby's own Go
	// runtime can be kept small: one P, no GC, no cgroup polling; fewer
	// threads also make the final execve's thread teardown quicker.
	env := append([]string{shim.EnvMarker + "=" + shim.MarkerVersion}, shimRuntimeEnv(nil)...)
	p, err := c.startShim(argv, env, theirs)
	if err != nil {
		ours.Close()
		return nil, err
	}
	s := &Standby{Process: p, ctl: ours, nfds: len(c.Sockets), armed: make(chan struct{})}
	go s.waitArmed()
	return s, nil
}

// waitArmed reads the shim's StandbyArmed byte. It ends when the byte
// comes, the shim exits (EOF) or Close closes the socket.
func (s *Standby) waitArmed() {
	defer close(s.armed)
	b := make([]byte, 1)
	n, err := s.ctl.Read(b)
	switch {
	case err != nil:
		s.armErr = err
	case n != 1 || b[0] != shim.StandbyArmed:
		s.armErr = fmt.Errorf("socketact: standby shim said %q, want %q", b[:n], shim.StandbyArmed)
	}
}

// Armed is closed once the standby waits for its spec with the signals that
// tools send to a whole service ignored (or once it cannot: it exited, or
// was closed). Exec waits for it.
func (s *Standby) Armed() <-chan struct{} { return s.armed }

// ArmErr is nil, after Armed is closed, when the standby waits for its spec.
func (s *Standby) ArmErr() error {
	<-s.armed
	return s.armErr
}

// Exec makes the standby exec c's target (Path, Args, Env, Dir, UID, GID,
// Groups, Trap; c must have as many sockets as the standby). It returns
// once the target runs (nil, and the seccomp notify fd when c.Trap) or the
// shim failed (*ExecError; it then exits). Call it at most once.
func (s *Standby) Exec(c *Command) (*os.File, error) {
	defer s.ctl.Close() // readExecStatus closes it too: a second Close is a no-op
	if len(c.Sockets) != s.nfds {
		return nil, fmt.Errorf("socketact: standby holds %d sockets, command has %d", s.nfds, len(c.Sockets))
	}
	t := time.NewTimer(StandbyArmTimeout)
	defer t.Stop()
	select {
	case <-s.armed:
		if s.armErr != nil {
			return nil, fmt.Errorf("socketact: standby: %w", s.armErr)
		}
	case <-t.C:
		s.ctl.Close()
		return nil, ErrStandbyNotArmed
	}
	args := c.shimArgs()
	spec := strconv.Itoa(len(args)) + "\x00" + strings.Join(args, "\x00")
	if env := c.shimEnv(); len(env) > 0 {
		spec += "\x00" + strings.Join(env, "\x00")
	}
	if _, err := s.ctl.WriteString(spec); err != nil {
		return nil, fmt.Errorf("socketact: standby: %w", err)
	}
	fd := int(s.ctl.Fd())
	if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
		return nil, os.NewSyscallError("shutdown", err)
	}
	// readExecStatus blocks in recvmsg until the exec (EOF) or a failure.
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	return readExecStatus(s.ctl, c.Trap)
}

// Close discards an unused standby: it sees EOF and exits.
func (s *Standby) Close() { s.ctl.Close() }

// shimRuntime keeps the shim's own Go runtime small: one P, no GC, no
// cgroup polling. Fewer threads also make the execve's teardown of them
// quicker (measured: a standby's exec went from 1.9 to 1.25 ms).
var shimRuntime = []string{"GOMAXPROCS=1", "GOGC=off", "GODEBUG=updatemaxprocs=0"}

// shimRuntimeEnv returns the shimRuntime settings that env does not set
// itself, and names them in the marker variable the shim reads to remove
// them again before it execs, so that the target sees env exactly.
func shimRuntimeEnv(env []string) []string {
	var add, names []string
	for _, kv := range shimRuntime {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") }) {
			add, names = append(add, kv), append(names, k)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return append(add, shim.EnvUnset+"="+strings.Join(names, ","))
}

// readExecStatus reads a shim's status socket to EOF: nothing means the
// target runs; "CODE message" an *ExecError. With trap, the seccomp notify
// fd comes first, after the marker byte; it is received close-on-exec.
func readExecStatus(r *os.File, trap bool) (*os.File, error) {
	defer r.Close()
	var (
		b      []byte
		notify *os.File
		buf    = make([]byte, 4096)
		oob    = make([]byte, unix.CmsgSpace(4*4))
	)
	fd := int(r.Fd())
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			closeFiles(notify)
			return nil, os.NewSyscallError("recvmsg", err)
		}
		for _, f := range receivedFiles(oob[:oobn]) {
			if notify == nil && trap && len(b) == 0 && n > 0 && buf[0] == shim.TrapMarker {
				notify = f
			} else {
				f.Close() // nothing else is expected: never keep it
			}
		}
		if n == 0 {
			break
		}
		b = append(b, buf[:n]...)
	}
	if notify != nil {
		b = b[1:]
	}
	if len(b) > 0 {
		closeFiles(notify)
		code, msg, _ := strings.Cut(string(b), " ")
		n, _ := strconv.Atoi(code)
		return nil, &ExecError{Code: n, Msg: msg}
	}
	if trap && notify == nil {
		return nil, &ExecError{Code: ExitCannotExec, Msg: "bind redirection: the shim sent no seccomp notify fd"}
	}
	return notify, nil // closed by a successful exec
}

func receivedFiles(oob []byte) []*os.File {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fs []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.SetNonblock(fd, true) // so that os.NewFile makes it pollable
			fs = append(fs, os.NewFile(uintptr(fd), "seccomp notify"))
		}
	}
	return fs
}

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

func formatID(id int) string {
	if id < 0 {
		return shim.NoID
	}
	return strconv.Itoa(id)
}
