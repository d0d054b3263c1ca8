package socketact

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Listener is an open socket held by the parent.
type Listener struct {
	Spec Spec
	// File is the socket. It is close-on-exec in the parent; children get a
	// duplicate through exec.Cmd.ExtraFiles.
	File *os.File
	// Bound is the address the kernel reports for the socket (the real port
	// when Spec asked for port 0).
	Bound Address
	// Inherited is true when the socket came from hupd's own LISTEN_FDS.
	Inherited bool

	unixIno uint64 // inode of the socket file we created, 0 if none
	// group is the steering group of a steered socket (see Group); a
	// Respec copy carries it.
	group *Group
}

// Open binds every spec in order. On error it closes what it opened, removes
// the socket files it created and returns an error naming the address.
func Open(specs []Spec) ([]*Listener, error) {
	ls := make([]*Listener, 0, len(specs))
	for _, sp := range specs {
		l, err := open(sp)
		if err != nil {
			CloseAll(ls)
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// CloseAll closes every listener and removes the unix socket files hupd
// created (only if the file at the path is still the one it bound).
func CloseAll(ls []*Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// Close closes the socket and removes its unix socket file if hupd created it.
// The anchor of a steering group (the socket Open made for a steered spec)
// closes every socket of its group (Group.Close); another member of a group
// is not closed (ErrGroupMember: members live as long as their group).
func (l *Listener) Close() error {
	if g := l.group; g != nil && !g.closed {
		switch {
		case g.anchor == l.File:
			return g.Close()
		case g.Index(l) >= 0:
			return fmt.Errorf("listen %s: close: %w", l.Spec.Address, ErrGroupMember)
		}
	}
	if l.unixIno != 0 {
		var st unix.Stat_t
		if unix.Lstat(l.Spec.Address.Path, &st) == nil && st.Ino == l.unixIno && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			os.Remove(l.Spec.Address.Path)
		}
		l.unixIno = 0
	}
	return l.File.Close()
}

func open(sp Spec) (*Listener, error) {
	a := sp.Address
	fail := func(err error) (*Listener, error) {
		return nil, fmt.Errorf("listen %s: %w", a, err)
	}
	if err := sp.CheckSteer(); err != nil {
		return nil, err
	}
	family, sa, err := sp.Sockaddr()
	if err != nil {
		return fail(err)
	}
	typ := unix.SOCK_STREAM
	if !a.Stream() {
		typ = unix.SOCK_DGRAM
	}
	if sp.Steer && a.Port != 0 {
		if err := probeFree(family, typ, sa, sp.IPv6Only()); err != nil {
			return fail(fmt.Errorf("steer: %w", err))
		}
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(os.NewSyscallError("socket", err))
	}
	// Blocking, so the runtime never polls it: an adopted socket may be
	// put on this fd number later (dup3).
	f := os.NewFile(uintptr(fd), a.String())
	l := &Listener{Spec: sp, File: f}
	if sp.Adopt {
		// The program binds it: clear a stale socket file a previous run
		// left, as hupd does for its own (a live one is an error).
		if a.IsUnix() && !a.IsAbstract() {
			if err := removeStaleSocket(a.Path); err != nil {
				l.Close()
				return fail(err)
			}
		}
		l.Bound = a
		return l, nil
	}
	if err := l.setup(fd, family, sa); err != nil {
		l.Close()
		return fail(err)
	}
	if l.Bound, err = boundAddress(fd, a.Network); err != nil {
		l.Close()
		return fail(err)
	}
	if sp.Steer {
		if _, err := newGroup(l, family); err != nil {
			l.Close()
			return fail(fmt.Errorf("steer: %w", err))
		}
	}
	return l, nil
}

func (l *Listener) setup(fd, family int, sa unix.Sockaddr) error {
	sp, a := l.Spec, l.Spec.Address
	if !a.IsUnix() {
		if a.Stream() {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
			}
		}
		if family == unix.AF_INET6 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolInt(sp.IPv6Only())); err != nil {
				return os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
			}
		}
	}
	if sp.ReusePort || sp.Steer {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
		}
	}
	if a.IsUnix() && !a.IsAbstract() {
		if err := removeStaleSocket(a.Path); err != nil {
			return err
		}
		if sp.Mode != 0 {
			// The file bind creates takes the socket inode's mode (less the
			// umask): never more open than asked, not even for an instant.
			if err := unix.Fchmod(fd, sp.Mode); err != nil {
				return os.NewSyscallError("fchmod", err)
			}
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return os.NewSyscallError("bind", err)
	}
	if a.IsUnix() && !a.IsAbstract() {
		var st unix.Stat_t
		if err := unix.Lstat(a.Path, &st); err != nil {
			return os.NewSyscallError("lstat", err)
		}
		l.unixIno = st.Ino
		if sp.Mode != 0 {
			if err := os.Chmod(a.Path, fs.FileMode(sp.Mode)); err != nil {
				return err
			}
		}
		if sp.UID >= 0 || sp.GID >= 0 {
			if err := os.Lchown(a.Path, sp.UID, sp.GID); err != nil {
				return err
			}
		}
	}
	if a.Stream() {
		backlog := sp.Backlog
		if backlog <= 0 {
			backlog = maxBacklog()
		}
		if err := unix.Listen(fd, backlog); err != nil {
			return os.NewSyscallError("listen", err)
		}
	}
	if sp.NonBlocking {
		if err := unix.SetNonblock(fd, true); err != nil {
			return os.NewSyscallError("fcntl O_NONBLOCK", err)
		}
	}
	return nil
}

