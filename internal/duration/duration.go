package duration

import (
	"fmt"
	"strconv"
	"time"
)

// NoUnitError is a bare number where a duration is expected. Its message
// shows the right form: `"30" is not a duration: write 30s`.
type NoUnitError struct {
	// Number is what was given, as written.
	Number string
	// Quote writes the fix as a TOML string ("30s"), for a value in
	// hupd.toml.
	Quote bool
	// Prefix goes before the fix: "delay:" for "delay:30s".
	Prefix string
}

func (e *NoUnitError) Error() string {
	fix := e.Prefix + e.Number + "s"
	if e.Quote {
		fix = strconv.Quote(fix)
	}
	return fmt.Sprintf("%q is not a duration: write %s", e.Number, fix)
}

// Parse is time.ParseDuration; a bare number is a *NoUnitError.
func Parse(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil && IsNumber(s) {
		return 0, &NoUnitError{Number: s}
	}
	return d, err
}

// IsNumber reports whether s is a decimal number without a unit: digits
// with at most one dot, and a sign ("30", "1.5", "-2").
func IsNumber(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	digits, dots := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
