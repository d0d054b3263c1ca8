// Package shim is the child side of hupd's exec shim: the first code that
// runs in every child hupd starts. It sets LISTEN_PID to the process's own
// PID, drops privileges, changes directory, restores default signal
// dispositions and an empty signal mask, marks every fd beyond the sockets
// close-on-exec, and execs the target, which keeps the PID. WATCHDOG_PID is
// set the same way when hupd asks for a watchdog.
//
// It runs from this package's init, before the rest of hupd's packages are
// initialised: Go initialises packages in import-path order among those
// whose imports are ready, and this one imports only os, syscall and
// strconv, so it runs ahead of every heavier package (measured: package
// initialisation would otherwise add about a millisecond to every spawn).
// Keep its imports that small.
package shim

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// The protocol between hupd (socketact.Command) and the shim.
const (
	// EnvMarker=MarkerVersion in the environment makes a hupd process a shim.
	EnvMarker     = "HUPD_SHIM"
	MarkerVersion = "1"
	// EnvUnset names (comma-separated) variables hupd added only for the
	// shim's own runtime; the shim removes them before it execs.
	EnvUnset = "HUPD_SHIM_UNSET"
	// Argv0 is the shim's argv[0]. The arguments that follow are: fd count,
	// uid, gid, supplementary groups (comma-separated), dir, hupd's PID,
	// target path, then the target's argv.
	Argv0     = "hupd-shim"
	Fixed     = 7
	NoID      = "-"
	GroupsSep = ","
	// FirstFD is the first socket; the status socket follows the sockets.
	FirstFD = 3
	// Exit codes when the target cannot be exec'd, as a shell uses them.
	ExitCannotExec = 126
	ExitNotFound   = 127
)

// EnvTrap=1 asks the shim to trap the target's bind(2) and listen(2) calls
// with a seccomp user-notification filter and to send the filter's notify
// fd to hupd over the status socket, after the byte TrapMarker, just
// before it execs: hupd then answers those calls (bind redirection).
const (
	EnvTrap    = "HUPD_SHIM_TRAP"
	TrapMarker = 0
)

// EnvHelper=1 marks the target as a helper hupd runs for the service (a
// reload check, a readiness command, an upgrade's check), not the service
// itself. A signal
// meant for the service (systemctl kill, docker kill, kill -PGID) reaches
// every process of it, and hupd may start a helper in answer to that very
// signal (systemctl kill -s HUP: a reload, its check) while the sender is
// still going through the service's processes. So the shim ignores the
// stray signals from its start, and execs the target with helperSignals
// ignored (SIG_IGN survives exec). hupd ends a helper with SIGKILL.
const EnvHelper = "HUPD_SHIM_HELPER"

const (
	envListenPID    = "LISTEN_PID"
	envWatchdogUSec = "WATCHDOG_USEC"
	envWatchdogPID  = "WATCHDOG_PID"
)

func init() {
	if os.Getenv(EnvMarker) == MarkerVersion {
		Run()
	}
}

// StandbyArg as argv[1] (argv[2] is the fd count) starts a standby shim:
// it initialises, then waits on its control socket (the fd after the
// sockets) for the exec spec, so that the Go runtime's start-up is paid
// before a spawn is asked for, not during it. The spec is NUL-separated:
// the count of argument fields, the fields (as a shim's argv[1:]), then the
// complete environment.
const StandbyArg = "standby"

// StandbyArmed is the byte a standby shim writes on its control socket once
// it waits for its spec with the stray signals ignored (see ignoreStray).
const StandbyArmed = 'R'

