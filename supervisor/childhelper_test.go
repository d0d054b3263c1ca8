package supervisor

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/hupd/hupd/sdnotify"
	"golang.org/x/sys/unix"
)

// The test binary impersonates the programs the supervisor runs: with
// childModesEnv set, it is a child and behaves as the mode for its
// generation says (see runTestChild), instead of running the tests.
const (
	// childModesEnv lists a mode per generation, "1=ready,2=exit:3,*=ready":
	// the generation is read from the child's NOTIFY_SOCKET (gen-N.sock),
	// so a warm start (through a standby shim) follows the script as a
	// cold one does. "*" is every generation not listed.
	childModesEnv = "HUPD_TEST_CHILD_MODES"
	// childModeEnv forces one mode, whatever the generation: for the
	// grandchild of mode "mainpid" and for helpers (check commands).
	childModeEnv = "HUPD_TEST_CHILD_MODE"
	// upgradeHelperEnv makes the test binary the new binary of an
	// upgrade, as its checks run it (see runUpgradeHelper): they run it
	// with hupd's own environment, so a test sets it with t.Setenv.
	upgradeHelperEnv = "HUPD_TEST_UPGRADE_HELPER"
	// pidfileEnv is where mode "daemonize" writes its daemon's PID.
	pidfileEnv = "HUPD_TEST_PIDFILE"
	// addrEnv is the held socket's address (host:port), for mode "bind".
	addrEnv = "HUPD_TEST_ADDR"
)

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv(childModeEnv); ok {
		os.Exit(runTestChild(mode))
	}
	if modes, ok := os.LookupEnv(childModesEnv); ok {
		mode := childModeFor(modes, os.Getenv("NOTIFY_SOCKET"))
		if len(os.Args) > 1 {
			mode = os.Args[1] // a helper (check, probe) names its mode
		}
		os.Exit(runTestChild(mode))
	}
	if answer, ok := os.LookupEnv(upgradeHelperEnv); ok {
		os.Exit(runUpgradeHelper(answer, os.Args[1:]))
	}
	// Under -race every child would sleep a second before it exits (the
	// race runtime's atexit_sleep_ms): the children need not.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	os.Exit(m.Run())
}

// childModeFor picks the mode for the generation whose notify socket is
// at path.
// An instance's socket is gen-N-I.sock (gen-N-I.K.sock for its K-th
// start): keys "N-I.K", then "N-I", then "N" pick its mode.
func childModeFor(modes, path string) string {
	full := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "gen-"), ".sock")
	inst, _, _ := strings.Cut(full, ".")
	gen, _, _ := strings.Cut(inst, "-")
	found := map[string]string{}
	for _, kv := range strings.Split(modes, ",") {
		k, v, _ := strings.Cut(kv, "=")
		found[k] = v
	}
	for _, k := range []string{full, inst, gen, "*"} {
		if v, ok := found[k]; ok {
			return v
		}
	}
	return "ready"
}

// childModes builds the value of childModesEnv: modes[0] is generation
// 1's, and every later generation takes the last one.
func childModes(modes ...string) string {
	var parts []string
	for i, m := range modes {
		parts = append(parts, strconv.Itoa(i+1)+"="+m)
	}
	return strings.Join(append(parts, "*="+modes[len(modes)-1]), ",")
}

