package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/sdnotify"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
	"golang.org/x/sys/unix"
)

// Who may speak for a generation (issue 13, findings 1 and 2): a notify
// datagram counts only when its sender is verified as a member of the
// generation when hupd reads it, and MAINPID= may only name a member.

func init() {
	// nt-mainpid ARG: send MAINPID=ARG (a number, or "parent": hupd) with
	// READY=1, then report signals until TERM.
	childModes["nt-mainpid"] = func(args []string) {
		pid := args[0]
		if pid == "parent" {
			pid = strconv.Itoa(os.Getppid())
		}
		if _, err := socketact.Notify("MAINPID=" + pid + "\nREADY=1"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(5)
		}
		reportSignalsUntil(syscall.SIGTERM)
	}
	// nt-fork FIFO: start nt-mid, which starts nt-grand and stays its
	// parent; exit 0 once the test opens FIFO for writing.
	childModes["nt-fork"] = func(args []string) {
		ntStart("nt-mid")
		f, err := os.Open(args[0])
		if err != nil {
			os.Exit(4)
		}
		f.Close()
	}
	childModes["nt-mid"] = func([]string) {
		grand := ntStart("nt-grand")
		grand.Wait()
		for { // the parent that reaped it lives on, until hupd kills its group
			time.Sleep(time.Hour)
		}
	}
	// nt-grand: announce itself with MAINPID= and READY=1.
	childModes["nt-grand"] = func([]string) {
		if _, err := socketact.Notify(fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid())); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(5)
		}
		reportSignalsUntil(syscall.SIGTERM)
	}
	// nt-chain FIFO: start nt-chain-1 FIFO, exit 0 once the test opens
	// FIFO. nt-chain-1 FIFO announces itself (MAINPID=, READY=1); once the
	// test opens FIFO.2 it starts nt-grand (which announces itself in
	// turn), and once the test opens FIFO.3 it exits 0: the main process
	// is handed over twice.
	childModes["nt-chain"] = func(args []string) {
		ntStart("nt-chain-1", args[0])
		ntWaitOpen(args[0])
	}
	childModes["nt-chain-1"] = func(args []string) {
		if _, err := socketact.Notify(fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid())); err != nil {
			os.Exit(5)
		}
		ntWaitOpen(args[0] + ".2")
		ntStart("nt-grand")
		ntWaitOpen(args[0] + ".3")
	}
	// nt-handback: start nt-grand-exit, which announces itself with
	// MAINPID= and READY=1 and exits; reap it, then report signals until
	// TERM.
	childModes["nt-handback"] = func([]string) {
		ntStart("nt-grand-exit").Wait()
		reportSignalsUntil(syscall.SIGTERM)
	}
	// nt-grand-exit: name itself with MAINPID= (and READY=1), then wait
	// to be killed: it must live until hupd has taken it (the test kills
	// it then), or the MAINPID= names a process already gone.
	childModes["nt-grand-exit"] = func([]string) {
		if _, err := socketact.Notify(fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid())); err != nil {
			os.Exit(5)
		}
		select {}
	}
	// nt-first DIR: READY=1 only from the first generation (the one that
	// creates DIR/first); then report signals until TERM.
	childModes["nt-first"] = func(args []string) {
		f, err := os.OpenFile(filepath.Join(args[0], "first"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			if _, err := socketact.Notify("READY=1"); err != nil {
				os.Exit(5)
			}
		}
		reportSignalsUntil(syscall.SIGTERM)
	}
	// nt-late DIR: once the test opens DIR/go, start nt-send-ready (which
	// says READY=1 and exits), reap it, then say "sent" on DIR/done;
	// report signals until TERM.
	childModes["nt-late"] = func(args []string) {
		b, err := os.ReadFile(filepath.Join(args[0], "go")) // a FIFO: blocks until the test writes
		if err != nil || len(b) == 0 {
			os.Exit(3)
		}
		self, _ := os.Executable()
		c := exec.Command(self)
		c.Env = append(os.Environ(), envChild+"=nt-send-ready")
		if err := c.Run(); err != nil { // reaped when Run returns
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		if err := os.WriteFile(filepath.Join(args[0], "done"), []byte("sent\n"), 0); err != nil {
			os.Exit(5)
		}
		reportSignalsUntil(syscall.SIGTERM)
	}
	childModes["nt-send-ready"] = func([]string) {
		if _, err := socketact.Notify("READY=1"); err != nil {
			os.Exit(5)
		}
	}
	// nt-forge PID: not hupd's child. Read NOTIFY_SOCKET from
	// /proc/PID/environ, send READY=1 and STATUS=forged there, exit.
	childModes["nt-forge"] = func(args []string) {
		env, err := os.ReadFile("/proc/" + args[0] + "/environ")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		for kv := range strings.SplitSeq(string(env), "\x00") {
			if path, ok := strings.CutPrefix(kv, socketact.EnvNotifySocket+"="); ok {
				if err := sdnotify.SendTo(path, []byte("READY=1\nSTATUS=forged")); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(5)
				}
				os.Exit(0)
			}
		}
		os.Exit(4)
	}
	// nt-barrier N FIFO: say READY=1 (the first generation only, the one
	// that creates FIFO.first); once the test opens FIFO, send
	// STATUS=1 … STATUS=N and STATUS=final, then BARRIER=1 with a pipe's
	// write end, say "sent" and wait for POLLHUP on the read end. Then at
	// once ask hupd for its status over the control socket and print
	// "status TEXT", the STATUS= hupd has for its generation; report
	// signals until TERM.
	childModes["nt-barrier"] = func(args []string) {
		n, _ := strconv.Atoi(args[0])
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			os.Exit(6)
		}
		to := &unix.SockaddrUnix{Name: os.Getenv(socketact.EnvNotifySocket)}
		send := func(msg string, oob []byte) {
			if err := unix.Sendmsg(s, []byte(msg), oob, to, 0); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(5)
			}
		}
		if f, err := os.OpenFile(args[1]+".first", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			send("READY=1", nil) // only the first generation is ever ready
		}
		f, err := os.Open(args[1]) // the test says go
		if err != nil {
			os.Exit(4)
		}
		f.Close()
		for i := range n {
			send("STATUS="+strconv.Itoa(i+1), nil)
		}
		send("STATUS=final", nil)
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			os.Exit(6)
		}
		send("BARRIER=1", unix.UnixRights(p[1]))
		unix.Close(p[1])
		fmt.Println("sent")
		pfd := []unix.PollFd{{Fd: int32(p[0])}}
		if k, err := unix.Poll(pfd, int(2*deadline/time.Millisecond)); err != nil || k != 1 || pfd[0].Revents&unix.POLLHUP == 0 {
			fmt.Println("status no-barrier")
			os.Exit(7)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
		defer cancel()
		rep, err := control.Call(ctx, os.Getenv(supervisor.EnvControl), control.Request{Cmd: control.CmdStatus})
		text := "unknown"
		if err == nil && rep.Status != nil {
			for _, g := range rep.Status.Generations {
				if g.PID == os.Getpid() {
					text = g.StatusText
				}
			}
		}
		fmt.Println("status", text)
		reportSignalsUntil(syscall.SIGTERM)
	}
}

