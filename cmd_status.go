package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

func statusCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "status",
		Usage:        "show a running hupd's sockets, generations and last reload (with several programs: each program's, or PROGRAM's)",
		ArgsUsage:    "[PROGRAM]",
		OnUsageError: onUsageError,
		Flags:        append(controlFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
		Action: func(c *cli.Context) error {
			names, shown, err := programNames(c)
			if err != nil || shown {
				return err
			}
			path, err := controlPath(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if len(names) > 1 {
				return usageError("status takes at most one PROGRAM, got %d arguments", len(names))
			}
			rep, err := control.Call(ctx, path, control.Request{Cmd: control.CmdStatus, Programs: names})
			if err != nil {
				return err
			}
			if rep.BadProgram {
				return &badProgramError{rep.Error}
			}
			if rep.Programs != nil {
				return printPrograms(stdout, rep.Programs, c.Bool("json"))
			}
			if rep.Status == nil {
				return errors.New(rep.Error)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep.Status)
			}
			printStatus(stdout, rep.Status, time.Now())
			return nil
		},
	}
}

// programsJSON is hupd status --json of a hupd that runs several programs.
type programsJSON struct {
	Programs []control.ProgramReply `json:"programs"`
}

// printPrograms writes the status of several programs: a heading per
// program ("== program NAME (STATE) =="), then its status as hupd status
// shows a single program's; with asJSON, {"programs": [{name, state,
// status}, …]}.
func printPrograms(w io.Writer, ps []control.ProgramReply, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(programsJSON{Programs: ps})
	}
	now := time.Now()
	for i, p := range ps {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== program %s (%s) ==\n", p.Name, p.State)
		if p.Status != nil {
			printStatus(w, p.Status, now)
		}
	}
	return nil
}

// printStatus writes st as hupd status shows it; now is the time the
// "ago" of the last reload and of the watches' last changes count from.
func printStatus(w io.Writer, st *supervisor.Status, now time.Time) {
	fmt.Fprintf(w, "hupd %s (pid %d), strategy %s", st.Name, st.PID, st.Strategy)
	if st.Instances > 1 || st.Rolling > 0 {
		fmt.Fprintf(w, ", %s", count(st.Instances, "instance"))
		if st.Rolling > 0 {
			fmt.Fprintf(w, " (swapped %d at a time)", st.Rolling)
		}
	}
	fmt.Fprintf(w, ", %s, %s", count(st.Reloads, "reload"), count(st.Restarts, "restart"))
	if st.StartFailures > 0 {
		fmt.Fprintf(w, ", %d failed starts (start limit %s)", st.StartFailures, st.StartLimit)
	}
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
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\t%s (%s)\t%s\t%s\t%s\t\n", g.Gen, g.PID, stateText(g),
			time.Duration(g.Uptime).Round(time.Second), readyAfterText(g),
			g.Processes, bytesText(g.MemoryBytes), bytesText(g.MemoryPeakBytes),
			time.Duration(g.CPUSeconds*float64(time.Second)).Round(time.Millisecond), g.ConfigHash, printable(g.StatusText))
		for _, in := range g.Instances {
			fmt.Fprintf(tw, "  %d.%d\t%s\t%s\t%s\t%s\t%d\t%s (%s)\t%s\t\t%s\t\n", g.Gen, in.Index, instancePID(in), instanceState(in),
				instanceUptime(in), instanceReadyAfter(in), in.Processes, bytesText(in.MemoryBytes), bytesText(in.MemoryPeakBytes),
				time.Duration(in.CPUSeconds*float64(time.Second)).Round(time.Millisecond), instanceStatusText(in))
		}
	}
	tw.Flush()
	if len(st.Watches) > 0 {
		fmt.Fprintln(tw, "WATCH\tACTION\tHASH\tCHANGES\tLAST CHANGE\t")
		for _, ws := range st.Watches {
			last := "-"
			if !ws.LastChange.IsZero() {
				last = now.Sub(ws.LastChange).Round(time.Second).String() + " ago"
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
			now.Sub(r.Finished).Round(time.Second), r.Finished.Sub(r.Started).Round(time.Millisecond), result)
	}
}

// stateText is a generation's STATE: its state, and for a settling one
// the time left of its window ("settling (25s left)"), during which hupd
// rollback makes it serve again.
func stateText(g supervisor.GenerationStatus) string {
	if g.State != supervisor.StateSettling {
		return string(g.State)
	}
	left := time.Duration(g.SettleLeft)
	if left >= 10*time.Second {
		left = left.Round(time.Second)
	} else {
		left = left.Round(100 * time.Millisecond)
	}
	return fmt.Sprintf("%s (%s left)", g.State, left)
}

// A generation's instances (supervisor.GenerationStatus.Instances) are
// rows under it, "  GEN.INDEX" as hupd logs names them: PID "-" and
// STATE "waiting to restart" for one that exited and waits for its
// restart (PID 0; "not restarted" when it will not be, "not started yet"
// for a rolling swap's later ones), and in STATUS its restarts and how it last exited,
// then its own status text.

func instancePID(in supervisor.InstanceStatus) string {
	if in.PID == 0 {
		return "-"
	}
	return strconv.Itoa(in.PID)
}

func instanceState(in supervisor.InstanceStatus) string {
	if in.PID == 0 {
		switch in.State {
		case supervisor.StateFailed:
			return "not restarted" // the restart policy, or the start limit
		case supervisor.StateStarting:
			return "not started yet" // a rolling swap's later instances
		}
		return "waiting to restart"
	}
	return string(in.State)
}

func instanceUptime(in supervisor.InstanceStatus) string {
	if in.PID == 0 {
		return "-"
	}
	return time.Duration(in.Uptime).Round(time.Second).String()
}

func instanceReadyAfter(in supervisor.InstanceStatus) string {
	if in.PID == 0 || in.State == supervisor.StateStarting {
		return "-"
	}
	return time.Duration(in.ReadyAfter).Round(time.Millisecond).String()
}

// instanceStatusText is "2 restarts, last exit: exit status 1; TEXT".
func instanceStatusText(in supervisor.InstanceStatus) string {
	var parts []string
	if in.Restarts > 0 {
		r := count(in.Restarts, "restart")
		if in.LastExit != "" {
			r += ", last exit: " + in.LastExit
		}
		parts = append(parts, r)
	} else if in.LastExit != "" {
		parts = append(parts, "last exit: "+in.LastExit)
	}
	if in.StatusText != "" {
		parts = append(parts, in.StatusText)
	}
	return printable(strings.Join(parts, "; "))
}

// readyAfterText is a generation's READY AFTER: "-" while it starts (it
// is not ready yet: 0s would say it was ready at once).
func readyAfterText(g supervisor.GenerationStatus) string {
	if g.State == supervisor.StateStarting {
		return "-"
	}
	return time.Duration(g.ReadyAfter).Round(time.Millisecond).String()
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

// count is "1 reload", "2 reloads", "0 reloads".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
