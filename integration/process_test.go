package integration

// Process supervision end to end: signal forwarding, graceful stop and its
// escalation, exit codes, PID 1 and subreaper duties, the parent-death
// signal, crash backoff, signal dispositions and privilege drop.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

func init() {
	// proc-until NAME: like "signals" (print "ready PID", then "got NAME"
	// per signal) but exit 0 only after signal NAME.
	childModes["proc-until"] = func(args []string) { reportSignalsUntil(unix.SignalNum("SIG" + args[0])) }
	// proc-group: ignore TERM and INT, start a grandchild in this process's
	// group that ignores them too, then print "ready PID grandchild GPID"
	// and block.
	childModes["proc-group"] = func([]string) {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		gc := procSelfCmd("ignore-term")
		out, err := gc.StdoutPipe()
		if err == nil {
			err = gc.Start()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "proc-group:", err)
			os.Exit(3)
		}
		line, _ := bufio.NewReader(out).ReadString('\n') // "ready GPID": it ignores TERM now
		if !strings.HasPrefix(line, "ready ") {
			fmt.Fprintf(os.Stderr, "proc-group: grandchild said %q\n", line)
			os.Exit(3)
		}
		fmt.Println("ready", os.Getpid(), "grandchild", gc.Process.Pid)
		select {}
	}
	// proc-die N: die of signal N with its default action (no core file).
	// Go's runtime turns a SEGV sent by kill(2) into a crash with exit
	// status 2, so this restores SIG_DFL itself.
	childModes["proc-die"] = func(args []string) {
		n, _ := strconv.Atoi(args[0])
		unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
		runtime.LockOSThread()
		dfl := procSigaction{}
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(n), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		var empty unix.Sigset_t
		unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil)
		unix.Tgkill(os.Getpid(), unix.Gettid(), syscall.Signal(n))
		select {}
	}
	// proc-lived D: print "ready PID", and "lived PID" once it has run
	// for duration D (a handshake: the crash-backoff test waits for it to
	// know that the child outlived reset_after); block.
	childModes["proc-lived"] = func(args []string) {
		d, _ := time.ParseDuration(args[0])
		fmt.Println("ready", os.Getpid())
		time.Sleep(d)
		fmt.Println("lived", os.Getpid())
		select {}
	}
	// proc-orphans N K: double-fork N orphans that exit 7 once released and
	// K that live as long as this process; print "orphans P..." and
	// "kept P..." (PIDs as this process sees them). On USR1 release the N
	// (print "released"); on WINCH scan /proc and print "zombies Z procs M
	// [zombie PIDs]"; exit 0 on TERM.
	childModes["proc-orphans"] = func(args []string) {
		n, _ := strconv.Atoi(args[0])
		k, _ := strconv.Atoi(args[1])
		sigs := make(chan os.Signal, 8)
		signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGWINCH, syscall.SIGTERM)
		relR, relW, err := os.Pipe()
		if err != nil {
			panic(err)
		}
		keepR, keepW, err := os.Pipe()
		if err != nil {
			panic(err)
		}
		released := procSpawnOrphans(relR, n, 7)
		kept := procSpawnOrphans(keepR, k, 0)
		relR.Close()
		keepR.Close()
		fmt.Println("orphans", procJoin(released))
		fmt.Println("kept", procJoin(kept))
		for s := range sigs {
			switch s {
			case syscall.SIGUSR1:
				relW.Close()
				fmt.Println("released")
			case syscall.SIGWINCH:
				zombies, procs := procScan()
				fmt.Printf("zombies %d procs %d %v\n", len(zombies), procs, zombies)
			case syscall.SIGTERM:
				keepW.Close()
				return
			}
		}
	}
	// proc-orphan-parent CODE: start "proc-orphan CODE" with fd 3, print
	// its PID and exit at once, orphaning it.
	childModes["proc-orphan-parent"] = func(args []string) {
		c := procSelfCmd("proc-orphan", args...)
		c.Stderr = nil // /dev/null: an orphan must not hold hupd's stderr
		c.ExtraFiles = []*os.File{os.NewFile(3, "release")}
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "proc-orphan-parent:", err)
			os.Exit(3)
		}
		fmt.Println(c.Process.Pid)
	}
	// proc-orphan CODE: read fd 3 until EOF, then exit CODE.
	childModes["proc-orphan"] = func(args []string) {
		code, _ := strconv.Atoi(args[0])
		io.Copy(io.Discard, os.NewFile(3, "release"))
		os.Exit(code)
	}
	// proc-exec-masked PROG ARG...: ignore HUP and INT, block USR1, then
	// exec PROG (as nohup or a shell's background job would leave it).
	childModes["proc-exec-masked"] = func(args []string) {
		signal.Ignore(syscall.SIGHUP, syscall.SIGINT)
		runtime.LockOSThread() // the mask is per thread: exec from this one
		var set unix.Sigset_t
		set.Val[0] = 1 << (uint(syscall.SIGUSR1) - 1)
		if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
			panic(err)
		}
		os.Unsetenv(envChild)
		err := unix.Exec(args[0], args, os.Environ())
		fmt.Fprintln(os.Stderr, "proc-exec-masked:", err)
		os.Exit(3)
	}
}