// ntWaitOpen returns once the test opens the FIFO at path for writing.
func ntWaitOpen(path string) {
	f, err := os.Open(path)
	if err != nil {
		os.Exit(4)
	}
	f.Close()
}

// ntStart starts this binary in mode with args, with its output.
func ntStart(mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(selfPath(), args...)
	cmd.Env = append(os.Environ(), envChild+"="+mode)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	return cmd
}

var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

func ntNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the child runs as nobody")
	}
}

// TestMainPIDRefused (finding 1): a child running as nobody names, with
// MAINPID=, a process it does not own: an unrelated root process the test
// started, hupd itself, or a process that has exited. Each is refused with
// a warning naming the generation, the sender and the pid; the reload
// signal and the stop signal reach the real child, hupd stops at once on
// TERM, and the unrelated process is untouched.
func TestMainPIDRefused(t *testing.T) {
	ntNeedRoot(t)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, arg string }{
		{"unrelated", "unrelated"},
		{"hupd", "parent"},
		{"exited", strconv.Itoa(gone.Process.Pid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var victim *exec.Cmd
			arg := tc.arg
			if arg == "unrelated" {
				victim = exec.Command("sleep", "1000")
				if err := victim.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
				arg = strconv.Itoa(victim.Process.Pid)
			}
			h := StartHupd(t, append([]string{"run", "--user", "nobody", "--ready", "notify", "--reload", "signal", "--"},
				childCmd("nt-mainpid", arg)...)...)
			child := h.ChildPID(1)
			want := arg
			if arg == "parent" {
				want = strconv.Itoa(h.Cmd.Process.Pid)
			}
			rdExpectReady(t, h, 1, "READY=1")
			if line := h.Stdout.NextWith(t, "ready"); line != fmt.Sprintf("ready %d", child) {
				t.Fatalf("child says %q", line)
			}
			h.Signal(syscall.SIGHUP)
			if line := h.Stdout.NextWith(t, "got"); line != "got HUP" {
				t.Fatalf("child got %q, want the reload signal HUP", line)
			}
			h.WaitEvent(logev.ReloadDone, 1, nil)
			start := time.Now()
			if code := h.Stop(); code != 0 {
				t.Fatalf("hupd exit %d", code)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("stop took %s: the stop signal did not reach the child", took)
			}
			if line := h.Stdout.NextWith(t, "got"); line != "got TERM" {
				t.Fatalf("child got %q at stop, want TERM", line)
			}
			if victim != nil && !processAlive(victim.Process.Pid) {
				t.Errorf("the unrelated process %d was killed", victim.Process.Pid)
			}
			e := h.WaitEvent(logev.MainPIDRefused, 1, nil)
			if e.Int("gen") != 1 || e.Int("sender") != child || strconv.Itoa(e.Int("pid")) != want {
				t.Errorf("%v: want gen 1, sender %d, pid %s", e, child, want)
			}
			if n := len(h.Events(logev.MainPIDChanged)); n != 0 {
				t.Errorf("%d MAINPID accepted", n)
			}
		})
	}
}

