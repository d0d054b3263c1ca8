package signals

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Parse accepts a signal by name with or without the SIG prefix, in any case
// (HUP, SIGTERM, usr1), as RTMIN+N / RTMAX-N, or as a number.
func Parse(s string) (syscall.Signal, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(name); err == nil {
		if n > 0 && n <= rtmax {
			return syscall.Signal(n), nil
		}
		return 0, fmt.Errorf("invalid signal %q: numbers go from 1 to %d", s, rtmax)
	}
	name = strings.TrimPrefix(name, "SIG")
	if sig, ok := parseRT(name); ok {
		return sig, nil
	}
	if sig := unix.SignalNum("SIG" + name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal %q: valid signals are %s, RTMIN+N", s, strings.Join(validNames(), ", "))
}

// Linux real-time signal range as user space sees it (glibc reserves 32, 33).
const (
	rtmin = 34
	rtmax = 64
)

func parseRT(name string) (syscall.Signal, bool) {
	for _, base := range []struct {
		prefix string
		n, dir int
	}{{"RTMIN", rtmin, 1}, {"RTMAX", rtmax, -1}} {
		rest, ok := strings.CutPrefix(name, base.prefix)
		if !ok {
			continue
		}
		off := 0
		if rest != "" {
			if (base.dir > 0 && rest[0] != '+') || (base.dir < 0 && rest[0] != '-') {
				return 0, false
			}
			var err error
			if off, err = strconv.Atoi(rest[1:]); err != nil || off < 0 {
				return 0, false
			}
		}
		n := base.n + base.dir*off
		if n < rtmin || n > rtmax {
			return 0, false
		}
		return syscall.Signal(n), true
	}
	return 0, false
}

// Name returns the short name of sig: HUP, TERM, RTMIN+3.
func Name(sig syscall.Signal) string {
	if sig >= rtmin && sig <= rtmax {
		if sig == rtmin {
			return "RTMIN"
		}
		return "RTMIN+" + strconv.Itoa(int(sig)-rtmin)
	}
	if n := unix.SignalName(sig); n != "" {
		return strings.TrimPrefix(n, "SIG")
	}
	return strconv.Itoa(int(sig))
}

func validNames() []string {
	var out []string
	for sig := syscall.Signal(1); sig < 32; sig++ {
		if n := unix.SignalName(sig); n != "" {
			out = append(out, strings.TrimPrefix(n, "SIG"))
		}
	}
	return out
}
