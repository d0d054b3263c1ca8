package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// A generation whose main process is handed over (MAINPID=) to a daemon in
// a session of its own leaves the process group it started in: once its
// first process has exited, that group is empty and its id free for a
// stranger. These tests give a stranger that very id (as an attacker
// cycling PIDs could) and check that nothing of hupd's, and nothing a child
// says, reaches it.

func init() {
	// sg-wrap DIR [ignore-term]: start sg-daemon in a session of its own,
	// hand over to it (MAINPID=, READY=1) and exit 0.
	childModes["sg-wrap"] = func(args []string) {
		self, _ := os.Executable()
		c := exec.Command(self, args...)
		c.Env = append(os.Environ(), envChild+"=sg-daemon")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		out, err := c.StdoutPipe()
		if err == nil {
			err = c.Start()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		line, _ := bufio.NewReader(out).ReadString('\n') // "daemon PID": it takes its signals
		pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "daemon ")))
		if _, err := socketact.Notify("MAINPID=" + strconv.Itoa(pid) + "\nREADY=1"); err != nil {
			os.Exit(5)
		}
		os.Exit(0) // hupd follows the daemon
	}
	// sg-daemon DIR [ignore-term]: say "daemon PID"; then for each line
	// "mainpid N" read from the FIFO DIR/cmd send MAINPID=N and answer
	// "sent" on the FIFO DIR/ack; exit 0 on TERM (unless ignore-term).
	childModes["sg-daemon"] = func(args []string) {
		sigs := make(chan os.Signal, 1)
		if len(args) > 1 && args[1] == "ignore-term" {
			signal.Ignore(syscall.SIGTERM)
		} else {
			signal.Notify(sigs, syscall.SIGTERM)
		}
		fmt.Println("daemon", os.Getpid())
		os.Stdout.Close()
		go func() {
			for {
				b, err := os.ReadFile(filepath.Join(args[0], "cmd"))
				if err != nil {
					return
				}
				if n, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "mainpid "); ok {
					socketact.Notify("MAINPID=" + n)
					os.WriteFile(filepath.Join(args[0], "ack"), []byte("sent\n"), 0)
				}
			}
		}()
		<-sigs
	}
}

// sgStart starts hupd on sg-wrap (extra flags first) and waits until it
// follows the daemon. It returns the first process's PID (the free group
// id) and the daemon's.
func sgStart(t *testing.T, dir string, daemonArgs []string, extra ...string) (h *Hupd, first, daemon int) {
	t.Helper()
	for _, f := range []string{"cmd", "ack"} {
		if err := syscall.Mkfifo(filepath.Join(dir, f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"run", "--ready", "notify", "--restart", "never"}, extra...)
	h = StartHupd(t, append(append(args, "--"), childCmd("sg-wrap", append([]string{dir}, daemonArgs...)...)...)...)
	first = h.ChildPID(1)
	e := h.WaitEvent(logev.MainExitFollow, 1, nil)
	daemon = e.Int("pid")
	if daemon <= 0 || daemon == first {
		t.Fatalf("%v: want the daemon followed", e)
	}
	// In its own session, it outlives a test that fails half-way.
	if fd, err := pidfdOpen(daemon); err == nil {
		t.Cleanup(func() { unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); unix.Close(fd) })
	}
	waitGone(t, first)
	return h, first, daemon
}

// sgStranger starts, as root, a process of the test's own (not under hupd)
// whose PID is pid, leading a session and so a process group of that id.
func sgStranger(t *testing.T, pid int) *exec.Cmd {
	t.Helper()
	for range 50 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot choose the next PID: %v", err)
		}
		c := exec.Command("sleep", "1000")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if c.Process.Pid == pid {
			t.Cleanup(func() { c.Process.Kill(); c.Wait() })
			return c
		}
		c.Process.Kill()
		c.Wait()
	}
	t.Skipf("could not get PID %d (other processes took it first)", pid)
	return nil
}

func sgModes(t *testing.T, run func(t *testing.T, mode []string)) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: ns_last_pid")
	}
	for _, m := range [][]string{{"--cgroup", "off"}, {}} {
		name := "fallback"
		if len(m) == 0 {
			name = "auto"
		}
		t.Run(name, func(t *testing.T) { run(t, m) })
	}
}

