package socketact

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Address
		str  string // String(); "" means in
	}{
		{"tcp://127.0.0.1:8080", Address{Network: TCP, Host: "127.0.0.1", Port: 8080}, ""},
		{"tcp://:0", Address{Network: TCP}, ""},
		{"TCP://:80", Address{Network: TCP, Port: 80}, "tcp://:80"},
		{"tcp://localhost:65535", Address{Network: TCP, Host: "localhost", Port: 65535}, ""},
		{"tcp://[::]:80", Address{Network: TCP, Host: "::", Port: 80}, ""},
		{"tcp4://0.0.0.0:80", Address{Network: TCP4, Host: "0.0.0.0", Port: 80}, ""},
		{"tcp4://[::ffff:127.0.0.1]:80", Address{Network: TCP4, Host: "::ffff:127.0.0.1", Port: 80}, ""},
		{"tcp6://[::1]:443", Address{Network: TCP6, Host: "::1", Port: 443}, ""},
		{"tcp6://[fe80::1%lo]:443", Address{Network: TCP6, Host: "fe80::1%lo", Port: 443}, ""},
		{"tcp://:080", Address{Network: TCP, Port: 80}, "tcp://:80"},
		{"udp://127.0.0.1:53", Address{Network: UDP, Host: "127.0.0.1", Port: 53}, ""},
		{"udp4://:53", Address{Network: UDP4, Port: 53}, ""},
		{"udp6://[::1]:53", Address{Network: UDP6, Host: "::1", Port: 53}, ""},
		{"unix:///run/app.sock", Address{Network: Unix, Path: "/run/app.sock"}, ""},
		{"unix://@app", Address{Network: Unix, Path: "@app"}, ""},
		{"unixgram:///run/log.sock", Address{Network: Unixgram, Path: "/run/log.sock"}, ""},
		{"unix:///" + strings.Repeat("a", 106), Address{Network: Unix, Path: "/" + strings.Repeat("a", 106)}, ""},

		// Short forms: stream sockets, as systemd's ListenStream= reads them.
		{"127.0.0.1:8080", Address{Network: TCP, Host: "127.0.0.1", Port: 8080}, "tcp://127.0.0.1:8080"},
		{":8080", Address{Network: TCP, Port: 8080}, "tcp://:8080"},
		{":0", Address{Network: TCP}, "tcp://:0"},
		{"8080", Address{Network: TCP, Port: 8080}, "tcp://:8080"},
		{"0", Address{Network: TCP}, "tcp://:0"},
		{"[::1]:8080", Address{Network: TCP, Host: "::1", Port: 8080}, "tcp://[::1]:8080"},
		{"[::]:80", Address{Network: TCP, Host: "::", Port: 80}, "tcp://[::]:80"},
		{"[fe80::1%lo]:80", Address{Network: TCP, Host: "fe80::1%lo", Port: 80}, "tcp://[fe80::1%lo]:80"},
		{"0.0.0.0:80", Address{Network: TCP, Host: "0.0.0.0", Port: 80}, "tcp://0.0.0.0:80"},
		{"localhost:80", Address{Network: TCP, Host: "localhost", Port: 80}, "tcp://localhost:80"},
		{"/run/app.sock", Address{Network: Unix, Path: "/run/app.sock"}, "unix:///run/app.sock"},
		{"/run/a=b.sock", Address{Network: Unix, Path: "/run/a=b.sock"}, "unix:///run/a=b.sock"},
		{"@app", Address{Network: Unix, Path: "@app"}, "unix://@app"},
		{"/" + strings.Repeat("a", 106), Address{Network: Unix, Path: "/" + strings.Repeat("a", 106)}, "unix:///" + strings.Repeat("a", 106)},
	} {
		a, err := ParseAddress(tc.in)
		if err != nil {
			t.Errorf("ParseAddress(%q): %v", tc.in, err)
			continue
		}
		if a != tc.want {
			t.Errorf("ParseAddress(%q) = %+v, want %+v", tc.in, a, tc.want)
		}
		str := tc.str
		if str == "" {
			str = tc.in
		}
		if a.String() != str {
			t.Errorf("%q: String() = %q, want %q", tc.in, a.String(), str)
		}
	}
}

