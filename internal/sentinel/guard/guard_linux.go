// Package guard is the sentinel process itself: a copy of hupd's binary,
// started by hupd (package sentinel) with EnvMarker set, that outlives
// hupd just long enough to end every generation still registered when
// hupd dies, then exits.
//
// It runs from this package's init, before the rest of hupd's packages are
// initialised, as the exec shim does (socketact/shim): it imports only
// syscall, strconv and unsafe, so it runs ahead of every heavier package
// and never returns to them. It must stay that small: no os, no slog, no
// configuration.
//
// Model: hupd holds one end of a SOCK_SEQPACKET socketpair (close-on-exec,
// so no child of hupd holds it); the sentinel holds the other as fd FD.
// The sentinel says Armed once stray signals can no longer end it; hupd
// waits for that before any generation starts. Each message is one registration: Register (a generation's number,
// process group, optional cgroup directory, and the main process's pidfd
// as SCM_RIGHTS) or Unregister. EOF means that hupd is gone, whether it
// exited or was killed: the sentinel then ends every generation still
// registered and exits. A hupd that exits normally has unregistered every
// generation by then, so the sentinel finds nothing to do and exits 0.
//
// What it ends, per registration: with a cgroup, everything in it
// (cgroup.kill, or freeze-kill-thaw on kernels without it), then the
// emptied cgroup is removed; always, the process group (its id stays
// reserved while any member lives, so it names what is left of the
// generation even after its leader died of the parent-death signal) and
// the main process through its pidfd (never a reused PID). Only a group
// whose last member exited, and whose id was reused in the instant
// before hupd could unregister it, would be a stranger's: hupd kills a
// generation's group and unregisters it as soon as its main process is
// reaped. A process that left the group (setsid, setpgid) is ended only
// through a cgroup.
//
// Invariant: nothing but hupd's death (EOF) or SIGKILL ends the sentinel.
// It ignores every signal that can be sent to it by a group or service
// wide kill (HUP, INT, TERM, QUIT, USR1, USR2, PIPE, ALRM, the job-control
// and real-time signals…), it lives in a session of its own, and it has
// no parent-death signal.
package guard

import (
	"strconv"
	"syscall"
	"unsafe"
)

// The protocol between hupd (package sentinel) and the sentinel.
const (
	// EnvMarker=Version in the environment makes a hupd process the
	// sentinel.
	EnvMarker = "HUPD_SENTINEL"
	Version   = "1"
	// Argv0 is the sentinel's argv[0]; it takes no arguments.
	Argv0 = "hupd-sentinel"
	// FD is the sentinel's end of the socketpair.
	FD = 3
	// Sep separates the fields of a message.
	Sep = "\x00"
	// Register: "R" Sep gen Sep pgid Sep cgroup, with the main process's
	// pidfd as SCM_RIGHTS (or none). It replaces an earlier registration
	// of the same gen (a generation that follows its MAINPID=).
	Register = "R"
	// Unregister: "U" Sep gen. The generation is gone.
	Unregister = "U"
	// MaxMessage bounds a message (a cgroup path is at most PATH_MAX).
	MaxMessage = 8192
	// Armed is what the sentinel sends once it ignores stray signals and
	// holds no inherited fd: hupd waits for it before it goes on.
	Armed = "A"
	// ExitError is the sentinel's exit status when something could not
	// be ended (it says what on stderr).
	ExitError = 1
)

func init() {
	if v, _ := syscall.Getenv(EnvMarker); v == Version {
		Run()
	}
}

// reg is one registered generation.
type reg struct {
	pgid   int
	pidfd  int // -1: none
	cgroup string
}

// Run is the sentinel: it reads registrations until EOF, ends what is left
// and exits. It never returns.
func Run() {
	ignoreSignals()
	closeInherited()
	syscall.Write(FD, []byte(Armed))
	regs := map[string]*reg{}
	buf := make([]byte, MaxMessage)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := syscall.Recvmsg(FD, buf, oob, syscall.MSG_CMSG_CLOEXEC)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 {
			break // hupd is gone (or the socket is broken: the same to us)
		}
		fds := rights(oob[:oobn])
		handle(regs, string(buf[:n]), fds)
	}
	code := 0
	for _, r := range regs {
		if !end(r) {
			code = ExitError
		}
	}
	for _, r := range regs {
		if r.cgroup != "" && !removeCgroup(r.cgroup) {
			code = ExitError
		}
	}
	syscall.Exit(code)
}

