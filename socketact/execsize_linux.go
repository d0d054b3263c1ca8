package socketact

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/hupd/hupd/socketact/shim"
	"golang.org/x/sys/unix"
)

// ErrExecTooLarge is wrapped by the errors that say a program's arguments
// and environment exceed what execve(2) accepts (E2BIG).
var ErrExecTooLarge = errors.New("socketact: arguments and environment too large for exec")

// ExecReserve is room kept, when a configuration is checked, for what
// hupd adds to a child's argv and environment at spawn: the shim's own
// arguments and variables, NOTIFY_SOCKET, LISTEN_*, WATCHDOG_* and the
// hand-over dialects' variables.
const ExecReserve = 4 << 10

// MaxArgStrlen is the kernel's limit on one argument or environment
// string, its terminating NUL included (MAX_ARG_STRLEN: 32 pages, 128 KiB
// with 4 KiB pages).
func MaxArgStrlen() int { return 32 * os.Getpagesize() }

// ExecLimit is the most that the strings of argv and envp, with their
// NULs and pointers (see ExecSize), may take in one execve by a process
// with hupd's RLIMIT_STACK, as the kernel computes it (fs/exec.c): a
// quarter of the stack limit, at most 6 MiB (three quarters of _STK_LIM),
// at least 128 KiB (ARG_MAX). why describes it for messages.
func ExecLimit() (limit int, why string) {
	const most, least = 6 << 20, 128 << 10
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_STACK, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur/4 >= most {
		return most, "the kernel's most"
	}
	if q := int(rl.Cur / 4); q > least {
		return q, fmt.Sprintf("a quarter of the stack limit (RLIMIT_STACK %d bytes)", rl.Cur)
	}
	return least, "the kernel's least (ARG_MAX)"
}

// ExecSize is what argv and env cost an execve against ExecLimit: each
// string with its NUL, and a pointer per string.
func ExecSize(argv, env []string) int { return shim.ExecSize(argv, env) }

// ExecSizeError says that a program's arguments and environment exceed
// ExecLimit; errors.Is(err, ErrExecTooLarge) holds for it.
type ExecSizeError struct {
	Args, Env int // ExecSize of each part
	Limit     int
	Why       string // how Limit was found (see ExecLimit)
}

func (e *ExecSizeError) Error() string {
	return fmt.Sprintf("arguments and environment too large for exec: %d bytes (%d of arguments, %d of environment); the limit is %d bytes, %s",
		e.Args+e.Env, e.Args, e.Env, e.Limit, e.Why)
}

func (e *ExecSizeError) Is(target error) bool { return target == ErrExecTooLarge }

// CheckExecSize returns an *ExecSizeError when argv and env, with
// ExecReserve, exceed ExecLimit.
func CheckExecSize(argv, env []string) error {
	limit, why := ExecLimit()
	if a, e := ExecSize(argv, nil), ExecSize(nil, env); a+e+ExecReserve > limit {
		return &ExecSizeError{Args: a, Env: e, Limit: limit, Why: why}
	}
	return nil
}

// tooLarge explains an E2BIG from starting bin with argv and env.
func tooLarge(bin string, argv, env []string, err error) error {
	if !errors.Is(err, syscall.E2BIG) {
		return err
	}
	limit, why := ExecLimit()
	return fmt.Errorf("fork/exec %s: %w (%w)", bin, &ExecSizeError{Args: ExecSize(argv, nil), Env: ExecSize(nil, env), Limit: limit, Why: why}, err)
}
