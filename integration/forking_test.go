package integration

// Programs that daemonize (issue 13): the process hupd starts forks, its
// child calls setsid and forks the daemon, and the first process exits 0.
// With --forking (or --pidfile) the daemon becomes the generation's main
// process: it serves, is swapped, stopped, shown by status, and ended by
// the sentinel when hupd is killed.

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
	// fork-parent [-pidfile F] [-names PID] [-two-if FILE]: a classic
	// daemonizing program. It starts fork-mid in a session of its own
	// (fork + setsid) handing it fd 3 (the held socket) and a pipe,
	// waits until every daemon has said "up" on the pipe (after writing
	// its pidfile), writes PID into the pidfile itself with -names, and
	// exits 0 without waiting for fork-mid.
	childModes["fork-parent"] = func(args []string) {
		fs := flag.NewFlagSet("fork-parent", flag.ExitOnError)
		pidfile := fs.String("pidfile", "", "the daemon writes its PID there")
		names := fs.Int("names", 0, "write this PID into -pidfile instead")
		twoIf := fs.String("two-if", "", "start two daemons when this file exists")
		bind := fs.String("bind", "", "the daemon binds this address itself (no fd 3)")
		notify := fs.Bool("notify", false, "the daemon sends READY=1 before it says up")
		noWait := fs.Bool("nowait", false, "exit as soon as fork-mid has started")
		fs.Parse(args)
		n := 1
		if _, err := os.Stat(*twoIf); *twoIf != "" && err == nil {
			n = 2
		}
		r, w, err := os.Pipe()
		if err != nil {
			forkFail(err)
		}
		daemonPidfile := *pidfile
		if *names != 0 {
			daemonPidfile = ""
		}
		mid := procSelfCmd("fork-mid", strconv.Itoa(n), daemonPidfile, *bind, strconv.FormatBool(*notify))
		mid.Stdout = os.Stdout
		mid.ExtraFiles = []*os.File{listenerFD(*bind), w}
		mid.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := mid.Start(); err != nil {
			forkFail(err)
		}
		w.Close()
		if *noWait {
			return
		}
		br := bufio.NewReader(r)
		for range n {
			if l, err := br.ReadString('\n'); l != "up\n" {
				forkFail(fmt.Errorf("daemon said %q (%v)", l, err))
			}
		}
		// As a double-forking daemon's first process does: reap the
		// intermediate, which has exited (or exits now) once it started
		// the daemons, so that they are hupd's (the subreaper's) before
		// this process exits.
		if err := mid.Wait(); err != nil {
			forkFail(err)
		}
		if *names != 0 {
			if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(*names)+"\n"), 0o644); err != nil {
				forkFail(err)
			}
		}
		// exit 0: the daemon serves on
	}
	// fork-mid N PIDFILE BIND NOTIFY: start N fork-daemon (the second fork) and
	// exit at once, leaving them to hupd, the subreaper.
	childModes["fork-mid"] = func(args []string) {
		n, _ := strconv.Atoi(args[0])
		for range n {
			d := procSelfCmd("fork-daemon", args[1], args[2], args[3])
			d.Stdout = os.Stdout
			d.ExtraFiles = []*os.File{listenerFD(args[2]), os.NewFile(4, "up")}
			if err := d.Start(); err != nil {
				forkFail(err)
			}
		}
	}
	// fork-daemon PIDFILE BIND NOTIFY: serve HTTP ("pid N") on fd 3 (or
	// on BIND, bound itself, when not ""), write the pidfile (unless ""),
	// send READY=1 when NOTIFY is "true", print "daemon PID", say "up" on
	// fd 4; on TERM stop accepting, drain and exit 0.
	childModes["fork-daemon"] = func(args []string) {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		var l net.Listener
		var err error
		if args[1] != "" {
			l, err = net.Listen("tcp", args[1])
		} else {
			f := os.NewFile(3, "listener")
			l, err = net.FileListener(f)
			f.Close()
		}
		if err != nil {
			forkFail(err)
		}
		srv := &swapServer{pid: os.Getpid()}
		srv.serve(l)
		if p := args[0]; p != "" {
			tmp := p + ".tmp"
			if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
				forkFail(err)
			}
			if err := os.Rename(tmp, p); err != nil {
				forkFail(err)
			}
		}
		if args[2] == "true" {
			if _, err := socketact.Notify("READY=1"); err != nil {
				forkFail(err)
			}
		}
		fmt.Println("daemon", os.Getpid())
		up := os.NewFile(4, "up")
		up.Write([]byte("up\n")) // EPIPE after fork-parent -nowait: ignored
		up.Close()
		<-sigs
		srv.stopAccepting()
		srv.drain()
	}
}

