package socketact

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
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

// ParseAddress parses a listen address: a URL
//
//	tcp://HOST:PORT tcp4://HOST:PORT tcp6://[HOST]:PORT
//	udp://HOST:PORT udp4://HOST:PORT udp6://[HOST]:PORT
//	unix:///absolute/path unix://@abstract unixgram://…
//
// or a short form, which names a stream socket as systemd's ListenStream=
// does:
//
//	HOST:PORT, :PORT, [IPV6]:PORT   tcp://HOST:PORT (":PORT": all addresses, dual stack)
//	PORT                            tcp://:PORT, as ListenStream=PORT
//	/absolute/path                  unix:///absolute/path
//	@name                           unix://@name (abstract namespace)
//
// HOST may be empty (all addresses), an IP literal or a name; PORT may be 0.
// An IPv6 literal needs its brackets. A relative path is refused: hupd,
// its children and its control commands may each resolve it against a
// different working directory. The Address is the same whichever form
// named it, and String gives its URL.
func ParseAddress(s string) (Address, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return parseShort(s)
	}
	a := Address{Network: strings.ToLower(scheme)}
	var err error
	switch a.Network {
	case Unix, Unixgram:
		err = parseUnixPath(&a, rest)
	case TCP, TCP4, TCP6, UDP, UDP4, UDP6:
		err = parseHostPort(&a, rest)
	default:
		err = fmt.Errorf("unknown scheme %q: valid schemes are %s", scheme, strings.Join(validSchemes, ", "))
	}
	if err != nil {
		return Address{}, fmt.Errorf("%w %q: %w", ErrBadAddress, s, err)
	}
	return a, nil
}

// shortForms lists the forms an address without a scheme may take, for
// the error that refuses one.
const shortForms = "HOST:PORT, :PORT, [IPV6]:PORT or PORT (tcp), /ABSOLUTE/PATH or @ABSTRACT (unix)"

// parseShort parses an address without a scheme (see ParseAddress). Its
// errors end with every accepted form.
func parseShort(s string) (Address, error) {
	var a Address
	var err error
	switch {
	case s == "":
		return Address{}, fmt.Errorf("%w %q: want SCHEME://ADDRESS with SCHEME one of %s, or %s", ErrBadAddress, s, strings.Join(validSchemes, ", "), shortForms)
	case strings.HasPrefix(s, "/") || strings.HasPrefix(s, "@"):
		a.Network = Unix
		err = parseUnixPath(&a, s)
	case strings.Trim(s, "0123456789") == "":
		// A bare port, as systemd's ListenStream= reads it: all
		// addresses, dual stack.
		a.Network = TCP
		err = parseHostPort(&a, ":"+s)
	case strings.HasPrefix(s, "[") || strings.Contains(s, ":"):
		a.Network = TCP
		host, rest, _ := strings.Cut(s, ":")
		switch {
		case slices.Contains(validSchemes, strings.ToLower(host)):
			scheme := strings.ToLower(host)
			switch rest = strings.TrimLeft(rest, "/"); {
			case scheme == Unix || scheme == Unixgram:
				if !strings.HasPrefix(rest, "@") {
					rest = "/" + rest // unix:/run/a meant unix:///run/a
				}
			case strings.Trim(rest, "0123456789") == "":
				rest = ":" + rest // tcp:80 meant tcp://:80
			}
			err = fmt.Errorf("a scheme wants \"://\": write %q", scheme+"://"+rest)
		case !strings.HasPrefix(s, "[") && strings.Count(s, ":") > 1:
			i := strings.LastIndexByte(s, ':')
			// ::1:80 is an IPv6 address too, but [::1]:80 is what
			// such a value means far more often.
			if _, perr := netip.ParseAddr(s[:i]); perr == nil {
				err = fmt.Errorf("an IPv6 address needs brackets: [%s]:%s", s[:i], s[i+1:])
			} else if _, perr := netip.ParseAddr(s); perr == nil {
				err = fmt.Errorf("missing port (an IPv6 address goes in brackets: [%s]:PORT)", s)
			} else {
				err = errors.New("too many colons in address")
			}
		default:
			err = parseHostPort(&a, s)
		}
	case strings.Contains(s, "/") || strings.HasPrefix(s, "."):
		err = errors.New("a unix socket path must be absolute: hupd, its children and its control commands may each resolve a relative one against a different directory")
	default:
		err = errors.New("missing port")
	}
	if err != nil {
		return Address{}, fmt.Errorf("%w %q: %w; want %s, or SCHEME://ADDRESS", ErrBadAddress, s, err, shortForms)
	}
	return a, nil
}

func parseUnixPath(a *Address, path string) error {
	switch {
	case path == "" || path == "@":
		return errors.New("empty unix socket path")
	case strings.ContainsRune(path, 0):
		return errors.New("NUL byte in unix socket path")
	case !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "@"):
		return errors.New("unix socket path must be absolute (unix:///path) or abstract (unix://@name)")
	case len(path) > 107: // sizeof(sun_path) - 1
		return errors.New("unix socket path longer than 107 bytes")
	}
	a.Path = path
	return nil
}

func parseHostPort(a *Address, hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// *net.AddrError has no Unwrap: its reason is the Err field.
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return errors.New(ae.Err)
		}
		return err
	}
	if port == "" {
		return errors.New("missing port")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	a.Host, a.Port = host, int(n)
	if ip, err := netip.ParseAddr(host); err == nil {
		switch {
		case strings.HasSuffix(a.Network, "4") && !ip.Unmap().Is4():
			return fmt.Errorf("%s is not an IPv4 address", host)
		case strings.HasSuffix(a.Network, "6") && !ip.Is6():
			return fmt.Errorf("%s is not an IPv6 address", host)
		}
	} else if ip, _, ok := strings.Cut(host, "%"); ok && net.ParseIP(ip).To4() != nil {
		// netip rejects the zone, so this is not a host name either.
		return errors.New("zone on an IPv4 address")
	} else if strings.ContainsAny(host, " /[]%") {
		return fmt.Errorf("invalid host %q", host)
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
	// Steer gives every generation its own socket on the address, all of
	// one SO_REUSEPORT group that hupd steers new connections (or
	// datagrams) in with a classic BPF program (see Group): TCP and UDP
	// only. It implies ReusePort on every socket of the group.
	Steer bool
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

// CutListenName splits a --listen value [NAME=]ADDRESS into its name (""
// when there is none) and its address. The first '=' ends the name unless
// what comes before it holds "://" (an '=' in a URL's path), or starts
// with '/' or '@' while what follows holds no "://" (an '=' in a short
// unix path): "admin=unix:///a=b", "/run/a=b.sock" and "@x=y" are as
// written.
func CutListenName(v string) (name, address string) {
	name, address, ok := strings.Cut(v, "=")
	switch {
	case !ok, strings.Contains(name, "://"),
		(strings.HasPrefix(name, "/") || strings.HasPrefix(name, "@")) && !strings.Contains(address, "://"):
		return "", v
	}
	return name, address
}

// ParseListenFlag parses a --listen value of the form [NAME=]ADDRESS
// (see CutListenName and ParseAddress).
func ParseListenFlag(v string) (Spec, error) {
	var sp Spec
	if name, addr := CutListenName(v); name != "" || addr != v {
		if err := ValidName(name); err != nil {
			return sp, err
		}
		sp.Name, v = name, addr
	}
	a, err := ParseAddress(v)
	if err != nil {
		return sp, err
	}
	sp.Address = a
	sp.UID, sp.GID = -1, -1
	return sp, nil
}
