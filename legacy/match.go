package legacy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Socket is a held socket as the kernel reports it.
type Socket struct {
	File   *os.File
	Stream bool // SOCK_STREAM; otherwise SOCK_DGRAM
	Family int  // unix.AF_INET, AF_INET6 or AF_UNIX
	IP     netip.Addr
	Port   int
	V6Only bool   // AF_INET6 only: no IPv4 through this socket
	Path   string // AF_UNIX: the path, or "@name" for an abstract name
	// Pending (adopt mode): File is an unbound placeholder and the fields
	// above describe the configured address. The first program socket
	// bound to an address it covers is adopted: put on File's fd number.
	Pending bool
	ino     uint64 // identity, to recognise it in the program
}

// Expect describes placeholder f (see Socket.Pending), to be replaced by
// the first program socket of the given type bound to an address that sa
// (with IPV6_V6ONLY v6only) covers.
func Expect(f *os.File, stream bool, sa unix.Sockaddr, v6only bool) Socket {
	a := sockaddrAddr(sa)
	return Socket{File: f, Stream: stream, Family: a.Family, IP: a.IP, Port: a.Port, Path: a.Path,
		V6Only: a.Family == unix.AF_INET6 && v6only, Pending: true}
}

// Describe reads what Match needs of held socket f.
func Describe(f *os.File) (Socket, error) {
	fd := int(f.Fd())
	s := Socket{File: f}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return s, os.NewSyscallError("fstat", err)
	}
	s.ino = st.Ino
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return s, os.NewSyscallError("getsockopt SO_TYPE", err)
	}
	s.Stream = typ == unix.SOCK_STREAM
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return s, os.NewSyscallError("getsockname", err)
	}
	a := sockaddrAddr(sa)
	if a.Family == 0 {
		return s, fmt.Errorf("socket of an address family hupd does not redirect (%T)", sa)
	}
	s.Family, s.IP, s.Port, s.Path = a.Family, a.IP, a.Port, a.Path
	if a.Family == unix.AF_INET6 {
		v6only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		if err != nil {
			return s, os.NewSyscallError("getsockopt IPV6_V6ONLY", err)
		}
		s.V6Only = v6only != 0
	}
	return s, nil
}

// sockaddrAddr converts an inet or unix sockaddr; any other gives Family 0.
func sockaddrAddr(sa unix.Sockaddr) Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return Addr{Family: unix.AF_INET, IP: netip.AddrFrom4(sa.Addr), Port: sa.Port}
	case *unix.SockaddrInet6:
		return Addr{Family: unix.AF_INET6, IP: netip.AddrFrom16(sa.Addr), Port: sa.Port}
	case *unix.SockaddrUnix:
		a := Addr{Family: unix.AF_UNIX, Path: sa.Name}
		if len(a.Path) > 0 && a.Path[0] == 0 {
			a.Path = "@" + a.Path[1:]
		}
		return a
	}
	return Addr{}
}

// Addr is the address a program passed to bind.
type Addr struct {
	Family int
	IP     netip.Addr
	Port   int
	Path   string // AF_UNIX: the path ("@name" for an abstract name), as given
}

func (a Addr) String() string {
	switch a.Family {
	case unix.AF_UNIX:
		return "unix:" + a.Path
	case unix.AF_INET, unix.AF_INET6:
		return netip.AddrPortFrom(a.IP, uint16(a.Port)).String()
	}
	return "family " + strconv.Itoa(a.Family)
}

var errFamily = errors.New("not an inet or unix address")

