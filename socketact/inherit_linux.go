package socketact

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Activated is a socket this process received through LISTEN_FDS.
type Activated struct {
	Name string
	File *os.File
}

// ActivatedCount is how many sockets a service manager passed to this
// process ($LISTEN_FDS with $LISTEN_PID this process), as the environment
// said when it was first called: Files removes the variables.
var ActivatedCount = sync.OnceValue(func() int {
	// After an in-place upgrade, the previous image's count.
	if n, err := strconv.Atoi(os.Getenv("HUPD_UPGRADE_ACTIVATED")); err == nil {
		return n
	}
	if os.Getenv(EnvListenPID) != strconv.Itoa(os.Getpid()) {
		return 0
	}
	n, err := strconv.Atoi(os.Getenv(EnvListenFDs))
	if err != nil || n < 0 {
		return 0
	}
	return n
})

// Files returns the sockets passed to this process with LISTEN_FDS, in fd
// order, each marked close-on-exec, and removes the LISTEN_* variables from
// the environment so nothing started later sees them. It returns nil when
// LISTEN_PID is not this process (the variables were meant for another one)
// or when none were passed; an error only when they are malformed.
func Files() ([]Activated, error) {
	ActivatedCount() // read before the variables go
	defer func() {
		for _, k := range []string{EnvListenFDs, EnvListenPID, EnvListenFDNames, EnvListenPIDFDID} {
			os.Unsetenv(k)
		}
	}()
	pidStr, ok := os.LookupEnv(EnvListenPID)
	if !ok {
		return nil, nil
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil {
		return nil, fmt.Errorf("socketact: %s=%q is not a number", EnvListenPID, pidStr)
	}
	if pid != os.Getpid() {
		return nil, nil
	}
	nStr := os.Getenv(EnvListenFDs)
	n, err := strconv.Atoi(nStr)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("socketact: %s=%q is not a count", EnvListenFDs, nStr)
	}
	var names []string
	if v, ok := os.LookupEnv(EnvListenFDNames); ok {
		names = strings.Split(v, ":")
	}
	out := make([]Activated, n)
	for i := range out {
		fd := firstListenFD + i
		name := UnknownName
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		// Not polled by the runtime even if passed non-blocking
		// (systemd's NonBlocking=).
		f, err := fileOf(fd, name)
		if err != nil {
			return nil, fmt.Errorf("socketact: inherited fd %d: %w", fd, err)
		}
		out[i] = Activated{Name: name, File: f}
	}
	return out, nil
}

// adopt matches the sockets this process was activated with to specs
// (for Sockets): first by name, then by bound address and socket type. A
// named spec takes a socket of its name, an unnamed one a socket under its
// StoreName (one hupd kept in a service manager's fd store), but only a
// socket of the spec's type on its port or unix path (any port for port
// 0): a name the configuration has since moved to another port or path
// does not bring the old socket along. A host that differs is accepted (a
// .socket unit's ListenStream=8080 binds every address); by address alone,
// a spec for port 0 takes none. It returns one entry per spec (nil where
// nothing matched) and the activated sockets no spec claimed; it closes
// and changes none of them (O_NONBLOCK is Reuse.Apply's). A steered spec
// takes none: its socket must be the first of a reuseport group of hupd's
// own.
func adopt(specs []Spec, act []Activated) (matched []*Listener, unclaimed []Activated) {
	matched = make([]*Listener, len(specs))
	used := make([]bool, len(act))
	claim := func(i, j int) {
		used[j] = true
		l := &Listener{Spec: specs[i], File: act[j].File, Inherited: true}
		l.Bound, _ = boundAddress(int(act[j].File.Fd()), specs[i].Address.Network)
		matched[i] = l
	}
	for i, sp := range specs {
		if sp.Steer {
			continue // its socket is hupd's own (Sockets refuses it)
		}
		for j, a := range act {
			if !used[j] && activatedByName(sp, a) {
				claim(i, j)
				break
			}
		}
	}
	for i, sp := range specs {
		if matched[i] != nil || sp.Steer {
			continue
		}
		for j, a := range act {
			if !used[j] && sameSocket(int(a.File.Fd()), sp.Address) {
				claim(i, j)
				break
			}
		}
	}
	for j, a := range act {
		if !used[j] {
			unclaimed = append(unclaimed, a)
		}
	}
	return matched, unclaimed
}

// activatedByName reports whether activated socket a is sp's by name: a
// named spec's name, or an unnamed one's StoreName, on its port (any port
// for port 0) or unix path.
func activatedByName(sp Spec, a Activated) bool {
	return a.Name == sp.StoreName() && samePort(int(a.File.Fd()), sp.Address)
}

// activatedFor reports whether adopt would take activated socket a for sp
// (were it not steered), by name or by bound address.
func activatedFor(sp Spec, a Activated) bool {
	return activatedByName(sp, a) || sameSocket(int(a.File.Fd()), sp.Address)
}

// FromActivated wraps activated sockets as listeners in the order received,
// for a hupd run without --listen under socket activation.
func FromActivated(act []Activated) []*Listener {
	ls := make([]*Listener, len(act))
	for i, a := range act {
		fd := int(a.File.Fd())
		network := socketNetwork(fd)
		bound, _ := boundAddress(fd, network)
		ls[i] = &Listener{Spec: Spec{Name: a.Name, Address: bound, UID: -1, GID: -1}, File: a.File, Bound: bound, Inherited: true}
	}
	return ls
}

// boundAs returns the address fd is bound to, if it is a socket of a's
// type.
func boundAs(fd int, a Address) (Address, bool) {
	if socketNetwork(fd) != baseNetwork(a.Network) {
		return Address{}, false
	}
	got, err := boundAddress(fd, a.Network)
	return got, err == nil
}

// sameSocket reports whether fd is bound to the address a asks for.
func sameSocket(fd int, a Address) bool {
	got, ok := boundAs(fd, a)
	if !ok {
		return false
	}
	if a.IsUnix() {
		return got.Path == a.Path
	}
	if a.Port == 0 || got.Port != a.Port {
		return false
	}
	if isUnspecified(a.Host) {
		return isUnspecified(got.Host)
	}
	want, err := resolve(a)
	return err == nil && want.Unmap().String() == strings.TrimPrefix(got.Host, "::ffff:")
}

// samePort reports whether fd is a socket of a's type bound to a's port
// (any port when a asks for port 0) or unix path, whatever its host.
func samePort(fd int, a Address) bool {
	got, ok := boundAs(fd, a)
	if !ok {
		return false
	}
	if a.IsUnix() {
		return got.Path == a.Path
	}
	return a.Port == 0 || got.Port == a.Port
}

func baseNetwork(n string) string {
	return strings.TrimRight(n, "46")
}

// socketNetwork names the kind of socket fd is: tcp, udp, unix or unixgram.
func socketNetwork(fd int) string {
	typ, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	sa, _ := unix.Getsockname(fd)
	_, isUnix := sa.(*unix.SockaddrUnix)
	switch {
	case isUnix && typ == unix.SOCK_DGRAM:
		return Unixgram
	case isUnix:
		return Unix
	case typ == unix.SOCK_DGRAM:
		return UDP
	default:
		return TCP
	}
}