// procSigaction is struct sigaction as rt_sigaction(2) takes it on 64-bit
// Linux; the zero value is SIG_DFL.
type procSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// procSelfCmd runs this binary (as a child, from inside a child mode) in mode.
func procSelfCmd(mode string, args ...string) *exec.Cmd {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	c := exec.Command(self, args...)
	c.Env = append(os.Environ(), envChild+"="+mode)
	c.Stderr = os.Stderr
	return c
}

// procSpawnOrphans double-forks n "proc-orphan code" processes that read
// release as fd 3, and returns their PIDs once their parents have exited.
func procSpawnOrphans(release *os.File, n, code int) []int {
	var pids []int
	for range n {
		c := procSelfCmd("proc-orphan-parent", strconv.Itoa(code))
		c.ExtraFiles = []*os.File{release}
		out, err := c.Output()
		pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil || perr != nil {
			fmt.Fprintf(os.Stderr, "proc-orphans: %v %v %q\n", err, perr, out)
			os.Exit(3)
		}
		pids = append(pids, pid)
	}
	return pids
}

func procJoin(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, " ")
}

// procScan returns the zombies among the processes /proc shows and how
// many processes it shows.
func procScan() (zombies []int, procs int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := procStat(pid)
		if !ok {
			continue
		}
		procs++
		if st.state == 'Z' {
			zombies = append(zombies, pid)
		}
	}
	return zombies, procs
}

type procStatus struct {
	state      byte
	ppid, pgrp int
}

// procStat reads state, parent and process group from /proc/PID/stat.
func procStat(pid int) (procStatus, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStatus{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStatus{}, false
	}
	f := strings.Fields(s[i+1:]) // state ppid pgrp ...
	if len(f) < 3 {
		return procStatus{}, false
	}
	var st procStatus
	st.state = f[0][0]
	st.ppid, _ = strconv.Atoi(f[1])
	st.pgrp, _ = strconv.Atoi(f[2])
	return st, true
}

// procPIDs parses "WORD P1 P2 ..." into PIDs.
func procPIDs(t *testing.T, line, word string) []int {
	t.Helper()
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != word {
		t.Fatalf("line %q: want %q and PIDs", line, word)
	}
	var pids []int
	for _, s := range f[1:] {
		p, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		pids = append(pids, p)
	}
	return pids
}

// procReady reads the child's "ready PID ..." line and returns PID.
func procReady(t *testing.T, h *Hupd) int {
	t.Helper()
	line := h.Stdout.NextWith(t, "ready ")
	f := strings.Fields(line)
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	return pid
}

// procExpectLine fails t unless the child's next line is want.
func procExpectLine(t *testing.T, h *Hupd, want string) {
	t.Helper()
	if got := h.Stdout.Next(t); got != want {
		t.Fatalf("child said %q, want %q", got, want)
	}
}