// TestMainPIDMemberFollowed: MAINPID= naming a real member, a grandchild
// whose parent (the child's own child) lives on, is followed once the
// child exits; when it dies the generation ends by the restart policy
// (never: hupd exits with its status), without a hang, although hupd is
// not its parent and never reaps it. With "upgrade", hupd re-executes
// itself in place after the hand-over: the new image opens the followed
// process's pidfd again, checks it is still a member, and follows it on.
func TestMainPIDMemberFollowed(t *testing.T) {
	for _, upgrade := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "upgrade"}[upgrade], func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "go")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			h := StartHupd(t, append([]string{"run", "--ready", "notify", "--restart", "never", "--"}, childCmd("nt-fork", fifo)...)...)
			orig := h.ChildPID(1)
			grand := h.WaitEvent(logev.MainPIDChanged, 1, nil).Int("pid")
			if line := h.Stdout.NextWith(t, "ready"); line != fmt.Sprintf("ready %d", grand) {
				t.Fatalf("grandchild says %q, hupd follows %d", line, grand)
			}
			if ppid, ok := rdParent(grand); !ok || ppid == orig || ppid == h.Cmd.Process.Pid {
				t.Fatalf("grandchild %d has parent %d: want the child's child", grand, ppid)
			}
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Close() // the child exits
			e := h.WaitEvent(logev.MainExitFollow, 1, nil)
			if e.Int("old_pid") != orig || e.Int("pid") != grand {
				t.Fatalf("followed %v, want %d -> %d", e, orig, grand)
			}
			if upgrade {
				if out, code := hupdCtl(t, h, "upgrade"); code != 0 {
					t.Fatalf("hupd upgrade: exit %d: %s", code, out)
				}
				h.WaitEvent(logev.Upgraded, 1, nil)
				if pids := genPIDs(statusOf(t, h)); len(pids) != 1 || pids[0] != grand {
					t.Fatalf("generations %v after the upgrade, want the followed %d", pids, grand)
				}
			}
			h.Signal(syscall.SIGUSR1)
			if line := h.Stdout.NextWith(t, "got"); line != "got USR1" {
				t.Fatalf("followed main got %q", line)
			}
			if err := syscall.Kill(grand, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			ex := h.WaitEvent(logev.ChildExited, 1, nil)
			if ex.Int("pid") != grand || ex.Str("status") != "killed by signal KILL" {
				t.Errorf("%v: want pid %d killed by signal KILL", ex, grand)
			}
			if code := h.Wait(); code != 128+9 {
				t.Errorf("hupd exit %d, want %d (the followed main process's)", code, 128+9)
			}
		})
	}
}

