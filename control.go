package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

// controlFlags choose which hupd to talk to.
func controlFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "control", Usage: "control socket `PATH`"},
		&cli.StringFlag{Name: "name", Usage: "`NAME` of the hupd to talk to (its --name)"},
	}
}

// controlPath picks the control socket: --control, --name, $HUPD_CONTROL
// (set for hupd's children), or the only socket in the default directory.
// The socket's directory must be one an attacker cannot control (see
// supervisor.CheckControlDir); Call then checks who answers.
func controlPath(c *cli.Context) (string, error) {
	path, explicit, err := pickControlPath(c)
	if err != nil {
		return "", err
	}
	if err := supervisor.CheckControlDir(path, explicit); err != nil {
		return "", err
	}
	return path, nil
}

func pickControlPath(c *cli.Context) (path string, explicit bool, err error) {
	if p := c.String("control"); p != "" {
		return p, true, nil
	}
	if n := c.String("name"); n != "" {
		return control.DefaultPath(n), false, nil
	}
	if p := os.Getenv(supervisor.EnvControl); p != "" {
		return p, true, nil
	}
	probe := control.DefaultPath("x")
	dir := filepath.Dir(probe)
	if err := supervisor.CheckControlDir(probe, false); err != nil {
		return "", false, err
	}
	socks, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	switch len(socks) {
	case 1:
		return socks[0], false, nil
	case 0:
		return "", false, usageError("no hupd control socket in %s: is hupd running? choose one with --name or --control", dir)
	}
	names := make([]string, len(socks))
	for i, p := range socks {
		names[i] = strings.TrimSuffix(filepath.Base(p), ".sock")
	}
	return "", false, usageError("several hupd instances run (%s): choose one with --name", strings.Join(names, ", "))
}

func reloadCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "reload",
		Usage:        "reload a running hupd and wait for the outcome (exit 0: done, 1: failed)",
		OnUsageError: onUsageError,
		Flags: append(controlFlags(),
			&cli.DurationFlag{Name: "timeout", Usage: "give up waiting after `DURATION` (the reload goes on)"},
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

func statusCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "status",
		Usage:        "show a running hupd's sockets, generations and last reload",
		OnUsageError: onUsageError,
		Flags:        append(controlFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
		Action: func(c *cli.Context) error {
			path, err := controlPath(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rep, err := control.Call(ctx, path, control.Request{Cmd: control.CmdStatus})
			if err != nil {
				return err
			}
			if rep.Status == nil {
				return errors.New(rep.Error)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep.Status)
			}
			printStatus(stdout, rep.Status)
			return nil
		},
	}
}