// Run turns this process into the target and never returns. A failure is
// written to the status socket ("CODE message") and the shim exits CODE.
func Run() {
	runtime.LockOSThread() // the signal mask is per thread: exec from this one
	helper := os.Getenv(EnvHelper) == "1"
	if helper {
		ignoreStray()
	}
	os.Unsetenv(EnvHelper)
	os.Unsetenv(EnvMarker)
	if names := os.Getenv(EnvUnset); names != "" {
		for _, k := range strings.Split(names, ",") {
			os.Unsetenv(k)
		}
		os.Unsetenv(EnvUnset)
	}
	argv := os.Args
	if len(argv) == 3 && argv[1] == StandbyArg {
		argv = waitForSpec(argv[2])
	}
	trap := os.Getenv(EnvTrap) == "1"
	os.Unsetenv(EnvTrap)
	a, err := parseArgs(argv)
	if err != "" {
		os.Stderr.WriteString("hupd shim: " + err + "\n")
		os.Exit(ExitCannotExec)
	}
	statusFD := FirstFD + a.nfds
	fail := func(code int, msg string) {
		syscall.Write(statusFD, []byte(strconv.Itoa(code)+" "+msg))
		os.Exit(code)
	}
	syscall.CloseOnExec(statusFD)
	if msg := a.dropPrivileges(); msg != "" {
		fail(ExitCannotExec, msg)
	}
	if a.dir != "" {
		if err := syscall.Chdir(a.dir); err != nil {
			fail(ExitCannotExec, "chdir "+a.dir+": "+err.Error())
		}
	}
	if a.nfds > 0 {
		os.Setenv(envListenPID, strconv.Itoa(os.Getpid()))
	}
	if os.Getenv(envWatchdogUSec) != "" { // sd_watchdog_enabled(3) checks WATCHDOG_PID
		os.Setenv(envWatchdogPID, strconv.Itoa(os.Getpid()))
	}
	// Anything hupd inherited without CLOEXEC must not reach the target.
	closeOnExecFrom(statusFD + 1)
	var keep []syscall.Signal // left ignored through the reset
	if helper {
		keep = helperSignals
	}
	resetSignals(keep)
	if trap {
		// Last: the filter stays with the thread that execs, and nothing
		// the shim itself does after it may be trapped.
		if msg := installTrap(statusFD); msg != "" {
			fail(ExitCannotExec, "bind redirection: "+msg)
		}
	}
	err2 := syscall.Exec(a.path, a.argv, os.Environ())
	code := ExitCannotExec
	msg := err2.Error()
	switch err2 {
	case syscall.ENOENT:
		code = ExitNotFound
	case syscall.E2BIG:
		msg = tooLarge(a.argv, os.Environ()) + " (" + msg + ")"
	}
	fail(code, "exec "+a.path+": "+msg)
}

// waitForSpec reads the exec spec from the control socket, installs its
// environment and returns the argv it describes. EOF without a spec (hupd
// discarded this standby) ends the process quietly.
func waitForSpec(nfdsArg string) []string {
	nfds, ok := atoi(nfdsArg)
	if !ok {
		os.Stderr.WriteString("hupd shim: bad fd count " + strconv.Quote(nfdsArg) + "\n")
		os.Exit(ExitCannotExec)
	}
	ctl := FirstFD + nfds
	// A signal meant for the service (systemctl kill, docker kill, kill
	// -PGID) reaches every process of it, this one too, and the Go
	// runtime's default for HUP, INT, TERM, … is to die: the reload this
	// standby was kept for would fail. hupd itself never signals a standby
	// (it discards one by closing the control socket), so ignore them while
	// waiting, and say so: hupd waits for that byte before it uses us.
	ignoreStray()
	for {
		if _, err := syscall.Write(ctl, []byte{StandbyArmed}); err != syscall.EINTR {
			break
		}
	}
	var buf []byte
	chunk := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(ctl, chunk)
		if err == syscall.EINTR {
			continue
		}
		if n <= 0 {
			break
		}
		buf = append(buf, chunk[:n]...)
	}
	if len(buf) == 0 {
		os.Exit(0)
	}
	// From here on this process is the next generation: a signal hupd
	// sends it (a stop in the middle of the start) must act again. Only
	// the default action is left (the Go runtime's handlers for these are
	// gone), which for each of them is what the runtime would have done.
	restoreStray()
	fields := strings.Split(string(buf), "\x00")
	n, ok := atoi(fields[0])
	if !ok || 1+n > len(fields) {
		os.Stderr.WriteString("hupd shim: bad spec\n")
		os.Exit(ExitCannotExec)
	}
	os.Clearenv()
	for _, kv := range fields[1+n:] {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}
	return append([]string{Argv0}, fields[1:1+n]...)
}

type args struct {
	nfds     int
	uid, gid int // -1: unchanged
	groups   []int
	dir      string
	ppid     int
	path     string
	argv     []string
}

