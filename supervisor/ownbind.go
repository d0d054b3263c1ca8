package supervisor

import (
	"strings"

	"github.com/hupd/hupd/internal/logev"
)

// Keys of the own-bind hint (logev.OwnBindHint).
const (
	KeyHint    = "hint"
	KeyName    = "name"    // the service's (every record carries it)
	KeySocket  = "socket"  // a socket's name (FDNAME)
	KeyOutput  = "output"  // a line the program wrote
	KeySockets = "sockets" // NAME=URL of each socket hupd holds
)

// ownBindHint is what the own-bind hint advises.
const ownBindHint = "pass {fd:NAME} or {port:NAME} in its arguments, or have it take LISTEN_FDS (sd_listen_fds); " +
	"a program that must bind itself runs with --legacy redirect"

// bindInUseMarks are how programs report that bind(2) failed with
// EADDRINUSE, in lower case: Go's and Rust's "address already in use",
// Python's "[Errno 98] Address already in use", nginx's "(98: Address
// already in use)", Java's BindException, Node's and Ruby's EADDRINUSE.
var bindInUseMarks = []string{"address already in use", "eaddrinuse"}

// bindInUseLine returns the last of lines that reports a bind failed with
// EADDRINUSE.
func bindInUseLine(lines []string) (string, bool) {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.ToLower(lines[i])
		for _, m := range bindInUseMarks {
			if strings.Contains(l, m) {
				return lines[i], true
			}
		}
	}
	return "", false
}

// hintOwnBind explains a crash loop that hupd's sockets cause: g exited
// before it was ready (prev is the state it was in), and its last output
// lines say that an address was in use, while hupd holds sockets — most
// likely the program binds its configured port itself, which hupd holds.
// It is logged once per hupd process, not at every crash; not for a
// legacy program (its binds of hupd's addresses are redirected, so an
// address in use is another one) nor without a tail of the output
// (OutputInherit). It waits, briefly, for g's last output to arrive.
func (s *Supervisor) hintOwnBind(g *generation, prev State) {
	if s.ownBindHinted || s.stopping || prev != StateStarting || len(s.listeners) == 0 ||
		s.opts.Legacy != "" || s.opts.Output == OutputInherit {
		return
	}
	g.out.settle(outputSettle)
	line, ok := bindInUseLine(g.out.tail())
	if !ok {
		return
	}
	s.ownBindHinted = true
	held := make([]string, 0, len(s.listeners))
	for _, l := range s.listeners {
		held = append(held, l.Spec.FDName()+"="+l.Bound.String())
	}
	s.log.Warn(logev.OwnBindHint, g.ids(KeyOutput, line, KeySockets, strings.Join(held, " "), KeyHint, ownBindHint)...)
}
