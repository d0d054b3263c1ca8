package integration

// The sentinel (issue 13, finding 3): nothing of a generation survives
// hupd's SIGKILL. A pre-fork child (a master that forks workers into its
// process group, as nginx or gunicorn do) holds the listening socket in
// every worker; the parent-death signal reaches only the master.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

func init() {
	// prefork N [daemon]: a pre-fork master. It ignores HUP, INT and TERM
	// (as do its workers) and exits 0 on
	// USR1 (use --stop-signal USR1). It starts N workers in its process
	// group and, with "daemon", a daemon in a session of its own, all
	// holding fd 3 (the listening socket), then prints "prefork MASTER
	// W1 … WN [daemon D]" and waits.
	childModes["prefork"] = func(args []string) {
		n, _ := strconv.Atoi(args[0])
		signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		line := fmt.Sprintf("prefork %d", os.Getpid())
		start := func(setsid bool) int {
			c := procSelfCmd("prefork-worker")
			c.ExtraFiles = []*os.File{os.NewFile(3, "listener")}
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
			out, err := c.StdoutPipe()
			if err == nil {
				err = c.Start()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "prefork:", err)
				os.Exit(3)
			}
			// "up": it holds the socket and ignores the signals.
			if l, _ := bufio.NewReader(out).ReadString('\n'); l != "up\n" {
				fmt.Fprintf(os.Stderr, "prefork: worker said %q\n", l)
				os.Exit(3)
			}
			return c.Process.Pid
		}
		for range n {
			line += " " + strconv.Itoa(start(false))
		}
		if len(args) > 1 && args[1] == "daemon" {
			line += " daemon " + strconv.Itoa(start(true))
		}
		fmt.Println(line)
		<-usr1
	}
	// sent-mainpid: start a new main process in a session of its own
	// (sent-mainpid-new), announce it with MAINPID= and READY=1, exit.
	childModes["sent-mainpid"] = func([]string) {
		next := procSelfCmd("sent-mainpid-new")
		next.Stdout = os.Stdout
		next.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := next.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "sent-mainpid:", err)
			os.Exit(3)
		}
		if _, err := socketact.Notify(fmt.Sprintf("MAINPID=%d\nREADY=1", next.Process.Pid)); err != nil {
			fmt.Fprintln(os.Stderr, "sent-mainpid:", err)
			os.Exit(5)
		}
	}
	// sent-mainpid-new: print "newmain PID" and wait (TERM ends it).
	childModes["sent-mainpid-new"] = func([]string) {
		fmt.Println("newmain", os.Getpid())
		reportSignalsUntil(syscall.SIGTERM)
	}
	// prefork-worker: ignore HUP, INT and TERM (Go's runtime would
	// restore TERM's default action, inherited SIG_IGN or not), say "up"
	// (fd 3 is held), then wait forever.
	childModes["prefork-worker"] = func([]string) {
		signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
		fmt.Println("up")
		os.Stdout.Close()
		for {
			time.Sleep(time.Hour)
		}
	}
}

// sentPrefork is a pre-fork generation as its master reported it.
type sentPrefork struct {
	master  int
	workers []int
	daemon  int         // 0: none
	pidfds  map[int]int // pid -> pidfd, opened while it is alive
}

// sentReadPrefork reads the next "prefork …" line and opens a pidfd for
// every process in it (closed, and the process killed, at cleanup).
func sentReadPrefork(t *testing.T, h *Hupd) *sentPrefork {
	t.Helper()
	f := strings.Fields(h.Stdout.NextWith(t, "prefork "))
	p := &sentPrefork{pidfds: map[int]int{}}
	var pids []int
	for i := 1; i < len(f); i++ {
		if f[i] == "daemon" {
			continue
		}
		pid, err := strconv.Atoi(f[i])
		if err != nil {
			t.Fatalf("prefork line %v: %v", f, err)
		}
		switch {
		case i == 1:
			p.master = pid
		case f[i-1] == "daemon":
			p.daemon = pid
		default:
			p.workers = append(p.workers, pid)
		}
		pids = append(pids, pid)
	}
	for _, pid := range pids {
		fd, err := pidfdOpen(pid)
		if err != nil {
			t.Fatalf("pidfd_open %d: %v", pid, err)
		}
		p.pidfds[pid] = fd
		t.Cleanup(func() {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Close(fd)
		})
	}
	return p
}