// listenerFD is fd 3, the held socket, unless the program binds bind
// itself (nil: fd 3 stays closed in the child).
func listenerFD(bind string) *os.File {
	if bind != "" {
		return nil
	}
	return os.NewFile(3, "listener")
}

func forkFail(err error) {
	fmt.Fprintf(os.Stderr, "%s pid %d: %v\n", os.Getenv(envChild), os.Getpid(), err)
	os.Exit(3)
}

// forkDaemon reads the next "daemon PID" line of h's output and returns
// the PID, killed at cleanup.
func forkDaemon(t *testing.T, h *Hupd) int {
	t.Helper()
	f := strings.Fields(h.Stdout.NextWith(t, "daemon "))
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("daemon line %v: %v", f, err)
	}
	if fd, err := pidfdOpen(pid); err == nil { // else gone already
		t.Cleanup(func() {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Close(fd)
		})
	}
	return pid
}

// forkGet answers one request on addr: the body, trimmed.
func forkGet(t *testing.T, addr string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: deadline}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// forkStatusPID is the PID `hupd status --json` shows for generation gen.
func forkStatusPID(t *testing.T, h *Hupd, gen int) int {
	t.Helper()
	gens, _ := statusOf(t, h)["generations"].([]any)
	for _, g := range gens {
		m, _ := g.(map[string]any)
		if m["gen"] == float64(gen) {
			pid, _ := m["pid"].(float64)
			return int(pid)
		}
	}
	t.Fatalf("generation %d not in status %v", gen, gens)
	return 0
}

// forkServes runs the whole life of a daemonizing program under hupd
// started with extra flags: the daemon serves and is the main process
// (ready log, status), a swap under load reaches a new daemon with no
// failed request, and a stop ends it with hupd exiting 0. pidfile is
// given to the program ("" for none).
func forkServes(t *testing.T, extra []string, pidfile string) {
	args := append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--stop-timeout", "10s"}, extra...)
	prog := childCmd("fork-parent")
	if pidfile != "" {
		prog = append(prog, "-pidfile", pidfile)
	}
	h := StartHupd(t, append(append(args, "--"), prog...)...)
	addr := HostPort(h.Listening("http"))
	d1 := forkDaemon(t, h)
	ready := h.WaitEvent(logev.ChildReady, 1, swapGen(1))
	if ready.Int("pid") != d1 {
		t.Fatalf("generation 1 ready with pid %d, want the daemon %d", ready.Int("pid"), d1)
	}
	if st, ok := procStat(d1); !ok || st.ppid != h.Cmd.Process.Pid {
		t.Fatalf("daemon %d: parent %d, want hupd %d (the subreaper)", d1, st.ppid, h.Cmd.Process.Pid)
	}
	if sid, _ := unix.Getsid(d1); sid == h.Cmd.Process.Pid || sid == d1 {
		t.Fatalf("daemon %d in session %d: want fork-mid's session", d1, sid)
	}
	if pid := forkStatusPID(t, h, 1); pid != d1 {
		t.Fatalf("status shows pid %d for generation 1, want the daemon %d", pid, d1)
	}
	if got := forkGet(t, addr); got != fmt.Sprintf("pid %d", d1) {
		t.Fatalf("answer %q, want the daemon %d", got, d1)
	}

	_, bodies := swapsUnderLoad(t, h, "tcp", addr, 1, func(b string) bool { return strings.HasPrefix(b, "pid ") })
	d2 := forkDaemon(t, h)
	waitGone(t, d1) // drained by its stop signal (swapsUnderLoad saw its exit)
	if pid := forkStatusPID(t, h, 2); pid != d2 {
		t.Fatalf("status shows pid %d for generation 2, want the new daemon %d", pid, d2)
	}
	if got := forkGet(t, addr); got != fmt.Sprintf("pid %d", d2) {
		t.Fatalf("after the swap: answer %q, want the new daemon %d (bodies seen %v)", got, d2, bodies)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d after a stop, want 0", code)
	}
	waitGone(t, d2)
	if e := h.WaitEvent(logev.ChildExited, 1, swapGen(2)); e.Int("pid") != d2 || e.Str("status") != "exit status 0" {
		t.Fatalf("generation 2 ended as pid %d %q, want the daemon %d, exit status 0", e.Int("pid"), e.Str("status"), d2)
	}
}

