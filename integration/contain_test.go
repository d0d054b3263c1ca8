package integration

// A generation is a set of processes, stopped as a unit: a cgroup per
// generation where hupd may create one (root here and in CI), process
// groups otherwise (--cgroup off forces that). The pre-fork child below
// is the case of issue 13: a master that forks workers in its process
// group, and a daemon that called setsid and whose parent has exited.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
	// no-clone3 PROG ARG...: exec PROG with clone3 refused (ENOSYS) by a
	// seccomp filter, as some container runtimes' profiles do, or as a
	// kernel before 5.3 would.
	childModes["no-clone3"] = func(args []string) {
		prog := []unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // the syscall number
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_CLONE3},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		}
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
			uintptr(unsafe.Pointer(&fprog))); e != 0 {
			fmt.Fprintln(os.Stderr, e)
			os.Exit(3)
		}
		fmt.Fprintln(os.Stderr, syscall.Exec(args[0], args, os.Environ()))
		os.Exit(4)
	}
	// ct-prefork: fork 3 "ct-worker" in this process group and a setsid
	// daemon (through "ct-daemon-parent", which exits at once), then print
	// "ready MASTER W1 W2 W3 DAEMON" and block. TERM ends it (not its
	// workers: they ignore it), unless its argument is "ignore-term".
	childModes["ct-prefork"] = func(args []string) {
		if len(args) > 0 && args[0] == "ignore-term" {
			signal.Ignore(syscall.SIGTERM)
		}
		var pids []string
		for range 3 {
			w := procSelfCmd("ct-worker")
			out, err := w.StdoutPipe()
			if err == nil {
				err = w.Start()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "ct-prefork:", err)
				os.Exit(3)
			}
			line := make([]byte, 6)
			if n, _ := out.Read(line); string(line[:n]) != "ready\n" {
				fmt.Fprintf(os.Stderr, "ct-prefork: worker said %q\n", line[:n])
				os.Exit(3)
			}
			pids = append(pids, strconv.Itoa(w.Process.Pid))
		}
		d := procSelfCmd("ct-daemon-parent")
		d.Stderr = nil
		out, err := d.Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, "ct-prefork: daemon:", err)
			os.Exit(3)
		}
		pids = append(pids, strings.TrimSpace(string(out)))
		fmt.Println("ready", os.Getpid(), strings.Join(pids, " "))
		select {}
	}
	childModes["ct-worker"] = func([]string) {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	}
	// ct-daemon-parent: start "ct-daemon" in a session of its own, with
	// nothing of hupd's open, print its PID and exit: it is orphaned.
	childModes["ct-daemon-parent"] = func([]string) {
		c := procSelfCmd("ct-daemon")
		c.Stderr = nil
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "ct-daemon-parent:", err)
			os.Exit(3)
		}
		fmt.Println(c.Process.Pid)
	}
	childModes["ct-daemon"] = func([]string) {
		signal.Ignore(syscall.SIGTERM, syscall.SIGHUP)
		select {}
	}
}

// ctStatus is the part of `hupd status --json` these tests read.
type ctStatus struct {
	Containment *struct {
		Mode   string `json:"mode"`
		Cgroup string `json:"cgroup"`
		Reason string `json:"reason"`
	} `json:"containment"`
	Generations []struct {
		Gen         int     `json:"gen"`
		Processes   int     `json:"processes"`
		MemoryBytes uint64  `json:"memory_bytes"`
		CPUSeconds  float64 `json:"cpu_seconds"`
		Cgroup      string  `json:"cgroup"`
	} `json:"generations"`
}

func ctStatusOf(t *testing.T, h *Hupd, name string) ctStatus {
	t.Helper()
	out, code := hupdCtl(t, h, "status", "--json", "--name", name)
	var st ctStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("hupd status: exit %d: %s", code, out)
	}
	return st
}

// ctPrefork is a generation of ct-prefork.
type ctPrefork struct {
	master, daemon int
	workers        []int
}

func (p ctPrefork) group() []int { return append([]int{p.master}, p.workers...) }

func ctReadPrefork(t *testing.T, h *Hupd) ctPrefork {
	t.Helper()
	f := strings.Fields(h.Stdout.NextWith(t, "ready "))
	if len(f) != 6 {
		t.Fatalf("ct-prefork said %q", f)
	}
	var pids []int
	for _, s := range f[1:] {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("ct-prefork said %q", f)
		}
		pids = append(pids, n)
	}
	p := ctPrefork{master: pids[0], workers: pids[1:4], daemon: pids[4]}
	// In the fallback the daemon escapes: never leave it behind.
	t.Cleanup(func() { syscall.Kill(p.daemon, syscall.SIGKILL) })
	return p
}

