package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

// scaleCommand is "hupd scale N": the serving generation runs N instances
// from then on, without a reload (supervisor.Supervisor.Scale). It waits
// for the outcome and prints it as hupd reload does.
func scaleCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "scale",
		Usage:        "run N instances of the program in the serving generation, without a reload: up by starting instances, down by stopping the highest-numbered ones (exit 0: done, 1: failed, 2: bad N, 3: --timeout expired first, 7: not running)",
		ArgsUsage:    "N",
		OnUsageError: scaleUsageError,
		Flags: append(controlFlags(),
			durationFlag("timeout", 0, "give up waiting after `DURATION` (the scale goes on)"),
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			programFlag("scale")),
		Action: func(c *cli.Context) error {
			n, err := scaleArg(c.Args().Slice())
			if err != nil {
				return err
			}
			path, err := controlPath(c)
			if err != nil {
				return err
			}
			req := control.Request{Cmd: control.CmdScale, Instances: n, Programs: programArg(c)}
			d := c.Duration("timeout")
			ctx, cancel := waitLimit(&req, d)
			defer cancel()
			rep, err := control.Call(ctx, path, req)
			if errors.Is(err, context.DeadlineExceeded) || err == nil && rep.Scale != nil && rep.Scale.TimedOut {
				if c.Bool("json") && rep.Scale != nil {
					json.NewEncoder(stdout).Encode(rep.Scale)
				}
				fmt.Fprintf(stderr, "hupd: gave up waiting after %s; the scale goes on (hupd status shows how it ends)\n", d)
				return exitError{exitWaitEnded}
			}
			if err != nil {
				return err
			}
			if rep.BadProgram {
				return &badProgramError{rep.Error}
			}
			if rep.Scale == nil {
				if rep.Error == "" {
					return errors.New("scale: hupd answered without a result")
				}
				return errors.New(rep.Error)
			}
			r := rep.Scale
			if c.Bool("json") {
				json.NewEncoder(stdout).Encode(r)
			} else if r.OK {
				fmt.Fprintln(stdout, scaleSummary(r))
			}
			if !r.OK {
				fmt.Fprintf(stderr, "hupd: scale failed: %s\n", printable(r.Reason))
				return exitError{1}
			}
			return nil
		},
	}
}

// scaleArg is hupd scale's N, the one argument: a whole number from 1 to
// supervisor.MaxInstances. Anything else is a usage error (exit 2) and
// nothing is sent.
func scaleArg(args []string) (int, error) {
	want := fmt.Sprintf("want a number of instances from 1 to %d", supervisor.MaxInstances)
	switch {
	case len(args) == 0:
		return 0, usageError("scale: no number of instances given (hupd scale N): %s", want)
	case len(args) > 1 && strings.HasPrefix(args[1], "-"):
		return 0, usageError("scale: flags go before N (hupd scale %s %s), not after", strings.Join(args[1:], " "), args[0])
	case len(args) > 1:
		return 0, usageError("scale: one number of instances, not %d arguments (%s)", len(args), printable(strings.Join(args, " ")))
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return 0, usageError("scale: %s is not a number: %s", strconv.Quote(args[0]), want)
	}
	if err := supervisor.ValidInstances(n); err != nil {
		return 0, usageError("scale: %v", err)
	}
	return n, nil
}

// scaleUsageError is onUsageError, except that a negative N, which the
// flag package takes for an unknown flag ("flag provided but not defined:
// -1", the only place it says so), gets scaleArg's message.
func scaleUsageError(c *cli.Context, err error, sub bool) error {
	if typed, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
		if _, nerr := strconv.Atoi("-" + typed); nerr == nil {
			_, err := scaleArg([]string{"-" + typed})
			return err
		}
	}
	return onUsageError(c, err, sub)
}

// scaleSummary is hupd scale's line for a scale that worked: "scaled
// generation 3 from 2 to 4 instances, took 450ms (started pids 301, 302)".
func scaleSummary(r *supervisor.ScaleResult) string {
	took := r.Finished.Sub(r.Started).Round(time.Millisecond)
	switch {
	case r.Gen == 0:
		return fmt.Sprintf("no generation runs: the next one starts %s", count(r.To, "instance"))
	case r.From == r.To:
		return fmt.Sprintf("generation %d runs %s already: nothing to do", r.Gen, count(r.To, "instance"))
	}
	s := fmt.Sprintf("scaled generation %d from %d to %s, took %s", r.Gen, r.From, count(r.To, "instance"), took)
	var parts []string
	if len(r.Added) > 0 {
		parts = append(parts, "started "+pidList(r.Added))
	}
	if len(r.Removed) > 0 {
		parts = append(parts, "stopping "+pidList(r.Removed))
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, "; ") + ")"
	}
	return s
}

// pidList is "pid 301" or "pids 301, 302".
func pidList(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	if len(pids) == 1 {
		return "pid " + s[0]
	}
	return "pids " + strings.Join(s, ", ")
}
