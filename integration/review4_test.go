package integration

// Review of watching files and applying hupd.toml edits: each test shows
// one defect that was found (and fixed).

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// r4Uid returns the real uid of pid from /proc.
func r4Uid(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

// TestReview4UserEditKeepsNotify: a hupd.toml edit that sets [process]
// user (hupd started without one) starts a new generation as that user.
// That generation must be able to reach its NOTIFY_SOCKET: the notify
// sockets' directory was made private to hupd's own user when hupd
// started, so the new child could not send READY=1 and every reload
// failed.
func TestReview4UserEditKeepsNotify(t *testing.T) {
	procNeedRoot(t)
	t.Parallel()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	tables := []string{wtHTTP, "[reload]\nready = \"notify\"\nready_timeout = \"10s\"\n"}
	w, conf := wtStartConf(t, t.TempDir(), wtTOML([]string{"-tag", "v1"}, tables...))
	w.startReport(1)

	wtWrite(t, conf, wtTOML([]string{"-tag", "v1"}, append(tables, "[process]\nuser = \"nobody\"\n")...))
	rcApplied(w, 1, true, 0, 0)
	pid := w.reloaded(1).Int("pid")
	if got := r4Uid(t, pid); got != uid {
		t.Fatalf("gen 2 runs as uid %d, want %d (nobody)", got, uid)
	}
	w.stop()
}

// TestReview4ReadinessEditDuringStart: readiness edited while a generation
// is starting must not declare it ready by a timer of the old readiness.
// With ready = "auto" and a child that speaks sd_notify, hupd waits for
// READY=1; the edit to ready = "notify" (wait for READY=1, too) made the
// 2 s timer of "auto" mark the new generation ready without READY=1, and
// the serving generation was stopped for it.
func TestReview4ReadinessEditDuringStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := "command = " + wtList(childCmd("rv-ctl")) + "\n" + wtHTTP + "[reload]\nready_timeout = \"4s\"\n"
	conf := filepath.Join(dir, "hupd.toml")
	wtWrite(t, conf, base)
	h := StartHupd(t, "run", "-c", conf)
	control := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	p1 := rvArmed(t, h, 1)
	rvKill(t, p1, syscall.SIGUSR2) // READY=1: this child speaks sd_notify
	h.WaitEvent(logev.ChildReady, 1, swapGen(1))

	reply := rvReload(control)
	rvArmed(t, h, 2) // never sends READY=1
	wtWrite(t, conf, base+"ready = \"notify\"\n")
	if e := h.WaitEvent(logev.ConfigApplied, 1, nil); e["new_generation"] != false {
		t.Fatalf("%v: want the readiness applied in place", e)
	}
	res := rvResult(t, reply)
	if res.OK || !strings.Contains(res.Reason, "not ready within") {
		t.Fatalf("reload %+v: want it failed, generation 2 never sent READY=1", res)
	}
	if !processAlive(p1) {
		t.Fatalf("gen 1 (pid %d) was stopped for a generation that never said READY=1", p1)
	}
	h.Stop()
}

// TestReview4ReaddDroppedSocket: a [[listen]] removed by an edit whose new
// generation then failed is still held open for the generation that
// serves on it. Restoring the previous hupd.toml must keep that socket:
// hupd tried to bind the address again, failed with "address already in
// use", and refused every edit that lists it for as long as that
// generation serves.
func TestReview4ReaddDroppedSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(sockDir(t), "admin.sock")
	admin := wtListen("admin", "unix://"+sock)
	orig := wtTOML(nil, wtHTTP, admin)
	w, conf := wtStartConf(t, t.TempDir(), orig)
	pid1 := w.startReport(1).PID

	// Drop admin, and start a command that fails: the swap fails and
	// gen 1 serves on, on both sockets.
	wtWrite(t, conf, "command = "+wtList(childCmd("exit", "3"))+"\n"+wtHTTP)
	rcApplied(w, 1, true, 0, 1)
	if e := w.WaitEvent(logev.ReloadFailed, 1, nil); e.Int("old_pid") != pid1 {
		t.Fatalf("%v: want the swap from pid %d failed", e, pid1)
	}
	if body := fetch(t, "unix", sock, "/"); swapPID(body) != pid1 {
		t.Fatalf("admin answered %q, want pid %d", body, pid1)
	}

	// Back to the original: it is applied, on the socket gen 1 holds.
	wtWrite(t, conf, orig+"# restored\n")
	if e := w.WaitEvent(logev.ConfigApplied, 2, nil); e["new_generation"] != true || e.Int("sockets_opened") != 0 {
		t.Fatalf("%v: want a new generation and no socket opened", e)
	}
	pid3 := w.reloaded(2).Int("pid")
	if r := w.report(pid3); !slices.Equal(r.Names, []string{"http", "admin"}) {
		t.Fatalf("gen 3: %+v; want LISTEN_FDS=2 named http, admin", r)
	}
	w.WaitEvent(logev.ChildExited, 1, func(e Event) bool { return e.Int("pid") == pid1 })
	if body := fetch(t, "unix", sock, "/"); swapPID(body) != pid3 {
		t.Fatalf("admin answered %q, want pid %d", body, pid3)
	}
	if evs := w.Events(logev.SocketClosed); len(evs) != 0 {
		t.Fatalf("closed %v, a socket the configuration lists again", evs)
	}
	w.stop(sock)
}