// group is the master and its workers: what the sentinel must end
// without a cgroup.
func (p *sentPrefork) group() []int { return append([]int{p.master}, p.workers...) }

// waitEnded waits (pidfd poll) for every process of pids to have exited.
func (p *sentPrefork) waitEnded(t *testing.T, what string, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if !pollReadable(p.pidfds[pid], deadline) {
			t.Fatalf("%s: process %d still alive %s after hupd was killed (master %d, workers %v)", what, pid, deadline, p.master, p.workers)
		}
	}
}

// exited reports whether pid (one of p's) has exited, without waiting.
func (p *sentPrefork) exited(pid int) bool { return pollReadable(p.pidfds[pid], time.Millisecond) }

// sentinelPID waits for hupd to log its sentinel's start and returns its
// PID, after checking that it is hupd's child in a session of its own.
func sentinelPID(t *testing.T, h *Hupd) int {
	t.Helper()
	pid := h.WaitEvent(logev.SentinelStarted, 1, nil).Int("pid")
	st, ok := procStat(pid)
	if !ok || st.ppid != h.Cmd.Process.Pid || st.pgrp != pid {
		t.Fatalf("sentinel %d: parent %d group %d (found %v), want hupd %d and a group of its own", pid, st.ppid, st.pgrp, ok, h.Cmd.Process.Pid)
	}
	if sid, _ := unix.Getsid(pid); sid != pid {
		t.Fatalf("sentinel %d in session %d, want its own", pid, sid)
	}
	procKillAtCleanup(t, pid)
	return pid
}

// sentPortFree checks that a new hupd can listen on addr once the old
// one's processes are gone: no "address in use".
func sentPortFree(t *testing.T, addr string) {
	t.Helper()
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://" + addr, "--"}, childCmd("signals")...)...)
	if got := HostPort(h.Listening("http")); got != addr {
		t.Fatalf("new hupd listens on %s, want %s", got, addr)
	}
	procReady(t, h)
	if code := h.Stop(); code != 0 {
		t.Fatalf("new hupd exited %d", code)
	}
}

// sentKill9 SIGKILLs hupd (not its group: only hupd dies) and waits for
// the pre-fork generation's group to be gone.
func sentKill9(t *testing.T, h *Hupd, p *sentPrefork) {
	t.Helper()
	if err := h.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.waitEnded(t, "after kill -9 of hupd", p.group())
	h.Wait()
}

// sentDaemon handles the daemon that left the process group: without a
// cgroup nothing of hupd's can find it after hupd's death (documented in
// the README's security model); with one it is ended too. Either way it
// must be gone before the port is free.
func sentDaemon(t *testing.T, p *sentPrefork) {
	t.Helper()
	if p.daemon == 0 {
		return
	}
	if !p.exited(p.daemon) {
		t.Logf("daemon %d outlived hupd (no cgroup: it left the process group), as documented; killing it", p.daemon)
		unix.PidfdSendSignal(p.pidfds[p.daemon], unix.SIGKILL, nil, 0)
	}
	p.waitEnded(t, "daemon", []int{p.daemon})
}

// TestSentinelPreforkKill9: kill -9 of hupd ends the pre-fork master and
// every worker in its group (before the sentinel, the workers lived on
// and held the port), and a new hupd can listen on the same address.
func TestSentinelPreforkKill9(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--stop-signal", "USR1", "--"},
		childCmd("prefork", "3", "daemon")...)...)
	addr := HostPort(h.Listening("http"))
	p := sentReadPrefork(t, h)
	if len(p.workers) != 3 || p.daemon == 0 {
		t.Fatalf("prefork: workers %v daemon %d", p.workers, p.daemon)
	}
	sentinel := sentinelPID(t, h)
	sentKill9(t, h, p)
	waitGone(t, sentinel) // its work done, it exits
	sentDaemon(t, p)
	sentPortFree(t, addr)
}

