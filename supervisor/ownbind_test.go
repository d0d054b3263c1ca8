package supervisor

import (
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/logev"
	"golang.org/x/sys/unix"
)

// TestBindInUseLine: the EADDRINUSE reports of the usual languages are
// recognised in a tail of output, the last one wins, and other bind
// failures are not taken for one.
func TestBindInUseLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  string // "" for no match
	}{
		{"go", []string{"listen tcp 127.0.0.1:8000: bind: address already in use"}, "listen tcp 127.0.0.1:8000: bind: address already in use"},
		{"python", []string{
			"Traceback (most recent call last):",
			`  File "/usr/lib/python3.11/socketserver.py", line 473, in server_bind`,
			"    self.socket.bind(self.server_address)",
			"OSError: [Errno 98] Address already in use",
		}, "OSError: [Errno 98] Address already in use"},
		{"node", []string{"Error: listen EADDRINUSE: address already in use :::8000", "    at Server.setupListenHandle [as _listen2] (node:net:1817:16)", "  code: 'EADDRINUSE',", "}"}, "  code: 'EADDRINUSE',"},
		{"ruby", []string{"bind(2) for \"0.0.0.0\" port 8000 (Errno::EADDRINUSE)"}, "bind(2) for \"0.0.0.0\" port 8000 (Errno::EADDRINUSE)"},
		{"rust", []string{"Error: Os { code: 98, kind: AddrInUse, message: \"Address already in use\" }"}, "Error: Os { code: 98, kind: AddrInUse, message: \"Address already in use\" }"},
		{"nginx", []string{"nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)", "nginx: [emerg] still could not bind()"}, "nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)"},
		{"java", []string{"java.net.BindException: Address already in use"}, "java.net.BindException: Address already in use"},
		{"other bind failure", []string{"listen tcp :80: bind: permission denied", "OSError: [Errno 99] Cannot assign requested address"}, ""},
		{"no output", nil, ""},
	} {
		got, ok := bindInUseLine(tc.lines)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
}

// TestOwnBindHint: a program that binds the port hupd holds itself fails
// at every start with "address already in use" and is restarted again
// and again: hupd says once, at the first failure, that it binds its own
// port, quoting the line and naming the socket it should take instead.
func TestOwnBindHint(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"bind"}, nil).run()
	h.logged(logev.RestartingChild, 0, 3) // generation 3 failed too
	hints := h.events.matching(isMsg(logev.OwnBindHint, 0))
	if len(hints) != 1 {
		t.Fatalf("%d hints after 3 failed starts, want 1", len(hints))
	}
	e := hints[0]
	out, _ := e.attrs[KeyOutput].(string)
	if e.int(KeyGen) != 1 || !strings.Contains(out, "bind: address already in use") {
		t.Errorf("hint %v: want generation 1 quoting its bind failure", e)
	}
	if want := "unknown=" + h.sockets[0].Bound.String(); e.attrs[KeySockets] != want {
		t.Errorf("hint names sockets %q, want %q", e.attrs[KeySockets], want)
	}
	if hint, _ := e.attrs[KeyHint].(string); !strings.Contains(hint, "{fd:NAME}") || !strings.Contains(hint, "LISTEN_FDS") || !strings.Contains(hint, "--legacy redirect") {
		t.Errorf("hint %q does not say how to hand the socket over", hint)
	}
	// It comes after the exit it explains, before the restart.
	exit1 := h.exited(1)
	restart1 := h.logged(logev.RestartingChild, 0, 1)
	if e.at.Before(exit1.at) || restart1.at.Before(e.at) {
		t.Errorf("hint at %s, exit at %s, restart at %s", e.at, exit1.at, restart1.at)
	}
}

// TestOwnBindHintPythonForm: Python's form of the error, written last
// before the program exits, is found in what hupd kept of its output.
func TestOwnBindHintPythonForm(t *testing.T) {
	h := newSupervisorUnderTest(t, []string{"say:OSError: [Errno 98] Address already in use"}, func(o *Options) { o.Restart = RestartNever }).run()
	if o := h.wait(); o.code != 1 {
		t.Fatalf("Run: %+v, want exit 1", o)
	}
	e := h.logged(logev.OwnBindHint, 1, 1)
	if e.attrs[KeyOutput] != "OSError: [Errno 98] Address already in use" {
		t.Errorf("hint quotes %q", e.attrs[KeyOutput])
	}
}

// TestOwnBindHintOnlyForItsCause: no hint for a start that fails another
// way, nor for a generation that was ready (it had the socket) and then
// said an address was in use.
func TestOwnBindHintOnlyForItsCause(t *testing.T) {
	t.Run("other failure", func(t *testing.T) {
		h := newSupervisorUnderTest(t, []string{"say:listen tcp :80: bind: permission denied"}, nil).run()
		h.logged(logev.RestartingChild, 0, 3)
		if n := len(h.events.matching(isMsg(logev.OwnBindHint, 0))); n != 0 {
			t.Fatalf("%d hints for another failure", n)
		}
	})
	t.Run("after ready", func(t *testing.T) {
		h := newSupervisorUnderTest(t, []string{"ready-say:dial: address already in use", "ready"}, nil).run()
		h.kill(h.ready(1), unix.SIGUSR2)
		h.ready(2) // restarted after gen 1's exit, which had its chance
		if n := len(h.events.matching(isMsg(logev.OwnBindHint, 0))); n != 0 {
			t.Fatalf("%d hints for a generation that was ready", n)
		}
	})
}
