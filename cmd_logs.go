package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

// logsCommand is "hupd logs": the output lines a running hupd keeps of its
// children (the last lines of each of its newest generations, exited ones
// included), and with -f the lines they write from then on.
func logsCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "logs",
		Usage:        "show the last output lines of a running hupd's program; -f follows",
		OnUsageError: onUsageError,
		Flags: append(controlFlags(),
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "go on showing lines as they are written, until interrupted"},
			&cli.IntFlag{Name: "gen", Usage: "show only generation `N`'s lines (default: every generation hupd keeps lines of)"},
			&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 10, Usage: "show the last `LINES` lines kept; 0: all"},
			&cli.BoolFlag{Name: "json", Usage: "print each line as a JSON object (time, gen, pid, instance unless 0, stream, line)"},
			programFlag("show the lines of"),
		),
		Action: func(c *cli.Context) error {
			if c.Int("gen") < 0 || c.Int("lines") < 0 {
				return usageError("--gen and --lines must be 0 or more")
			}
			path, err := controlPath(c)
			if err != nil {
				return err
			}
			req := control.Request{Cmd: control.CmdLogs, Gen: c.Int("gen"), Lines: c.Int("lines"), Follow: c.Bool("follow"), Programs: programArg(c)}
			show := lineShower(stdout, c.Bool("json"), isTerminal(stdout))
			if !req.Follow {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				rep, err := control.Call(ctx, path, req)
				if err != nil {
					return err
				}
				if rep.BadProgram {
					return &badProgramError{rep.Error}
				}
				if !rep.OK {
					return errors.New(rep.Error)
				}
				for _, l := range rep.Logs {
					show(l)
				}
				return nil
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return control.Follow(ctx, path, req, func(rep control.Reply) error {
				if rep.BadProgram {
					return &badProgramError{rep.Error}
				}
				for _, l := range rep.Logs {
					show(l)
				}
				if rep.Dropped > 0 {
					fmt.Fprintf(stderr, "-- %d lines dropped --\n", rep.Dropped)
				}
				if rep.Line != nil {
					show(*rep.Line)
				}
				return nil
			})
		},
	}
}

// lineShower prints output lines to w: as JSON objects, or as text, one
// line each ("TIME gen N pid P STREAM: LINE", "gen N.I" for instance I
// other than 0), escaped (printable) when escape is set, as for a
// terminal: the lines are what a child wrote.
func lineShower(w io.Writer, asJSON, escape bool) func(supervisor.OutputLine) {
	if asJSON {
		enc := json.NewEncoder(w)
		return func(l supervisor.OutputLine) { enc.Encode(l) }
	}
	return func(l supervisor.OutputLine) {
		text := l.Text
		if escape {
			text = printable(text)
		}
		stream := l.Stream
		if stream == "" {
			stream = "-" // handed over by an upgrade: stream not known
		}
		fmt.Fprintf(w, "%s gen %s pid %d %s: %s\n", l.Time.Format("2006-01-02T15:04:05.000Z07:00"), genText(l), l.PID, stream, text)
	}
}

// genText names the generation and instance a line came from: "3", or
// "3.1" for instance 1 of generation 3 (instance 0, or a generation of one
// instance, is "3"), as hupd status names the instances.
func genText(l supervisor.OutputLine) string {
	if l.Instance == 0 {
		return strconv.Itoa(l.Gen)
	}
	return strconv.Itoa(l.Gen) + "." + strconv.Itoa(l.Instance)
}