func TestParseAddressErrors(t *testing.T) {
	for _, tc := range []struct{ in, says string }{
		{"", "want SCHEME://ADDRESS with SCHEME one of tcp, tcp4, tcp6, udp, udp4, udp6, unix, unixgram, or " + shortForms},
		{"http://:80", `unknown scheme "http": valid schemes are tcp, tcp4, tcp6, udp, udp4, udp6, unix, unixgram`},
		{"://:80", `unknown scheme ""`},
		{"tcp://:65536", `port "65536" is not a number from 0 to 65535`},
		{"tcp://:-1", `port "-1" is not a number`},
		{"tcp://:http", `port "http" is not a number`},
		{"tcp://:", "missing port"},
		{"tcp://127.0.0.1", "missing port in address"},
		{"tcp://[::1", "missing ']' in address"},
		{"tcp://::1:80", "too many colons in address"},
		{"tcp://a b:80", `invalid host "a b"`},
		{"tcp://a/b:80", `invalid host "a/b"`},
		{"tcp4://[::1]:80", "::1 is not an IPv4 address"},
		{"udp4://[::1]:80", "::1 is not an IPv4 address"},
		{"tcp6://127.0.0.1:80", "127.0.0.1 is not an IPv6 address"},
		{"tcp://127.0.0.1%eth0:80", "zone on an IPv4 address"},
		{"unix://", "empty unix socket path"},
		{"unix://@", "empty unix socket path"},
		{"unix://run/app.sock", "must be absolute (unix:///path) or abstract (unix://@name)"},
		{"unix:///a\x00b", "NUL byte"},
		{"unix:///" + strings.Repeat("a", 107), "longer than 107 bytes"},

		// Bad short forms say why, then every accepted form.
		{"localhost", `"localhost": missing port; want ` + shortForms + ", or SCHEME://ADDRESS"},
		{"127.0.0.1", "missing port; want " + shortForms},
		{"127.0.0.1:", "missing port; want " + shortForms},
		{"::1:8080", "an IPv6 address needs brackets: [::1]:8080; want " + shortForms},
		{"::", "missing port (an IPv6 address goes in brackets: [::]:PORT); want"},
		{"::1", "missing port (an IPv6 address goes in brackets: [::1]:PORT); want"},
		{"fe80::1%lo:80", "an IPv6 address needs brackets: [fe80::1%lo]:80; want"},
		{"a:b:80", "too many colons in address; want"},
		{"[::1]", "missing port in address; want " + shortForms},
		{"[::1:80", "missing ']' in address; want"},
		{"127.0.0.1:http", `port "http" is not a number from 0 to 65535; want ` + shortForms},
		{"65536", `port "65536" is not a number from 0 to 65535; want`},
		{"a b:80", `invalid host "a b"; want`},
		{"run/app.sock", "a unix socket path must be absolute: hupd, its children and its control commands may each resolve a relative one against a different directory; want " + shortForms},
		{"./app.sock", "a unix socket path must be absolute"},
		{"app.sock", "missing port; want"},
		{"@", "empty unix socket path; want"},
		{"/a\x00b", "NUL byte in unix socket path; want"},
		{"/" + strings.Repeat("a", 107), "unix socket path longer than 107 bytes; want"},
		{"tcp:8080", `a scheme wants "://": write "tcp://:8080"; want`},
		{"TCP6:[::1]:80", `a scheme wants "://": write "tcp6://[::1]:80"; want`},
		{"unix:/run/a.sock", `a scheme wants "://": write "unix:///run/a.sock"; want`},
		{"unix:@a", `a scheme wants "://": write "unix://@a"; want`},
	} {
		_, err := ParseAddress(tc.in)
		if err == nil {
			t.Errorf("ParseAddress(%q) succeeded", tc.in)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, ErrBadAddress) {
			t.Errorf("%q: %v does not wrap ErrBadAddress", tc.in, err)
		}
		if !strings.Contains(msg, tc.says) {
			t.Errorf("%q: %q does not say %q", tc.in, msg, tc.says)
		}
		if strings.Contains(msg, "<nil>") || strings.ContainsAny(msg, "\n\r") {
			t.Errorf("%q: malformed message %q", tc.in, msg)
		}
	}
}