// TestSentinelIgnoresStraySignals: HUP, TERM and INT sent to the
// sentinel's process group and to the generations' groups during a swap
// (what systemctl kill, docker kill or a kill -SIG -PGID send) leave the
// sentinel running; kill -9 of hupd then still ends the new generation.
func TestSentinelIgnoresStraySignals(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--stop-signal", "USR1", "--ready", "delay:300ms", "--"},
		childCmd("prefork", "2")...)...)
	p1 := sentReadPrefork(t, h)
	sentinel := sentinelPID(t, h)
	h.WaitEvent(logev.ChildReady, 1, nil)

	reload := make(chan string, 1)
	go func() {
		out, code := hupdCtl(t, h, "reload")
		reload <- fmt.Sprintf("%d %s", code, out)
	}()
	p2 := sentReadPrefork(t, h) // generation 2 runs; not ready yet
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
		for _, pgid := range []int{sentinel, p1.master, p2.master} {
			err := syscall.Kill(-pgid, sig)
			if err == syscall.ESRCH && pgid == p1.master {
				// On a loaded machine generation 2 may be ready, and
				// generation 1 drained and gone, by now.
				continue
			}
			if err != nil {
				t.Fatalf("kill -%v -%d: %v", sig, pgid, err)
			}
		}
	}
	if got := <-reload; !strings.HasPrefix(got, "0 reload ok (swap)") {
		t.Fatalf("reload during the signals: %s", got)
	}
	p1.waitEnded(t, "generation 1 after the swap", p1.group())
	if !processAlive(sentinel) {
		t.Fatalf("sentinel %d gone after stray signals", sentinel)
	}
	h.Sync()
	if evs := h.Events(logev.SentinelRestarted); len(evs) > 0 {
		t.Fatalf("sentinel died: %v", evs)
	}
	sentKill9(t, h, p2)
	waitGone(t, sentinel)
}

// TestSentinelAfterUpgrade: an in-place upgrade keeps the sentinel (same
// PID, taken over by the new image), a failed one rolled back too, and
// kill -9 of the upgraded hupd still ends the generation.
func TestSentinelAfterUpgrade(t *testing.T) {
	_, failing := upgradeBins(t)
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--stop-signal", "USR1", "--ready", "delay:100ms", "--"},
		childCmd("prefork", "3")...)...)
	p := sentReadPrefork(t, h)
	sentinel := sentinelPID(t, h)
	h.WaitEvent(logev.ChildReady, 1, nil)

	if out, code := hupdCtl(t, h, "upgrade", "--binary", failing); code != 1 {
		t.Fatalf("upgrade to a failing binary: exit %d %q", code, out)
	}
	h.WaitEvent(logev.UpgradeTakeOverFailed, 1, nil)
	// (The failing image goes back before it looks at the sentinel.)
	if e := h.WaitEvent(logev.SentinelTakenOver, 1, nil); e.Int("pid") != sentinel {
		t.Fatalf("rolled back: %v, want sentinel %d", e, sentinel)
	}
	if out, code := hupdCtl(t, h, "upgrade"); code != 0 {
		t.Fatalf("hupd upgrade: exit %d %q", code, out)
	}
	h.WaitEvent(logev.Upgraded, 1, nil)
	if e := h.WaitEvent(logev.SentinelTakenOver, 2, nil); e.Int("pid") != sentinel {
		t.Fatalf("upgraded: %v, want sentinel %d", e, sentinel)
	}
	if n := len(h.Events(logev.SentinelStarted)); n != 1 || !processAlive(sentinel) {
		t.Fatalf("%d sentinels started; the first one alive: %v", n, processAlive(sentinel))
	}
	if bad := leftovers(t, h.Cmd.Process.Pid); len(bad) > 0 {
		t.Errorf("left open by the upgrade: %v", bad)
	}
	sentKill9(t, h, p)
	waitGone(t, sentinel)
}

