package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

func reloadCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "reload",
		Usage:        "reload a running hupd and wait for the outcome (exit 0: done, 1: failed, 3: --timeout expired first, 7: not running); with several programs, PROGRAM... only (none: all)",
		ArgsUsage:    "[PROGRAM...]",
		OnUsageError: onUsageError,
		Flags: append(controlFlags(),
			durationFlag("timeout", 0, "give up waiting after `DURATION` (the reload goes on)"),
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "show no progress on stderr while waiting (one updating line on a terminal, else plain lines)"}),
		Action: func(c *cli.Context) error {
			names, shown, err := programNames(c)
			if err != nil || shown {
				return err
			}
			path, err := controlPath(c)
			if err != nil {
				return err
			}
			req := control.Request{Cmd: control.CmdReload, Programs: names}
			d := c.Duration("timeout")
			ctx, cancel := waitLimit(&req, d)
			defer cancel()
			var rep control.Reply
			switch {
			case c.Bool("quiet"):
				rep, err = control.Call(ctx, path, req)
			case isTerminal(stderr):
				rep, err = control.CallProgress(ctx, path, req, terminalProgress(stderr))
				fmt.Fprint(stderr, clearLine)
			default:
				rep, err = control.CallProgress(ctx, path, req, plainProgress(stderr))
			}
			if errors.Is(err, context.DeadlineExceeded) || err == nil && rep.Reload != nil && rep.Reload.TimedOut {
				if c.Bool("json") && rep.Reload != nil {
					json.NewEncoder(stdout).Encode(rep.Reload)
				}
				fmt.Fprintf(stderr, "hupd: gave up waiting after %s; the reload goes on (hupd status shows how it ends)\n", d)
				return exitError{exitWaitEnded}
			}
			if err != nil {
				return err
			}
			if rep.BadProgram {
				return &badProgramError{rep.Error}
			}
			if rep.Programs != nil {
				return printProgramReloads(stdout, stderr, rep.Programs, c.Bool("json"))
			}
			if rep.Reload == nil {
				return errors.New(rep.Error)
			}
			r := rep.Reload
			if c.Bool("json") {
				json.NewEncoder(stdout).Encode(r)
			} else if r.OK {
				fmt.Fprintln(stdout, reloadSummary(r))
			}
			if !r.OK {
				fmt.Fprintf(stderr, "hupd: reload failed: %s\n", printable(r.Reason))
				for _, l := range r.Output {
					fmt.Fprintf(stderr, "  | %s\n", printable(l))
				}
				return exitError{1}
			}
			return nil
		},
	}
}

// printProgramReloads writes the outcome of a reload of several programs:
// "NAME: " and the summary a single program's gets, for each that
// reloaded; on stderr, why each other failed (exit 1 then). With asJSON,
// {"programs": [{name, state, reload}, …]} on stdout.
func printProgramReloads(stdout, stderr io.Writer, ps []control.ProgramReply, asJSON bool) error {
	if asJSON {
		json.NewEncoder(stdout).Encode(programsJSON{Programs: ps})
	}
	failed, waitEnded := false, false
	for _, p := range ps {
		r := p.Reload
		if r == nil {
			continue
		}
		if r.TimedOut {
			waitEnded = true
			fmt.Fprintf(stderr, "hupd: gave up waiting for %s; its reload goes on (hupd status shows how it ends)\n", p.Name)
			continue
		}
		if !r.OK {
			failed = true
			fmt.Fprintf(stderr, "hupd: reload of %s failed: %s\n", p.Name, printable(r.Reason))
			for _, l := range r.Output {
				fmt.Fprintf(stderr, "  | %s\n", printable(l))
			}
			continue
		}
		if asJSON {
			continue
		}
		if r.NewGen == 0 && r.Reason != "" {
			// Not reloaded, and why: an edit of hupd.toml added it, or
			// left it as it was.
			fmt.Fprintf(stdout, "%s: %s\n", p.Name, printable(r.Reason))
			continue
		}
		fmt.Fprintf(stdout, "%s: %s\n", p.Name, reloadSummary(r))
	}
	switch {
	case failed:
		return exitError{1}
	case waitEnded:
		return exitError{exitWaitEnded}
	}
	return nil
}

// exitWaitEnded is hupd reload's exit status when --timeout expired
// before the outcome was known: the reload goes on.
const exitWaitEnded = 3

// progressText is the line hupd reload shows on a terminal while it waits:
// "reload: gen 2 pid 4242 waiting for READY=1, 1.2s of 1m0s".
func progressText(p control.Progress) string {
	elapsed := time.Duration(p.Elapsed).Round(100 * time.Millisecond)
	if p.Gen == 0 {
		return fmt.Sprintf("reload: waiting for the new generation to start, %s", elapsed)
	}
	text := fmt.Sprintf("reload: gen %d pid %d waiting for %s, %s", p.Gen, p.PID, readyText(p.Ready), elapsed)
	if p.Timeout > 0 {
		text += " of " + time.Duration(p.Timeout).String()
	}
	return text
}

// clearLine takes a terminal's cursor back to the start of its line and
// clears the line.
const clearLine = "\r\x1b[K"

// terminalProgress is hupd reload's progress when stderr is a terminal:
// one line (progressText), rewritten in place with each Progress. Once the
// reply has come, hupd reload clears it (clearLine).
func terminalProgress(w io.Writer) func(control.Progress) {
	return func(p control.Progress) { fmt.Fprint(w, clearLine+progressText(p)) }
}

// plainEvery is how often hupd reload writes a plain progress line while
// it waits, when stderr is not a terminal.
const plainEvery = 5 * time.Second

