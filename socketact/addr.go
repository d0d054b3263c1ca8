package socketact

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Network kinds a listen address may name.
const (
	TCP      = "tcp"
	TCP4     = "tcp4"
	TCP6     = "tcp6"
	UDP      = "udp"
	UDP4     = "udp4"
	UDP6     = "udp6"
	Unix     = "unix"
	Unixgram = "unixgram"
)

// UnknownName is the name systemd gives an unnamed socket in LISTEN_FDNAMES.
const UnknownName = "unknown"

var validSchemes = []string{TCP, TCP4, TCP6, UDP, UDP4, UDP6, Unix, Unixgram}

// ErrBadAddress is wrapped by every error ParseAddress returns.
var ErrBadAddress = errors.New("socketact: bad listen address")

// Address is a parsed listen URL such as tcp://127.0.0.1:8080 or
// unix:///run/app.sock.
type Address struct {
	Network string // one of the network constants
	// Host and Port for inet networks. Host is empty for "all addresses".
	Host string
	Port int
	// Path for unix networks; a leading '@' names the abstract namespace.
	Path string
}

// IsUnix reports whether a is a unix-domain address.
func (a Address) IsUnix() bool { return a.Network == Unix || a.Network == Unixgram }

// IsAbstract reports whether a names the abstract unix namespace.
func (a Address) IsAbstract() bool { return a.IsUnix() && strings.HasPrefix(a.Path, "@") }

// Stream reports whether a is a stream (listening) socket.
func (a Address) Stream() bool {
	switch a.Network {
	case TCP, TCP4, TCP6, Unix:
		return true
	}
	return false
}

// String returns a in URL form; ParseAddress(a.String()) == a.
func (a Address) String() string {
	if a.IsUnix() {
		return a.Network + "://" + a.Path
	}
	return a.Network + "://" + net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
}

// ParseAddress parses a listen URL:
//
//	tcp://HOST:PORT tcp4://HOST:PORT tcp6://[HOST]:PORT
//	udp://HOST:PORT udp4://HOST:PORT udp6://[HOST]:PORT
//	unix:///absolute/path unix://@abstract unixgram://…
//
// HOST may be empty (all addresses), an IP literal or a name; PORT may be 0.
func ParseAddress(s string) (Address, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Address{}, fmt.Errorf("%w %q: want SCHEME://ADDRESS with SCHEME one of %s", ErrBadAddress, s, strings.Join(validSchemes, ", "))
	}
	a := Address{Network: strings.ToLower(scheme)}
	switch a.Network {
	case Unix, Unixgram:
		return a, parseUnixPath(&a, s, rest)
	case TCP, TCP4, TCP6, UDP, UDP4, UDP6:
		return a, parseHostPort(&a, s, rest)
	}
	return Address{}, fmt.Errorf("%w %q: unknown scheme %q: valid schemes are %s", ErrBadAddress, s, scheme, strings.Join(validSchemes, ", "))
}

func parseUnixPath(a *Address, s, path string) error {
	switch {
	case path == "" || path == "@":
		return fmt.Errorf("%w %q: empty unix socket path", ErrBadAddress, s)
	case strings.ContainsRune(path, 0):
		return fmt.Errorf("%w %q: NUL byte in unix socket path", ErrBadAddress, s)
	case !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "@"):
		return fmt.Errorf("%w %q: unix socket path must be absolute (unix:///path) or abstract (unix://@name)", ErrBadAddress, s)
	case len(path) > 107: // sizeof(sun_path) - 1
		return fmt.Errorf("%w %q: unix socket path longer than 107 bytes", ErrBadAddress, s)
	}
	a.Path = path
	return nil
}

