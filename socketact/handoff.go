package socketact

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Hand-over dialects besides systemd's LISTEN_FDS, which every child gets:
// the variables other programs already read to find inherited sockets.
const (
	// HandoffEinhorn sets EINHORN_FD_COUNT=n and EINHORN_FD_0=3, … (einhorn).
	HandoffEinhorn = "einhorn"
	// HandoffServerStarter sets SERVER_STARTER_PORT="host:port=fd;path=fd"
	// and SERVER_STARTER_GENERATION (Perl's Server::Starter).
	HandoffServerStarter = "server-starter"
	// HandoffNginx sets NGINX="3;4;" (nginx's inherited sockets).
	HandoffNginx = "nginx"
)

// Handoffs lists every dialect, for messages.
var Handoffs = []string{HandoffEinhorn, HandoffServerStarter, HandoffNginx}

// ValidHandoff reports whether d names a dialect.
func ValidHandoff(d string) error {
	for _, h := range Handoffs {
		if d == h {
			return nil
		}
	}
	return fmt.Errorf("unknown hand-over %q: valid ones are %s", d, strings.Join(Handoffs, ", "))
}

// HandoffEnv returns the variables of the hand-over dialects for ls,
// passed to generation gen as fds 3, 4, … in order, KEY=VALUE, one dialect
// after the other in the order of Handoffs.
//
// A dialect in global (process.handoff, --handoff) describes every socket.
// A dialect named only in some sockets' Spec.Handoff ([[listen]] env)
// describes just those, each under its real fd number (3 + its index in
// ls): EINHORN_FD_COUNT counts only them and EINHORN_FD_0, … list their fds
// in order; SERVER_STARTER_PORT and NGINX list only them. A dialect nobody
// names sets nothing. LISTEN_FDS and LISTEN_FDNAMES (ChildEnv) are not
// affected: they always describe every socket.
func HandoffEnv(global []string, ls []*Listener, gen int) []string {
	var env []string
	for _, d := range Handoffs {
		all := slices.Contains(global, d)
		var fds []int // of the sockets d describes
		for i, l := range ls {
			if Describes(d, global, l.Spec) {
				fds = append(fds, firstListenFD+i)
			}
		}
		if !all && len(fds) == 0 {
			continue
		}
		switch d {
		case HandoffEinhorn:
			env = append(env, "EINHORN_FD_COUNT="+strconv.Itoa(len(fds)))
			for j, fd := range fds {
				env = append(env, fmt.Sprintf("EINHORN_FD_%d=%d", j, fd))
			}
		case HandoffServerStarter:
			ports := make([]string, len(fds))
			for j, fd := range fds {
				ports[j] = starterPort(ls[fd-firstListenFD]) + "=" + strconv.Itoa(fd)
			}
			env = append(env, "SERVER_STARTER_PORT="+strings.Join(ports, ";"), "SERVER_STARTER_GENERATION="+strconv.Itoa(gen))
		case HandoffNginx:
			var b strings.Builder
			for _, fd := range fds {
				fmt.Fprintf(&b, "%d;", fd)
			}
			env = append(env, "NGINX="+b.String())
		}
	}
	return env
}

// Describes reports whether dialect d describes the socket sp: d is in
// global (every socket) or in sp.Handoff (this one).
func Describes(d string, global []string, sp Spec) bool {
	return slices.Contains(global, d) || slices.Contains(sp.Handoff, d)
}

// starterPort is a socket as Server::Starter names it: "PORT" for every
// address, "HOST:PORT", or a unix socket's path.
func starterPort(l *Listener) string {
	a := l.Spec.Address
	if a.IsUnix() {
		return a.Path
	}
	port := strconv.Itoa(l.Bound.Port)
	if a.Host == "" {
		return port
	}
	return net.JoinHostPort(a.Host, port)
}

// reArg matches {fd:NAME} and {port:NAME} in a command's arguments. It is
// compiled on first use: most commands have no such argument, and every
// hupd process would pay for it at start (package init).
var reArg = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{(fd|port):([^{}:]+)\}`) })

// ErrArgRef is wrapped by errors about {fd:NAME} and {port:NAME}.
var ErrArgRef = errors.New("socketact: bad socket reference")

// CheckArgs reports a {fd:NAME} or {port:NAME} in args that specs cannot
// satisfy: no socket or several named NAME, or the port of a unix socket.
func CheckArgs(args []string, specs []Spec) error {
	for _, a := range args {
		if !strings.Contains(a, "{") {
			continue
		}
		for _, m := range reArg().FindAllStringSubmatch(a, -1) {
			i, err := findName(m[2], len(specs), func(i int) string { return specs[i].FDName() })
			if err != nil {
				return fmt.Errorf("%s: %w", m[0], err)
			}
			if m[1] == "port" && specs[i].Address.IsUnix() {
				return fmt.Errorf("%s: %w: %s is a unix socket, it has no port", m[0], ErrArgRef, m[2])
			}
		}
	}
	return nil
}

// ExpandArgs replaces {fd:NAME} with the fd number of the socket named
// NAME in ls (3, 4, …) and {port:NAME} with the port it is bound to, for
// programs that take "--fd 3" or "fd://3" (uvicorn --fd, Caddy fd/3,
// HAProxy fd@3).
func ExpandArgs(args []string, ls []*Listener) ([]string, error) {
	out := make([]string, len(args))
	var err error
	for j, a := range args {
		if !strings.Contains(a, "{") {
			out[j] = a
			continue
		}
		out[j] = reArg().ReplaceAllStringFunc(a, func(ref string) string {
			m := reArg().FindStringSubmatch(ref)
			i, e := findName(m[2], len(ls), func(i int) string { return ls[i].Spec.FDName() })
			if e != nil {
				if err == nil {
					err = fmt.Errorf("%s: %w", ref, e)
				}
				return ref
			}
			if m[1] == "port" {
				return strconv.Itoa(ls[i].Bound.Port)
			}
			return strconv.Itoa(firstListenFD + i)
		})
	}
	return out, err
}

func findName(name string, n int, nameOf func(int) string) (int, error) {
	found := -1
	for i := range n {
		if nameOf(i) != name {
			continue
		}
		if found >= 0 {
			return 0, fmt.Errorf("%w: several sockets are named %s", ErrArgRef, name)
		}
		found = i
	}
	if found < 0 {
		return 0, fmt.Errorf("%w: no socket is named %s", ErrArgRef, name)
	}
	return found, nil
}