// TestMainPIDHandedOverTwice: the child hands over to M1 (MAINPID=) and
// exits; M1, followed, hands over to M2 and exits: hupd follows M1, then
// M2, signals reach the one in charge, and the stop ends M2, hupd exiting
// 0.
func TestMainPIDHandedOverTwice(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "go")
	for _, p := range []string{fifo, fifo + ".2", fifo + ".3"} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	release := func(p string) {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	h := StartHupd(t, append([]string{"run", "--ready", "notify", "--"}, childCmd("nt-chain", fifo)...)...)
	child := h.ChildPID(1)
	m1 := h.WaitEvent(logev.MainPIDChanged, 1, nil).Int("pid")
	release(fifo) // the child exits: M1 is followed
	if e := h.WaitEvent(logev.MainExitFollow, 1, nil); e.Int("old_pid") != child || e.Int("pid") != m1 {
		t.Fatalf("followed %v, want %d -> %d", e, child, m1)
	}
	release(fifo + ".2") // M1 hands over to M2
	m2 := h.WaitEvent(logev.MainPIDChanged, 2, nil).Int("pid")
	if line := h.Stdout.NextWith(t, "ready"); line != fmt.Sprintf("ready %d", m2) {
		t.Fatalf("M2 says %q, hupd was told %d", line, m2)
	}
	release(fifo + ".3") // M1 exits
	if e := h.WaitEvent(logev.MainExitFollow, 2, nil); e.Int("old_pid") != m1 || e.Int("pid") != m2 {
		t.Fatalf("followed %v, want %d -> %d", e, m1, m2)
	}
	h.Signal(syscall.SIGUSR1)
	if line := h.Stdout.NextWith(t, "got"); line != "got USR1" {
		t.Fatalf("M2 got %q", line)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit %d", code)
	}
	if line := h.Stdout.NextWith(t, "got"); line != "got TERM" {
		t.Fatalf("M2 got %q at stop", line)
	}
	for _, e := range h.Events(logev.ChildExited) {
		if e.Int("pid") != m2 {
			t.Errorf("%v: only M2 should end the generation", e)
		}
	}
}

// TestMainPIDGoneFallsBack: the process a MAINPID= named exits (and is
// reaped by its parent, the child) while the process hupd started lives on:
// the stop signal then goes to the process started, and hupd stops at once.
func TestMainPIDGoneFallsBack(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--ready", "notify", "--"}, childCmd("nt-handback")...)...)
	child := h.ChildPID(1)
	e := h.WaitEvent(logev.MainPIDChanged, 1, nil)
	if err := syscall.Kill(e.Int("pid"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.WaitEvent(logev.MainPIDBack, 1, nil)
	if line := h.Stdout.NextWith(t, "ready"); line != fmt.Sprintf("ready %d", child) {
		t.Fatalf("child says %q", line)
	}
	start := time.Now()
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit %d", code)
	}
	if line := h.Stdout.NextWith(t, "got"); line != "got TERM" {
		t.Fatalf("child got %q at stop, want TERM", line)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stop took %s", took)
	}
}

// TestNotifyForgedReadiness (finding 2): a process of the child's user
// outside the generation reads NOTIFY_SOCKET from /proc/<child>/environ,
// sends READY=1 and STATUS=forged and exits before hupd reads it (hupd is
// stopped meanwhile). The new generation, which never says READY=1, is not
// counted ready: the reload fails at its readiness timeout, the new
// generation is the one stopped, the old one serves on, and the STATUS
// text is not taken.
func TestNotifyForgedReadiness(t *testing.T) {
	ntNeedRoot(t)
	dir, err := os.MkdirTemp("", "hupd-nt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	h := StartHupd(t, swapArgs("notify", childCmd("nt-first", dir), "--user", "nobody", "--ready-timeout", "3s")...)
	rdExpectReady(t, h, 1, "READY=1")
	reload := rdReloadAsync(h)
	child := h.ChildPID(2)

	h.Signal(syscall.SIGSTOP) // hupd reads the forgery only once its sender is gone
	forge := exec.Command(selfBin, strconv.Itoa(child))
	forge.Env = append(os.Environ(), envChild+"=nt-forge")
	forge.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	out, err := forge.CombinedOutput()
	h.Signal(syscall.SIGCONT)
	if err != nil {
		t.Fatalf("forger: %v: %s", err, out)
	}

	// hupd reads the datagram and either refuses it (logged) or takes it:
	// then gen 2 is ready at once.
	const refused = logev.NotifyOutsider
	h.waitFor("the forged datagram refused or taken", func() bool {
		for _, e := range h.events {
			if e.Msg() == refused || e.Msg() == logev.ChildReady && e.Int("gen") == 2 {
				return true
			}
		}
		return false
	})
	if evs := h.Events(logev.ChildReady); len(evs) != 1 {
		t.Fatalf("ready events %v: the forged READY=1 made gen 2 ready", evs)
	}
	for _, g := range rdStatus(t, h).Generations {
		if g.StatusText == "forged" {
			t.Errorf("gen %d took the forged STATUS", g.Gen)
		}
	}
	e := h.WaitEvent(refused, 1, nil)
	if e.Int("gen") != 2 || e.Int("sender") != forge.Process.Pid || e.Int("uid") != 65534 {
		t.Errorf("%v: want gen 2, sender %d, uid 65534", e, forge.Process.Pid)
	}
	r := rdWaitReload(t, reload)
	if r.OK || r.code == 0 || !strings.Contains(r.Reason, "not ready within") {
		t.Fatalf("reload: exit %d, %+v; want a failure at the readiness timeout", r.code, r.ReloadResult)
	}
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 2 })
	st := rdStatus(t, h)
	if len(st.Generations) != 1 || st.Generations[0].Gen != 1 || st.Generations[0].State != supervisor.StateReady {
		t.Fatalf("generations %+v: want gen 1 alone, ready", st.Generations)
	}
	if evs := h.Events(logev.ChildReady); len(evs) != 1 {
		t.Fatalf("ready events %v: only gen 1 may be ready", evs)
	}
	rdStop(t, h)
}