// TestForkingDoubleFork: a double-forking server without a pidfile: the
// single process hupd was handed as an orphan in the generation is the
// daemon. Without --forking hupd took the first process's exit 0 as the
// end of the program and left the daemon serving as an orphan.
func TestForkingDoubleFork(t *testing.T) {
	forkServes(t, []string{"--forking"}, "")
}

// TestForkingPidfile: the daemon writes a pidfile (relative to --dir)
// before the first process exits.
func TestForkingPidfile(t *testing.T) {
	dir := t.TempDir()
	forkServes(t, []string{"--dir", dir, "--pidfile", "run.pid"}, filepath.Join(dir, "run.pid"))
}

// TestForkingFallback: without cgroups, the daemon (which left the
// process group) is found as hupd's orphan whose environment names the
// generation's NOTIFY_SOCKET.
func TestForkingFallback(t *testing.T) {
	forkServes(t, []string{"--forking", "--cgroup", "off"}, "")
}

// TestForkingKill9: kill -9 of hupd ends the daemon it follows (the
// sentinel holds its pidfd; in cgroup mode its cgroup too).
func TestForkingKill9(t *testing.T) {
	for _, cg := range []string{"auto", "off"} {
		t.Run("cgroup-"+cg, func(t *testing.T) {
			h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--forking", "--cgroup", cg, "--"},
				childCmd("fork-parent")...)...)
			sentinelPID(t, h)
			d := forkDaemon(t, h)
			h.WaitEvent(logev.ChildReady, 1, swapGen(1))
			if err := h.Cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			waitGone(t, d)
			h.Wait()
		})
	}
}

// forkFailedStart runs hupd (restart policy never) on a program whose
// start must fail, and returns the reason logged and the exit code.
func forkFailedStart(t *testing.T, extra []string, prog ...string) (string, int) {
	t.Helper()
	args := append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--restart", "never"}, extra...)
	h := StartHupd(t, append(append(args, "--"), prog...)...)
	d := forkDaemon(t, h)
	reason := h.WaitEvent(logev.StartFailed, 1, nil).Str("reason")
	code := h.Wait()
	waitGone(t, d) // nothing of the failed start is left
	return reason, code
}

