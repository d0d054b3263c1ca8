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

// printPlan writes p for a person.
func printPlan(w io.Writer, p supervisor.Plan) {
	if p.Nothing() {
		fmt.Fprintln(w, "nothing to do: the running hupd already runs this configuration")
		return
	}
	if p.NewGeneration {
		fmt.Fprintf(w, "new generation: yes (%s), because these differ: %s\n", p.Strategy, strings.Join(p.Differ, ", "))
	} else {
		fmt.Fprintln(w, "new generation: no (the running one goes on)")
	}
	if len(p.Open)+len(p.Keep)+len(p.Close) > 0 {
		fmt.Fprintln(w, "sockets:")
	}
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