// ctRequireCgroups skips the test unless hupd can use cgroups here.
func ctRequireCgroups(t *testing.T, h *Hupd) {
	t.Helper()
	h.WaitEvent(logev.ChildStarted, 1, nil) // the containment is logged before
	if evs := h.Events(logev.ContainmentGroups); len(evs) > 0 {
		noCgroups(t, "hupd cannot use cgroups here: "+evs[0].Str("reason"))
	}
}

// TestContainPreforkCgroup: in cgroup mode every process of a pre-fork
// generation, its setsid daemon included, is gone after a swap and at
// stop; status and /metrics account for the generation; hupd's exit
// leaves no cgroup behind. (Before the containment, the daemon survived
// both and status had no containment or accounting.)
func TestContainPreforkCgroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	name := "ct-cg"
	h := StartHupd(t, append([]string{"run", "--name", name, "--listen", "tcp://127.0.0.1:0", "--ready", "delay:50ms",
		"--health", "127.0.0.1:0", "--stop-timeout", "5s", "--"}, childCmd("ct-prefork")...)...)
	ctRequireCgroups(t, h)
	g1 := ctReadPrefork(t, h)
	h.WaitEvent(logev.ChildReady, 1, nil)
	st := ctStatusOf(t, h, name)
	if st.Containment == nil || st.Containment.Mode != "cgroup" || st.Containment.Cgroup == "" {
		t.Fatalf("containment = %+v, want a cgroup", st.Containment)
	}
	base := st.Containment.Cgroup
	if len(st.Generations) != 1 {
		t.Fatalf("generations: %+v", st.Generations)
	}
	g := st.Generations[0]
	// Master, 3 workers and the daemon: all in the generation's cgroup.
	if g.Processes != 5 || g.CPUSeconds <= 0 || g.MemoryBytes == 0 || g.Cgroup != filepath.Join(base, "gen-1") {
		t.Errorf("generation 1 = %+v, want 5 processes, cpu and memory, cgroup %s/gen-1", g, base)
	}
	out, _ := hupdCtl(t, h, "status", "--name", name)
	if !strings.Contains(out, "containment: cgroup "+base+"\n") {
		t.Errorf("status does not show the containment:\n%s", out)
	}
	m := hlMetrics(t, hlAddr(h))
	for _, k := range []string{"hupd_generation_memory_bytes", "hupd_generation_cpu_seconds_total", "hupd_generation_processes"} {
		if v, ok := m[k+`{gen="1"}`]; !ok || v <= 0 {
			t.Errorf("/metrics: %s{gen=\"1\"} = %v (%v)", k, v, ok)
		}
	}

	if out, code := hupdCtl(t, h, "reload", "--name", name); code != 0 {
		t.Fatalf("reload: %s", out)
	}
	g2 := ctReadPrefork(t, h)
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	for _, pid := range append(g1.group(), g1.daemon) {
		waitGone(t, pid)
	}
	h.Stop()
	for _, pid := range append(g2.group(), g2.daemon) {
		waitGone(t, pid)
	}
	if _, err := os.Stat(base); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("hupd's cgroup %s left behind: %v", base, err)
	}
}

// TestContainStopTimeout: a pre-fork generation that ignores the stop
// signal is ended whole at the stop timeout, its setsid daemon included.
func TestContainStopTimeout(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	h := StartHupd(t, append([]string{"run", "--name", "ct-kill", "--ready", "delay:50ms", "--stop-timeout", "300ms", "--"},
		childCmd("ct-prefork", "ignore-term")...)...)
	ctRequireCgroups(t, h)
	g := ctReadPrefork(t, h)
	h.WaitEvent(logev.ChildReady, 1, nil)
	h.Signal(syscall.SIGTERM)
	if e := h.WaitEvent(logev.StopTimeout, 1, nil); e.Str("cgroup") == "" {
		t.Errorf("the kill names no cgroup: %v", e)
	}
	h.Wait()
	for _, pid := range append(g.group(), g.daemon) {
		waitGone(t, pid)
	}
}