// IPv6Only is the IPV6_V6ONLY an IPv6 socket for sp gets: V6Only if set,
// else dual stack for tcp:// and udp:// on an unspecified host.
func (sp Spec) IPv6Only() bool {
	if sp.V6Only != nil {
		return *sp.V6Only
	}
	a := sp.Address
	return strings.HasSuffix(a.Network, "6") || !isUnspecified(a.Host)
}

// Sockaddr returns the family and address a socket for sp is bound to
// (host names resolved: by ResolveHosts ahead, for the host it looked up,
// else now).
func (sp Spec) Sockaddr() (family int, sa unix.Sockaddr, err error) {
	if sp.Address.IsUnix() {
		return unix.AF_UNIX, &unix.SockaddrUnix{Name: sp.Address.Path}, nil
	}
	a := sp.Address
	if r := sp.resolved; r != nil && r.host == a.Host {
		if r.err != nil {
			return 0, nil, r.err
		}
		a.Host = r.ip.String()
	}
	return inetSockaddr(a)
}

// hostLookup is a Spec's host name looked up ahead (ResolveHosts).
type hostLookup struct {
	host string // the name looked up: a spec whose host changed since ignores ip
	ip   netip.Addr
	err  error
}

// ResolveHosts looks up the host names of specs now, so that opening their
// sockets later does no lookup: the supervisor opens a new configuration's
// sockets on its own goroutine, which a slow name server must not stall.
// An IP literal or an unspecified host needs no lookup, nor an address for
// which held reports true (a socket kept as it is is never bound again). A
// failed lookup is kept and returned by the socket's opening, if it needs
// one: a name server that fails does not refuse a configuration that keeps
// its sockets.
func ResolveHosts(specs []Spec, held func(Address) bool) {
	for i := range specs {
		a := specs[i].Address
		if a.IsUnix() || isUnspecified(a.Host) || held != nil && held(a) {
			continue
		}
		if _, err := netip.ParseAddr(a.Host); err == nil {
			continue
		}
		ip, err := resolve(a)
		specs[i].resolved = &hostLookup{host: a.Host, ip: ip, err: err}
	}
}

// Pending reports whether l is an adopt-mode socket that no program has
// bound yet: its fd holds an unbound placeholder.
func (l *Listener) Pending() bool {
	if !l.Spec.Adopt {
		return false
	}
	return !Bound(l.File)
}

// Bound reports whether socket f has a local address: an inet port or a
// unix name.
func Bound(f *os.File) bool {
	sa, err := unix.Getsockname(int(f.Fd()))
	if err != nil {
		return false
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port != 0
	case *unix.SockaddrInet6:
		return sa.Port != 0
	case *unix.SockaddrUnix:
		// x/sys reports an unbound unix socket as "@" (no name at all).
		return sa.Name != "" && sa.Name != "@"
	}
	return false
}

