package config

import (
	"strings"
	"testing"

	"github.com/hupd/hupd/supervisor"
)

// TestResolveLegacyAdopt: [legacy] mode = "adopt" marks every socket
// Adopt (a TOML one and a --listen one), defaults readiness to "listen",
// and refuses what the program sets up itself, a port 0 and a per-socket
// hand-over, each naming the field.
func TestResolveLegacyAdopt(t *testing.T) {
	exe := executable(t)
	c := &Config{Command: []string{exe}, Legacy: Legacy{Mode: "adopt"},
		Listen: []Listen{{Address: "tcp://:8080"}, {Address: "unix:///run/app.sock"}}}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.Options.Legacy != supervisor.LegacyAdopt || r.Options.Ready.Kind != supervisor.ReadyListen {
		t.Errorf("legacy %q, ready %q: want adopt and listen", r.Options.Legacy, r.Options.Ready.Kind)
	}
	for i, sp := range r.Listen {
		if !sp.Adopt {
			t.Errorf("listen[%d] not marked Adopt", i)
		}
	}
	// Redirect mode binds for the program: nothing is adopted.
	c.Legacy.Mode = "redirect"
	if r, err = c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if r.Listen[0].Adopt {
		t.Error("redirect mode marked a socket Adopt")
	}

	yes := true
	for _, tc := range []struct {
		l    Listen
		says string
	}{
		{Listen{Address: "tcp://127.0.0.1:0"}, `listen[0].address = "tcp://127.0.0.1:0": needs a fixed port`},
		{Listen{Address: "tcp://localhost:8080"}, `listen[0].address = "tcp://localhost:8080": needs an IP address, not a name`},
		{Listen{Address: "unixgram:///run/app.sock"}, `listen[0].address = "unixgram:///run/app.sock": a unixgram socket file cannot be adopted`},
		{Listen{Address: "tcp://:8080", Backlog: 16}, `listen[0].backlog = "16": does not apply with [legacy] mode = "adopt"`},
		{Listen{Address: "tcp://:8080", ReusePort: true}, `listen[0].reuseport = "true": does not apply`},
		{Listen{Address: "tcp://:8080", V6Only: &yes}, `listen[0].v6only = "true": does not apply`},
		{Listen{Address: "tcp://:8080", NonBlocking: &yes}, `listen[0].nonblocking = "true": does not apply`},
		{Listen{Address: "unix:///run/a.sock", Mode: "0600"}, `listen[0].mode = "0600": does not apply`},
		{Listen{Address: "tcp://:8080", Env: []string{"nginx"}}, `listen[0].env = "nginx": does not apply with [legacy] mode = "adopt": the program gets no inherited sockets`},
	} {
		c := &Config{Command: []string{exe}, Legacy: Legacy{Mode: "adopt"}, Listen: []Listen{tc.l}}
		_, err := c.Resolve()
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%+v: error %v, want it to say %s", tc.l, err, tc.says)
		}
	}
}