// TestReview4InPlaceEditAfterFailedSwap: after a new command's swap
// failed, the generation that serves on still runs the old command; an
// edit applied in place (a timeout) must not mark it as running the
// configuration in force. hupd status showed it serving the new content
// hash, as if it ran the new command.
func TestReview4InPlaceEditAfterFailedSwap(t *testing.T) {
	t.Parallel()
	w, conf := wtStartConf(t, t.TempDir(), wtTOML(nil, wtHTTP))
	w.startReport(1)
	failing := "command = " + wtList(childCmd("exit", "3")) + "\n" + wtHTTP
	wtWrite(t, conf, failing)
	rcApplied(w, 1, true, 0, 0)
	w.WaitEvent(logev.ReloadFailed, 1, nil)
	if st := w.status(); st.ConfigHash == st.Hash {
		t.Fatalf("after the failed swap: serving %s, content %s; want them different", st.ConfigHash, st.Hash)
	}
	wtWrite(t, conf, failing+"[reload]\nready_timeout = \"30s\"\n")
	rcApplied(w, 2, false, 0, 0)
	if st := w.status(); st.ConfigHash == st.Hash || len(st.Generations) != 1 || st.Generations[0].Gen != 1 {
		t.Fatalf("status %+v: gen 1 runs the old command, yet shows the hash in force", st)
	}
	w.stop()
}

// TestReview4QueuedReloadDuringBackoff: a reload queued behind a crash
// restart's generation that is still starting, which then crashes too,
// must start at once, as a reload during a crash's backoff does, instead
// of waiting for the backoff and for the next crash restart to be ready.
// Reloads that arrive meanwhile are merged into it and waited as long.
func TestReview4QueuedReloadDuringBackoff(t *testing.T) {
	t.Parallel()
	conf := filepath.Join(t.TempDir(), "hupd.toml")
	wtWrite(t, conf, "command = "+wtList(childCmd("rv-ctl"))+"\n"+wtHTTP+
		"[reload]\nready = \"notify\"\n[restart]\nmin_delay = \"1s\"\n")
	h := StartHupd(t, "run", "-c", conf)
	control := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	p1 := rvArmed(t, h, 1)
	rvKill(t, p1, syscall.SIGUSR2)
	h.WaitEvent(logev.ChildReady, 1, swapGen(1))
	rvKill(t, p1, syscall.SIGUSR1) // crash: gen 2 is its restart
	p2 := rvArmed(t, h, 2)
	reply := rvReload(control)
	h.WaitEvent(logev.ReloadQueued, 1, nil)
	rvKill(t, p2, syscall.SIGUSR1) // crashes before it is ready

	p3 := rvArmed(t, h, 3)
	if i, j := swapEventIndex(h, logev.ReloadStarted, 1, nil), swapEventIndex(h, logev.ChildStarted, 1, swapGen(3)); i < 0 || i > j {
		t.Fatalf("gen 3 started (log line %d) before the queued reload (line %d): the reload waited for the backoff", j, i)
	}
	rvKill(t, p3, syscall.SIGUSR2)
	if res := rvResult(t, reply); !res.OK || res.NewPID != p3 {
		t.Fatalf("reload %+v: want it done by gen 3 (pid %d)", res, p3)
	}
	h.Stop()
}
