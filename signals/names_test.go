package signals

import (
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"HUP":         syscall.SIGHUP,
		"SIGHUP":      syscall.SIGHUP,
		"hup":         syscall.SIGHUP,
		"SigTerm":     syscall.SIGTERM,
		" usr2\n":     syscall.SIGUSR2,
		"winch":       syscall.SIGWINCH,
		"SYS":         syscall.SIGSYS,
		"15":          syscall.SIGTERM,
		"1":           syscall.SIGHUP,
		"64":          64,
		"RTMIN":       34,
		"SIGRTMIN":    34,
		"rtmin+3":     37,
		"RTMIN+30":    64,
		"RTMAX":       64,
		"RTMAX-1":     63,
		"SIGRTMAX-30": 34,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "SIG", "HUPP", "SIGSIGHUP", "0", "-1", "65", "99999999999999999999",
		"RTMIN+31", "RTMIN-1", "RTMAX+1", "RTMAX-31", "RTMIN+", "RTMIN+x", "RTMIN3", "CLD", "HUP INT", "HUP\n\nINT"} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", in)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "invalid signal ") || strings.ContainsAny(msg, "\r\n") {
			t.Errorf("Parse(%q): %q is not a one-line \"invalid signal\" message", in, msg)
		}
	}
	// A name that is not a signal: the message offers the valid ones.
	_, err := Parse("HUPP")
	if want := `invalid signal "HUPP": valid signals are HUP, INT, QUIT, ILL, TRAP, ABRT, BUS, FPE, KILL, USR1, SEGV, USR2, PIPE, ALRM, TERM, STKFLT, CHLD, CONT, STOP, TSTP, TTIN, TTOU, URG, XCPU, XFSZ, VTALRM, PROF, WINCH, IO, PWR, SYS, RTMIN+N`; err == nil || err.Error() != want {
		t.Errorf("Parse(HUPP) = %v\nwant %s", err, want)
	}
	// A number out of range: the message gives the range.
	if _, err := Parse("65"); err == nil || !strings.HasSuffix(err.Error(), "numbers go from 1 to 64") {
		t.Errorf("Parse(65) = %v", err)
	}
}

func TestName(t *testing.T) {
	for sig, want := range map[syscall.Signal]string{
		syscall.SIGHUP:  "HUP",
		syscall.SIGTERM: "TERM",
		syscall.SIGKILL: "KILL",
		syscall.SIGSYS:  "SYS",
		34:              "RTMIN",
		35:              "RTMIN+1",
		64:              "RTMIN+30",
		32:              "32", // reserved by glibc, nameless
		0:               "0",
		65:              "65",
	} {
		if got := Name(sig); got != want {
			t.Errorf("Name(%d) = %q, want %q", sig, got, want)
		}
	}
}

// TestNameParseRoundTrip: every signal's name parses back to it.
func TestNameParseRoundTrip(t *testing.T) {
	for sig := syscall.Signal(1); sig <= 64; sig++ {
		if got, err := Parse(Name(sig)); err != nil || got != sig {
			t.Errorf("Parse(Name(%d) = %q) = %d, %v", sig, Name(sig), got, err)
		}
	}
}