// procWait waits for hupd to exit and checks its exit code.
func procWait(t *testing.T, h *Hupd, want int) {
	t.Helper()
	if code := h.Wait(); code != want {
		t.Fatalf("hupd exit code %d, want %d", code, want)
	}
}

// procNoEvent fails t if hupd logged msg up to now (see Sync: whether the
// moment is late enough is the caller's handshake).
func procNoEvent(t *testing.T, h *Hupd, msg string) {
	t.Helper()
	h.Sync()
	if evs := h.Events(msg); len(evs) > 0 {
		t.Fatalf("unexpected %q: %v", msg, evs)
	}
}

// procKill sends sig to pid.
func procKill(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill %d %v: %v", pid, sig, err)
	}
}

// procKillAtCleanup SIGKILLs pid (through a pidfd, never a reused PID)
// when the test ends, so that a process a failing test leaves behind does
// not hold hupd's output open and hang the harness.
func procKillAtCleanup(t *testing.T, pid int) {
	t.Helper()
	fd, err := pidfdOpen(pid)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
	})
}

func procNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// TestProcessForwardsSignals: every signal that is neither a stop nor the
// reload signal nor USR2 (hupd's own upgrade) reaches the child unchanged,
// and HUP relays the reload signal (HUP by default), one delivery per
// signal sent. USR2 never reaches the child.
func TestProcessForwardsSignals(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--"}, childCmd("signals")...)...)
	pid := procReady(t, h)
	if got := h.ChildPID(1); got != pid {
		t.Fatalf("child started pid %d, child says %d", got, pid)
	}
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGWINCH, syscall.SIGALRM, syscall.SIGCONT, syscall.SIGHUP} {
		h.Signal(sig)
		procExpectLine(t, h, "got "+strings.TrimPrefix(unix.SignalName(sig), "SIG"))
	}
	// USR2 is an upgrade (here refused or done, depending on whether the
	// child counts as ready yet): the child's next line is WINCH's.
	h.Signal(syscall.SIGUSR2)
	h.Signal(syscall.SIGWINCH)
	procExpectLine(t, h, "got WINCH")
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	procExpectLine(t, h, "got TERM")
	if n := len(h.Events(logev.ChildStarted)); n != 1 {
		t.Fatalf("%d children started, want 1", n)
	}
}

// TestProcessReloadSignal: with --reload-signal USR2, a HUP to hupd
// reaches the child as USR2, never as HUP.
func TestProcessReloadSignal(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--reload-signal", "USR2", "--"}, childCmd("signals")...)...)
	procReady(t, h)
	h.Signal(syscall.SIGHUP)
	procExpectLine(t, h, "got USR2")
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	procExpectLine(t, h, "got TERM")
}

// TestProcessGracefulStop: a stop signal to hupd becomes --stop-signal to
// the child; hupd exits with the child's status once it has left, without
// escalating. A second stop signal during the stop is forwarded as is.
func TestProcessGracefulStop(t *testing.T) {
	t.Run("term", func(t *testing.T) {
		h := StartHupd(t, append([]string{"run", "--"}, childCmd("signals")...)...)
		pid := procReady(t, h)
		if code := h.Stop(); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		procExpectLine(t, h, "got TERM")
		if e := h.WaitEvent(logev.ChildExited, 1, nil); e.Int("pid") != pid || e.Str("status") != "exit status 0" {
			t.Fatalf("child exited %v: want pid %d exit status 0", e, pid)
		}
		procNoEvent(t, h, logev.StopTimeout)
	})
	t.Run("stop-signal QUIT", func(t *testing.T) {
		h := StartHupd(t, append([]string{"run", "--stop-signal", "QUIT", "--"}, childCmd("proc-until", "QUIT")...)...)
		procReady(t, h)
		if code := h.Stop(); code != 0 { // TERM to hupd
			t.Fatalf("exit code %d, want 0", code)
		}
		procExpectLine(t, h, "got QUIT")
		procNoEvent(t, h, logev.StopTimeout)
	})
	t.Run("second stop signal forwarded", func(t *testing.T) {
		h := StartHupd(t, append([]string{"run", "--"}, childCmd("proc-until", "INT")...)...)
		procReady(t, h)
		h.Signal(syscall.SIGTERM)
		procExpectLine(t, h, "got TERM") // the child stays
		h.Signal(syscall.SIGINT)
		procExpectLine(t, h, "got INT") // and leaves on this one
		procWait(t, h, 0)
		if n := len(h.Events(logev.Stopping)); n != 1 {
			t.Fatalf("%d stopping events, want 1", n)
		}
	})
}

