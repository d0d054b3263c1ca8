package supervisor

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

// TestBindRedirectionHandsTheHeldSocket: a legacy program that binds its
// own port gets the socket hupd holds (its bind is trapped and answered),
// and is ready once it listens on it.
func TestBindRedirectionHandsTheHeldSocket(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"bind"}, func(o *Options) {
		o.Legacy, o.Ready = LegacyRedirect, Readiness{Kind: ReadyListen, Timeout: waitLimit}
	}).run()
	h.ready(1)
	h.logged(logev.BindRedirected, 1, 1)
	if res := h.reload(ActionReload); !res.OK || res.NewGen != 2 {
		t.Fatalf("reload: %+v", res)
	}
	if calls := h.spawner.recorded("generation"); len(calls) == 0 || calls[0].sockets != 0 {
		t.Fatalf("a legacy program inherits no socket: %+v", calls)
	}
	// Generation 1 drains (its listener closes): the held socket, which
	// hupd never closed, is now served by generation 2.
	h.exited(1)
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(h.sockets[0].Bound.String(), "tcp://"), waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "gen 2\n" {
		t.Fatalf("the held socket answered %q, %v", line, err)
	}
}

// recordingSentinel is a Sentinel that records what it is told, and checks
// that every pidfd it is given names the PID registered.
type recordingSentinel struct {
	mu         sync.Mutex
	registered map[int]int // gen → pgid
	pidfdOK    map[int]bool
	gone       []int
}

func (r *recordingSentinel) Register(gen, pgid, pidfd int, cgroup string) error {
	b, _ := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(pidfd))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.registered[gen] = pgid
	r.pidfdOK[gen] = strings.Contains(string(b), "\nPid:\t"+strconv.Itoa(pgid)+"\n")
	return nil
}

func (r *recordingSentinel) Unregister(gen int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone = append(r.gone, gen)
	return nil
}

func (r *recordingSentinel) Handover() (int, int) { return -1, 0 }

// TestSentinelKnowsEveryGeneration: each generation is registered with its
// process group and a pidfd of its process, and unregistered once gone.
func TestSentinelKnowsEveryGeneration(t *testing.T) {
	sen := &recordingSentinel{registered: map[int]int{}, pidfdOK: map[int]bool{}}
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Sentinel = sen }).run()
	pid1 := h.ready(1)
	res := h.reload(ActionReload)
	if !res.OK {
		t.Fatalf("reload: %+v", res)
	}
	h.exited(1)
	h.signal(unix.SIGTERM)
	h.wait()
	sen.mu.Lock()
	defer sen.mu.Unlock()
	if sen.registered[1] != pid1 || sen.registered[2] != res.NewPID || !sen.pidfdOK[1] || !sen.pidfdOK[2] {
		t.Fatalf("registered %v (pidfds right: %v); pids %d and %d", sen.registered, sen.pidfdOK, pid1, res.NewPID)
	}
	if len(sen.gone) != 2 {
		t.Fatalf("unregistered %v", sen.gone)
	}
}

// TestNotifySocketsInTheRuntimeDirectory: with a runtime directory, the
// notify sockets are made in it, and its files are hupd's.
func TestNotifySocketsInTheRuntimeDirectory(t *testing.T) {
	dir := t.TempDir()
	rt, err := OpenRuntime("test", filepath.Join(dir, "test.sock"), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	h := newSupervisorUnderTest(t, []string{"ready"}, nil)
	h.sup.UseRuntime(rt)
	h.run()
	h.ready(1)
	calls := h.spawner.recorded("generation")
	if len(calls) == 0 || !strings.HasPrefix(envValue(calls[0].env, "NOTIFY_SOCKET"), rt.Dir+"/") {
		t.Fatalf("notify socket %q, want it in %s", envValue(calls[0].env, "NOTIFY_SOCKET"), rt.Dir)
	}
}

// TestSIGHUPAndTriggerReload: SIGHUP to hupd, and Trigger, reload as hupd
// reload (Reload) does, without a caller waiting.
func TestSIGHUPAndTriggerReload(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.OutputPrefix = true }).run()
	h.ready(1)
	h.signal(unix.SIGHUP)
	h.ready(2)
	h.sup.Trigger(ActionReload, "trigger")
	h.ready(3)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if res := h.sup.Reload(ctx); !res.OK || res.NewGen != 4 || res.Cause != "hupd reload" {
		t.Fatalf("Reload: %+v", res)
	}
	if got := h.events.matching(isMsg("hook reloading", 0)); len(got) != 3 || got[0].attrs[KeyCause] != "SIGHUP" || got[1].attrs[KeyCause] != "trigger" {
		t.Fatalf("reloads: %v", got)
	}
}

// TestMainPIDThatExitsFirst: when the process named by MAINPID= exits
// before the one started, the one started is the main process again.
func TestMainPIDThatExitsFirst(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"mainpid"}, nil).run()
	started := h.ready(1)
	main := h.sup.Status().Generations[0].PID
	h.kill(main, unix.SIGKILL)
	h.logged(logev.MainPIDBack, 1, 1)
	if g := h.sup.Status().Generations; len(g) != 1 || g[0].PID != started {
		t.Fatalf("generations: %+v, want pid %d", g, started)
	}
}
