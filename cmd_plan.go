package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/safefile"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

// planCommand is "hupd plan": what applying a hupd.toml to the running
// hupd would do, changing nothing.
//
// The client reads the file and sends its content; hupd resolves it with
// its own flags as if its hupd.toml held it, with the same code that
// applies edits (internal/run's reconf.decide, supervisor's decide). hupd
// never opens a path a client names: it runs as root, and a control
// request must not make it read (and echo errors about) arbitrary files.
// Without -c, hupd plans its hupd.toml as it is on disk (edited, not yet
// applied).
func planCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "plan",
		OnUsageError: onUsageError,
		Usage:        "say what applying a configuration to the running hupd would do (exit 0: plan printed, 2: bad configuration)",
		Flags:        append(planFlags(), &cli.BoolFlag{Name: "json", Usage: "print the plan as JSON"}),
		Action: func(c *cli.Context) error {
			req := control.Request{Cmd: control.CmdPlan}
			if p := c.String("config"); p != "" {
				data, err := safefile.ReadFile(p, config.MaxFileSize)
				if err != nil {
					return &config.Error{Where: p, Err: err}
				}
				// Decoded here first: a syntax error or an unknown key
				// names this file. hupd resolves it with its flags.
				if _, err = config.Parse(p, data); err != nil {
					return err
				}
				text := string(data)
				req.Config = &text
			}
			path, err := controlPath(c)
			if err != nil {
				return err
			}
			if b, _ := json.Marshal(req); len(b) > control.MaxLine {
				return fmt.Errorf("%s is too large to plan over the control socket (at most %d bytes of JSON)", c.String("config"), control.MaxLine)
			}
			rep, err := control.Call(context.Background(), path, req)
			if err != nil {
				return err
			}
			if rep.FleetPlan != nil { // several programs
				if c.Bool("json") {
					return json.NewEncoder(stdout).Encode(rep.FleetPlan)
				}
				printFleetPlan(stdout, *rep.FleetPlan)
				return nil
			}
			if rep.Plan == nil {
				if rep.BadConfig {
					// hupd names where in its own hupd.toml (the content
					// is resolved as if saved there).
					fmt.Fprintf(stderr, "hupd: %s\n", printable(oneLineOf(rep.Error)))
					return exitError{2}
				}
				return errors.New(rep.Error)
			}
			if c.Bool("json") {
				return json.NewEncoder(stdout).Encode(rep.Plan)
			}
			printPlan(stdout, *rep.Plan)
			return nil
		},
	}
}

// planFlags are the client commands' flags (controlFlags), with -c the
// file planned as well as the one that finds the hupd running it.
func planFlags() []cli.Flag {
	flags := controlFlags()
	for i, f := range flags {
		if slices.Contains(f.Names(), "config") {
			flags[i] = &cli.StringFlag{Name: "config", Aliases: []string{"c"},
				Usage: "plan `FILE`, and talk to the hupd run with it (default: the file hupd runs with, as on disk)"}
		}
	}
	return flags
}