// TestSentinelNormalStop: at a normal stop the sentinel exits 0 with
// nothing to do, reaped by hupd (never reported as an orphan, never
// changing hupd's exit code), and holds nothing but its own fds.
func TestSentinelNormalStop(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--stop-signal", "USR1", "--"},
		childCmd("prefork", "2")...)...)
	p := sentReadPrefork(t, h)
	sentinel := sentinelPID(t, h)
	for fd, target := range swapFDs(t, sentinel) {
		switch {
		case fd <= 2 || target == "anon_inode:[pidfd]" || strings.HasPrefix(target, "/sys/fs/cgroup/"):
		case fd == 3 && strings.HasPrefix(target, "socket:"):
		default:
			t.Errorf("sentinel fd %d -> %s", fd, target)
		}
	}
	// No generation process holds hupd's end: no socket in the master
	// but the listener (fd 3).
	for fd, target := range swapFDs(t, p.master) {
		if strings.HasPrefix(target, "socket:") && fd != 3 {
			t.Errorf("master fd %d -> %s: hupd's sentinel socket leaked?", fd, target)
		}
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
	p.waitEnded(t, "after a normal stop", p.group())
	if processAlive(sentinel) {
		t.Fatalf("sentinel %d alive after hupd's normal exit", sentinel)
	}
	for _, e := range h.Events(logev.OrphanReaped) { // the workers are
		if e.Int("pid") == sentinel {
			t.Fatalf("sentinel reaped as an orphan: %v", e)
		}
	}
	if s := h.Stderr(); strings.Contains(s, "hupd sentinel:") {
		t.Fatalf("sentinel complained: %s", s)
	}
}

// TestSentinelFollowedMainPID: a main process that hupd follows after a
// MAINPID= hand-over, in a session of its own (out of the process group,
// and without the parent-death signal, which its parent's fork cleared),
// is ended through its pidfd when hupd is killed.
func TestSentinelFollowedMainPID(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--ready", "notify", "--"}, childCmd("sent-mainpid")...)...)
	f := strings.Fields(h.Stdout.NextWith(t, "newmain "))
	newMain, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	fd, err := pidfdOpen(newMain)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	procKillAtCleanup(t, newMain)
	if e := h.WaitEvent(logev.MainExitFollow, 1, nil); e.Int("pid") != newMain {
		t.Fatalf("followed %v, want %d", e, newMain)
	}
	sentinel := sentinelPID(t, h)
	if err := h.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if !pollReadable(fd, deadline) {
		t.Fatalf("followed main process %d alive %s after hupd was killed", newMain, deadline)
	}
	h.Wait()
	waitGone(t, sentinel)
}

// TestSentinelAfterConfigEdit: a generation started after hupd.toml was
// edited (the edit applied while hupd runs) is registered too: kill -9
// of hupd ends its workers.
func TestSentinelAfterConfigEdit(t *testing.T) {
	conf := func(tag string) string {
		cmd, _ := json.Marshal(childCmd("prefork", "2"))
		return fmt.Sprintf("command = %s\n[[listen]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:0\"\n"+
			"[process]\nstop_signal = \"USR1\"\n[process.env]\nTAG = %q\n[reload]\nready = \"delay:100ms\"\n", cmd, tag)
	}
	path := procConfig(t, conf("v1"))
	h := StartHupd(t, "run", "-c", path)
	sentReadPrefork(t, h)
	sentinelPID(t, h)
	h.WaitEvent(logev.ChildReady, 1, nil)
	if err := os.WriteFile(path+".new", []byte(conf("v2")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	h.WaitEvent(logev.ConfigApplied, 1, nil)
	p2 := sentReadPrefork(t, h) // generation 2, started by the edit
	h.WaitEvent(logev.ChildReady, 2, nil)
	sentKill9(t, h, p2)
}