// TestContainPreforkFallback: with --cgroup off the process group is
// stopped as before and the setsid daemon, whose parent exited, escapes:
// the difference the cgroup makes (see contain's package comment).
func TestContainPreforkFallback(t *testing.T) {
	name := "ct-pg"
	argv := childCmd("ct-prefork")
	h := StartHupd(t, append([]string{"run", "--name", name, "--cgroup", "off", "--listen", "tcp://127.0.0.1:0",
		"--ready", "delay:50ms", "--stop-timeout", "5s", "--"}, argv...)...)
	g1 := ctReadPrefork(t, h)
	h.WaitEvent(logev.ChildReady, 1, nil)
	st := ctStatusOf(t, h, name)
	if st.Containment == nil || st.Containment.Mode != "process-group" || !strings.Contains(st.Containment.Reason, "off") {
		t.Fatalf("containment = %+v, want process-group because of off", st.Containment)
	}
	// The master and its workers: the daemon left the process group and
	// its parent is gone, so nothing ties it to the generation any more.
	if g := st.Generations[0]; g.Processes != 4 || g.CPUSeconds <= 0 || g.MemoryBytes == 0 || g.Cgroup != "" {
		t.Errorf("generation 1 = %+v, want 4 processes, cpu and memory, no cgroup", g)
	}
	out, _ := hupdCtl(t, h, "status", "--name", name)
	if !strings.Contains(out, "containment: process group (fallback: ") {
		t.Errorf("status does not show the fallback:\n%s", out)
	}
	if out, code := hupdCtl(t, h, "reload", "--name", name); code != 0 {
		t.Fatalf("reload: %s", out)
	}
	g2 := ctReadPrefork(t, h)
	h.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("gen") == 1 })
	for _, pid := range g1.group() {
		waitGone(t, pid)
	}
	h.Stop()
	for _, pid := range g2.group() {
		waitGone(t, pid)
	}
	for _, p := range []ctPrefork{g1, g2} {
		if !processAlive(p.daemon) {
			t.Errorf("daemon %d is gone: the fallback was expected to let it escape", p.daemon)
		}
	}
}

// TestContainStaleCgroup: a hupd of the same name that died without
// cleaning up left hupd-NAME-<its pid> with a process in it; the next
// start kills it, removes the group and says so.
func TestContainStaleCgroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	own := ctOwnCgroup(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	name := "ct-stale"
	stale := filepath.Join(own, fmt.Sprintf("hupd-%s-%d", name, dead.Process.Pid))
	if err := os.MkdirAll(filepath.Join(stale, "gen-3"), 0o755); err != nil {
		t.Skipf("cannot create a cgroup here: %v", err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(stale, "gen-3")); os.Remove(stale) })
	// Made long ago, as a dead hupd's is: one made in the last seconds may
	// be a hupd's still on its way into it.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(filepath.Join(stale, "gen-3"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	left := exec.Command("sleep", "60")
	left.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	err = left.Start()
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { left.Process.Kill() })
	waited := make(chan error, 1)
	go func() { waited <- left.Wait() }()

	h := StartHupd(t, append([]string{"run", "--name", name, "--"}, childCmd("sleep")...)...)
	e := h.WaitEvent(logev.StaleCgroupRemoved, 1, nil)
	if e.Str("cgroup") != stale || e.Int("killed") != 1 {
		t.Errorf("logged %v, want %s with 1 process killed", e, stale)
	}
	if err := <-waited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the process left in the stale group: %v, want killed", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s not removed: %v", stale, err)
	}
	h.Stop()
}

// ctOwnCgroup is this process's cgroup v2 directory, where hupd starts.
func ctOwnCgroup(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var rel string
	for line := range strings.SplitSeq(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel = p
		}
	}
	for _, mount := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(mount, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC && rel != "" {
			return filepath.Join(mount, rel)
		}
	}
	noCgroups(t, "no cgroup2 mount")
	return ""
}

// noCgroups skips t where cgroups cannot be had, but fails it when CI is
// set: CI runs as root on a host with a writable cgroup2 mount, and a
// cgroup test skipped there would pass for one that ran.
func noCgroups(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set: the cgroup path must be tested)", why)
	}
	t.Skip(why)
}

// TestContainUpgrade: the generations' cgroups cross an in-place upgrade:
// after it, a swap still ends every process of the old generation, and
// hupd's exit removes the groups.
func TestContainUpgrade(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	name := "ct-up"
	h := StartHupd(t, append([]string{"run", "--name", name, "--listen", "tcp://127.0.0.1:0", "--ready", "delay:50ms",
		"--stop-timeout", "5s", "--"}, childCmd("ct-prefork")...)...)
	ctRequireCgroups(t, h)
	g1 := ctReadPrefork(t, h)
	h.WaitEvent(logev.ChildReady, 1, nil)
	before := ctStatusOf(t, h, name)
	if out, code := hupdCtl(t, h, "upgrade", "--name", name); code != 0 {
		t.Fatalf("upgrade: %s", out)
	}
	after := ctStatusOf(t, h, name)
	if after.Containment == nil || before.Containment == nil || *after.Containment != *before.Containment ||
		len(after.Generations) != 1 || after.Generations[0].Cgroup != before.Generations[0].Cgroup || after.Generations[0].Processes != 5 {
		t.Fatalf("after the upgrade: %+v %+v, before: %+v %+v", after.Containment, after.Generations, before.Containment, before.Generations)
	}
	if out, code := hupdCtl(t, h, "reload", "--name", name); code != 0 {
		t.Fatalf("reload: %s", out)
	}
	g2 := ctReadPrefork(t, h)
	for _, pid := range append(g1.group(), g1.daemon) {
		waitGone(t, pid)
	}
	h.Stop()
	for _, pid := range append(g2.group(), g2.daemon) {
		waitGone(t, pid)
	}
	if _, err := os.Stat(before.Containment.Cgroup); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s left behind: %v", before.Containment.Cgroup, err)
	}
}

