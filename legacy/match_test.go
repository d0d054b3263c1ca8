package legacy

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// Helpers building held sockets and program addresses for the table.

func tcp(addr string, port int) Socket { return inetSocket(true, addr, port, false) }
func udp(addr string, port int) Socket { return inetSocket(false, addr, port, false) }

// tcp6only is a held IPv6 stream socket with IPV6_V6ONLY set.
func tcp6only(addr string, port int) Socket { return inetSocket(true, addr, port, true) }

func inetSocket(stream bool, addr string, port int, v6only bool) Socket {
	ip := netip.MustParseAddr(addr)
	fam := unix.AF_INET6
	if ip.Is4() {
		fam = unix.AF_INET
	}
	return Socket{Stream: stream, Family: fam, IP: ip, Port: port, V6Only: v6only}
}

func unixSocket(stream bool, path string) Socket {
	return Socket{Stream: stream, Family: unix.AF_UNIX, Path: path}
}

// in4 is a program's AF_INET bind address; in6 its AF_INET6 one (which may
// be an IPv4-mapped address, "::ffff:a.b.c.d").
func in4(addr string, port int) Addr {
	return Addr{Family: unix.AF_INET, IP: netip.MustParseAddr(addr), Port: port}
}

func in6(addr string, port int) Addr {
	return Addr{Family: unix.AF_INET6, IP: netip.MustParseAddr(addr), Port: port}
}

func unixAddr(path string) Addr { return Addr{Family: unix.AF_UNIX, Path: path} }