func oneLineOf(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// printFleetPlan writes the plan of a hupd of several programs for a
// person: a line per program ("program NAME: added", "removed",
// "unchanged" or "changed"), under a changed one what hupd plan says of a
// single program, indented, then hupd's own settings.
func printFleetPlan(w io.Writer, fp control.FleetPlan) {
	if fp.Nothing() {
		fmt.Fprintln(w, "nothing to do: the running hupd already runs this configuration")
		return
	}
	for _, pp := range fp.Programs {
		name := printable(pp.Name)
		var p supervisor.Plan
		if pp.Plan != nil {
			p = *pp.Plan
		}
		switch pp.Change {
		case control.ChangeAdded:
			if pp.State == control.ProgramEnded {
				fmt.Fprintf(w, "program %s: added (it ended: it starts anew, once the programs it starts after are ready)\n", name)
			} else {
				fmt.Fprintf(w, "program %s: added (it starts once the programs it starts after are ready)\n", name)
			}
			printSockets(w, "  ", p)
		case control.ChangeRemoved:
			if pp.State == control.ProgramRunning {
				fmt.Fprintf(w, "program %s: removed (it stops as a stop signal stops it)\n", name)
			} else {
				fmt.Fprintf(w, "program %s: removed (%s)\n", name, printable(pp.State))
			}
			printSockets(w, "  ", p)
		case control.ChangeChanged:
			fmt.Fprintf(w, "program %s: changed\n", name)
			switch pp.State {
			case control.ProgramWaiting:
				fmt.Fprintln(w, "  not started yet: it starts with the new settings")
				printSockets(w, "  ", p)
				printSettings(w, "  ", p)
			case control.ProgramEnded:
				// Not replaced (what runs did not change): its settings
				// are recorded, and nothing starts.
				fmt.Fprintln(w, "  it has ended: no generation runs or starts")
				printSettings(w, "  ", p)
			default:
				printPlanIn(w, "  ", p)
			}
		default:
			fmt.Fprintf(w, "program %s: %s\n", name, printable(pp.Change))
		}
	}
	printSettings(w, "", supervisor.Plan{Live: fp.Live, Restart: fp.Restart})
}

// printPlan writes p for a person.
func printPlan(w io.Writer, p supervisor.Plan) {
	if p.Nothing() {
		fmt.Fprintln(w, "nothing to do: the running hupd already runs this configuration")
		return
	}
	printPlanIn(w, "", p)
}

// printPlanIn writes p, each line after indent.
func printPlanIn(w io.Writer, indent string, p supervisor.Plan) {
	if p.NewGeneration {
		fmt.Fprintf(w, "%snew generation: yes (%s), because these differ: %s\n", indent, p.Strategy, strings.Join(p.Differ, ", "))
	} else {
		fmt.Fprintf(w, "%snew generation: no (the running one goes on)\n", indent)
	}
	printSockets(w, indent, p)
	printSettings(w, indent, p)
}

// printSockets writes the sockets p opens, keeps and closes.
func printSockets(w io.Writer, indent string, p supervisor.Plan) {
	if len(p.Open)+len(p.Keep)+len(p.Close) > 0 {
		fmt.Fprintf(w, "%ssockets:\n", indent)
	}
	w = &indentWriter{w: w, indent: indent}
	for _, s := range p.Open {
		fmt.Fprintf(w, "  open   %s %s\n", printable(s.Name), printable(s.Address))
	}
	for _, s := range p.Keep {
		fmt.Fprintf(w, "  keep   %s %s", printable(s.Name), printable(s.Address))
		if len(s.Changed) > 0 {
			fmt.Fprintf(w, " (new %s)", strings.Join(s.Changed, ", "))
		}
		fmt.Fprintln(w)
	}
	for _, s := range p.Close {
		fmt.Fprintf(w, "  close  %s %s", printable(s.Name), printable(s.Address))
		if s.Draining {
			fmt.Fprintln(w, " (once the generations using it have drained)")
		} else {
			fmt.Fprintln(w, " (at once: no generation uses it)")
		}
	}
}

// printSettings writes the settings of p that apply live, and those that
// wait for a restart of hupd.
func printSettings(w io.Writer, indent string, p supervisor.Plan) {
	w = &indentWriter{w: w, indent: indent}
	if len(p.Live) > 0 {
		live := make([]string, len(p.Live))
		for i, l := range p.Live {
			live[i] = liveText(l, p.NewGeneration)
		}
		fmt.Fprintf(w, "applies live: %s\n", strings.Join(live, ", "))
	}
	for _, r := range p.Restart {
		fmt.Fprintf(w, "needs a hupd restart: %s (now %s, configured %s)\n", r.Setting, printable(r.Now), printable(r.Configured))
	}
}

// liveText is a setting of Plan.Live as hupd plan shows it: its name, and
// for those whose "live" needs saying, how it applies: a new number of
// instances scales the serving generation without a reload (or is what a
// new generation starts with), a new rolling counts from the next swap.
func liveText(setting string, newGeneration bool) string {
	switch setting {
	case "instances":
		if newGeneration {
			return "instances (the new generation starts as many)"
		}
		return "instances (scaled live, no reload)"
	case "rolling":
		if newGeneration {
			return "rolling (from this reload)"
		}
		return "rolling (from the next reload)"
	}
	return setting
}

// indentWriter writes indent before each line: each Write is at most one
// line (the plan's lines are written so), or a part of one.
type indentWriter struct {
	w      io.Writer
	indent string
	mid    bool // within a line
}

func (iw *indentWriter) Write(b []byte) (int, error) {
	if !iw.mid && iw.indent != "" && len(b) > 0 {
		if _, err := io.WriteString(iw.w, iw.indent); err != nil {
			return 0, err
		}
	}
	iw.mid = len(b) > 0 && b[len(b)-1] != '\n' || len(b) == 0 && iw.mid
	return iw.w.Write(b)
}