func parseArgs(argv []string) (args, string) {
	a := args{uid: -1, gid: -1}
	if len(argv) < Fixed+2 {
		return a, "too few arguments"
	}
	var ok bool
	if a.nfds, ok = atoi(argv[1]); !ok {
		return a, "bad fd count " + strconv.Quote(argv[1])
	}
	if a.uid, ok = parseID(argv[2]); !ok {
		return a, "bad uid " + strconv.Quote(argv[2])
	}
	if a.gid, ok = parseID(argv[3]); !ok {
		return a, "bad gid " + strconv.Quote(argv[3])
	}
	if argv[4] != "" {
		for _, g := range strings.Split(argv[4], GroupsSep) {
			id, ok := parseID(g)
			if !ok || id < 0 {
				return a, "bad group " + strconv.Quote(g)
			}
			a.groups = append(a.groups, id)
		}
	}
	a.dir = argv[5]
	if a.ppid, ok = atoi(argv[6]); !ok {
		return a, "bad parent pid " + strconv.Quote(argv[6])
	}
	a.path, a.argv = argv[7], argv[8:]
	return a, ""
}

func atoi(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

func parseID(s string) (int, bool) {
	if s == NoID {
		return -1, true
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return int(n), err == nil
}

func (a args) dropPrivileges() string {
	if a.uid < 0 && a.gid < 0 {
		return ""
	}
	if a.gid >= 0 {
		groups := a.groups
		if groups == nil {
			groups = []int{a.gid}
		}
		if err := syscall.Setgroups(groups); err != nil {
			return "setgroups: " + err.Error()
		}
		if err := syscall.Setgid(a.gid); err != nil {
			return "setgid " + strconv.Itoa(a.gid) + ": " + err.Error()
		}
	}
	if a.uid >= 0 {
		if err := syscall.Setuid(a.uid); err != nil {
			return "setuid " + strconv.Itoa(a.uid) + ": " + err.Error()
		}
	}
	// A change of credentials clears the parent-death signal: arm it again,
	// and stop here if hupd is already gone.
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0, 0); e != 0 {
		return "prctl PR_SET_PDEATHSIG: " + e.Error()
	}
	if os.Getppid() != a.ppid {
		return "hupd exited during start"
	}
	return ""
}

// sysCloseRange is close_range(2), the same number on every architecture.
const (
	sysCloseRange     = 436
	closeRangeCloexec = 1 << 2
)

func closeOnExecFrom(first int) {
	if _, _, e := syscall.RawSyscall(sysCloseRange, uintptr(first), ^uintptr(0)>>32, closeRangeCloexec); e == 0 {
		return
	}
	// Kernels before 5.11: walk /proc/self/fd.
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		if fd, ok := atoi(n); ok && fd >= first {
			syscall.CloseOnExec(fd)
		}
	}
}

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on
// amd64, arm64, riscv64, ppc64le and s390x.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// straySignals are the signals a standby shim ignores while it waits: those
// that tools send to every process of a service, whose default action (or
// the Go runtime's) would end or stop it.
var straySignals = []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGPIPE, syscall.SIGTSTP, syscall.SIGTTIN,
	syscall.SIGTTOU}

// helperSignals are the stray signals a helper's target starts with
// ignored (EnvHelper): those sent to a whole service to make it reload or
// reopen its logs, while hupd goes on (a stop signal ends the reload
// anyway). Not TERM, INT or QUIT: whatever a helper runs inherits the
// ignored ones, and a check that starts a server and stops it with TERM
// must be able to. Not ALRM, PIPE and the job-control ones, whose default
// action programs rely on.
var helperSignals = []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2}

// ignoreStray sets SIG_IGN for straySignals; one pending is discarded.
func ignoreStray() { setSignals(straySignals, 1) } // handler 1 is SIG_IGN

// restoreStray sets SIG_DFL for straySignals again.
func restoreStray() { setSignals(straySignals, 0) }

func setSignals(sigs []syscall.Signal, handler uintptr) {
	act := kernelSigaction{handler: handler}
	for _, sig := range sigs {
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	}
}

// resetSignals restores SIG_DFL for every signal but keep (left as they
// are: ignored, for a helper, with no instant of SIG_DFL in between) and
// unblocks them all, so a signal ignored or blocked in hupd's own parent
// (nohup, a shell's background job) does not reach the target through exec.
func resetSignals(keep []syscall.Signal) {
	dfl := kernelSigaction{} // handler 0 is SIG_DFL
	for sig := 1; sig <= 64; sig++ {
		if sig == int(syscall.SIGKILL) || sig == int(syscall.SIGSTOP) || slices.Contains(keep, syscall.Signal(sig)) {
			continue
		}
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	}
	var empty uint64
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 2 /* SIG_SETMASK */, uintptr(unsafe.Pointer(&empty)), 0, 8, 0, 0)
}