// TestForkingPidfileRefused: a pidfile that names a process outside the
// generation (the test's own sleep) is refused and that process left
// alone; a pidfile that is a FIFO or a symlink to /dev/zero is refused
// without hanging. Each is a failed start: hupd exits 1.
func TestForkingPidfileRefused(t *testing.T) {
	t.Run("outside", func(t *testing.T) {
		for _, cg := range []string{"auto", "off"} {
			t.Run("cgroup-"+cg, func(t *testing.T) {
				sleep := exec.Command("sleep", "1000")
				if err := sleep.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
				spid := sleep.Process.Pid
				sfd, err := pidfdOpen(spid)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(sfd)
				pidfile := filepath.Join(t.TempDir(), "d.pid")
				reason, code := forkFailedStart(t, []string{"--pidfile", pidfile, "--cgroup", cg},
					append(childCmd("fork-parent"), "-pidfile", pidfile, "-names", strconv.Itoa(spid))...)
				want := fmt.Sprintf("forking: pidfile %s names pid %d: refused: supervisor: not a process of the generation", pidfile, spid)
				if reason != want || code != 1 {
					t.Fatalf("reason %q, exit %d; want %q, 1", reason, code, want)
				}
				if pollReadable(sfd, time.Millisecond) {
					t.Fatalf("sleep %d was ended by hupd", spid)
				}
				var st syscall.WaitStatus
				if wpid, _ := syscall.Wait4(spid, &st, syscall.WNOHANG|syscall.WUNTRACED, nil); wpid != 0 {
					t.Fatalf("sleep %d changed state: %v", spid, st)
				}
			})
		}
	})
	for _, c := range []struct {
		name, kind string
		make       func(path string) error
	}{
		{"fifo", "fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }},
		{"dev-zero", "character device", func(p string) error { return os.Symlink("/dev/zero", p) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			pidfile := filepath.Join(t.TempDir(), "d.pid")
			if err := c.make(pidfile); err != nil {
				t.Fatal(err)
			}
			reason, code := forkFailedStart(t, []string{"--pidfile", pidfile}, childCmd("fork-parent")...)
			want := fmt.Sprintf("forking: pidfile %s: not a regular file (%s)", pidfile, c.kind)
			if reason != want || code != 1 {
				t.Fatalf("reason %q, exit %d; want %q, 1", reason, code, want)
			}
		})
	}
}

// TestForkingSeveral: a program that leaves two daemons and no pidfile
// fails to start, clearly; at a reload the failure is the new
// generation's, and the old daemon serves on.
func TestForkingSeveral(t *testing.T) {
	for _, cg := range []string{"auto", "off"} {
		t.Run("cgroup-"+cg, func(t *testing.T) {
			two := filepath.Join(t.TempDir(), "two")
			h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--forking", "--cgroup", cg, "--"},
				append(childCmd("fork-parent"), "-two-if", two)...)...)
			addr := HostPort(h.Listening("http"))
			d1 := forkDaemon(t, h)
			h.WaitEvent(logev.ChildReady, 1, swapGen(1))
			if err := os.WriteFile(two, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := hupdCtl(t, h, "reload")
			if code == 0 || !strings.Contains(out, "generation 2 failed to start: forking: the program left 2 processes in generation 2") ||
				!strings.Contains(out, "and no pidfile: set --pidfile") {
				t.Fatalf("reload: exit %d, %q", code, out)
			}
			a, b := forkDaemon(t, h), forkDaemon(t, h)
			waitGone(t, a)
			waitGone(t, b)
			if got := forkGet(t, addr); got != fmt.Sprintf("pid %d", d1) {
				t.Fatalf("after the failed reload: answer %q, want the old daemon %d", got, d1)
			}
			if pid := forkStatusPID(t, h, 1); pid != d1 {
				t.Fatalf("status shows pid %d, want %d", pid, d1)
			}
			if code := h.Stop(); code != 0 {
				t.Fatalf("hupd exited %d", code)
			}
			waitGone(t, d1)
		})
	}
}

