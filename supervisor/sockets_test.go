package supervisor

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
)

func listenSpecs(t *testing.T, flags ...string) []socketact.Spec {
	t.Helper()
	out := make([]socketact.Spec, len(flags))
	for i, f := range flags {
		sp, err := socketact.ParseListenFlag(f)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sp
	}
	return out
}

func socketOpen(f *os.File) bool {
	_, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_TYPE)
	return err == nil
}

// openSockets lists the process's socket fds (fd and inode).
func openSockets(t *testing.T) map[string]bool {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	socks := make(map[string]bool)
	for _, e := range es {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			socks[e.Name()+" "+target] = true
		}
	}
	return socks
}

// socketsSupervisor is a supervisor (Run not started) on sockets a and b,
// with a reload in progress, so that an apply that needs a new generation
// queues one instead of starting it, and one generation that uses b.
func socketsSupervisor(t *testing.T, log *bytes.Buffer) (*Supervisor, []*socketact.Listener) {
	t.Helper()
	ls, err := socketact.Open(listenSpecs(t, "a=tcp://127.0.0.1:0", "b=tcp://127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { socketact.CloseAll(ls) })
	opts := Options{Path: "/bin/true", Args: []string{"true"}}
	s, err := New(opts, ls, nil, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.tx = &reloadTx{}
	s.gens = []*generation{{num: 1, state: StateReady, listeners: []*socketact.Listener{ls[1]}}}
	return s, ls
}

func (s *Supervisor) applyListen(t *testing.T, specs []socketact.Spec, where []string) (ApplyResult, error) {
	t.Helper()
	r := s.apply(&applyRequest{Update: Update{Options: Options{Path: "/bin/true", Args: []string{"true"}}, Listen: specs, ListenWhere: where}})
	return r.res, r.err
}

// TestApplyRetiresAndReusesOwnSockets: the supervisor matches a new
// configuration's sockets against its own set in one request: a dropped
// socket a generation uses stays open (retired); listed again, even under
// another name, it is taken back from the retired ones instead of a bind
// that would fail; one no generation uses is closed at once.
func TestApplyRetiresAndReusesOwnSockets(t *testing.T) {
	var log bytes.Buffer
	s, ls := socketsSupervisor(t, &log)
	a, b := ls[0], ls[1]

	res, err := s.applyListen(t, listenSpecs(t, "a=tcp://127.0.0.1:0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Retired != 1 || len(res.Opened) != 0 || !res.Respawn || len(res.Sockets) != 1 || res.Sockets[0].File != a.File {
		t.Fatalf("result %+v: want a kept, b retired, a new generation", res)
	}
	if len(s.retired) != 1 || s.retired[0] != b || !socketOpen(b.File) {
		t.Fatal("b, which generation 1 uses, is not retired and open")
	}

	// b's address again (port 0: the configured address, not the port),
	// under another name: a takes its own socket by name, c takes b's.
	res, err = s.applyListen(t, listenSpecs(t, "a=tcp://127.0.0.1:0", "c=tcp://127.0.0.1:0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Opened) != 0 || res.Retired != 0 || len(s.retired) != 0 {
		t.Fatalf("result %+v, retired %v: want b taken back, nothing opened", res, s.retired)
	}
	if s.listeners[0].File != a.File || s.listeners[1].File != b.File || s.listeners[1].Spec.Name != "c" {
		t.Fatalf("listeners %v: want a, then b's socket named c", s.listeners)
	}

	// Dropped while no generation uses it: closed now.
	s.gens = nil
	if _, err := s.applyListen(t, listenSpecs(t, "a=tcp://127.0.0.1:0"), nil); err != nil {
		t.Fatal(err)
	}
	if socketOpen(b.File) || len(s.retired) != 0 {
		t.Fatal("a dropped socket nobody uses is still open")
	}
	if !strings.Contains(log.String(), logev.SocketClosed) {
		t.Error("its closing was not logged")
	}
}

// TestApplyFailureChangesNothing: a configuration whose socket cannot be
// opened is refused, naming where it was configured; the supervisor's
// sockets are as they were and nothing opened for it stays open.
func TestApplyFailureChangesNothing(t *testing.T) {
	var log bytes.Buffer
	s, ls := socketsSupervisor(t, &log)
	if _, err := s.applyListen(t, listenSpecs(t, "a=tcp://127.0.0.1:0"), nil); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// Sockets, not all fds: what earlier tests of the package left behind
	// (a reaped child's pipes) may close meanwhile.
	before := openSockets(t)
	specs := listenSpecs(t, "a=tcp://127.0.0.1:0", "b=tcp://127.0.0.1:0", "new=tcp://127.0.0.1:0", "busy=tcp://"+busy.Addr().String())
	_, err = s.applyListen(t, specs, []string{"", "", "", "hupd.toml:9"})
	if !errors.Is(err, unix.EADDRINUSE) || !strings.HasPrefix(err.Error(), "hupd.toml:9: ") {
		t.Fatalf("err = %v", err)
	}
	for fd := range openSockets(t) {
		if !before[fd] {
			t.Fatalf("socket fd %s opened for the refused configuration is still open", fd)
		}
	}
	if len(s.listeners) != 1 || s.listeners[0].File != ls[0].File || len(s.retired) != 1 || s.retired[0] != ls[1] {
		t.Fatalf("listeners %v, retired %v changed by a refused configuration", s.listeners, s.retired)
	}
	if !socketOpen(ls[0].File) || !socketOpen(ls[1].File) {
		t.Fatal("a held socket was closed")
	}
}
