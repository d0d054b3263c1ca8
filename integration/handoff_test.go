package integration

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// TestHandoffDialects: besides LISTEN_FDS, the child gets the variables
// einhorn, Server::Starter and nginx programs read, and {fd:NAME} and
// {port:NAME} in its arguments become the socket's fd number and port;
// a swap's new generation gets them again (the generation number too).
func TestHandoffDialects(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	h := StartHupd(t, append([]string{"run", "--handoff", "einhorn", "--handoff", "server-starter", "--handoff", "nginx",
		"--listen", "http=tcp://127.0.0.1:0", "--listen", "admin=unix://" + sock, "--ready", "delay:10ms", "--"},
		childCmd("env", "--fd={fd:admin}", "fd://{fd:http}", "port={port:http}", "{fd}")...)...)
	port := strings.TrimPrefix(HostPort(h.Listening("http")), "127.0.0.1:")
	for gen := 1; gen <= 2; gen++ {
		ce := readChildEnv(h)
		want := map[string]string{
			"LISTEN_FDS":                "2",
			"EINHORN_FD_COUNT":          "2",
			"EINHORN_FD_0":              "3",
			"EINHORN_FD_1":              "4",
			"SERVER_STARTER_PORT":       "127.0.0.1:" + port + "=3;" + sock + "=4",
			"SERVER_STARTER_GENERATION": fmt.Sprint(gen),
			"NGINX":                     "3;4;",
		}
		for k, v := range want {
			if ce.Env[k] != v {
				t.Errorf("gen %d: %s=%q, want %q", gen, k, ce.Env[k], v)
			}
		}
		if want := []string{"--fd=4", "fd://3", "port=" + port, "{fd}"}; !slices.Equal(ce.Args, want) {
			t.Errorf("gen %d: args %q, want %q", gen, ce.Args, want)
		}
		if gen == 1 {
			h.WaitEvent(logev.ChildReady, 1, nil)
			h.Signal(syscall.SIGHUP)
		}
	}
	h.Stop()
}