// TestForkingCheck: bad [process] forking and pidfile values are one-line
// errors with exit 2; good ones are printed by `hupd check`.
func TestForkingCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("command = [\"/bin/true\"]\n[process]\n"+body+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "-c", write("type.toml", `forking = "yes"`)}, "type.toml:3: process.forking: incompatible types: TOML value has type string; destination has type boolean"},
		{[]string{"check", "-c", write("empty.toml", `pidfile = ""`)}, "empty.toml:3: process.pidfile: empty path"},
		{[]string{"check", "--pidfile", "", "--", "/bin/true"}, "--pidfile: process.pidfile: empty path"},
	} {
		res := oneShot(t, dir, nil, c.args...)
		if res.code != 2 || !strings.Contains(res.stderr, c.want) || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
			t.Errorf("hupd %q: exit %d, stderr %q; want 2 and one line with %q", c.args, res.code, res.stderr, c.want)
		}
	}
	res := oneShot(t, dir, nil, "check", "-c", write("good.toml", "forking = true\npidfile = \"run/d.pid\""))
	if res.code != 0 || !strings.Contains(res.stdout, "forking = true") || !strings.Contains(res.stdout, `pidfile = "run/d.pid"`) {
		t.Fatalf("check: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

// TestForkingUpgrade: an in-place upgrade takes the daemon over as the
// generation's main process (status, stop), in both containment modes.
func TestForkingUpgrade(t *testing.T) {
	for _, cg := range []string{"auto", "off"} {
		t.Run("cgroup-"+cg, func(t *testing.T) {
			h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--forking", "--cgroup", cg, "--"},
				childCmd("fork-parent")...)...)
			addr := HostPort(h.Listening("http"))
			d := forkDaemon(t, h)
			h.WaitEvent(logev.ChildReady, 1, swapGen(1))
			if out, code := hupdCtl(t, h, "upgrade"); code != 0 {
				t.Fatalf("hupd upgrade: exit %d %q", code, out)
			}
			h.WaitEvent(logev.Upgraded, 1, nil)
			if pid := forkStatusPID(t, h, 1); pid != d {
				t.Fatalf("after the upgrade status shows pid %d, want the daemon %d", pid, d)
			}
			if got := forkGet(t, addr); got != fmt.Sprintf("pid %d", d) {
				t.Fatalf("after the upgrade: answer %q, want the daemon %d", got, d)
			}
			if code := h.Stop(); code != 0 {
				t.Fatalf("hupd exited %d after a stop, want 0", code)
			}
			waitGone(t, d)
			if e := h.WaitEvent(logev.ChildExited, 1, swapGen(1)); e.Int("pid") != d || e.Str("status") != "exit status 0" {
				t.Fatalf("generation 1 ended as pid %d %q, want the daemon %d, exit status 0", e.Int("pid"), e.Str("status"), d)
			}
		})
	}
}

// TestForkingLegacyRedirect: a daemonizing program that binds its own
// port gets hupd's socket (--legacy redirect): the seccomp filter is
// inherited by every fork, and hupd answers the daemon's bind.
func TestForkingLegacyRedirect(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // hupd binds it next; the daemon's own bind gets hupd's socket
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://" + addr, "--legacy", "redirect", "--forking", "--"},
		append(childCmd("fork-parent"), "-bind", addr)...)...)
	d := forkDaemon(t, h)
	if e := h.WaitEvent(logev.BindRedirected, 1, nil); e.Int("pid") != d {
		t.Fatalf("bind redirected for pid %d, want the daemon %d", e.Int("pid"), d)
	}
	h.WaitEvent(logev.ChildReady, 1, swapGen(1))
	_, bodies := swapsUnderLoad(t, h, "tcp", addr, 1, func(b string) bool { return strings.HasPrefix(b, "pid ") })
	d2 := forkDaemon(t, h)
	if e := h.WaitEvent(logev.BindRedirected, 2, nil); e.Int("pid") != d2 {
		t.Fatalf("second bind redirected for pid %d, want the new daemon %d", e.Int("pid"), d2)
	}
	if !bodies[fmt.Sprintf("pid %d", d)] && !bodies[fmt.Sprintf("pid %d", d2)] {
		t.Fatalf("bodies %v: neither daemon answered", bodies)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
	waitGone(t, d2)
}