// TestMatch checks every rule of Match's doc comment, one group per rule.
func TestMatch(t *testing.T) {
	const p = 8080
	tests := []struct {
		name   string
		held   []Socket
		addr   Addr
		stream bool
		want   int
	}{
		// unix: the same path (or abstract name) and socket type.
		{"unix same path", []Socket{unixSocket(true, "/run/a.sock")}, unixAddr("/run/a.sock"), true, 0},
		{"unix other path", []Socket{unixSocket(true, "/run/a.sock")}, unixAddr("/run/b.sock"), true, -1},
		{"unix path is not a prefix match", []Socket{unixSocket(true, "/run/a.sock")}, unixAddr("/run/a.sock2"), true, -1},
		{"unix stream held, dgram bind", []Socket{unixSocket(true, "/run/a.sock")}, unixAddr("/run/a.sock"), false, -1},
		{"unix dgram held, dgram bind", []Socket{unixSocket(false, "/run/a.sock")}, unixAddr("/run/a.sock"), false, 0},
		{"unix dgram held, stream bind", []Socket{unixSocket(false, "/run/a.sock")}, unixAddr("/run/a.sock"), true, -1},
		{"unix same type picks its own", []Socket{unixSocket(true, "/run/a.sock"), unixSocket(false, "/run/a.sock")}, unixAddr("/run/a.sock"), false, 1},
		{"abstract same name", []Socket{unixSocket(true, "@hupd")}, unixAddr("@hupd"), true, 0},
		{"abstract other name", []Socket{unixSocket(true, "@hupd")}, unixAddr("@hupd2"), true, -1},
		{"abstract is not the path", []Socket{unixSocket(true, "@hupd")}, unixAddr("/hupd"), true, -1},
		{"unix bind never takes an inet socket", []Socket{tcp("0.0.0.0", p)}, unixAddr("/run/a.sock"), true, -1},
		{"inet bind never takes a unix socket", []Socket{unixSocket(true, "/run/a.sock")}, in4("127.0.0.1", p), true, -1},

		// inet: the same socket type ...
		{"tcp held, stream bind", []Socket{tcp("127.0.0.1", p)}, in4("127.0.0.1", p), true, 0},
		{"tcp held, dgram bind", []Socket{tcp("127.0.0.1", p)}, in4("127.0.0.1", p), false, -1},
		{"udp held, dgram bind", []Socket{udp("127.0.0.1", p)}, in4("127.0.0.1", p), false, 0},
		{"udp held, stream bind", []Socket{udp("127.0.0.1", p)}, in4("127.0.0.1", p), true, -1},
		{"tcp and udp held, dgram bind takes udp", []Socket{tcp("127.0.0.1", p), udp("127.0.0.1", p)}, in4("127.0.0.1", p), false, 1},
		{"tcp and udp held, stream bind takes tcp", []Socket{udp("127.0.0.1", p), tcp("127.0.0.1", p)}, in4("127.0.0.1", p), true, 1},

		// ... and port (never port 0).
		{"other port", []Socket{tcp("127.0.0.1", p)}, in4("127.0.0.1", p+1), true, -1},
		{"port 0 never matches a held port", []Socket{tcp("0.0.0.0", p)}, in4("0.0.0.0", 0), true, -1},
		{"port 0 never matches even a held port 0", []Socket{tcp("127.0.0.1", 0)}, in4("127.0.0.1", 0), true, -1},
		{"port 0 v6 on dual-stack", []Socket{tcp("::", p)}, in6("::", 0), true, -1},

		// An equal address (IPv4-mapped IPv6 and IPv4 are equal).
		{"v4 equal", []Socket{tcp("127.0.0.1", p)}, in4("127.0.0.1", p), true, 0},
		{"v4 different", []Socket{tcp("127.0.0.1", p)}, in4("127.0.0.2", p), true, -1},
		{"v6 equal", []Socket{tcp("::1", p)}, in6("::1", p), true, 0},
		{"v6 different", []Socket{tcp("::1", p)}, in6("fe80::1", p), true, -1},
		{"v4-mapped program, v4 held", []Socket{tcp("127.0.0.1", p)}, in6("::ffff:127.0.0.1", p), true, 0},
		{"v4 program, v4-mapped held", []Socket{tcp("::ffff:127.0.0.1", p)}, in4("127.0.0.1", p), true, 0},
		{"v4-mapped program, other v4 held", []Socket{tcp("127.0.0.1", p)}, in6("::ffff:127.0.0.2", p), true, -1},
		{"v4 is not v6 loopback", []Socket{tcp("::1", p)}, in4("127.0.0.1", p), true, -1},

		// held 0.0.0.0 takes any IPv4 and "::".
		{"held 0.0.0.0, program 0.0.0.0", []Socket{tcp("0.0.0.0", p)}, in4("0.0.0.0", p), true, 0},
		{"held 0.0.0.0, program 127.0.0.1", []Socket{tcp("0.0.0.0", p)}, in4("127.0.0.1", p), true, 0},
		{"held 0.0.0.0, program v4-mapped", []Socket{tcp("0.0.0.0", p)}, in6("::ffff:10.1.2.3", p), true, 0},
		{"held 0.0.0.0, program ::", []Socket{tcp("0.0.0.0", p)}, in6("::", p), true, 0},
		{"held 0.0.0.0, program ::1", []Socket{tcp("0.0.0.0", p)}, in6("::1", p), true, -1},
		{"held 0.0.0.0, program global v6", []Socket{tcp("0.0.0.0", p)}, in6("2001:db8::1", p), true, -1},

		// held "::" dual-stack takes anything.
		{"held :: dual, program ::", []Socket{tcp("::", p)}, in6("::", p), true, 0},
		{"held :: dual, program ::1", []Socket{tcp("::", p)}, in6("::1", p), true, 0},
		{"held :: dual, program 0.0.0.0", []Socket{tcp("::", p)}, in4("0.0.0.0", p), true, 0},
		{"held :: dual, program 127.0.0.1", []Socket{tcp("::", p)}, in4("127.0.0.1", p), true, 0},
		{"held :: dual, program v4-mapped", []Socket{tcp("::", p)}, in6("::ffff:127.0.0.1", p), true, 0},
		{"held :: dual udp, program 0.0.0.0 udp", []Socket{udp("::", p)}, in4("0.0.0.0", p), false, 0},

		// held "::" IPv6-only takes IPv6 but not IPv4 or mapped.
		{"held :: v6only, program ::", []Socket{tcp6only("::", p)}, in6("::", p), true, 0},
		{"held :: v6only, program ::1", []Socket{tcp6only("::", p)}, in6("::1", p), true, 0},
		{"held :: v6only, program 2001:db8::1", []Socket{tcp6only("::", p)}, in6("2001:db8::1", p), true, 0},
		{"held :: v6only, program 0.0.0.0", []Socket{tcp6only("::", p)}, in4("0.0.0.0", p), true, -1},
		{"held :: v6only, program 127.0.0.1", []Socket{tcp6only("::", p)}, in4("127.0.0.1", p), true, -1},
		{"held :: v6only, program v4-mapped", []Socket{tcp6only("::", p)}, in6("::ffff:127.0.0.1", p), true, -1},
		{"held v4-mapped v6only never takes v4", []Socket{tcp6only("::ffff:127.0.0.1", p)}, in4("127.0.0.1", p), true, -1},

		// A program's 0.0.0.0 or "::" takes a held specific address of its
		// family (a program's "::" also an IPv4 one).
		{"program 0.0.0.0, held 127.0.0.1", []Socket{tcp("127.0.0.1", p)}, in4("0.0.0.0", p), true, 0},
		{"program 0.0.0.0, held ::1", []Socket{tcp("::1", p)}, in4("0.0.0.0", p), true, -1},
		{"program 0.0.0.0, held v4-mapped", []Socket{tcp("::ffff:127.0.0.1", p)}, in4("0.0.0.0", p), true, 0},
		{"program ::ffff:0.0.0.0, held v4", []Socket{tcp("127.0.0.1", p)}, in6("::ffff:0.0.0.0", p), true, 0},
		{"program ::ffff:0.0.0.0, held v6", []Socket{tcp("::1", p)}, in6("::ffff:0.0.0.0", p), true, -1},
		{"program ::, held ::1", []Socket{tcp("::1", p)}, in6("::", p), true, 0},
		{"program ::, held 127.0.0.1", []Socket{tcp("127.0.0.1", p)}, in6("::", p), true, 0},
		{"program ::, held ::1 v6only", []Socket{tcp6only("::1", p)}, in6("::", p), true, 0},
		{"program ::1, held 127.0.0.1", []Socket{tcp("127.0.0.1", p)}, in6("::1", p), true, -1},

		// Among several, an exact match (same family and address) wins ...
		{"exact beats held 0.0.0.0", []Socket{tcp("0.0.0.0", p), tcp("127.0.0.1", p)}, in4("127.0.0.1", p), true, 1},
		{"exact beats held :: dual", []Socket{tcp("::", p), tcp("0.0.0.0", p)}, in4("0.0.0.0", p), true, 1},
		{"exact beats held specific for program ::", []Socket{tcp("::1", p), tcp("::", p)}, in6("::", p), true, 1},
		{"exact v6 beats equal v4", []Socket{tcp("127.0.0.1", p), tcp("::ffff:127.0.0.1", p)}, in6("::ffff:127.0.0.1", p), true, 1},
		{"exact v4 beats equal v4-mapped", []Socket{tcp("::ffff:127.0.0.1", p), tcp("127.0.0.1", p)}, in4("127.0.0.1", p), true, 1},
		{"exact of the other type does not count", []Socket{tcp("0.0.0.0", p), udp("127.0.0.1", p)}, in4("127.0.0.1", p), true, 0},
		{"exact of the other port does not count", []Socket{tcp("0.0.0.0", p), tcp("127.0.0.1", p+1)}, in4("127.0.0.1", p), true, 0},

		// ... then the first in order.
		{"first of two covering", []Socket{tcp("::", p), tcp("0.0.0.0", p)}, in4("127.0.0.1", p), true, 0},
		{"first of two covering, reversed", []Socket{tcp("0.0.0.0", p), tcp("::", p)}, in4("127.0.0.1", p), true, 0},
		{"first of two exact", []Socket{tcp("127.0.0.1", p+1), tcp("127.0.0.1", p), tcp("127.0.0.1", p)}, in4("127.0.0.1", p), true, 1},
		{"first of two unix", []Socket{unixSocket(true, "/a"), unixSocket(true, "/a")}, unixAddr("/a"), true, 0},

		{"nothing held", nil, in4("127.0.0.1", p), true, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Match(tt.held, tt.addr, tt.stream); got != tt.want {
				t.Errorf("Match(%v, %v, stream=%v) = %d, want %d", tt.held, tt.addr, tt.stream, got, tt.want)
			}
		})
	}
}