func printStatus(w io.Writer, st *supervisor.Status) {
	fmt.Fprintf(w, "hupd %s (pid %d), strategy %s, %d reloads, %d restarts", st.Name, st.PID, st.Strategy, st.Reloads, st.Restarts)
	if st.Hash != "" {
		fmt.Fprintf(w, ", content %s", st.Hash)
		if st.ConfigHash != "" && st.ConfigHash != st.Hash {
			fmt.Fprintf(w, " (serving %s)", st.ConfigHash)
		}
	}
	fmt.Fprintln(w)
	if c := st.Containment; c != nil {
		fmt.Fprintf(w, "containment: %s\n", containmentText(c))
	}
	if st.ConfigError != "" {
		fmt.Fprintf(w, "config not applied: %s\n", st.ConfigError)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FD\tNAME\tADDRESS\t")
	for _, l := range st.Listeners {
		addr := l.Address
		if l.Pending {
			addr += " (to adopt: not bound yet)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t\n", l.FD, l.Name, addr)
	}
	tw.Flush()
	fmt.Fprintln(tw, "GEN\tPID\tSTATE\tUPTIME\tREADY AFTER\tPROCS\tMEMORY (PEAK)\tCPU\tCONFIG\tSTATUS\t")
	for _, g := range st.Generations {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\t%s (%s)\t%s\t%s\t%s\t\n", g.Gen, g.PID, g.State,
			time.Duration(g.Uptime).Round(time.Second), time.Duration(g.ReadyAfter).Round(time.Millisecond),
			g.Processes, bytesText(g.MemoryBytes), bytesText(g.MemoryPeakBytes),
			time.Duration(g.CPUSeconds*float64(time.Second)).Round(time.Millisecond), g.ConfigHash, printable(g.StatusText))
	}
	tw.Flush()
	if len(st.Watches) > 0 {
		fmt.Fprintln(tw, "WATCH\tACTION\tHASH\tCHANGES\tLAST CHANGE\t")
		for _, ws := range st.Watches {
			last := "-"
			if !ws.LastChange.IsZero() {
				last = time.Since(ws.LastChange).Round(time.Second).String() + " ago"
			}
			action := ws.Action
			if ws.Poll > 0 {
				action += " (poll " + time.Duration(ws.Poll).String() + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t\n", strings.Join(ws.Paths, " "), action, ws.Hash, ws.Changes, last)
			if ws.Error != "" {
				fmt.Fprintf(tw, "  error: %s\t\t\t\t\t\n", ws.Error)
			}
		}
		tw.Flush()
	}
	if r := st.LastReload; r != nil {
		result := "ok"
		if !r.OK {
			result = "failed: " + r.Reason
		}
		cause := ""
		if r.Cause != "" {
			cause = " (" + r.Cause + ")"
		}
		fmt.Fprintf(w, "last reload: %s%s, %s ago, took %s: %s\n", r.Strategy, cause,
			time.Since(r.Finished).Round(time.Second), r.Finished.Sub(r.Started).Round(time.Millisecond), result)
	}
}

// containmentText is the status line's description of c:
// "cgroup /sys/fs/cgroup/…" or "process group (fallback: why)".
func containmentText(c *supervisor.Containment) string {
	if c.Mode == supervisor.ContainCgroup {
		return "cgroup " + c.Cgroup
	}
	return "process group (fallback: " + c.Reason + ")"
}

// bytesText writes n bytes in binary units: "512 B", "12.3 MiB".
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

func upgradeCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name: "upgrade",
		Usage: "re-execute a running hupd from its binary on disk, in place: same PID, same sockets, " +
			"the generations keep running (exit 0: upgraded, 1: not, and why)",
		OnUsageError: onUsageError,
		Flags: append(controlFlags(),
			&cli.StringFlag{Name: "binary", Usage: "run `PATH` instead of the binary hupd was started from (a relative PATH, even a bare name, is relative to this directory)"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "give up waiting after `DURATION`"}),
		Action: func(c *cli.Context) error {
			path, err := controlPath(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.Duration("timeout"))
			defer cancel()
			before, err := callStatus(ctx, path)
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
			after, err := waitUpgraded(ctx, path, before)
			if err != nil {
				return fmt.Errorf("upgrade: no answer from the new hupd: %w", err)
			}
			if after.RolledBack {
				fmt.Fprintf(stderr, "hupd: upgrade failed: the new binary could not take over; the previous one took its state back (see hupd's log)\n")
				return exitError{1}
			}
			fmt.Fprintf(stdout, "upgrade ok: hupd pid %d now runs %s (was %s), %d generation(s) kept\n",
				after.PID, orUnknown(after.Version), orUnknown(before.Version), len(after.Generations))
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

func callStatus(ctx context.Context, path string) (*supervisor.Status, error) {
	rep, err := control.Call(ctx, path, control.Request{Cmd: control.CmdStatus})
	if err != nil {
		return nil, err
	}
	if rep.Status == nil {
		return nil, errors.New(rep.Error)
	}
	return rep.Status, nil
}

// waitUpgraded asks for the status until the hupd at path reports one
// more upgrade than before.
func waitUpgraded(ctx context.Context, path string, before *supervisor.Status) (*supervisor.Status, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := callStatus(ctx, path)
		if err == nil && st.Upgrades > before.Upgrades {
			return st, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return nil, err
		case <-t.C:
		}
	}
}

// printable is s for a terminal: text that a child wrote (its STATUS=, its
// last output lines, a reason quoting them) reaches the operator's
// terminal through hupd status and hupd reload, and must not carry escape
// sequences or other control characters there. A string with any is shown
// quoted, with them escaped (\x1b, \r, …); others as they are.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsGraphic(r) || r == utf8.RuneError {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}