// TestStaleGroupStop: at the end of the followed daemon, hupd kills what is
// left of the generation; the stranger now leading the group the
// generation started in must live (hupd killed it with kill(-PGID)).
func TestStaleGroupStop(t *testing.T) {
	sgModes(t, func(t *testing.T, mode []string) {
		h, first, daemon := sgStart(t, t.TempDir(), nil, mode...)
		stranger := sgStranger(t, first)
		if err := syscall.Kill(daemon, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		h.Wait()
		if !processAlive(stranger.Process.Pid) {
			t.Fatalf("the stranger %d in the freed process group was killed", first)
		}
	})
}

// TestStaleGroupMainPID: the daemon names the stranger with MAINPID=: it is
// not a member of the generation (it only has the id of the group the
// generation started in), so hupd refuses it and never signals it.
func TestStaleGroupMainPID(t *testing.T) {
	sgModes(t, func(t *testing.T, mode []string) {
		dir := t.TempDir()
		h, first, _ := sgStart(t, dir, nil, mode...)
		stranger := sgStranger(t, first)
		if err := os.WriteFile(filepath.Join(dir, "cmd"), []byte("mainpid "+strconv.Itoa(first)+"\n"), 0); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "ack")); err != nil || string(b) != "sent\n" {
			t.Fatalf("daemon: %q %v", b, err)
		}
		e := h.WaitEvent(logev.MainPIDRefused, 1, nil)
		if e.Int("pid") != first {
			t.Fatalf("%v: want MAINPID=%d refused", e, first)
		}
		if evs := h.Events(logev.MainPIDChanged); len(evs) != 1 {
			t.Fatalf("main pid changes %v: want only the daemon's", evs)
		}
		if code := h.Stop(); code != 0 {
			t.Fatalf("hupd exited %d", code)
		}
		if !processAlive(stranger.Process.Pid) {
			t.Fatalf("the stranger %d was killed", first)
		}
	})
}

// TestStaleGroupKill9: kill -9 of hupd: the sentinel ends the followed
// daemon (through its pidfd, or its cgroup) and leaves the stranger alone.
func TestStaleGroupKill9(t *testing.T) {
	sgModes(t, func(t *testing.T, mode []string) {
		h, first, daemon := sgStart(t, t.TempDir(), nil, mode...)
		sentinel := sentinelPID(t, h)
		stranger := sgStranger(t, first)
		if err := h.Cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		h.Wait()
		waitGone(t, daemon)
		waitGone(t, sentinel)
		if !processAlive(stranger.Process.Pid) {
			t.Fatalf("the stranger %d in the freed process group was killed by the sentinel", first)
		}
	})
}

// TestStaleGroupStopTimeout: a followed daemon that ignores the stop signal
// is killed at the stop timeout (through its pidfd in the fallback, where
// the group it started in is no longer the generation's): hupd's stop
// ends instead of waiting for it forever.
func TestStaleGroupStopTimeout(t *testing.T) {
	sgModes(t, func(t *testing.T, mode []string) {
		h, _, daemon := sgStart(t, t.TempDir(), []string{"ignore-term"}, append(mode, "--stop-timeout", "500ms")...)
		h.Signal(syscall.SIGTERM)
		if code := h.Wait(); code != 128+int(syscall.SIGKILL) {
			t.Errorf("hupd exited %d, want %d (the daemon killed at the stop timeout)", code, 128+int(syscall.SIGKILL))
		}
		waitGone(t, daemon)
	})
}

// TestStaleGroupUpgrade: an in-place upgrade keeps a generation whose
// followed daemon has left the process group it started in: the previous
// image vetted it, and it is still that process (same start time). (It
// ended the generation, fabricating a clean exit, and hupd with it.)
func TestStaleGroupUpgrade(t *testing.T) {
	sgModes(t, func(t *testing.T, mode []string) {
		h, _, daemon := sgStart(t, t.TempDir(), nil, mode...)
		if out, code := hupdCtl(t, h, "upgrade"); code != 0 {
			t.Fatalf("upgrade: exit %d %s", code, out)
		}
		h.WaitEvent(logev.Upgraded, 1, nil)
		st := rdStatus(t, h)
		if len(st.Generations) != 1 || st.Generations[0].PID != daemon {
			t.Fatalf("after the upgrade: %+v, want the daemon %d serving", st.Generations, daemon)
		}
		h.Sync() // an exit handled before the status reply is read by now
		if evs := h.Events(logev.ChildExited); len(evs) != 0 {
			t.Fatalf("exits after the upgrade: %v", evs)
		}
		if code := h.Stop(); code != 0 {
			t.Fatalf("hupd exited %d", code)
		}
		waitGone(t, daemon)
	})
}