// parseSockaddr decodes a struct sockaddr as bind received it.
func parseSockaddr(b []byte) (Addr, error) {
	if len(b) < 2 {
		return Addr{}, errors.New("address too short")
	}
	a := Addr{Family: int(binary.NativeEndian.Uint16(b))}
	switch a.Family {
	case unix.AF_INET:
		if len(b) < 8 {
			return a, errors.New("sockaddr_in too short")
		}
		a.Port = int(binary.BigEndian.Uint16(b[2:]))
		a.IP = netip.AddrFrom4([4]byte(b[4:8]))
	case unix.AF_INET6:
		if len(b) < 24 {
			return a, errors.New("sockaddr_in6 too short")
		}
		a.Port = int(binary.BigEndian.Uint16(b[2:]))
		a.IP = netip.AddrFrom16([16]byte(b[8:24]))
	case unix.AF_UNIX:
		p := b[2:]
		if len(p) == 0 {
			return a, errors.New("unnamed unix address")
		}
		if p[0] == 0 {
			a.Path = "@" + string(p[1:])
			break
		}
		for i, c := range p {
			if c == 0 {
				p = p[:i]
				break
			}
		}
		a.Path = string(p)
	default:
		return a, errFamily
	}
	return a, nil
}

// Match returns the index of the held socket that a bind of a socket
// (stream or datagram) to a goes to, or -1:
//
//   - unix: the same path (or abstract name) and socket type;
//   - inet: the same socket type and port (never port 0), and a held
//     address that covers a's: an equal address (IPv4-mapped IPv6 and IPv4
//     are equal), or either side unspecified with families that meet —
//     held 0.0.0.0 takes any IPv4 and "::"; held "::" dual-stack takes
//     anything; held "::" IPv6-only takes IPv6 but not IPv4 or mapped;
//     a program's 0.0.0.0 (or ::ffff:0.0.0.0) or "::" takes a held
//     specific address of its family (a program's "::" also an IPv4 one).
//
// Among several, an exact match (same family and address) wins, then the
// first in order.
func Match(held []Socket, a Addr, stream bool) int {
	best, bestScore := -1, 0
	for i, h := range held {
		if h.Stream != stream {
			continue
		}
		score := 0
		switch {
		case a.Family == unix.AF_UNIX && h.Family == unix.AF_UNIX:
			if a.Path == h.Path {
				score = 3
			}
		case a.Family == unix.AF_UNIX || h.Family == unix.AF_UNIX:
		case a.Port == 0 || a.Port != h.Port:
		case a.Family == h.Family && a.IP == h.IP:
			score = 3
		case covers(h, a):
			score = 1
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// Adoptable returns the index of a pending held socket (adopt mode) that a
// program's socket may become: one of type stream or datagram, of family
// fam (and, for IPv6, IPV6_V6ONLY v6only), bound to a. It must be of the
// configured type and family, and IPV6_V6ONLY, on the configured port, at
// the configured address or inside it (configured unspecified) — never
// wider, unlike Match: hupd would hold, for every later generation, a
// socket exposed more than its configuration says. -1 if none.
func Adoptable(held []Socket, a Addr, stream bool, fam int, v6only bool) int {
	for i, h := range held {
		if !h.Pending || h.Stream != stream || h.Family != fam || a.Family != fam {
			continue
		}
		if fam == unix.AF_UNIX {
			if a.Path == h.Path {
				return i
			}
			continue
		}
		if a.Port == 0 || a.Port != h.Port || fam == unix.AF_INET6 && v6only != h.V6Only {
			continue
		}
		if a.IP == h.IP || h.IP.IsUnspecified() {
			return i
		}
	}
	return -1
}

func covers(h Socket, a Addr) bool {
	mapped := a.IP.Is4() || a.IP.Is4In6()
	switch {
	case h.IP.Unmap() == a.IP.Unmap() && !(h.Family == unix.AF_INET6 && h.V6Only && mapped):
		return true
	case h.IP.IsUnspecified():
		switch {
		case h.Family == unix.AF_INET:
			return mapped || a.IP.IsUnspecified()
		case h.V6Only:
			return !mapped
		}
		return true
	case a.IP.Unmap().IsUnspecified():
		// "::" takes anything; 0.0.0.0 and ::ffff:0.0.0.0 IPv4 only.
		return a.Family == unix.AF_INET6 && !mapped || h.IP.Unmap().Is4()
	}
	return false
}
