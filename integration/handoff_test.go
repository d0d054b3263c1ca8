package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
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
			h.WaitEvent("child ready", 1, nil)
			h.Signal(syscall.SIGHUP)
		}
	}
	h.Stop()
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
