package socketact

import (
	"errors"
	"strings"
	"testing"
)

var addressSeeds = []string{
	"tcp://127.0.0.1:8080", "tcp://:0", "tcp4://0.0.0.0:1", "tcp6://[::1]:443", "tcp6://[fe80::1%lo]:1",
	"udp://:53", "unix:///run/a.sock", "unix://@abs", "unixgram:///x", "TCP://[::ffff:1.2.3.4]:5",
	"tcp://[::1", "tcp://::1:80", "ftp://x:1", "x", "", "unix://", "tcp://a b:1", "tcp://h:65536",
	"http=tcp://:80", "a:b=tcp://:1", "=unix:///x", "n=unix:///a=b",
	"127.0.0.1:8080", ":80", "8080", "[::1]:1", "/run/a.sock", "@abs", "::1:80", "run/a", "tcp:80",
	"n=/a=b", "@a=b", "n=:1", "localhost:80",
}

// FuzzParseAddress checks that ParseAddress never panics, that its errors
// wrap ErrBadAddress and fit on one line, and that what it accepts prints
// as a URL that parses back to the same address.
func FuzzParseAddress(f *testing.F) {
	for _, s := range addressSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if !errors.Is(err, ErrBadAddress) {
				t.Fatalf("%q: %v does not wrap ErrBadAddress", s, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") || strings.Contains(err.Error(), "<nil>") {
				t.Fatalf("%q: malformed message %q", s, err)
			}
			return
		}
		checkAddress(t, s, a)
		// A short form names a stream socket: tcp or unix.
		if !strings.Contains(s, "://") && a.Network != TCP && a.Network != Unix {
			t.Fatalf("%q: short form parsed as %+v", s, a)
		}
	})
}

func checkAddress(t *testing.T, s string, a Address) {
	t.Helper()
	switch {
	case a.IsUnix():
		if a.Host != "" || a.Port != 0 || a.Path == "" || len(a.Path) > 107 || !strings.HasPrefix(a.Path, "/") && !a.IsAbstract() {
			t.Fatalf("%q: bad unix address %+v", s, a)
		}
	case a.Network == "":
		t.Fatalf("%q: no network in %+v", s, a)
	default:
		if a.Path != "" || a.Port < 0 || a.Port > 65535 {
			t.Fatalf("%q: bad inet address %+v", s, a)
		}
	}
	b, err := ParseAddress(a.String())
	if err != nil {
		t.Fatalf("%q parsed as %+v, whose String %q does not parse: %v", s, a, a.String(), err)
	}
	if b != a {
		t.Fatalf("%q: round trip through %q: %+v != %+v", s, a.String(), b, a)
	}
}

// FuzzParseListenFlag checks that an accepted --listen value has a valid
// name (or none) and an address that round-trips, and that the names of
// accepted values survive the trip through LISTEN_FDNAMES.
func FuzzParseListenFlag(f *testing.F) {
	for _, s := range addressSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseListenFlag(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("%q: message not one line: %q", s, err)
			}
			return
		}
		if sp.UID != -1 || sp.GID != -1 {
			t.Fatalf("%q: owner not left unchanged: %+v", s, sp)
		}
		if sp.Name != "" {
			if err := ValidName(sp.Name); err != nil {
				t.Fatalf("%q: accepted invalid name: %v", s, err)
			}
		}
		checkAddress(t, s, sp.Address)
		names := []string{sp.FDName(), "other"}
		env := ChildEnv(nil, nil, names)
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, EnvListenFDNames+"="); ok {
				if got := strings.Split(v, ":"); len(got) != 2 || got[0] != sp.FDName() {
					t.Fatalf("%q: LISTEN_FDNAMES %q does not give back %q", s, v, sp.FDName())
				}
			}
		}
	})
}
