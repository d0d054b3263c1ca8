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

// rollbackCommand is "hupd rollback": the generation a swap left settling
// ([reload] settle, --settle) serves again and the newer one stops,
// without starting anything. It prints the result as hupd reload does.
func rollbackCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "rollback",
		Usage:        "make the generation kept settling after a swap (--settle) serve again and stop the newer one, starting nothing (exit 0: done, 1: failed, 7: not running)",
		OnUsageError: onUsageError,
		Flags: append(controlFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			programFlag("roll back")),
		Action: func(c *cli.Context) error {
			path, err := controlPath(c)
			if err != nil {
				return err
			}
			rep, err := control.Call(context.Background(), path, control.Request{Cmd: control.CmdRollback, Programs: programArg(c)})
			if err != nil {
				return err
			}
			if rep.BadProgram {
				return &badProgramError{rep.Error}
			}
			if rep.Reload == nil {
				if rep.Error == "" {
					return errors.New("rollback: hupd answered without a result")
				}
				return errors.New(rep.Error)
			}
			r := rep.Reload
			if c.Bool("json") {
				json.NewEncoder(stdout).Encode(r)
			} else if r.OK {
				fmt.Fprintln(stdout, rollbackSummary(r))
			}
			if !r.OK {
				fmt.Fprintf(stderr, "hupd: rollback failed: %s\n", printable(r.Reason))
				return exitError{1}
			}
			return nil
		},
	}
}

// rollbackSummary is hupd rollback's line for a rollback that worked:
// "rollback ok: gen 1 pid 100 serves again (gen 2 pid 200 stops), took 2ms".
func rollbackSummary(r *supervisor.ReloadResult) string {
	took := r.Finished.Sub(r.Started).Round(time.Millisecond)
	s := fmt.Sprintf("rollback ok: gen %d pid %d serves again", r.NewGen, r.NewPID)
	if r.OldGen != 0 {
		s += fmt.Sprintf(" (gen %d pid %d stops)", r.OldGen, r.OldPID)
	}
	return s + ", took " + took.String()
}