// TestHandoffPerSocket: a [[listen]] env describes that socket alone in
// its dialects, under its real fd number, while LISTEN_FDS and
// LISTEN_FDNAMES describe both sockets. An edit of env is applied as
// hupd.toml is saved: the same sockets, a new generation with the new
// variables; an edit that leaves the variables as they are (the same
// dialects in another order) starts none.
func TestHandoffPerSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	conf := filepath.Join(dir, "hupd.toml")
	toml := func(httpEnv, adminEnv string) string {
		return "command = " + wtList(childCmd("env")) + "\n" +
			"[[listen]]\nname = \"http\"\naddress = \"tcp://127.0.0.1:0\"\n" + httpEnv + "\n" +
			"[[listen]]\nname = \"admin\"\naddress = \"unix://" + sock + "\"\n" + adminEnv + "\n" +
			"[reload]\nready = \"delay:10ms\"\n"
	}
	wtWrite(t, conf, toml(`env = ["nginx", "einhorn"]`, ""))
	h := StartHupd(t, "run", "-c", conf)
	port := strings.TrimPrefix(HostPort(h.Listening("http")), "127.0.0.1:")

	ce1 := readChildEnv(h)
	if pid := h.ChildPID(1); ce1.PID != pid {
		t.Fatalf("gen 1 reports pid %d, hupd started %d", ce1.PID, pid)
	}
	handoffExactly(t, 1, ce1, map[string]string{
		"LISTEN_FDS": "2", "LISTEN_FDNAMES": "http:admin", "LISTEN_PID": strconv.Itoa(ce1.PID),
		"NGINX": "3;", "EINHORN_FD_COUNT": "1", "EINHORN_FD_0": "3",
	})
	h.WaitEvent(logev.ChildReady, 1, nil)

	// The dialects move: server-starter for http, nginx and einhorn for
	// admin (fd 4).
	wtWrite(t, conf, toml(`env = ["server-starter"]`, `env = ["nginx", "einhorn"]`))
	if e := h.WaitEvent(logev.ConfigApplied, 1, nil); e["new_generation"] != true || e.Int("sockets_opened") != 0 || e.Int("sockets_dropped") != 0 {
		t.Fatalf("%v: want a new generation on the same sockets", e)
	}
	ce2 := readChildEnv(h)
	if pid := h.ChildPID(2); ce2.PID != pid {
		t.Fatalf("gen 2 reports pid %d, hupd started %d", ce2.PID, pid)
	}
	handoffExactly(t, 2, ce2, map[string]string{
		"LISTEN_FDS": "2", "LISTEN_FDNAMES": "http:admin", "LISTEN_PID": strconv.Itoa(ce2.PID),
		"SERVER_STARTER_PORT": "127.0.0.1:" + port + "=3", "SERVER_STARTER_GENERATION": "2",
		"NGINX": "4;", "EINHORN_FD_COUNT": "1", "EINHORN_FD_0": "4",
	})
	if !slices.Equal(ce2.ListenerKind, ce1.ListenerKind) || len(ce1.ListenerKind) != 2 {
		t.Fatalf("gen 2 got sockets %q, gen 1 %q: want the same two", ce2.ListenerKind, ce1.ListenerKind)
	}
	if n := len(h.Events(logev.Listening)); n != 2 {
		t.Fatalf("%d sockets opened, want the first two only", n)
	}
	if e := h.WaitEvent(logev.ReloadDone, 1, nil); e.Int("pid") != ce2.PID {
		t.Fatalf("%v: want gen 2 (pid %d) serving", e, ce2.PID)
	}

	// The same dialects in another order: nothing the child sees changes.
	wtWrite(t, conf, toml(`env = ["server-starter"]`, `env = ["einhorn", "nginx"]`))
	if e := h.WaitEvent(logev.ConfigApplied, 2, nil); e["new_generation"] != false {
		t.Fatalf("%v: want no new generation", e)
	}
	if n := len(h.Events(logev.ReloadStarted)); n != 1 {
		t.Fatalf("%d reloads started, want 1", n)
	}
	h.Stop()
}

// handoffExactly checks that the hand-over variables generation gen got
// (LISTEN_*, EINHORN_*, SERVER_STARTER_*, NGINX) are exactly want.
func handoffExactly(t *testing.T, gen int, ce ChildEnv, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for k, v := range ce.Env {
		for _, p := range []string{"LISTEN_", "EINHORN_", "SERVER_STARTER_", "NGINX"} {
			if strings.HasPrefix(k, p) {
				got[k] = v
			}
		}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("gen %d got\n%v\nwant\n%v", gen, got, want)
	}
}

// TestHandoffBadInput: an unknown dialect, or a {fd:NAME} that names no
// socket or several, or the {port:NAME} of a unix socket, is a one-line
// error naming where and what, exit 2, before anything starts.
func TestHandoffBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--handoff", "inetd", "--listen", "tcp://127.0.0.1:0", "--", "/bin/true"},
			`--handoff: process.handoff = "inetd": valid ones are einhorn, server-starter, nginx`},
		{[]string{"--listen", "http=tcp://127.0.0.1:0", "--", "/bin/echo", "{fd:web}"},
			"{fd:web}: socketact: bad socket reference: no socket is named web"},
		{[]string{"--listen", "a=tcp://127.0.0.1:0", "--listen", "a=tcp://127.0.0.1:0", "--", "/bin/echo", "{port:a}"},
			"several sockets are named a"},
		{[]string{"--listen", "u=unix://" + filepath.Join(t.TempDir(), "s"), "--", "/bin/echo", "{port:u}"},
			"u is a unix socket, it has no port"},
	} {
		h := StartHupd(t, append([]string{"run"}, tc.args...)...)
		if code := h.Wait(); code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		out := strings.TrimSpace(h.Stderr())
		if !strings.Contains(out, tc.says) || strings.Contains(out, "\n") {
			t.Errorf("%q: stderr %q, want one line saying %q", tc.args, out, tc.says)
		}
	}
}
