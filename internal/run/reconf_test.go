package run

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hupd/hupd/socketact"
)

func spec(t *testing.T, name, addr string) socketact.Spec {
	t.Helper()
	sp, err := socketact.ParseListenFlag(name + "=" + addr)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func open(t *testing.T, specs ...socketact.Spec) []*socketact.Listener {
	t.Helper()
	ls, err := socketact.Open(specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { socketact.CloseAll(ls) })
	return ls
}

// TestReuseSockets checks that a new configuration keeps every socket it
// names again, one socket per spec, and opens the others.
func TestReuseSockets(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	held := open(t, spec(t, "http", "tcp://127.0.0.1:0"), spec(t, "admin", "tcp://127.0.0.1:0"), spec(t, "u", "unix://"+sock))
	// Renamed, reordered, one dropped, one added; both port-0 specs stay
	// two sockets, each kept under its own name.
	specs := []socketact.Spec{spec(t, "admin", "tcp://127.0.0.1:0"), spec(t, "web", "tcp://127.0.0.1:0"), spec(t, "new", "tcp://127.0.0.1:0"), spec(t, "u2", "unix://"+sock)}
	ls, opened, err := reuseSockets(held, specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { socketact.CloseAll(opened) })
	if ls[0].File != held[1].File {
		t.Error("admin did not keep its own socket")
	}
	if ls[1].File != held[0].File || ls[1].Spec.Name != "web" {
		t.Errorf("the other port-0 spec did not get the remaining socket under its new name: %+v", ls[1].Spec)
	}
	if len(opened) != 1 || ls[2] != opened[0] {
		t.Errorf("opened %d sockets, want 1 for the new spec", len(opened))
	}
	if ls[3].File != held[2].File || ls[3].Spec.Name != "u2" {
		t.Error("the unix socket was not kept")
	}
	if held[0].Spec.Name != "http" {
		t.Error("Reconfigure changed the held listener in place")
	}
}

// TestReuseSocketsFailureChangesNothing checks that a spec that cannot be
// opened leaves no new socket behind and the held ones as they were.
func TestReuseSocketsFailureChangesNothing(t *testing.T) {
	held := open(t, spec(t, "http", "tcp://127.0.0.1:0"))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := spec(t, "free", "tcp://127.0.0.1:0")
	specs := []socketact.Spec{spec(t, "http", "tcp://127.0.0.1:0"), free, spec(t, "busy", "tcp://"+busy.Addr().String())}
	before := fdCount(t)
	_, _, err = reuseSockets(held, specs, []string{"h.toml:2", "h.toml:5", "h.toml:8"})
	if err == nil || !strings.HasPrefix(err.Error(), "h.toml:8: ") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("error %v does not name where and why", err)
	}
	if n := fdCount(t); n != before {
		t.Fatalf("%d fds open after the failure, %d before: the opened socket leaked", n, before)
	}
}

// TestReuseSocketsFixedOption checks that an option a bound socket cannot
// change is refused before anything is opened.
func TestReuseSocketsFixedOption(t *testing.T) {
	held := open(t, spec(t, "http", "tcp://127.0.0.1:0"))
	sp := spec(t, "http", "tcp://127.0.0.1:0")
	sp.ReusePort = true
	_, _, err := reuseSockets(held, []socketact.Spec{sp}, []string{"h.toml:3"})
	if !errors.Is(err, socketact.ErrNeedsNewSocket) || !strings.Contains(err.Error(), "reuseport") {
		t.Fatalf("err = %v", err)
	}
}

func fdCount(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestReuseSocketsDefersChanges checks that choosing the sockets of a new
// configuration changes nothing on them: a configuration refused later
// (a port in use further down, the supervisor stopping) must leave the
// held sockets as they were. applySockets makes the change.
func TestReuseSocketsDefersChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.sock")
	sp := spec(t, "a", "unix://"+path)
	sp.Mode = 0o600
	held := open(t, sp)
	next := sp
	next.Mode = 0o660
	ls, _, err := reuseSockets(held, []socketact.Spec{next}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v before the configuration is in force, want 0600 (%v)", fi.Mode(), err)
	}
	rc := &reconf{log: slog.New(slog.DiscardHandler)}
	rc.applySockets(held, ls)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("mode %v once in force, want 0660 (%v)", fi.Mode(), err)
	}
}
