package integration

// The start limit and success_exit_status, through the real binary: a crash
// loop ends hupd with the program's status, so that a container ends and
// its orchestrator (or a service manager) sees the failure.

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

func init() {
	// sl-term-exits N: print "ready PID", then exit N on TERM (a JVM exits
	// 143).
	childModes["sl-term-exits"] = func(args []string) {
		n, _ := strconv.Atoi(args[0])
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Println("ready", os.Getpid())
		<-sigs
		os.Exit(n)
	}
}

// TestStartLimitExitsWithTheChildsStatus: a program that fails at once is
// started BURST times (the default, 5 in 10 s; or [restart] start_limit),
// then hupd logs one error naming the limit and exits with the program's
// last status: its exit code, or 128+n for a death by signal n.
func TestStartLimitExitsWithTheChildsStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		toml  string // [restart] settings; "" is the default limit
		child []string
		limit string
		burst int
		code  int
	}{
		{"default limit, exit code", "", childCmd("exit", "9"), "5/10s", 5, 9},
		{"start_limit, signal", "start_limit = \"2/1m\"\n", childCmd("kill", "9"), "2/1m0s", 2, 128 + 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := procConfig(t, "[restart]\n"+tc.toml)
			h := StartHupd(t, append([]string{"run", "-c", cfg, "--listen", "tcp://127.0.0.1:0", "--"}, tc.child...)...)
			if code := h.Wait(); code != tc.code {
				t.Fatalf("hupd exited %d, want %d", code, tc.code)
			}
			gu := h.Events(logev.StartLimitReached)
			if len(gu) != 1 || gu[0].Str("limit") != tc.limit || gu[0].Int("failures") != tc.burst ||
				gu[0].Int("exit_code") != tc.code || gu[0].Str("level") != "ERROR" {
				t.Fatalf("give-up records: %v; want one error naming %s", gu, tc.limit)
			}
			if n := len(h.Events(logev.ChildStarted)); n != tc.burst {
				t.Errorf("%d generations started, want %d", n, tc.burst)
			}
			if n := len(h.Events(logev.RestartingChild)); n != tc.burst-1 {
				t.Errorf("%d restarts, want %d", n, tc.burst-1)
			}
		})
	}
}

// TestStartLimitOff: with --start-limit off, hupd restarts on and on
// beyond the default burst; it still stops on TERM, with the last status.
func TestStartLimitOff(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--start-limit", "off", "--"}, childCmd("exit", "9")...)...)
	// Past the default's 5: the sixth restart is scheduled.
	h.WaitEvent(logev.RestartingChild, 6, nil)
	if code := h.Stop(); code != 9 {
		t.Errorf("hupd exited %d, want the last status, 9", code)
	}
	if gu := h.Events(logev.StartLimitReached); len(gu) != 0 {
		t.Errorf("gave up: %v", gu)
	}
}

// TestSuccessExitStatusExitCode: a program that exits 143 on TERM (as a
// JVM does) makes hupd exit 143 at a stop, or 0 with
// --success-exit-status 143 (tini's -e); a listed signal does the same for
// a program TERM kills.
func TestSuccessExitStatusExitCode(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		child []string
		code  int
	}{
		{nil, childCmd("sl-term-exits", "143"), 143},
		{[]string{"--success-exit-status", "143"}, childCmd("sl-term-exits", "143"), 0},
		{nil, childCmd("sleep"), 128 + int(syscall.SIGTERM)},
		{[]string{"--success-exit-status", "TERM"}, childCmd("sleep"), 0},
	} {
		args := append(append([]string{"run"}, tc.flags...), "--")
		h := StartHupd(t, append(args, tc.child...)...)
		h.Stdout.NextWith(t, "ready")
		if code := h.Stop(); code != tc.code {
			t.Errorf("%v %v: hupd exited %d, want %d", tc.flags, tc.child, code, tc.code)
		}
	}
}