// Raw struct sockaddr builders, laid out as the kernel's (native-endian
// family, network-order port).

func rawFamily(fam int, size int) []byte {
	b := make([]byte, size)
	binary.NativeEndian.PutUint16(b, uint16(fam))
	return b
}

func rawIn4(addr string, port int) []byte {
	b := rawFamily(unix.AF_INET, unix.SizeofSockaddrInet4)
	binary.BigEndian.PutUint16(b[2:], uint16(port))
	a := netip.MustParseAddr(addr).As4()
	copy(b[4:], a[:])
	return b
}

func rawIn6(addr string, port int) []byte {
	b := rawFamily(unix.AF_INET6, unix.SizeofSockaddrInet6)
	binary.BigEndian.PutUint16(b[2:], uint16(port))
	binary.NativeEndian.PutUint32(b[4:], 0x12345) // flowinfo: ignored
	a := netip.MustParseAddr(addr).As16()
	copy(b[8:], a[:])
	binary.NativeEndian.PutUint32(b[24:], 7) // scope id: ignored
	return b
}

func rawUnix(path string) []byte { return append(rawFamily(unix.AF_UNIX, 2), path...) }

// TestParseSockaddr checks the decoding of every family bind can pass and
// the refusal of short or foreign buffers.
func TestParseSockaddr(t *testing.T) {
	full := rawFamily(unix.AF_UNIX, unix.SizeofSockaddrUnix) // sizeof(struct sockaddr_un), NUL-padded
	copy(full[2:], "/run/app.sock")
	tests := []struct {
		name    string
		b       []byte
		want    Addr
		wantErr bool
	}{
		{"inet", rawIn4("192.0.2.7", 8080), Addr{Family: unix.AF_INET, IP: netip.MustParseAddr("192.0.2.7"), Port: 8080}, false},
		{"inet any, high port", rawIn4("0.0.0.0", 65535), Addr{Family: unix.AF_INET, IP: netip.MustParseAddr("0.0.0.0"), Port: 65535}, false},
		{"inet without padding", rawIn4("127.0.0.1", 1)[:8], Addr{Family: unix.AF_INET, IP: netip.MustParseAddr("127.0.0.1"), Port: 1}, false},
		{"inet short", rawIn4("127.0.0.1", 1)[:7], Addr{}, true},
		{"inet family only", rawFamily(unix.AF_INET, 2), Addr{}, true},
		{"inet6", rawIn6("2001:db8::5", 443), Addr{Family: unix.AF_INET6, IP: netip.MustParseAddr("2001:db8::5"), Port: 443}, false},
		{"inet6 any", rawIn6("::", 80), Addr{Family: unix.AF_INET6, IP: netip.IPv6Unspecified(), Port: 80}, false},
		{"inet6 v4-mapped stays mapped", rawIn6("::ffff:127.0.0.1", 80), Addr{Family: unix.AF_INET6, IP: netip.MustParseAddr("::ffff:127.0.0.1"), Port: 80}, false},
		{"inet6 without scope id", rawIn6("::1", 80)[:24], Addr{Family: unix.AF_INET6, IP: netip.IPv6Loopback(), Port: 80}, false},
		{"inet6 short", rawIn6("::1", 80)[:23], Addr{}, true},
		{"inet6 sized as inet", rawIn6("::1", 80)[:16], Addr{}, true},
		{"unix path with NUL", rawUnix("/run/app.sock\x00"), Addr{Family: unix.AF_UNIX, Path: "/run/app.sock"}, false},
		{"unix path without NUL", rawUnix("/run/app.sock"), Addr{Family: unix.AF_UNIX, Path: "/run/app.sock"}, false},
		{"unix path NUL-padded to sizeof(sockaddr_un)", full, Addr{Family: unix.AF_UNIX, Path: "/run/app.sock"}, false},
		{"unix relative path", rawUnix("app.sock\x00"), Addr{Family: unix.AF_UNIX, Path: "app.sock"}, false},
		{"unix path ends at the first NUL", rawUnix("/a\x00/b\x00"), Addr{Family: unix.AF_UNIX, Path: "/a"}, false},
		{"unix abstract", rawUnix("\x00hupd"), Addr{Family: unix.AF_UNIX, Path: "@hupd"}, false},
		{"unix abstract keeps every byte", rawUnix("\x00a\x00b"), Addr{Family: unix.AF_UNIX, Path: "@a\x00b"}, false},
		{"unix abstract empty name", rawUnix("\x00"), Addr{Family: unix.AF_UNIX, Path: "@"}, false},
		{"unix unnamed", rawUnix(""), Addr{}, true},
		{"empty", nil, Addr{}, true},
		{"one byte", []byte{unix.AF_INET}, Addr{}, true},
		{"unknown family", append(rawFamily(unix.AF_PACKET, 2), make([]byte, 18)...), Addr{}, true},
		{"AF_UNSPEC", rawFamily(unix.AF_UNSPEC, 16), Addr{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSockaddr(tt.b)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseSockaddr(%q) = %+v, want an error", tt.b, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSockaddr(%q): %v", tt.b, err)
			}
			if got != tt.want {
				t.Errorf("parseSockaddr(%q) = %+v, want %+v", tt.b, got, tt.want)
			}
		})
	}
}

