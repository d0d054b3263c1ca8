package run

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
	"github.com/hupd/hupd/watch"
)

// handedOver opens a socket for each flag and describes it as an
// upgrading hupd hands it over: on an fd of its own (a dup). The
// take-over owns that fd (RestoreListener wraps it in a File): the test
// closes it through the listeners it gets back.
func handedOver(t *testing.T, flags ...string) []socketact.ListenerState {
	t.Helper()
	var out []socketact.ListenerState
	for _, f := range flags {
		sp, err := socketact.ParseListenFlag(f)
		if err != nil {
			t.Fatal(err)
		}
		ls, err := socketact.Open([]socketact.Spec{sp})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { socketact.CloseAll(ls) })
		st := ls[0].State()
		if st.FD, err = unix.FcntlInt(uintptr(st.FD), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

func fdsOf(ls []*socketact.Listener) []int {
	out := make([]int, len(ls))
	for i, l := range ls {
		out[i] = int(l.File.Fd())
	}
	return out
}

func fdsOfStates(sts []socketact.ListenerState) []int {
	out := make([]int, len(sts))
	for i, st := range sts {
		out[i] = st.FD
	}
	return out
}

// TestTakeOverSocketsWithoutListen: without [[listen]], the new image runs
// with the sockets the previous one ran with, in order, and keeps the
// retired ones for the generations that use them.
func TestTakeOverSocketsWithoutListen(t *testing.T) {
	cur := handedOver(t, "a=tcp://127.0.0.1:0", "b=tcp://127.0.0.1:0")
	retired := handedOver(t, "c=tcp://127.0.0.1:0")
	up := &supervisor.Upgrade{Listeners: cur, Retired: retired}
	ls, others, err := takeOverSockets(up, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer socketact.CloseAll(append(ls, others...))
	if !slices.Equal(fdsOf(ls), fdsOfStates(cur)) || !slices.Equal(fdsOf(others), fdsOfStates(retired)) {
		t.Fatalf("sockets %v and others %v, want %v and %v", fdsOf(ls), fdsOf(others), fdsOfStates(cur), fdsOfStates(retired))
	}
	if ls[0].Spec.Name != "a" || ls[1].Spec.Name != "b" {
		t.Errorf("specs %+v, %+v", ls[0].Spec, ls[1].Spec)
	}
}

// TestTakeOverSocketsMatches: with [[listen]], a configured address keeps
// its socket, a retired one listed again comes back, a new one is opened,
// and the rest are others.
func TestTakeOverSocketsMatches(t *testing.T) {
	cur := handedOver(t, "a=tcp://127.0.0.1:0", "b=tcp://127.0.0.1:0")
	retired := handedOver(t, "c=tcp://127.0.0.1:0")
	up := &supervisor.Upgrade{Listeners: cur, Retired: retired}
	d := "d=unix://" + filepath.Join(t.TempDir(), "d.sock")
	ls, others, err := takeOverSockets(up, parse(t, "b=tcp://127.0.0.1:0", "c=tcp://127.0.0.1:0", d), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer socketact.CloseAll(append(ls, others...))
	if got := fdsOf(ls[:2]); !slices.Equal(got, []int{cur[1].FD, retired[0].FD}) {
		t.Errorf("kept fds %v, want b's %d and c's %d", got, cur[1].FD, retired[0].FD)
	}
	if ls[2].Spec.Name != "d" || slices.Contains(fdsOfStates(up.Sockets()), int(ls[2].File.Fd())) {
		t.Errorf("d: %+v, want a new socket", ls[2])
	}
	if got := fdsOf(others); !slices.Equal(got, []int{cur[0].FD}) {
		t.Errorf("others %v, want a's %d", got, cur[0].FD)
	}
}

// TestTakeOverSocketsFailure: a spec that cannot be opened fails the
// take-over and leaves every handed-over socket open, for the previous
// image to take back.
func TestTakeOverSocketsFailure(t *testing.T) {
	up := &supervisor.Upgrade{Listeners: handedOver(t, "a=tcp://127.0.0.1:0"), Retired: handedOver(t, "c=tcp://127.0.0.1:0")}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// As at a real take-over (see Run): no finalizer may close the fds of
	// the listeners a failed take-over drops. They are closed by theirs
	// once the collector runs again.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	r := &config.Resolved{Listen: parse(t, "a=tcp://127.0.0.1:0", "tcp://"+busy.Addr().String()), ListenWhere: []string{"", "h.toml:4"}}
	if _, _, err := takeOverSockets(up, r.Listen, r.ListenWhere); !errors.Is(err, unix.EADDRINUSE) || !strings.HasPrefix(err.Error(), "h.toml:4: ") {
		t.Fatalf("err = %v, want address in use at h.toml:4", err)
	}
	for _, fd := range fdsOfStates(up.Sockets()) {
		if _, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
			t.Errorf("handed-over fd %d closed by a failed take-over", fd)
		}
	}
}

func parse(t *testing.T, flags ...string) []socketact.Spec {
	t.Helper()
	var out []socketact.Spec
	for _, f := range flags {
		sp, err := socketact.ParseListenFlag(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sp)
	}
	return out
}

// TestReconfExecGuard: the single program's check right before an
// upgrade's exec refuses it while hupd.toml on disk is not the version in
// force (edited while the binary was checked: the new image would read
// it) and while an action of a watched file's change or SIGHUP is handed
// to the supervisor and not yet taken (the exec would lose it); it passes
// otherwise.
func TestReconfExecGuard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hupd.toml")
	content := []byte("name = \"app\"\n")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := newReconf(&config.Resolved{ConfigFile: path}, nil, watch.HashData(path, content), content, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rc.w != nil {
		t.Cleanup(func() { rc.w.Close() })
	}
	rc.sup, err = supervisor.New(supervisor.Options{Path: "/bin/true", Args: []string{"true"}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.sup.Ended) // the trigger's goroutine gives up
	guard := rc.execGuard(nil, path)
	if err := guard(); err != nil {
		t.Fatalf("hupd.toml in force, nothing pending: %v", err)
	}
	if err := os.WriteFile(path, []byte("name = \"edited\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := guard(); err == nil || !strings.Contains(err.Error(), "not the version in force") {
		t.Fatalf("hupd.toml edited: %v, want a refusal", err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	rc.trigger(supervisor.ActionReload, "changed: x") // the supervisor's loop does not run: never taken
	if err := guard(); !errors.Is(err, errTriggered) {
		t.Fatalf("a watched file's reload not yet taken: %v, want %v", err, errTriggered)
	}
	if err := rc.execGuard(nil, "")(); !errors.Is(err, errTriggered) {
		t.Fatalf("without hupd.toml, a reload not yet taken: %v, want %v", err, errTriggered)
	}
}

// TestReconfAppliedEdited: a single program's new image, resolved from the
// hupd.toml in force that the state carried, asks its loop to apply the
// file on disk as an edit only when it differs from that version.
func TestReconfAppliedEdited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hupd.toml")
	content := []byte("name = \"app\"\n")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	load := func() (*config.Resolved, error) { return nil, errors.New("not read here") }
	rc, err := newReconf(&config.Resolved{ConfigFile: path}, load, watch.HashData(path, content), content, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rc.w != nil {
		t.Cleanup(func() { rc.w.Close() })
	}
	rc.appliedEdited()
	if n := len(rc.refresh); n != 0 {
		t.Fatalf("hupd.toml the version in force: %d rereads asked for, want none", n)
	}
	if err := os.WriteFile(path, []byte("name = \"edited\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc.appliedEdited()
	if n := len(rc.refresh); n != 1 {
		t.Fatalf("hupd.toml saved since: %d rereads asked for, want 1", n)
	}
	if req := <-rc.refresh; req.reply != nil || req.trigger {
		t.Fatalf("the reread asked for: %+v, want an edit's (no reply, no reload of its own)", req)
	}
	rc.appliedEdited() // one already pending would read it: never blocks
	rc.appliedEdited()
	if n := len(rc.refresh); n != 1 {
		t.Fatalf("%d rereads pending, want 1", n)
	}
}
