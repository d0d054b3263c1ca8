package socketact

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Exit codes of a shim that could not exec its target, as a shell uses them.
const (
	ExitCannotExec = 126
	ExitNotFound   = 127
)

// shim argv: [ShimArgv0, nfds, uid, gid, groups, dir, ppid, path, argv...]
const (
	ShimArgv0   = "hupd-shim"
	shimFixed   = 7
	noID        = "-"
	groupsSep   = ","
	statusFDOff = 0 // the status pipe is fd 3+nfds+statusFDOff
)

// IsShim reports whether this process was started as a shim. main calls it
// before anything else and then RunShim.
func IsShim() bool { return os.Getenv(envShim) == shimMarkerVersion }

// RunShim turns this process into the target program and never returns:
// it sets LISTEN_PID to its own PID, drops privileges, changes directory,
// restores default signal dispositions and an empty signal mask, marks every
// fd beyond the sockets close-on-exec and execs. A failure is written to the
// status pipe the parent reads, and the shim exits 126 or 127.
func RunShim() {
	runtime.LockOSThread() // the mask is per thread: exec from this one
	os.Unsetenv(envShim)
	st, err := parseShimArgs(os.Args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hupd shim: %v\n", err)
		os.Exit(ExitCannotExec)
	}
	status := os.NewFile(uintptr(firstListenFD+st.nfds), "status")
	unix.CloseOnExec(int(status.Fd()))
	fail := func(code int, err error) {
		fmt.Fprintf(status, "%d %v", code, err)
		os.Exit(code)
	}
	if err := st.dropPrivileges(); err != nil {
		fail(ExitCannotExec, err)
	}
	if st.dir != "" {
		if err := os.Chdir(st.dir); err != nil {
			fail(ExitCannotExec, fmt.Errorf("chdir: %w", err))
		}
	}
	if st.nfds > 0 {
		os.Setenv(EnvListenPID, strconv.Itoa(os.Getpid()))
	}
	// Anything hupd inherited without CLOEXEC must not reach the target.
	if err := unix.CloseRange(uint(firstListenFD+st.nfds+1), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		closeOnExecFrom(firstListenFD + st.nfds + 1)
	}
	resetSignals()
	err = unix.Exec(st.path, st.argv, os.Environ())
	code := ExitCannotExec
	if errors.Is(err, fs.ErrNotExist) {
		code = ExitNotFound
	}
	fail(code, fmt.Errorf("exec %s: %w", st.path, err))
}

type shimArgs struct {
	nfds     int
	uid, gid int // -1: unchanged
	groups   []int
	dir      string
	ppid     int
	path     string
	argv     []string
}

func parseShimArgs(args []string) (shimArgs, error) {
	st := shimArgs{uid: -1, gid: -1}
	if len(args) < shimFixed+2 {
		return st, fmt.Errorf("want at least %d arguments, have %d", shimFixed+2, len(args))
	}
	var err error
	if st.nfds, err = strconv.Atoi(args[1]); err != nil || st.nfds < 0 {
		return st, fmt.Errorf("bad fd count %q", args[1])
	}
	if st.uid, err = parseID(args[2]); err != nil {
		return st, err
	}
	if st.gid, err = parseID(args[3]); err != nil {
		return st, err
	}
	if args[4] != "" {
		for _, g := range strings.Split(args[4], groupsSep) {
			id, err := parseID(g)
			if err != nil {
				return st, err
			}
			st.groups = append(st.groups, id)
		}
	}
	st.dir = args[5]
	if st.ppid, err = strconv.Atoi(args[6]); err != nil {
		return st, fmt.Errorf("bad parent pid %q", args[6])
	}
	st.path, st.argv = args[7], args[8:]
	return st, nil
}

func parseID(s string) (int, error) {
	if s == noID {
		return -1, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return -1, fmt.Errorf("bad id %q", s)
	}
	return int(n), nil
}

func formatID(id int) string {
	if id < 0 {
		return noID
	}
	return strconv.Itoa(id)
}

func (st shimArgs) dropPrivileges() error {
	if st.uid < 0 && st.gid < 0 {
		return nil
	}
	if st.groups != nil || st.gid >= 0 {
		groups := st.groups
		if groups == nil {
			groups = []int{st.gid}
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("setgroups %v: %w", groups, err)
		}
	}
	if st.gid >= 0 {
		if err := syscall.Setgid(st.gid); err != nil {
			return fmt.Errorf("setgid %d: %w", st.gid, err)
		}
	}
	if st.uid >= 0 {
		if err := syscall.Setuid(st.uid); err != nil {
			return fmt.Errorf("setuid %d: %w", st.uid, err)
		}
	}
	// A change of credentials clears the parent-death signal: arm it again,
	// and stop here if the parent is already gone.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_PDEATHSIG: %w", err)
	}
	if os.Getppid() != st.ppid {
		return errors.New("parent exited during start")
	}
	return nil
}

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on
// amd64, arm64, riscv64, ppc64 and s390x.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// resetSignals restores SIG_DFL for every signal and unblocks them all, so a
// signal ignored or blocked in hupd's own parent (nohup, a shell's
// background job) is not inherited by the target through exec.
func resetSignals() {
	dfl := kernelSigaction{} // handler 0 is SIG_DFL
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	}
	var empty unix.Sigset_t
	unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil)
}

func closeOnExecFrom(first int) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			unix.CloseOnExec(fd)
		}
	}
}

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
}

// ExecError is what a shim reports when it could not become its target.
type ExecError struct {
	Code int // ExitCannotExec or ExitNotFound
	Msg  string
}

func (e *ExecError) Error() string { return e.Msg }

// Start starts the shim for c. The returned wait function blocks until the
// shim has exec'd the target (nil) or failed (*ExecError); call it exactly once.
func (c *Command) Start() (p *os.Process, wait func() error, err error) {
	shim := c.Shim
	if shim == "" {
		if shim, err = os.Executable(); err != nil {
			return nil, nil, err
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer w.Close()
	uid, gid := c.UID, c.GID
	if c.Groups != nil && gid < 0 {
		gid = os.Getgid()
	}
	groups := make([]string, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = strconv.Itoa(g)
	}
	argv := append([]string{
		ShimArgv0, strconv.Itoa(len(c.Sockets)), formatID(uid), formatID(gid),
		strings.Join(groups, groupsSep), c.Dir, strconv.Itoa(os.Getpid()), c.Path,
	}, c.Args...)
	files := make([]*os.File, 0, 3+len(c.Sockets)+1)
	for _, f := range []*os.File{c.Stdin, c.Stdout, c.Stderr} {
		if f == nil { // a closed fd 0-2 would be reused by the target's first open
			if f, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
				r.Close()
				return nil, nil, err
			}
			defer f.Close()
		}
		files = append(files, f)
	}
	files = append(files, c.Sockets...)
	files = append(files, w)
	env := append(c.Env[:len(c.Env):len(c.Env)], envShim+"="+shimMarkerVersion)
	p, err = os.StartProcess(shim, argv, &os.ProcAttr{Env: env, Files: files, Sys: c.Sys})
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return p, func() error { return readExecStatus(r) }, nil
}

func readExecStatus(r *os.File) error {
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return nil // closed by a successful exec
	}
	code, msg, _ := strings.Cut(string(b), " ")
	n, _ := strconv.Atoi(code)
	return &ExecError{Code: n, Msg: msg}
}