// runTestChild is the child program. Modes:
//
//	ready         READY=1, then serves: TERM exits 0, USR1 exits 3 (a
//	              crash on demand), HUP is ignored
//	silent        never says anything; TERM exits 0
//	term-exits:N  ready, and TERM exits N (a JVM exits 143)
//	exit:N        writes "child exiting N" on stderr and exits N at once
//	say:TEXT      writes "starting" and TEXT on stderr and exits 1
//	ready-say:TEXT  ready; on USR2 writes TEXT on stderr and exits 1
//	reloader      ready; on HUP it sends RELOADING=1 then READY=1
//	stuck-reload  ready; on HUP it sends RELOADING=1 and nothing more
//	extend        EXTEND_TIMEOUT_USEC=60s, then READY=1 on USR2
//	ignore-term   ready, and TERM does nothing (killed at the stop timeout)
//	stuck         never says anything, and TERM does nothing
//	mainpid       starts a grandchild (mode "ready", no notify), sends
//	              MAINPID= for it with READY=1, and exits 0 on USR2
//	check:N       a check command: writes "check says N" on stdout, exits N
//	watchdog      ready with WATCHDOG_USEC=50ms, then never pings
//	die-hup       dies of SIGHUP at once, before it is ready
//	daemonize     starts a daemon (mode "serve", its own process group
//	              left as is), writes its PID to $HUPD_TEST_PIDFILE if set,
//	              and exits 0 (Options.Forking); daemonize:2 starts two
//	bind          listens on $HUPD_TEST_ADDR itself (bind redirection
//	              gives it the held socket) and answers every connection
//	              with "gen N" (N from its NOTIFY_SOCKET)
func runTestChild(mode string) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2)
	send := func(lines ...string) {
		if path := os.Getenv("NOTIFY_SOCKET"); path != "" {
			if err := sdnotify.SendTo(path, []byte(strings.Join(lines, "\n"))); err != nil {
				fmt.Fprintln(os.Stderr, "notify:", err)
			}
		}
	}
	name, arg, _ := strings.Cut(mode, ":")
	switch name {
	case "exit", "check":
		n, _ := strconv.Atoi(arg)
		if name == "check" {
			fmt.Printf("check says %d\n", n)
		} else {
			fmt.Fprintf(os.Stderr, "child exiting %d\n", n)
		}
		return n
	case "say":
		fmt.Fprintf(os.Stderr, "starting\n%s\n", arg)
		return 1
	case "silent", "stuck":
	case "extend":
		send(sdnotify.ExtendTimeout(time.Minute))
	case "mainpid":
		pid, err := startServing()
		if err != nil {
			fmt.Fprintln(os.Stderr, "mainpid:", err)
			return 1
		}
		send("MAINPID="+strconv.Itoa(pid), "READY=1")
	case "daemonize":
		pid, err := startServing()
		if err != nil {
			fmt.Fprintln(os.Stderr, "daemonize:", err)
			return 1
		}
		if arg == "2" { // a second one: which is the daemon?
			if _, err := startServing(); err != nil {
				fmt.Fprintln(os.Stderr, "daemonize:", err)
				return 1
			}
		}
		if p := os.Getenv(pidfileEnv); p != "" {
			if err := os.WriteFile(p, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "daemonize:", err)
				return 1
			}
		}
		return 0
	case "bind":
		l, err := net.Listen("tcp", os.Getenv(addrEnv))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bind:", err)
			return 1
		}
		gen := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(os.Getenv("NOTIFY_SOCKET")), "gen-"), ".sock")
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "gen %s\n", gen)
				c.Close()
			}
		}()
	case "watchdog":
		send("READY=1", "WATCHDOG_USEC=50000")
	case "die-hup":
		// Killed by a HUP before it is ready, as a program is that has
		// not set up its handler yet.
		signal.Reset(unix.SIGHUP)
		unix.Kill(os.Getpid(), unix.SIGHUP)
		select {}
	case "serve":
		// The process "mainpid" and "daemonize" start: it says nothing on
		// NOTIFY_SOCKET, only to its parent that it handles signals now.
		fmt.Fprintln(os.Stdout, "serving")
	default:
		send("READY=1")
	}
	for sig := range sigs {
		switch {
		case sig == unix.SIGTERM && name == "term-exits":
			n, _ := strconv.Atoi(arg)
			return n
		case sig == unix.SIGTERM && name != "ignore-term" && name != "stuck":
			return 0
		case sig == unix.SIGUSR1:
			return 3
		case sig == unix.SIGUSR2 && name == "extend":
			send("READY=1")
		case sig == unix.SIGUSR2 && name == "mainpid":
			return 0
		case sig == unix.SIGUSR2 && name == "ready-say":
			fmt.Fprintln(os.Stderr, arg)
			return 1
		case sig == unix.SIGHUP && name == "reloader":
			send("RELOADING=1", sdnotify.MonotonicUsec())
			send("READY=1")
		case sig == unix.SIGHUP && name == "stuck-reload":
			send("RELOADING=1", sdnotify.MonotonicUsec())
		}
	}
	return 0
}

// startServing starts the test binary in mode "serve", in this process's
// group, and returns its PID once it handles its signals (it says so on a
// pipe), so that a stop signal sent to it after that is never fatal.
func startServing() (int, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childModeEnv+"=serve")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "serving\n" {
		return 0, fmt.Errorf("serve: %q, %v", line, err)
	}
	return cmd.Process.Pid, nil
}

// testBinary is the test binary's own path, run as every child.
func testBinary(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runUpgradeHelper answers an upgrade's checks of its new binary:
// "upgrade-protocol" prints UpgradeProtocol ("incompatible": another
// version), "upgrade-protocol programs" UpgradeProtocolPrograms ("older":
// UpgradeProtocol, as a binary that knows one program only), and "check ARGS…" prints its arguments and exits 0 ("refuse":
// 1, as a binary that rejects the configuration).
//
// "usr2-once:FILE": the first run (FILE absent: it makes it) dies of USR2
// before it answers, as one that systemctl kill -s USR2 reached; later
// runs answer as "compatible".
func runUpgradeHelper(answer string, args []string) int {
	if len(args) == 0 {
		return 2
	}
	if file, ok := strings.CutPrefix(answer, "usr2-once:"); ok {
		if f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			dieOf(unix.SIGUSR2)
		}
	}
	switch args[0] {
	case "upgrade-protocol":
		if answer == "incompatible" {
			fmt.Println("hupd-upgrade 0")
			return 0
		}
		if IsUpgradeProtocolPrograms(args[1:]) && answer != "older" { // an older binary knows one program only
			fmt.Println(UpgradeProtocolPrograms)
			return 0
		}
		fmt.Println(UpgradeProtocol)
		return 0
	case "check":
		fmt.Println("check", strings.Join(args[1:], " "))
		if answer == "refuse" {
			fmt.Println("configuration refused")
			return 1
		}
		return 0
	}
	return 2
}

// dieOf ends the process by sig's default action (as a helper started
// with it ignored dies when it arrives before anything is set up): the
// action is set with rt_sigaction itself, since the Go runtime handles or
// ignores it otherwise.
func dieOf(sig unix.Signal) {
	var act struct {
		handler  uintptr // SIG_DFL
		flags    uint64
		restorer uintptr
		mask     uint64
	}
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	unix.Kill(os.Getpid(), sig)
	select {}
}