// handle applies one message.
func handle(regs map[string]*reg, msg string, fds []int) {
	f := split(msg)
	switch {
	case len(f) == 4 && f[0] == Register:
		pgid, err := strconv.Atoi(f[2])
		if err != nil || pgid <= 1 { // kill(-1) or kill(0) would hit far too much
			pgid = 0
		}
		r := &reg{pgid: pgid, pidfd: -1, cgroup: f[3]}
		if len(fds) > 0 {
			r.pidfd, fds = fds[0], fds[1:]
		}
		if old := regs[f[1]]; old != nil && old.pidfd >= 0 {
			syscall.Close(old.pidfd)
		}
		regs[f[1]] = r
	case len(f) == 2 && f[0] == Unregister:
		if old := regs[f[1]]; old != nil {
			if old.pidfd >= 0 {
				syscall.Close(old.pidfd)
			}
			delete(regs, f[1])
		}
	default:
		warn("unknown message " + strconv.Quote(msg))
	}
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

func split(s string) []string {
	var f []string
	for {
		i := index(s, Sep[0])
		if i < 0 {
			return append(f, s)
		}
		f, s = append(f, s[:i]), s[i+1:]
	}
}

func index(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// rights returns the fds of the SCM_RIGHTS messages in oob.
func rights(oob []byte) []int {
	if len(oob) == 0 {
		return nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if got, err := syscall.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}

// Syscall numbers that are the same on every Linux architecture.
const (
	sysPidfdSendSignal = 424
)

// end kills everything of r: its cgroup if it has one, its process group
// and its main process. It reports whether that went without error.
func end(r *reg) bool {
	ok := true
	if r.cgroup != "" {
		if err := writeFile(r.cgroup+"/cgroup.kill", "1"); err == syscall.ENOENT {
			// Kernels before 5.14 have no cgroup.kill.
			ok = killFrozen(r.cgroup) && ok
		} else if err != nil {
			warn("cgroup.kill in " + r.cgroup + ": " + err.Error())
			ok = false
		}
	}
	// The group first: its id stays reserved while any member lives, so
	// it names what is left of the generation (workers whose master is
	// already dead of its parent-death signal).
	if r.pgid > 1 {
		if err := syscall.Kill(-r.pgid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			warn("kill -" + strconv.Itoa(r.pgid) + ": " + err.Error())
			ok = false
		}
	}
	// The main process may have left the group (a MAINPID= it followed):
	// through its pidfd, never a reused PID.
	if r.pidfd >= 0 {
		_, _, e := syscall.RawSyscall6(sysPidfdSendSignal, uintptr(r.pidfd), uintptr(syscall.SIGKILL), 0, 0, 0, 0)
		if e != 0 && e != syscall.ESRCH {
			warn("pidfd_send_signal: " + e.Error())
			ok = false
		}
	}
	return ok
}

// killFrozen ends every process of the cgroup dir without cgroup.kill
// (kernels 5.2 to 5.13): it freezes the cgroup, so that no member can
// fork, SIGKILLs every PID cgroup.procs lists (a frozen process still
// dies of SIGKILL, and is not reaped, so its PID is not reused meanwhile),
// and thaws it.
func killFrozen(dir string) bool {
	if err := writeFile(dir+"/cgroup.freeze", "1"); err != nil {
		warn("cgroup.freeze in " + dir + ": " + err.Error())
		return false
	}
	ok := waitEvents(dir, "frozen 1", freezeWait)
	if !ok {
		warn(dir + ": not frozen in time; killing its processes anyway")
	}
	procs, err := readFile(dir + "/cgroup.procs")
	if err != nil {
		warn(dir + ": " + err.Error())
		ok = false
	}
	for _, line := range splitLines(procs) {
		if pid, err := strconv.Atoi(line); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := writeFile(dir+"/cgroup.freeze", "0"); err != nil {
		warn("cgroup.freeze in " + dir + ": " + err.Error())
		ok = false
	}
	return ok
}

// freezeWait bounds the wait for a cgroup to freeze (seconds).
const freezeWait = 5

func splitLines(s string) []string {
	var out []string
	for s != "" {
		i := index(s, '\n')
		if i < 0 {
			return append(out, s)
		}
		if i > 0 {
			out = append(out, s[:i])
		}
		s = s[i+1:]
	}
	return out
}

func readFile(path string) (string, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer syscall.Close(fd)
	var out []byte
	buf := make([]byte, 16<<10)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return string(out), err
		}
		if n == 0 {
			return string(out), nil
		}
		out = append(out, buf[:n]...)
	}
}

// cgroupWait bounds the wait for a killed cgroup to empty (every process
// killed has to exit and be reaped by its parent).
const cgroupWait = 10 // seconds

// removeCgroup waits until the cgroup dir has no process left (its
// cgroup.events says "populated 0") and removes it.
func removeCgroup(dir string) bool {
	var st syscall.Stat_t
	if syscall.Stat(dir, &st) == syscall.ENOENT {
		return true // gone already
	}
	if !waitEvents(dir, "populated 0", cgroupWait) {
		warn(dir + ": processes left after the kill")
		return false
	}
	for {
		err := syscall.Rmdir(dir)
		if err == nil || err == syscall.ENOENT {
			return true
		}
		if err != syscall.EINTR {
			warn("rmdir " + dir + ": " + err.Error())
			return false
		}
	}
}

// waitEvents waits up to secs seconds until dir's cgroup.events has the
// line want.
func waitEvents(dir, want string, secs int64) bool {
	fd, err := syscall.Open(dir+"/cgroup.events", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		warn(dir + ": " + err.Error())
		return false
	}
	defer syscall.Close(fd)
	var start syscall.Timespec
	clockNow(&start)
	buf := make([]byte, 512)
	for {
		n, err := syscall.Pread(fd, buf, 0)
		if err == nil && hasLine(string(buf[:max(n, 0)]), want) {
			return true
		}
		var now syscall.Timespec
		clockNow(&now)
		left := secs - (now.Sec - start.Sec)
		if left <= 0 {
			return false
		}
		// A change of cgroup.events wakes poll with POLLPRI (kernfs).
		pfd := pollFd{fd: int32(fd), events: pollPri}
		ts := syscall.Timespec{Sec: left}
		syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	}
}

// hasLine reports whether text has the line want.
func hasLine(text, want string) bool {
	for _, line := range splitLines(text) {
		if line == want {
			return true
		}
	}
	return false
}

type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

const pollPri = 0x2

func clockNow(ts *syscall.Timespec) {
	const clockMonotonic = 1
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(ts)), 0)
}