// TestNotifyBarrier: a client sends datagrams, then BARRIER=1 with a
// pipe's write end, and waits for POLLHUP on the read end. When that comes,
// hupd has handled every datagram before it: the client's own status
// request, sent at once, finds the last STATUS= it sent. To make hupd's
// loop lag behind its notify reader, the test (hupd's service manager
// here, NOTIFY_SOCKET) lets hupd's own notification of a reload block on
// a full queue while the client sends, and empties the queue once the
// client has sent its barrier.
func TestNotifyBarrier(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	mgr := &unix.SockaddrUnix{Name: filepath.Join(dir, "manager.sock")}
	m, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(m)
	if err := unix.Bind(m, mgr); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hupdBin, withJSONLog(swapArgs("notify", childCmd("nt-barrier", "50", fifo), "--ready-timeout", "2s"))...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+mgr.Name)
	h := StartHupdCmd(t, cmd)
	rdExpectReady(t, h, 1, "READY=1")
	buf := make([]byte, 4096)
	for said := ""; !strings.Contains(said, "READY=1"); { // hupd's own READY=1 to its manager
		pfd := []unix.PollFd{{Fd: int32(m), Events: unix.POLLIN}}
		if k, err := unix.Poll(pfd, int(deadline/time.Millisecond)); err != nil || k != 1 {
			t.Fatalf("hupd did not say READY=1 to its manager within %s", deadline)
		}
		n, _, err := unix.Recvfrom(m, buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		said = string(buf[:n])
	}

	fill, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fill)
	for {
		err := unix.Sendto(fill, []byte("X=1"), unix.MSG_DONTWAIT, mgr)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	reload := rdReloadAsync(h)
	h.WaitEvent(logev.ReloadStarted, 1, nil) // hupd's loop now waits for room in the queue
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	h.Stdout.NextWith(t, "sent")
	for {
		if _, _, err := unix.Recvfrom(m, buf, 0); err != nil {
			break
		}
	}
	if line := h.Stdout.NextWith(t, "status"); line != "status final" {
		t.Fatalf("after the barrier the client saw %q, want %q", line, "status final")
	}
	h.Stdout.NextWith(t, "ready") // it handles TERM from now on
	rdStop(t, h)
	if r := rdWaitReload(t, reload); r.OK {
		t.Errorf("reload %+v: the new generation never says READY=1", r.ReloadResult)
	}
}

