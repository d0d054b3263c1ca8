package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

func upgradeCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name: "upgrade",
		Usage: "re-execute a running hupd from its binary on disk, in place: same PID, same sockets, " +
			"the generations keep running (exit 0: upgraded, 1: not, and why)",
		OnUsageError: onUsageError,
		Flags: append(controlFlags(),
			&cli.StringFlag{Name: "binary", Usage: "run `PATH` instead of the binary hupd was started from (a relative PATH, even a bare name, is relative to this directory)"},
			durationFlag("timeout", time.Minute, "give up waiting after `DURATION`")),
		Action: func(c *cli.Context) error {
			path, err := controlPath(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.Duration("timeout"))
			defer cancel()
			before, _, err := upgradeStatus(ctx, path)
			if err != nil {
				return err
			}
			binary := c.String("binary")
			if binary != "" {
				if binary, err = filepath.Abs(binary); err != nil {
					return err
				}
			}
			rep, err := control.Call(ctx, path, control.Request{Cmd: control.CmdUpgrade, Binary: binary})
			if err == nil {
				fmt.Fprintf(stderr, "hupd: %s\n", rep.Error)
				return exitError{1}
			}
			// The exec closed the connection: ask the new image.
			after, kept, err := waitUpgraded(ctx, path, before)
			if err != nil {
				return fmt.Errorf("upgrade: no answer from the new hupd: %w", err)
			}
			if after.RolledBack {
				fmt.Fprintf(stderr, "hupd: upgrade failed: the new binary could not take over; the previous one took its state back (see hupd's log)\n")
				return exitError{1}
			}
			fmt.Fprintf(stdout, "upgrade ok: hupd pid %d now runs %s (was %s), %d generation(s) kept\n",
				after.PID, orUnknown(after.Version), orUnknown(before.Version), kept)
			return nil
		},
	}
}

func orUnknown(v string) string {
	if v == "" {
		return "an unknown version"
	}
	return v
}

// callStatus asks the hupd at path for its status; of a hupd that runs
// several programs (multi), the first program's that has one (its name
// and PID are hupd's).
func callStatus(ctx context.Context, path string) (st *supervisor.Status, multi bool, err error) {
	rep, err := control.Call(ctx, path, control.Request{Cmd: control.CmdStatus})
	if err != nil {
		return nil, false, err
	}
	for _, p := range rep.Programs {
		if p.Status != nil {
			return p.Status, true, nil
		}
	}
	if rep.Status == nil {
		return nil, rep.Programs != nil, errors.New(rep.Error)
	}
	return rep.Status, false, nil
}

// upgradeStatus is callStatus for an upgrade: of a hupd that runs several
// programs, the status of the first one running (its Upgrades, Version,
// RolledBack and PID are hupd's) and, as gens, the generations of them
// all.
func upgradeStatus(ctx context.Context, path string) (st *supervisor.Status, gens int, err error) {
	rep, err := control.Call(ctx, path, control.Request{Cmd: control.CmdStatus})
	if err != nil {
		return nil, 0, err
	}
	if rep.Programs == nil {
		if rep.Status == nil {
			return nil, 0, errors.New(rep.Error)
		}
		return rep.Status, len(rep.Status.Generations), nil
	}
	for _, p := range rep.Programs {
		if p.State != control.ProgramRunning || p.Status == nil {
			continue
		}
		if st == nil {
			st = p.Status
		}
		gens += len(p.Status.Generations)
	}
	if st == nil {
		return nil, 0, errors.New("no program runs")
	}
	return st, gens, nil
}

// waitUpgraded asks for the status until the hupd at path reports one
// more upgrade than before; kept is the number of its generations.
func waitUpgraded(ctx context.Context, path string, before *supervisor.Status) (*supervisor.Status, int, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		st, kept, err := upgradeStatus(ctx, path)
		if err == nil && st.Upgrades > before.Upgrades {
			return st, kept, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return nil, 0, err
		case <-t.C:
		}
	}
}

// upgradeProtocolCommand is the hidden "hupd upgrade-protocol", which a
// running hupd asks of a new binary before it execs it.
func upgradeProtocolCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:   "upgrade-protocol",
		Hidden: true,
		Usage:  "print the upgrade state version this binary reads (hupd upgrade asks; with \"programs\": whether it takes several programs over)",
		Action: func(c *cli.Context) error {
			if supervisor.IsUpgradeProtocolPrograms(c.Args().Slice()) {
				fmt.Fprintln(stdout, supervisor.UpgradeProtocolPrograms)
				return nil
			}
			fmt.Fprintln(stdout, supervisor.UpgradeProtocol)
			return nil
		},
	}
}
