package duration

import (
	"errors"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		msg  string // error message; "" for none
	}{
		{in: "30s", want: 30 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "0", want: 0}, // time.ParseDuration's one bare number
		{in: "30", msg: `"30" is not a duration: write 30s`},
		{in: "1.5", msg: `"1.5" is not a duration: write 1.5s`},
		{in: "-2", msg: `"-2" is not a duration: write -2s`},
		{in: "thirty", msg: `time: invalid duration "thirty"`},
		{in: "", msg: `time: invalid duration ""`},
		{in: "1.2.3", msg: `time: missing unit in duration "1.2.3"`},
		{in: "Inf", msg: `time: invalid duration "Inf"`},
	} {
		d, err := Parse(tc.in)
		switch {
		case tc.msg == "" && (err != nil || d != tc.want):
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, d, err, tc.want)
		case tc.msg != "" && (err == nil || err.Error() != tc.msg):
			t.Errorf("Parse(%q) error %v, want %q", tc.in, err, tc.msg)
		}
		var nu *NoUnitError
		if errors.As(err, &nu) != IsNumber(tc.in) && tc.in != "0" {
			t.Errorf("Parse(%q): NoUnitError %v, IsNumber %v", tc.in, nu != nil, IsNumber(tc.in))
		}
	}
}

func TestNoUnitErrorForms(t *testing.T) {
	for _, tc := range []struct {
		e    NoUnitError
		want string
	}{
		{NoUnitError{Number: "30", Quote: true}, `"30" is not a duration: write "30s"`},
		{NoUnitError{Number: "5", Prefix: "delay:"}, `"5" is not a duration: write delay:5s`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
}