// TestForkingReadyNotify: an explicit --ready applies on top of forking:
// with notify, the daemon's READY=1 (sent before the first process exits,
// by a process that has left its process group) makes the generation
// ready once the daemon is found; without it, the first process's exit 0
// is not enough and the start fails at the readiness timeout.
func TestForkingReadyNotify(t *testing.T) {
	for _, cg := range []string{"auto", "off"} {
		t.Run("cgroup-"+cg, func(t *testing.T) {
			h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--forking", "--cgroup", cg, "--ready", "notify", "--"},
				append(childCmd("fork-parent"), "-notify")...)...)
			d := forkDaemon(t, h)
			if e := h.WaitEvent(logev.ChildReady, 1, swapGen(1)); e.Int("pid") != d || e.Str("ready") != "READY=1" {
				t.Fatalf("ready: pid %d by %q, want the daemon %d by READY=1", e.Int("pid"), e.Str("ready"), d)
			}
			if code := h.Stop(); code != 0 {
				t.Fatalf("hupd exited %d", code)
			}
			waitGone(t, d)
		})
	}
	t.Run("silent", func(t *testing.T) {
		h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--forking", "--ready", "notify",
			"--ready-timeout", "1s", "--restart", "never", "--"}, childCmd("fork-parent")...)...)
		d := forkDaemon(t, h)
		h.WaitEvent(logev.ForkingFollowDaemon, 1, nil)
		e := h.WaitEvent(logev.NotReady, 1, nil)
		if !strings.Contains(e.Str("reason"), "not ready within 1s (readiness notify)") {
			t.Fatalf("not ready: %v", e)
		}
		if evs := h.Events(logev.ChildReady); len(evs) != 0 {
			t.Fatalf("ready without READY=1: %v", evs)
		}
		h.Stop()
		waitGone(t, d)
	})
}

// TestForkingNoWait: a first process that exits as soon as it has forked
// (before the middle process has forked the daemon) leaves the middle
// process as the single orphan; when it exits 0 in turn, the daemon it
// left is followed. Either way the daemon ends up the main process.
func TestForkingNoWait(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--forking", "--"},
		append(childCmd("fork-parent"), "-nowait")...)...)
	addr := HostPort(h.Listening("http"))
	d := forkDaemon(t, h)
	isD := func(e Event) bool { return e.Int("pid") == d }
	found := []string{logev.ForkingFollowDaemon, logev.ForkingFollowDaemonizing}
	if !h.waitFor("the daemon followed", func() bool {
		for _, e := range h.events {
			if (e.Msg() == found[0] || e.Msg() == found[1]) && isD(e) {
				t.Logf("%s (pid %d)", e.Msg(), d)
				return true
			}
		}
		return false
	}) {
		t.Fatal("hupd exited before following the daemon")
	}
	if pid := forkStatusPID(t, h, 1); pid != d {
		t.Fatalf("status shows pid %d, want the daemon %d", pid, d)
	}
	if got := forkGet(t, addr); got != fmt.Sprintf("pid %d", d) {
		t.Fatalf("answer %q, want the daemon %d", got, d)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
	waitGone(t, d)
}

// TestForkingDaemonCrash: the daemon's exit ends its generation by the
// restart policy (on-failure: a SIGKILL restarts the program, whose new
// daemon serves).
func TestForkingDaemonCrash(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--forking", "--"},
		childCmd("fork-parent")...)...)
	addr := HostPort(h.Listening("http"))
	d1 := forkDaemon(t, h)
	h.WaitEvent(logev.ChildReady, 1, swapGen(1))
	if err := syscall.Kill(d1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := h.WaitEvent(logev.ChildExited, 1, swapGen(1)); e.Int("pid") != d1 || e.Str("status") != "killed by signal KILL" {
		t.Fatalf("generation 1 ended as %v, want the daemon %d killed", e, d1)
	}
	h.WaitEvent(logev.RestartingChild, 1, nil)
	d2 := forkDaemon(t, h)
	if e := h.WaitEvent(logev.ChildReady, 1, swapGen(2)); e.Int("pid") != d2 {
		t.Fatalf("generation 2 ready with pid %d, want the new daemon %d", e.Int("pid"), d2)
	}
	if got := forkGet(t, addr); got != fmt.Sprintf("pid %d", d2) {
		t.Fatalf("answer %q, want the new daemon %d", got, d2)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
	waitGone(t, d2)
}
