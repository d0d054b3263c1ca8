package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

// TestForkingFollowsTheDaemon: in forking mode, the first process's exit 0
// hands the generation over to the daemon it left (named by the pidfile,
// or the single orphan handed to hupd), which is then its main process:
// ready at that exit, stopped with the stop signal.
func TestForkingFollowsTheDaemon(t *testing.T) {
	for _, withPidfile := range []bool{true, false} {
		t.Run("pidfile="+strconv.FormatBool(withPidfile), func(t *testing.T) {
			becomeSubreaper(t)
			pidfile := filepath.Join(t.TempDir(), "daemon.pid")
			h := newSupervisorUnderTest(t, []string{"daemonize"}, func(o *Options) {
				o.Forking, o.Ready = true, Readiness{Kind: ReadyAuto, Timeout: waitLimit}
				if withPidfile {
					o.Pidfile = pidfile
					o.Env = append(o.Env, pidfileEnv+"="+pidfile)
				}
			}).run()
			started := h.started(1)
			daemon := h.ready(1)
			if daemon == started {
				t.Fatalf("ready with pid %d, the first process", daemon)
			}
			if e := h.logged(logev.ForkingFollowDaemon, 1, 1); e.int(KeyPID) != daemon {
				t.Fatalf("followed: %v", e)
			}
			if withPidfile {
				b, _ := os.ReadFile(pidfile)
				if strings.TrimSpace(string(b)) != strconv.Itoa(daemon) {
					t.Fatalf("daemon %d, pidfile says %q", daemon, b)
				}
			}
			h.signal(unix.SIGTERM)
			if o := h.wait(); o.code != 0 || o.err != nil {
				t.Fatalf("Run: %+v", o)
			}
			if e := h.exited(1); e.int(KeyPID) != daemon || e.attrs[KeyStatus] != "exit status 0" {
				t.Fatalf("generation 1 ended with %v", e)
			}
		})
	}
}

// TestForkingWithoutADaemonFails: a first process that exits 0 leaving no
// daemon (a pidfile that names nothing alive) fails the start, counted as
// a failure: the restart policy starts it again.
func TestForkingWithoutADaemonFails(t *testing.T) {
	becomeSubreaper(t)
	pidfile := filepath.Join(t.TempDir(), "daemon.pid")
	if err := os.WriteFile(pidfile, []byte("999999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newSupervisorUnderTest(t, []string{"exit:0", "ready"}, func(o *Options) {
		o.Pidfile = pidfile
		o.Ready = Readiness{Kind: ReadyNotify, Timeout: waitLimit}
	}).run()
	if e := h.logged(logev.StartFailed, 1, 1); !strings.Contains(e.attrs[KeyReason].(string), "forking: ") {
		t.Fatalf("start failed: %v", e)
	}
	h.logged(logev.RestartingChild, 0, 1)
}

// TestForkingThatLeavesTwoDaemonsFails: without a pidfile, two processes
// left behind cannot be told apart: the start fails, both are killed,
// and the restart policy starts the program again.
func TestForkingThatLeavesTwoDaemonsFails(t *testing.T) {
	becomeSubreaper(t)
	h := newSupervisorUnderTest(t, []string{"daemonize:2", "ready"}, func(o *Options) {
		o.Forking, o.Ready = true, Readiness{Kind: ReadyNotify, Timeout: waitLimit}
	}).run()
	if e := h.logged(logev.StartFailed, 1, 1); !strings.Contains(e.attrs[KeyReason].(string), "left 2 processes in generation 1") {
		t.Fatalf("start failed: %v", e)
	}
	h.logged(logev.ForkingKillLeftover, 1, 2)
	h.logged(logev.RestartingChild, 0, 1)
}