func parseHostPort(a *Address, s, hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// *net.AddrError has no Unwrap: its reason is the Err field.
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%w %q: %s", ErrBadAddress, s, ae.Err)
		}
		return fmt.Errorf("%w %q: %v", ErrBadAddress, s, err)
	}
	if port == "" {
		return fmt.Errorf("%w %q: missing port", ErrBadAddress, s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%w %q: port %q is not a number from 0 to 65535", ErrBadAddress, s, port)
	}
	a.Host, a.Port = host, int(n)
	if ip, err := netip.ParseAddr(host); err == nil {
		switch {
		case strings.HasSuffix(a.Network, "4") && !ip.Unmap().Is4():
			return fmt.Errorf("%w %q: %s is not an IPv4 address", ErrBadAddress, s, host)
		case strings.HasSuffix(a.Network, "6") && !ip.Is6():
			return fmt.Errorf("%w %q: %s is not an IPv6 address", ErrBadAddress, s, host)
		}
	} else if ip, _, ok := strings.Cut(host, "%"); ok && net.ParseIP(ip).To4() != nil {
		// netip rejects the zone, so this is not a host name either.
		return fmt.Errorf("%w %q: zone on an IPv4 address", ErrBadAddress, s)
	} else if strings.ContainsAny(host, " /[]%") {
		return fmt.Errorf("%w %q: invalid host %q", ErrBadAddress, s, host)
	}
	return nil
}

// ValidName reports why name cannot be used in LISTEN_FDNAMES, or nil.
// systemd allows up to 255 ASCII characters, no ':' and no control characters.
func ValidName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("socketact: socket name %q must be 1 to 255 characters", name)
	}
	for _, r := range name {
		if r > 126 || r < 32 || r == ':' {
			return fmt.Errorf("socketact: socket name %q may hold only printable ASCII without ':'", name)
		}
	}
	return nil
}

// Spec is one socket to open: a name, an address and options.
type Spec struct {
	Name    string // LISTEN_FDNAMES entry; UnknownName when empty
	Address Address
	// Backlog for listen(2); 0 means the kernel maximum (net.core.somaxconn).
	Backlog   int
	ReusePort bool
	// V6Only, when set, pins IPV6_V6ONLY; nil keeps Go's convention: dual
	// stack for tcp/udp on an unspecified host, v6 only for tcp6/udp6.
	V6Only *bool
	// NonBlocking puts the socket's file description in O_NONBLOCK mode, as
	// systemd's NonBlocking= does; false leaves it blocking (systemd's
	// default) or, for a socket hupd inherited, as it came. The flag is
	// shared by hupd and every generation.
	NonBlocking bool
	// Mode, Owner and Group of a unix socket file; Mode 0 keeps the default.
	Mode     uint32
	UID, GID int // -1 keeps the default
	// Handoff names the hand-over dialects (Handoffs) that describe this
	// socket besides LISTEN_FDS, on top of those every socket gets
	// ([[listen]] env; see HandoffEnv). It is what the child is told, not
	// a property of the socket: SameSocket, CanReconfigure and Respec
	// ignore it, so a new list keeps the socket, and the supervisor starts
	// a new generation when the child's variables change.
	Handoff []string
	// Adopt leaves the binding to the program (legacy adopt mode): Open
	// makes an unbound socket of the address's family and type that holds
	// the listener's fd number until a program's own bound socket is put on
	// it (see Listener.Pending).
	Adopt bool
	// resolved is Address.Host looked up ahead by ResolveHosts; nil: a
	// host name is looked up when the socket is opened.
	resolved *hostLookup
}

// FDName returns the name to put in LISTEN_FDNAMES.
func (s Spec) FDName() string {
	if s.Name == "" {
		return UnknownName
	}
	return s.Name
}

// StoreName is the name hupd keeps the socket under in a service manager's
// fd store (FDNAME=), which a restarted hupd receives in LISTEN_FDNAMES:
// the socket's name, or for an unnamed socket its address as configured
// with every character a name cannot hold (':', anything but printable
// ASCII) made '_' ("tcp://127.0.0.1:8080" is "tcp_//127.0.0.1_8080"), so
// that it names that socket and no unnamed other.
func (s Spec) StoreName() string {
	if s.Name != "" && s.Name != UnknownName {
		return s.Name
	}
	b := []byte(s.Address.String())
	for i, c := range b {
		if c < ' ' || c > '~' || c == ':' {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), 255)])
}

// ParseListenFlag parses a --listen value of the form [NAME=]URL.
func ParseListenFlag(v string) (Spec, error) {
	var sp Spec
	if name, url, ok := strings.Cut(v, "="); ok && !strings.Contains(name, "://") {
		if err := ValidName(name); err != nil {
			return sp, err
		}
		sp.Name, v = name, url
	}
	a, err := ParseAddress(v)
	if err != nil {
		return sp, err
	}
	sp.Address = a
	sp.UID, sp.GID = -1, -1
	return sp, nil
}
