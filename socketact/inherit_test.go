package socketact

import (
	"fmt"
	"net"
	"os"
	"testing"
)

// activated opens a TCP listener on addr and returns it as a socket this
// process was activated with under name, and its port.
func activated(t *testing.T, name, addr string) (Activated, int) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return Activated{Name: name, File: f}, l.Addr().(*net.TCPAddr).Port
}

func spec(t *testing.T, flag string) Spec {
	t.Helper()
	sp, err := ParseListenFlag(flag)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestAdoptByNameAndPort (how Sockets takes activated sockets): a name
// brings a socket along only when it is on the port (or any port, for
// port 0) the spec names; an unnamed spec finds its socket under its
// StoreName; a host that differs is accepted.
func TestAdoptByNameAndPort(t *testing.T) {
	web, webPort := activated(t, "web", "127.0.0.1:0")
	moved, movedPort := activated(t, "api", "127.0.0.1:0")
	any, anyPort := activated(t, "wild", ":0") // every address
	anon, _ := activated(t, "tcp_//127.0.0.1_0", "127.0.0.1:0")
	unknown, _ := activated(t, UnknownName, "127.0.0.1:0")
	act := []Activated{unknown, anon, any, moved, web}

	specs := []Spec{
		spec(t, fmt.Sprintf("web=tcp://127.0.0.1:%d", webPort)),
		spec(t, fmt.Sprintf("api=tcp://127.0.0.1:%d", movedPort+1)), // moved: not that socket
		spec(t, fmt.Sprintf("wild=tcp://127.0.0.1:%d", anyPort)),    // another host, same port
		spec(t, "tcp://127.0.0.1:0"),                                // its StoreName
		spec(t, "other=tcp://127.0.0.1:0"),                          // no socket of its name
	}
	matched, unclaimed := adopt(specs, act)
	want := []*os.File{web.File, nil, any.File, anon.File, nil}
	for i, m := range matched {
		var got *os.File
		if m != nil {
			got = m.File
			if !m.Inherited || m.Spec.Name != specs[i].Name {
				t.Errorf("spec %d: listener %+v", i, m)
			}
		}
		if got != want[i] {
			t.Errorf("spec %d (%s %s): adopted %v, want %v", i, specs[i].Name, specs[i].Address, got, want[i])
		}
	}
	if len(unclaimed) != 2 || unclaimed[0].File != unknown.File || unclaimed[1].File != moved.File {
		t.Errorf("unclaimed %v, want the unknown and the moved socket", unclaimed)
	}
}

func TestStoreName(t *testing.T) {
	for flag, want := range map[string]string{
		"web=tcp://127.0.0.1:8080":   "web",
		"tcp://127.0.0.1:8080":       "tcp_//127.0.0.1_8080",
		"tcp6://[::1]:0":             "tcp6_//[__1]_0",
		"unix:///run/app.sock":       "unix_///run/app.sock",
		"unix:///run/caf\u00e9.sock": "unix_///run/caf__.sock",
		"unknown=udp://:53":          "udp_//_53",
	} {
		sp := spec(t, flag)
		if got := sp.StoreName(); got != want {
			t.Errorf("%s: %q, want %q", flag, got, want)
		}
		if err := ValidName(sp.StoreName()); err != nil {
			t.Errorf("%s: %v", flag, err)
		}
	}
}
