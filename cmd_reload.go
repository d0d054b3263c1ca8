package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

func reloadCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "reload",
		Usage:        "reload a running hupd and wait for the outcome (exit 0: done, 1: failed)",
		OnUsageError: onUsageError,
		Flags: append(controlFlags(),
			durationFlag("timeout", 0, "give up waiting after `DURATION` (the reload goes on)"),
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"}),
		Action: func(c *cli.Context) error {
			path, err := controlPath(c)
			if err != nil {
				return err
			}
			req := control.Request{Cmd: control.CmdReload}
			ctx := context.Background()
			if d := c.Duration("timeout"); d > 0 {
				req.Timeout = d.String()
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d+5*time.Second)
				defer cancel()
			}
			rep, err := control.Call(ctx, path, req)
			if err != nil {
				return err
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

func reloadSummary(r *supervisor.ReloadResult) string {
	took := r.Finished.Sub(r.Started).Round(time.Millisecond)
	switch r.Strategy {
	case supervisor.StrategySignal:
		return fmt.Sprintf("reload ok (signal): gen %d pid %d reloaded in place in %s", r.NewGen, r.NewPID, took)
	}
	return fmt.Sprintf("reload ok (%s): gen %d pid %d -> gen %d pid %d, ready after %s, took %s",
		r.Strategy, r.OldGen, r.OldPID, r.NewGen, r.NewPID, time.Duration(r.ReadyAfter).Round(time.Millisecond), took)
}
