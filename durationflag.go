package main

import (
	"time"

	"github.com/hupd/hupd/internal/duration"
	"github.com/urfave/cli/v2"
)

// durationFlag is a flag that takes a duration as cli.DurationFlag does
// (c.Duration reads it), except that a bare number is refused with the
// form to write: `"5" is not a duration: write 5s`.
func durationFlag(name string, value time.Duration, usage string) cli.Flag {
	return &cli.GenericFlag{Name: name, Value: &durationValue{value}, Usage: usage}
}

// durationValue is durationFlag's flag.Value.
type durationValue struct{ d time.Duration }

func (v *durationValue) Set(s string) error {
	d, err := duration.Parse(s)
	if err != nil {
		return err
	}
	v.d = d
	return nil
}

// String is "" for 0, which the help then shows no default for.
func (v *durationValue) String() string {
	if v.d == 0 {
		return ""
	}
	return v.d.String()
}