// RemoveStaleSocket removes a socket file nobody listens on. A socket that
// accepts connections is in use: the error wraps syscall.EADDRINUSE.
// Anything that is not a socket is never touched (an error); a missing path
// is not an error.
func RemoveStaleSocket(path string) error { return removeStaleSocket(path) }

// removeStaleSocket removes a socket file nobody listens on. A socket that
// accepts connections is in use; anything that is not a socket is never
// touched.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket (%s); not removing it", path, fi.Mode().Type())
	}
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_DGRAM, unix.SOCK_SEQPACKET} {
		// Non-blocking: a live listener whose backlog is full must not
		// hold the caller (the supervisor's goroutine, at an apply).
		fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		unix.Close(fd)
		switch {
		case err == nil, errors.Is(err, unix.EAGAIN): // EAGAIN: listening, backlog full
			return fmt.Errorf("%s: %w (a process is listening on it)", path, syscall.EADDRINUSE)
		case errors.Is(err, unix.EPROTOTYPE):
			continue // a live socket of another type, or a stale one: try the next type
		case errors.Is(err, unix.ECONNREFUSED):
			return os.Remove(path)
		default:
			return fmt.Errorf("probing existing socket %s: %w", path, err)
		}
	}
	return os.Remove(path)
}

func inetSockaddr(a Address) (int, unix.Sockaddr, error) {
	host := a.Host
	var ip netip.Addr
	switch {
	case isUnspecified(host):
		switch {
		case strings.HasSuffix(a.Network, "4"):
			ip = netip.IPv4Unspecified()
		case host == "0.0.0.0":
			ip = netip.IPv4Unspecified()
		case !ipv6Available():
			if strings.HasSuffix(a.Network, "6") {
				return 0, nil, errors.New("IPv6 is not available on this host")
			}
			ip = netip.IPv4Unspecified()
		default:
			ip = netip.IPv6Unspecified()
		}
	default:
		var err error
		if ip, err = resolve(a); err != nil {
			return 0, nil, err
		}
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: a.Port, Addr: ip.As4()}, nil
	}
	var zone uint32
	if z := ip.Zone(); z != "" {
		ifi, err := net.InterfaceByName(z)
		if err != nil {
			return 0, nil, fmt.Errorf("zone %q: %w", z, err)
		}
		zone = uint32(ifi.Index)
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: a.Port, Addr: ip.As16(), ZoneId: zone}, nil
}

func resolve(a Address) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(a.Host); err == nil {
		return ip, nil
	}
	want := "ip"
	switch {
	case strings.HasSuffix(a.Network, "4"):
		want = "ip4"
	case strings.HasSuffix(a.Network, "6"):
		want = "ip6"
	}
	ipa, err := net.ResolveIPAddr(want, a.Host)
	if err != nil {
		return netip.Addr{}, err
	}
	ip, ok := netip.AddrFromSlice(ipa.IP)
	if !ok {
		return netip.Addr{}, fmt.Errorf("cannot resolve %q", a.Host)
	}
	return ip.WithZone(ipa.Zone), nil
}

func isUnspecified(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

// ipv6Available reports whether the host can bind an IPv6 socket.
var ipv6Available = sync.OnceValue(func() bool {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}) == nil
})

func maxBacklog() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 {
			return n
		}
	}
	return 4096
}

// boundAddress reports the local address of fd in the form of network.
func boundAddress(fd int, network string) (Address, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return Address{}, os.NewSyscallError("getsockname", err)
	}
	return sockaddrAddress(sa, network), nil
}

func sockaddrAddress(sa unix.Sockaddr, network string) Address {
	a := Address{Network: network}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		a.Host, a.Port = netip.AddrFrom4(sa.Addr).String(), sa.Port
	case *unix.SockaddrInet6:
		a.Host, a.Port = netip.AddrFrom16(sa.Addr).String(), sa.Port
	case *unix.SockaddrUnix:
		a.Path = sa.Name
		if strings.HasPrefix(a.Path, "\x00") {
			a.Path = "@" + a.Path[1:]
		}
	}
	return a
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