// TestParseSockaddrUnknownFamily proves an unknown family is reported as
// errFamily (and its family kept), not as a short buffer.
func TestParseSockaddrUnknownFamily(t *testing.T) {
	a, err := parseSockaddr(rawFamily(unix.AF_NETLINK, 12))
	if !errors.Is(err, errFamily) {
		t.Fatalf("err = %v, want errFamily", err)
	}
	if a.Family != unix.AF_NETLINK {
		t.Errorf("Family = %d, want %d", a.Family, unix.AF_NETLINK)
	}
}

// TestAddrString checks the forms logs show.
func TestAddrString(t *testing.T) {
	for _, tt := range []struct {
		a    Addr
		want string
	}{
		{in4("127.0.0.1", 80), "127.0.0.1:80"},
		{in6("::1", 443), "[::1]:443"},
		{unixAddr("/run/a.sock"), "unix:/run/a.sock"},
		{unixAddr("@hupd"), "unix:@hupd"},
		{Addr{Family: unix.AF_PACKET}, "family 17"},
	} {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.a, got, tt.want)
		}
	}
}

// FuzzParseSockaddr proves parseSockaddr never panics, whatever bind's
// caller passes, and that what it accepts is well formed.
func FuzzParseSockaddr(f *testing.F) {
	for _, b := range [][]byte{
		nil, {0}, {0, 0},
		rawIn4("127.0.0.1", 80), rawIn4("127.0.0.1", 80)[:7],
		rawIn6("::1", 80), rawIn6("::1", 80)[:23],
		rawUnix("/tmp/x\x00"), rawUnix("\x00abstract"), rawUnix(""), rawUnix("\x00"),
		rawFamily(unix.AF_PACKET, 20),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseSockaddr(b)
		if err != nil {
			return
		}
		switch a.Family {
		case unix.AF_INET:
			if !a.IP.Is4() || a.Port < 0 || a.Port > 65535 {
				t.Fatalf("bad inet result %+v", a)
			}
		case unix.AF_INET6:
			if !a.IP.Is6() || a.Port < 0 || a.Port > 65535 {
				t.Fatalf("bad inet6 result %+v", a)
			}
		case unix.AF_UNIX:
			// Server.bind indexes Path[0].
			if a.Path == "" {
				t.Fatalf("empty unix path from %q", b)
			}
		default:
			t.Fatalf("family %d accepted", a.Family)
		}
		_ = a.String()
	})
}