// TestContainOtherNamespace: a hupd that is PID 1 of a PID namespace of its
// own (a container sharing the host's cgroup2 mount, as the tests here do)
// sees the base group of a host hupd of the same name, named after a PID it
// cannot see. It must leave that group alone: it took it for a dead hupd's
// and killed the host hupd's generation (seen as a benchmark's swaps
// failing while the container tests ran beside it).
func TestContainOtherNamespace(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	name := "ct-ns"
	host := StartHupd(t, append([]string{"run", "--name", name, "--"}, childCmd("signals")...)...)
	ctRequireCgroups(t, host)
	child := host.ChildPID(1)
	inner, innerPID, _ := contStart(t, contOpts{}, append([]string{"run", "--name", name, "--"}, childCmd("signals")...)...)
	inner.WaitEvent(logev.ContainmentCgroup, 1, nil) // stale groups were cleaned before
	inner.Stdout.NextWith(t, "ready")                // its child takes TERM
	host.Stdout.NextWith(t, "ready")
	if n := len(inner.Events(logev.StaleCgroupRemoved)); n != 0 {
		t.Errorf("the namespaced hupd removed %d groups: %v", n, inner.Events(logev.StaleCgroupRemoved))
	}
	if err := unix.Kill(child, 0); err != nil {
		t.Fatalf("the host hupd's child %d: %v", child, err)
	}
	procKill(t, innerPID, syscall.SIGTERM)
	procWait(t, inner, 0)
	if code := host.Stop(); code != 0 {
		t.Errorf("host hupd exited %d", code)
	}
	if n := len(host.Events(logev.ChildExited)); n != 1 {
		t.Errorf("host hupd saw %d exits, want 1 (its child, at the stop)", n)
	}
}

// TestContainNoClone3: where clone3 is refused (ENOSYS from a container
// runtime's seccomp profile, or a kernel before 5.7 without
// CLONE_INTO_CGROUP), Go cannot start a child into a cgroup: hupd must find
// out at its start and fall back to process groups, saying why, instead of
// failing every spawn ("fork/exec …: function not implemented", exit 1).
func TestContainNoClone3(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	ctOwnCgroup(t)
	cmd := exec.Command(selfBin, withJSONLog(append([]string{hupdBin, "run", "--name", "ct-noclone3", "--"}, childCmd("signals")...)[1:])...)
	cmd.Args = append([]string{selfBin, hupdBin}, cmd.Args[1:]...)
	cmd.Env = append(os.Environ(), envChild+"=no-clone3")
	h := StartHupdCmd(t, cmd)
	e := h.WaitEvent(logev.ContainmentGroups, 1, nil)
	if !strings.Contains(e.Str("reason"), "clone3") {
		t.Errorf("%v: want the reason to name clone3", e)
	}
	h.Stdout.NextWith(t, "ready") // the child runs (and takes TERM)
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// TestContainStaleOwnPID: hupd as PID 1 of its own PID namespace finds a
// base group named after PID 1 that nobody holds, left by a previous PID 1
// of the same name (killed with its namespace): it is stale and removed.
// (Such groups were skipped as "our own PID" and piled up as
// hupd-NAME-1.2, .3, … until no name was left.)
func TestContainStaleOwnPID(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	own := ctOwnCgroup(t)
	name := "ct-own-pid"
	stale := filepath.Join(own, "hupd-"+name+"-1")
	if err := os.Mkdir(stale, 0o755); err != nil {
		t.Skipf("cannot create a cgroup here: %v", err)
	}
	t.Cleanup(func() { os.Remove(stale) })
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	h, pid, _ := contStart(t, contOpts{}, append([]string{"run", "--name", name, "--"}, childCmd("signals")...)...)
	if e := h.WaitEvent(logev.StaleCgroupRemoved, 1, nil); e.Str("cgroup") != stale {
		t.Errorf("%v: want %s removed", e, stale)
	}
	if e := h.WaitEvent(logev.ContainmentCgroup, 1, nil); e.Str("cgroup") != stale {
		t.Errorf("%v: want the name %s taken again", e, stale)
	}
	h.Stdout.NextWith(t, "ready")
	procKill(t, pid, syscall.SIGTERM)
	procWait(t, h, 0)
}