// TestProcessStopTimeoutKillsGroup: a child that ignores the stop signal
// is SIGKILLed with its whole process group after --stop-timeout; hupd
// exits 128+9.
func TestProcessStopTimeoutKillsGroup(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--stop-timeout", "300ms", "--"}, childCmd("proc-group")...)...)
	line := h.Stdout.NextWith(t, "ready ")
	var pid, gpid int
	if _, err := fmt.Sscanf(line, "ready %d grandchild %d", &pid, &gpid); err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	procKillAtCleanup(t, gpid)
	if st, ok := procStat(gpid); !ok || st.pgrp != pid {
		t.Fatalf("grandchild %d: process group %d (found %v), want the child's %d", gpid, st.pgrp, ok, pid)
	}
	start := time.Now()
	h.Signal(syscall.SIGTERM)
	e := h.WaitEvent(logev.StopTimeout, 1, nil)
	if e.Int("pid") != pid {
		t.Fatalf("stop timeout event %v: want pid %d", e, pid)
	}
	if e := h.WaitEvent(logev.ChildExited, 1, nil); e.Str("status") != "killed by signal KILL" {
		t.Fatalf("child exited %v: want killed by signal KILL", e)
	}
	// The grandchild ignores TERM and INT and blocks: only the group
	// SIGKILL can end it.
	waitGone(t, gpid)
	procWait(t, h, 128+int(syscall.SIGKILL))
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("hupd exited %s after TERM, before the 300ms stop timeout", took)
	}
}

// TestProcessExitCodes: hupd exits with the child's exit status, or 128+n
// when it died of signal n, and does not restart where the policy says no.
func TestProcessExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart string
		child   []string
		code    int
		status  string
	}{
		{"exit 0 on-failure", "on-failure", childCmd("exit", "0"), 0, "exit status 0"},
		{"exit 3 never", "never", childCmd("exit", "3"), 3, "exit status 3"},
		{"SEGV never", "never", childCmd("proc-die", strconv.Itoa(int(syscall.SIGSEGV))), 128 + int(syscall.SIGSEGV), "killed by signal SEGV"},
		{"KILL never", "never", childCmd("proc-die", strconv.Itoa(int(syscall.SIGKILL))), 128 + int(syscall.SIGKILL), "killed by signal KILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := StartHupd(t, append([]string{"run", "--restart", tc.restart, "--"}, tc.child...)...)
			procWait(t, h, tc.code)
			if e := h.WaitEvent(logev.ChildExited, 1, nil); e.Str("status") != tc.status {
				t.Fatalf("child exited %v: want status %q", e, tc.status)
			}
			h.WaitEvent(logev.NotRestarting, 1, nil)
			if n := len(h.Events(logev.ChildStarted)); n != 1 {
				t.Fatalf("%d children started, want 1", n)
			}
		})
	}
}

// procUnshare starts hupd as PID 1 of a new PID namespace and returns it
// with hupd's PID in the host namespace.
func procUnshare(t *testing.T, args ...string) (*Hupd, int) {
	t.Helper()
	procNeedRoot(t)
	cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", hupdBin}, withJSONLog(args)...)...)
	h := StartHupdCmd(t, cmd)
	h.WaitEvent(logev.ChildStarted, 1, nil) // hupd is running by now
	var kids []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", cmd.Process.Pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			p, _ := strconv.Atoi(s)
			kids = append(kids, p)
		}
	}
	if len(kids) != 1 {
		t.Fatalf("unshare %d has children %v, want just hupd", cmd.Process.Pid, kids)
	}
	if ns := procNSpid(t, kids[0]); len(ns) != 2 || ns[1] != 1 {
		t.Fatalf("hupd (host pid %d) NSpid %v: want PID 1 in a child namespace", kids[0], ns)
	}
	return h, kids[0]
}

