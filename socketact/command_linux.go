package socketact

import (
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/hupd/hupd/socketact/shim"
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
	bin := c.Shim
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
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
		shim.Argv0, strconv.Itoa(len(c.Sockets)), formatID(uid), formatID(gid),
		strings.Join(groups, shim.GroupsSep), c.Dir, strconv.Itoa(os.Getpid()), c.Path,
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
	env := append(c.Env[:len(c.Env):len(c.Env)], shim.EnvMarker+"="+shim.MarkerVersion)
	p, err = os.StartProcess(bin, argv, &os.ProcAttr{Env: env, Files: files, Sys: c.Sys})
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

func formatID(id int) string {
	if id < 0 {
		return shim.NoID
	}
	return strconv.Itoa(id)
}