// TestNotifySystemdNotifyShell: shell scripts keep working. Debian's
// systemd-notify (systemd 252) run from a `sh -c` child says READY=1 and
// then, unless --no-block, BARRIER=1, and waits for hupd to close the
// barrier fd: it is alive, a child of the shell, when hupd reads its
// READY=1. As root it also sends credentials naming its parent (the
// shell), and SCM_PIDFD then names the shell. --pid=PID adds MAINPID=PID
// (and, as root, sends with PID's credentials).
func TestNotifySystemdNotifyShell(t *testing.T) {
	sn, err := exec.LookPath("systemd-notify")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("systemd-notify (Debian package systemd) is missing: %v", err)
		}
		t.Skip("systemd-notify not installed")
	}
	for _, tc := range []struct {
		name, user, script string
		mainPID            bool
	}{
		{"root", "", sn + " --ready && exec sleep 1000", false},
		{"nobody", "nobody", sn + " --ready && exec sleep 1000", false},
		// As root the datagram claims the shell's PID, which lives on. Not
		// as nobody: there the sender is systemd-notify itself, which
		// exits (and is reaped by the shell) at once, often before hupd
		// reads its datagram; without a cgroup nothing can place it then,
		// so that case is refused (and cannot be tested reliably).
		{"root no-block", "", sn + " --ready --no-block && exec sleep 1000", false},
		// In cgroup mode the gone sender's pidfd still names its cgroup.
		{"nobody no-block cgroup", "nobody", sn + " --ready --no-block && exec sleep 1000", false},
		{"root pid", "", "sleep 1000 & " + sn + " --ready --pid=$! ; wait", true},
		{"nobody pid", "nobody", "sleep 1000 & " + sn + " --ready --pid=$! ; wait", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.user != "" {
				ntNeedRoot(t)
			}
			extra := []string{"--ready-timeout", "10s"}
			if tc.user != "" {
				extra = append(extra, "--user", tc.user)
			}
			h := StartHupd(t, swapArgs("notify", []string{"sh", "-c", tc.script}, extra...)...)
			if strings.HasSuffix(tc.name, " cgroup") {
				ctRequireCgroups(t, h)
			}
			checkMain := func(gen int) {
				if !tc.mainPID {
					return
				}
				e := h.WaitEvent(logev.MainPIDChanged, 1, func(e Event) bool { return e.Int("gen") == gen })
				if ppid, _ := rdParent(e.Int("pid")); ppid != h.ChildPID(gen) {
					t.Errorf("gen %d main pid %d has parent %d, want the shell %d", gen, e.Int("pid"), ppid, h.ChildPID(gen))
				}
			}
			rdExpectReady(t, h, 1, "READY=1")
			checkMain(1)
			r := rdReloadOK(t, h, supervisor.StrategySwap)
			if r.NewGen != 2 {
				t.Fatalf("reload made gen %d, want 2", r.NewGen)
			}
			rdExpectReady(t, h, 2, "READY=1")
			checkMain(2)
			rdNoEvent(t, h, logev.NotifyOutsider)
			rdNoEvent(t, h, logev.MainPIDRefused)
			h.Stop()
		})
	}
}

// TestNotifyGoneMemberCgroup: in cgroup mode a datagram whose sender was a
// member of the generation, has exited and been reaped before hupd reads
// it (systemd-notify --no-block from a shell, as nobody) still counts: the
// sender's pidfd names the cgroup it exited in. hupd is stopped while the
// sender sends, exits and is reaped, so that it reads the datagram only
// once the sender is gone. (The kernel tells a reaped process's cgroup
// only when the exit information is asked for too: without it the READY=1
// was refused.)
func TestNotifyGoneMemberCgroup(t *testing.T) {
	ntNeedRoot(t)
	dir, err := os.MkdirTemp("", "hupd-nt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	for _, f := range []string{"go", "done"} {
		if err := syscall.Mkfifo(filepath.Join(dir, f), 0o666); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, f), 0o666)
	}
	h := StartHupd(t, swapArgs("notify", childCmd("nt-late", dir), "--user", "nobody")...)
	ctRequireCgroups(t, h)
	h.Signal(syscall.SIGSTOP)
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte("go\n"), 0); err != nil {
		h.Signal(syscall.SIGCONT)
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "done")) // the sender has been reaped
	h.Signal(syscall.SIGCONT)
	if err != nil || string(b) != "sent\n" {
		t.Fatalf("child: %q %v", b, err)
	}
	rdExpectReady(t, h, 1, "READY=1")
	rdNoEvent(t, h, logev.NotifyOutsider)
	h.Stdout.NextWith(t, "ready") // it takes TERM
	rdStop(t, h)
}