func writeFile(path, s string) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	_, err = syscall.Write(fd, []byte(s))
	return err
}

// warn writes one line to stderr, which is hupd's.
func warn(msg string) {
	syscall.Write(2, []byte("hupd sentinel: "+msg+"\n"))
}

// closeInherited closes the fds beyond FD that the sentinel inherited
// (those hupd inherited from its own parent without close-on-exec): it
// must not hold someone's pipe open. The Go runtime's own fds are
// close-on-exec, so any fd without the flag came through the exec.
func closeInherited() {
	dir, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	var fds []int
	buf := make([]byte, 4096)
	for {
		n, err := syscall.ReadDirent(dir, buf)
		if err != nil || n <= 0 {
			break
		}
		var names []string
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
		for _, name := range names {
			if fd, err := strconv.Atoi(name); err == nil && fd > FD && fd != dir {
				fds = append(fds, fd)
			}
		}
	}
	syscall.Close(dir)
	for _, fd := range fds {
		const fGetfd, fdCloexec = 1, 1
		flags, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), fGetfd, 0)
		if e == 0 && flags&fdCloexec == 0 {
			syscall.Close(fd)
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

// kept are the signals whose Go runtime handlers stay: the synchronous
// faults (about the sentinel's own code), URG (the runtime's preemption),
// and CHLD (it has no children). KILL and STOP cannot be ignored.
var kept = [65]bool{
	syscall.SIGKILL: true, syscall.SIGSTOP: true, syscall.SIGSEGV: true, syscall.SIGBUS: true,
	syscall.SIGFPE: true, syscall.SIGILL: true, syscall.SIGTRAP: true, syscall.SIGSYS: true,
	syscall.SIGURG: true, syscall.SIGCHLD: true,
}

// ignoreSignals sets SIG_IGN for every other signal, below the Go
// runtime (which does not look again): a stray TERM, HUP or INT meant
// for the service does nothing to the sentinel.
func ignoreSignals() {
	ign := kernelSigaction{handler: 1} // SIG_IGN
	for sig := 1; sig <= 64; sig++ {
		if !kept[sig] {
			syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&ign)), 0, 8, 0, 0)
		}
	}
}