// plainQuiet is how long a reload may take before hupd reload says what it
// waits for, when stderr is not a terminal: a script's quick reloads write
// nothing on stderr.
const plainQuiet = time.Second

// plainProgress is hupd reload's progress when stderr is not a terminal (a
// log, a CI job): whole lines, no escape sequences, few of them, and none
// for a reload done within plainQuiet. One once the wait has lasted that
// long and the new generation's number and PID are known:
//
//	reload: gen 2 pid 4242 started, waiting for READY=1 (timeout 1m0s)
//
// and then one each time the wait passes another plainEvery (elapsed in
// whole seconds):
//
//	reload: gen 2 pid 4242 waiting for READY=1, 5s of 1m0s
func plainProgress(w io.Writer) func(control.Progress) {
	var gen, pid int
	next := plainEvery
	return func(p control.Progress) {
		elapsed := time.Duration(p.Elapsed)
		switch {
		case p.Gen != 0 && (p.Gen != gen || p.PID != pid) && elapsed >= plainQuiet:
			gen, pid = p.Gen, p.PID
			text := fmt.Sprintf("reload: gen %d pid %d started, waiting for %s", p.Gen, p.PID, readyText(p.Ready))
			if p.Timeout > 0 {
				text += " (timeout " + time.Duration(p.Timeout).String() + ")"
			}
			fmt.Fprintln(w, text)
		case elapsed >= next:
			p.Elapsed = supervisor.Duration(elapsed.Truncate(time.Second))
			fmt.Fprintln(w, progressText(p))
		default:
			return
		}
		next = elapsed.Truncate(plainEvery) + plainEvery
	}
}

// readyText names what a readiness mode (supervisor.Readiness.String)
// waits for.
func readyText(mode string) string {
	kind, arg, _ := strings.Cut(mode, ":")
	switch supervisor.ReadyKind(kind) {
	case supervisor.ReadyAuto, supervisor.ReadyNotify:
		return "READY=1"
	case supervisor.ReadyDelay:
		return "its " + arg + " delay"
	case supervisor.ReadyExec:
		return "the probe " + printable(arg)
	case supervisor.ReadyListen:
		return "listen() on every socket"
	}
	return "readiness"
}

func reloadSummary(r *supervisor.ReloadResult) string {
	took := r.Finished.Sub(r.Started).Round(time.Millisecond)
	switch r.Strategy {
	case supervisor.StrategySignal:
		return fmt.Sprintf("reload ok (signal): gen %d pid %d reloaded in place in %s", r.NewGen, r.NewPID, took)
	}
	return fmt.Sprintf("reload ok (%s): gen %d pid %d -> gen %d pid %d, ready after %s, took %s",
		r.Strategy, r.OldGen, r.OldPID, r.NewGen, r.NewPID, time.Duration(r.ReadyAfter).Round(time.Millisecond), took)
}

// waitLimit bounds a client's wait for an outcome (hupd reload, hupd
// scale) by d: the request asks hupd to answer within d, and the client
// gives up 5 s after that. d <= 0: no limit.
func waitLimit(req *control.Request, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(context.Background())
	}
	req.Timeout = d.String()
	return context.WithTimeout(context.Background(), d+5*time.Second)
}

// programNames are the program names of hupd reload and hupd status,
// with their flags also after the names: the flag parser stops at the
// first argument, so "hupd reload web -q" leaves "-q" among the names; each
// such flag is set here as if it came first, under its canonical name (an
// alias set after the parse is not read: -c FILE would be lost). "--" ends
// the flags, before the first name or after it: every argument after it
// is a name. -h and --help show the command's help (shown is then set).
func programNames(c *cli.Context) (names []string, shown bool, err error) {
	args := c.Args().Slice()
	if parsedDashes(c, len(args)) {
		return args, false, nil // "hupd reload -- web -odd"
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(names, args[i+1:]...), false, nil
		}
		if len(a) < 2 || a[0] != '-' {
			names = append(names, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "h" || name == "help" {
			return nil, true, cli.ShowSubcommandHelp(c)
		}
		fl := commandFlag(c, name)
		if fl == nil || name == "" {
			return nil, false, onUsageError(c, fmt.Errorf("flag provided but not defined: %s", a), false)
		}
		if _, isBool := fl.(*cli.BoolFlag); isBool && !hasValue {
			value = "true"
		} else if !hasValue {
			if i+1 >= len(args) {
				return nil, false, onUsageError(c, fmt.Errorf("flag needs an argument: %s", a), false)
			}
			i++
			value = args[i]
		}
		if err := c.Set(fl.Names()[0], value); err != nil {
			return nil, false, onUsageError(c, fmt.Errorf("invalid value %q for flag %s: %w", value, a, err), false)
		}
	}
	return names, false, nil
}

// commandFlag is the flag of c's command called name (or one of its
// aliases), or nil.
func commandFlag(c *cli.Context, name string) cli.Flag {
	if i := slices.IndexFunc(c.Command.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), name) }); i >= 0 {
		return c.Command.Flags[i]
	}
	return nil
}

// parsedDashes reports whether the flag parser stopped at a "--" (which it
// drops) before the rest, the n arguments left: the command's arguments as
// typed are its parent's, after the command's name.
func parsedDashes(c *cli.Context, n int) bool {
	lineage := c.Lineage()
	if len(lineage) < 2 {
		return false
	}
	raw := lineage[1].Args().Tail()
	parsed := raw[:max(len(raw)-n, 0)]
	for i := 0; i < len(parsed); i++ {
		a := parsed[i]
		if a == "--" {
			return true
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if fl := commandFlag(c, name); fl != nil && !hasValue {
			if _, isBool := fl.(*cli.BoolFlag); !isBool {
				i++ // its value, whatever it is
			}
		}
	}
	return false
}