// procNSpid returns pid's PIDs from the host namespace inward.
func procNSpid(t *testing.T, pid int) []int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			return procPIDs(t, "NSpid "+v, "NSpid")
		}
	}
	t.Fatalf("no NSpid in /proc/%d/status", pid)
	return nil
}

// procNSMembers returns the host PIDs of the live processes whose PID
// namespace is ns (a /proc/PID/ns/pid link).
func procNSMembers(ns string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && l == ns && processAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestProcessPID1ReapsAndTearsDown: as PID 1 of a PID namespace hupd reaps
// the orphans its child abandons (no zombie remains), and when hupd is
// SIGKILLed nothing of the namespace survives.
func TestProcessPID1ReapsAndTearsDown(t *testing.T) {
	const released, kept = 3, 2
	h, hupdPID := procUnshare(t, append([]string{"run", "--"}, childCmd("proc-orphans", strconv.Itoa(released), strconv.Itoa(kept))...)...)
	childNS := h.ChildPID(1)
	orphans := procPIDs(t, h.Stdout.NextWith(t, "orphans"), "orphans")
	keptPIDs := procPIDs(t, h.Stdout.NextWith(t, "kept"), "kept")
	if len(orphans) != released || len(keptPIDs) != kept {
		t.Fatalf("orphans %v kept %v: want %d and %d", orphans, keptPIDs, released, kept)
	}

	// Release the first batch: they exit 7 and PID 1 must reap them.
	procKill(t, hupdPID, syscall.SIGUSR1) // to hupd, not unshare
	h.Stdout.NextWith(t, "released")
	for _, p := range orphans {
		e := h.WaitEvent(logev.OrphanReaped, 1, func(e Event) bool { return e.Int("pid") == p })
		if e.Str("status") != "exit status 7" {
			t.Fatalf("reaped orphan %v: want exit status 7", e)
		}
	}
	procKill(t, hupdPID, syscall.SIGWINCH)
	line := h.Stdout.NextWith(t, "zombies ")
	var zombies, procs int
	if _, err := fmt.Sscanf(line, "zombies %d procs %d", &zombies, &procs); err != nil {
		t.Fatalf("zombie report %q: %v", line, err)
	}
	// hupd, the child and the kept orphans; no zombie.
	if zombies != 0 || procs != 2+kept {
		t.Fatalf("namespace /proc: %q, want no zombie and %d processes", line, 2+kept)
	}

	// From the host: the namespace holds exactly what the child counted,
	// the kept orphans are there, and hupd is their parent.
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", hupdPID))
	if err != nil {
		t.Fatal(err)
	}
	members := procNSMembers(ns)
	if len(members) != procs {
		t.Fatalf("host sees %d processes in %s (%v), the namespace saw %d", len(members), ns, members, procs)
	}
	byNS := map[int]int{} // namespace PID -> host PID
	for _, hp := range members {
		nsp := procNSpid(t, hp)
		byNS[nsp[len(nsp)-1]] = hp
	}
	if byNS[1] != hupdPID {
		t.Fatalf("namespace PID 1 is host %d, want hupd %d", byNS[1], hupdPID)
	}
	for _, p := range append([]int{childNS}, keptPIDs...) {
		hp, ok := byNS[p]
		if !ok {
			t.Fatalf("namespace PID %d not found from the host (%v)", p, byNS)
		}
		if st, _ := procStat(hp); st.ppid != hupdPID {
			t.Fatalf("namespace PID %d (host %d): parent %d, want hupd %d", p, hp, st.ppid, hupdPID)
		}
	}

	// SIGKILL PID 1 from outside: every member must go.
	fds := map[int]int{}
	for _, hp := range members {
		fd, err := pidfdOpen(hp)
		if err != nil {
			t.Fatalf("pidfd_open %d: %v", hp, err)
		}
		defer syscall.Close(fd)
		fds[hp] = fd
	}
	if err := syscall.Kill(hupdPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for hp, fd := range fds {
		if !pollReadable(fd, deadline) {
			t.Fatalf("host pid %d of the namespace still alive %s after hupd was killed", hp, deadline)
		}
	}
	h.Wait() // unshare follows its child; its code does not matter here
	if left := procNSMembers(ns); len(left) != 0 {
		t.Fatalf("processes left in %s: %v", ns, left)
	}
}

// TestProcessPID1StopsOnTerm: as PID 1 (no default signal actions) hupd
// still turns TERM into a graceful stop.
func TestProcessPID1StopsOnTerm(t *testing.T) {
	h, hupdPID := procUnshare(t, append([]string{"run", "--"}, childCmd("signals")...)...)
	procReady(t, h)
	if err := syscall.Kill(hupdPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	procExpectLine(t, h, "got TERM")
	procWait(t, h, 0)
}

// TestProcessPdeathsig: when hupd is SIGKILLed (nothing of it runs), its
// child dies of the parent-death signal, also after a privilege drop
// (which clears it unless the shim arms it again).
func TestProcessPdeathsig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		uid  int
	}{
		{"same user", nil, os.Getuid()},
		{"user nobody", []string{"--user", "nobody"}, 65534},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.args != nil {
				procNeedRoot(t)
			}
			args := append(append([]string{"run"}, tc.args...), "--")
			h := StartHupd(t, append(args, childCmd("env")...)...)
			ce := readChildEnv(h)
			procKillAtCleanup(t, ce.PID)
			if ce.UID != tc.uid || ce.PPID != h.Cmd.Process.Pid {
				t.Fatalf("child uid %d ppid %d: want uid %d ppid %d", ce.UID, ce.PPID, tc.uid, h.Cmd.Process.Pid)
			}
			if err := h.Cmd.Process.Kill(); err != nil { // hupd only, not its group
				t.Fatal(err)
			}
			waitGone(t, ce.PID)
			h.Wait()
		})
	}
}