func TestAddressKinds(t *testing.T) {
	for _, tc := range []struct {
		in                     string
		unix, abstract, stream bool
	}{
		{"tcp://:1", false, false, true},
		{"tcp4://:1", false, false, true},
		{"tcp6://:1", false, false, true},
		{"udp://:1", false, false, false},
		{"unix:///a", true, false, true},
		{"unix://@a", true, true, true},
		{"unixgram:///a", true, false, false},
		{"unixgram://@a", true, true, false},
	} {
		a, err := ParseAddress(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if a.IsUnix() != tc.unix || a.IsAbstract() != tc.abstract || a.Stream() != tc.stream {
			t.Errorf("%q: IsUnix %v IsAbstract %v Stream %v", tc.in, a.IsUnix(), a.IsAbstract(), a.Stream())
		}
	}
}

func TestParseListenFlag(t *testing.T) {
	for _, tc := range []struct {
		in, name string
		addr     Address
	}{
		{"tcp://:80", "", Address{Network: TCP, Port: 80}},
		{"http=tcp://:80", "http", Address{Network: TCP, Port: 80}},
		{"admin=unix:///run/a=b.sock", "admin", Address{Network: Unix, Path: "/run/a=b.sock"}},
		{"unix:///run/a=b.sock", "", Address{Network: Unix, Path: "/run/a=b.sock"}},
		{"my name=udp://:53", "my name", Address{Network: UDP, Port: 53}},
		{"http=:80", "http", Address{Network: TCP, Port: 80}},
		{"http=127.0.0.1:80", "http", Address{Network: TCP, Host: "127.0.0.1", Port: 80}},
		{"80", "", Address{Network: TCP, Port: 80}},
		{"[::1]:80", "", Address{Network: TCP, Host: "::1", Port: 80}},
		{"admin=/run/a=b.sock", "admin", Address{Network: Unix, Path: "/run/a=b.sock"}},
		{"/run/a=b.sock", "", Address{Network: Unix, Path: "/run/a=b.sock"}},
		{"@a=b", "", Address{Network: Unix, Path: "@a=b"}},
		{"@a=unix://@b", "@a", Address{Network: Unix, Path: "@b"}},
		{"/n=tcp://:1", "/n", Address{Network: TCP, Port: 1}},
		{"admin=@ctl", "admin", Address{Network: Unix, Path: "@ctl"}},
	} {
		sp, err := ParseListenFlag(tc.in)
		if err != nil {
			t.Errorf("ParseListenFlag(%q): %v", tc.in, err)
			continue
		}
		if sp.Name != tc.name || sp.Address != tc.addr || sp.UID != -1 || sp.GID != -1 {
			t.Errorf("ParseListenFlag(%q) = %+v", tc.in, sp)
		}
		if want := tc.name; sp.FDName() != want && !(want == "" && sp.FDName() == UnknownName) {
			t.Errorf("%q: FDName() = %q", tc.in, sp.FDName())
		}
	}
	for _, in := range []string{"=tcp://:80", "a:b=tcp://:80", "x=ftp://:21", "x=", "tcp://:99999", "bad\tname=tcp://:1", "=:80", "x=run/a.sock", "a:b=:80"} {
		if sp, err := ParseListenFlag(in); err == nil {
			t.Errorf("ParseListenFlag(%q) = %+v, want an error", in, sp)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"http", "a", "with space", "a=b", "~!@#$%^&*()", strings.Repeat("n", 255)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a:b", "tab\there", "new\nline", "\x7f", "é", strings.Repeat("n", 256)} {
		if err := ValidName(bad); err == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
}
