package signals

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, accepts only real signal
// numbers, gives back a signal whose Name parses to the same signal, and
// fails with a one-line message that quotes the input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"HUP", "sigterm", "15", "RTMIN+3", "RTMAX-2", "rtmin", "0", "65", "HUPP", "", "RTMIN+", "SIG", " usr1 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := Parse(s)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid signal ") || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("Parse(%q): malformed message %q", s, msg)
			}
			return
		}
		if sig < 1 || sig > rtmax {
			t.Fatalf("Parse(%q) = %d, not a signal", s, sig)
		}
		if back, err := Parse(Name(sig)); err != nil || back != sig {
			t.Fatalf("Parse(%q) = %d, Name %q parses to %d, %v", s, sig, Name(sig), back, err)
		}
	})
}