// TestProcessSubreaper: hupd (not PID 1) is a child subreaper: an orphan
// its child abandons is reparented to hupd, which reaps it.
func TestProcessSubreaper(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--"}, childCmd("proc-orphans", "1", "0")...)...)
	orphan := procPIDs(t, h.Stdout.NextWith(t, "orphans"), "orphans")[0]
	procKillAtCleanup(t, orphan)
	if st, ok := procStat(orphan); !ok || st.ppid != h.Cmd.Process.Pid {
		t.Fatalf("orphan %d: parent %d (found %v), want hupd %d", orphan, st.ppid, ok, h.Cmd.Process.Pid)
	}
	h.Signal(syscall.SIGUSR1)
	e := h.WaitEvent(logev.OrphanReaped, 1, func(e Event) bool { return e.Int("pid") == orphan })
	if e.Str("status") != "exit status 7" || e.Str("level") != "DEBUG" {
		t.Fatalf("reaped orphan %v: want exit status 7 at DEBUG", e)
	}
	if st, ok := procStat(orphan); ok {
		t.Fatalf("orphan %d still in /proc (state %c) after hupd reaped it", orphan, st.state)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// procConfig writes a TOML file and returns its path.
func procConfig(t *testing.T, toml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hupd.toml")
	if err := os.WriteFile(p, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProcessCrashBackoff: a child that keeps crashing is restarted after
// min_delay, doubling up to max_delay; a child that ran reset_after or
// longer starts the series again.
func TestProcessCrashBackoff(t *testing.T) {
	// reset_after bounds how long the test may take to kill each crashing
	// child (it must die younger than that): 2s leaves room for a loaded
	// machine. Five crashes in a row within 10 s are what the default
	// start limit ends: this test is about the backoff, so it has none.
	cfg := procConfig(t, "[restart]\nmin_delay = \"50ms\"\nmax_delay = \"400ms\"\nreset_after = \"2s\"\nstart_limit = \"off\"\n")
	h := StartHupd(t, append([]string{"run", "-c", cfg, "--"}, childCmd("proc-lived", "2100ms")...)...)
	ms := time.Millisecond
	for i, want := range []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 400 * ms} {
		gen := i + 1
		if err := syscall.Kill(h.ChildPID(gen), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		e := h.WaitEvent(logev.RestartingChild, gen, nil)
		if e.Int("gen") != gen+1 || e.Dur("delay") != want || e.Int("attempt") != gen {
			t.Fatalf("crash %d: %v, want gen %d delay %s attempt %d", gen, e, gen+1, want, gen)
		}
	}
	// Generation 6 says it has run 2.1s, more than reset_after.
	pid := h.ChildPID(6)
	if line := h.Stdout.NextWith(t, "lived "); line != "lived "+strconv.Itoa(pid) {
		t.Fatalf("%q: want generation 6 (pid %d) to be the first to live 2.1s", line, pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e := h.WaitEvent(logev.RestartingChild, 6, nil)
	if e.Int("gen") != 7 || e.Dur("delay") != 50*ms || e.Int("attempt") != 1 {
		t.Fatalf("crash after a long run: %v, want gen 7 delay 50ms attempt 1", e)
	}
	h.ChildPID(7)
	h.Stop()
}

// TestProcessCrashKeepsConnections: while a crashed child waits out its
// backoff, hupd's socket keeps accepting: connections made then are served
// by the next generation, none refused.
func TestProcessCrashKeepsConnections(t *testing.T) {
	cfg := procConfig(t, "[restart]\nmin_delay = \"1s\"\n")
	h := StartHupd(t, append([]string{"run", "-c", cfg, "--listen", "http=tcp://127.0.0.1:0", "--"}, childCmd("http")...)...)
	addr := HostPort(h.Listening("http"))
	pid1 := procReady(t, h)
	if body := get(t, "http://"+addr+"/"); body != fmt.Sprintf("pid %d name http", pid1) {
		t.Fatalf("body %q from generation 1 (pid %d)", body, pid1)
	}
	if err := syscall.Kill(pid1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.WaitEvent(logev.RestartingChild, 1, nil) // the child is gone, the backoff runs
	var conns []net.Conn
	for i := range 5 {
		c, err := net.DialTimeout("tcp", addr, deadline)
		if err != nil {
			t.Fatalf("connection %d during backoff: %v", i, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(deadline))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: hupd\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatalf("request %d during backoff: %v", i, err)
		}
		conns = append(conns, c)
	}
	h.Sync()
	if n := len(h.Events(logev.ChildStarted)); n != 1 {
		t.Fatalf("generation 2 started before the connections were made (1s backoff): the test proves nothing")
	}
	pid2 := h.ChildPID(2)
	want := fmt.Sprintf("pid %d name http", pid2)
	for i, c := range conns {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("response %d: %d %q (%v), want 200 %q", i, resp.StatusCode, body, err, want)
		}
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// procStartMasked starts hupd through proc-exec-masked: HUP and INT
// ignored, USR1 blocked.
func procStartMasked(t *testing.T, args ...string) *Hupd {
	t.Helper()
	cmd := exec.Command(selfBin, append([]string{hupdBin}, withJSONLog(args)...)...)
	cmd.Env = append(os.Environ(), envChild+"=proc-exec-masked")
	return StartHupdCmd(t, cmd)
}

// TestProcessSignalDispositions: hupd started with signals ignored and
// blocked (nohup, a background job) gives its child default dispositions
// and an empty mask, so a shell child can trap HUP, and both a HUP and a
// USR1 that hupd relays reach it.
//
// What each case can catch: Go's fork resets every signal hupd handles to
// SIG_DFL, and hupd handles HUP and INT, so no SIG_IGN survives into the
// child even without the shim; the blocked mask does, and only the shim
// clears it: the "env child" case fails without it. dash clears its own
// mask at start-up, so the shell case shows the end-to-end behaviour but
// would not notice a missing mask reset.
func TestProcessSignalDispositions(t *testing.T) {
	hup, intr, usr1 := uint64(1)<<(syscall.SIGHUP-1), uint64(1)<<(syscall.SIGINT-1), uint64(1)<<(syscall.SIGUSR1-1)
	t.Run("wrapper", func(t *testing.T) { // what the other cases start hupd with
		cmd := exec.Command(selfBin, "/bin/cat", "/proc/self/status")
		cmd.Env = append(os.Environ(), envChild+"=proc-exec-masked")
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		var ign, blk uint64
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
				ign, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			}
			if v, ok := strings.CutPrefix(line, "SigBlk:"); ok {
				blk, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			}
		}
		if ign&(hup|intr) != hup|intr || blk&usr1 == 0 {
			t.Fatalf("wrapped program: SigIgn %x SigBlk %x, want HUP and INT ignored, USR1 blocked", ign, blk)
		}
	})
	t.Run("env child", func(t *testing.T) {
		h := procStartMasked(t, append([]string{"run", "--"}, childCmd("env")...)...)
		ce := readChildEnv(h)
		if ce.SigIgn != "0000000000000000" || ce.SigBlk != "0000000000000000" {
			t.Fatalf("child SigIgn %s SigBlk %s, want all zero", ce.SigIgn, ce.SigBlk)
		}
		h.Stop()
	})
	t.Run("shell child", func(t *testing.T) {
		h := procStartMasked(t, "run", "--", "sh", "-c",
			`trap "echo got HUP" HUP; trap "echo got USR1" USR1; echo ready $$; while :; do sleep 0.05; done`)
		procReady(t, h)
		h.Signal(syscall.SIGHUP)
		procExpectLine(t, h, "got HUP")
		h.Signal(syscall.SIGUSR1)
		procExpectLine(t, h, "got USR1")
		if code := h.Stop(); code != 128+int(syscall.SIGTERM) {
			t.Fatalf("exit code %d, want %d (sh dies of TERM)", code, 128+int(syscall.SIGTERM))
		}
	})
}

// TestProcessPrivilegeDrop: --user runs the child with the user's uid, gid
// and groups from /etc/group (none of root's); --group alone replaces the
// groups; --dir and --env apply.
func TestProcessPrivilegeDrop(t *testing.T) {
	procNeedRoot(t)
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // t.TempDir is 0700: let nobody in
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	gids, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	wantGroups := []int{gid}
	for _, g := range gids {
		n, _ := strconv.Atoi(g)
		if !slices.Contains(wantGroups, n) {
			wantGroups = append(wantGroups, n)
		}
	}
	slices.Sort(wantGroups)

	for _, tc := range []struct {
		name          string
		args          []string
		uid, gid      int
		groups        []int
		cwd, envValue string
	}{
		{"user", []string{"--user", "nobody", "--dir", dir, "--env", "HUPD_PROC_K=v 1"}, uid, gid, wantGroups, dir, "v 1"},
		{"group", []string{"--group", strconv.Itoa(gid)}, 0, gid, []int{gid}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"run"}, tc.args...), "--")
			h := StartHupd(t, append(args, childCmd("env")...)...)
			ce := readChildEnv(h)
			slices.Sort(ce.Groups)
			if ce.UID != tc.uid || ce.GID != tc.gid || !slices.Equal(ce.Groups, tc.groups) {
				t.Fatalf("child uid %d gid %d groups %v, want %d %d %v", ce.UID, ce.GID, ce.Groups, tc.uid, tc.gid, tc.groups)
			}
			if tc.cwd != "" && ce.Cwd != tc.cwd {
				t.Fatalf("child cwd %q, want %q", ce.Cwd, tc.cwd)
			}
			if tc.envValue != "" && ce.Env["HUPD_PROC_K"] != tc.envValue {
				t.Fatalf("child HUPD_PROC_K=%q, want %q", ce.Env["HUPD_PROC_K"], tc.envValue)
			}
			h.Stop()
		})
	}
}
