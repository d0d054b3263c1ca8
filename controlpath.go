package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

// controlFlags choose which hupd to talk to.
func controlFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "control", Usage: "control socket `PATH`"},
		&cli.StringFlag{Name: "name", Usage: "`NAME` of the hupd to talk to (its --name)"},
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "talk to the hupd run with `FILE` (its name and control settings)"},
	}
}

// programFlag is the --program flag of the client commands that act on
// one program (scale, rollback, logs): with a hupd that runs several, the
// program; a hupd of one program refuses it.
func programFlag(what string) cli.Flag {
	return &cli.StringFlag{Name: "program", Usage: "with several programs ([[program]]): the `PROGRAM` to " + what}
}

// programArg is the request's Programs for --program: none without it.
func programArg(c *cli.Context) []string {
	if p := c.String("program"); p != "" {
		return []string{p}
	}
	return nil
}

// exitNotRunning is the exit status of a client command that finds no hupd
// to talk to, however it looked for one (LSB's "program is not running"
// for init script actions).
const exitNotRunning = 7

// notRunningError says no hupd answers (exit status exitNotRunning, as for
// an error that wraps control.ErrNotRunning).
type notRunningError struct{ msg string }

func (e *notRunningError) Error() string        { return e.msg }
func (e *notRunningError) Is(target error) bool { return target == control.ErrNotRunning }

// controlPath picks the control socket: --control, --name, --config,
// $HUPD_CONTROL (set for hupd's children), or the only socket in the
// default directory; with several there, it lists them on stderr. The
// socket's directory must be one an attacker cannot control (see
// supervisor.CheckControlDir); Call then checks who answers.
func controlPath(c *cli.Context) (string, error) {
	path, explicit, err := pickControlPath(c, c.App.ErrWriter)
	if err != nil {
		return "", err
	}
	if err := supervisor.CheckControlDir(path, explicit); err != nil {
		return "", err
	}
	return path, nil
}

func pickControlPath(c *cli.Context, stderr io.Writer) (path string, explicit bool, err error) {
	if p := c.String("control"); p != "" {
		return p, true, nil
	}
	if n := c.String("name"); n != "" {
		return control.DefaultPath(n), false, nil
	}
	if f := c.String("config"); f != "" {
		return configControlPath(f)
	}
	if p := os.Getenv(supervisor.EnvControl); p != "" {
		return p, true, nil
	}
	probe := control.DefaultPath("x")
	dir := filepath.Dir(probe)
	if err := supervisor.CheckControlDir(probe, false); err != nil { // nil for a missing directory
		return "", false, err
	}
	socks, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	switch len(socks) {
	case 0:
		return "", false, &notRunningError{fmt.Sprintf("no hupd control socket in %s: is hupd running? choose one with --name, -c or --control", dir)}
	case 1:
		return socks[0], false, nil
	}
	found := listInstances(socks)
	var live []instance
	for _, in := range found {
		if in.err == nil {
			live = append(live, in)
		}
	}
	switch len(live) {
	case 1: // the others are stale sockets of a hupd that was killed
		return live[0].path, false, nil
	case 0:
		return "", false, &notRunningError{fmt.Sprintf("no hupd control socket in %s answers: is hupd running? choose one with --name, -c or --control", dir)}
	}
	printInstances(stderr, found)
	return "", false, usageError("%d hupd instances run: choose one with --name NAME, -c FILE or --control PATH", len(live))
}

// configControlPath is the control socket of the hupd run with the config
// file at path: its control setting, or the default path of its name
// (config.Config.ServiceName).
func configControlPath(path string) (string, bool, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return "", false, err
	}
	if cfg.Control != "" {
		return cfg.Control, true, nil
	}
	name := cfg.ServiceName()
	if name == "" {
		return "", false, &config.Error{Where: path, Field: "name", Err: errors.New("no name and no command to name the hupd after")}
	}
	return control.DefaultPath(name), false, nil
}

// instance is a hupd found by its socket in the default directory.
type instance struct {
	path, name string
	pid        int
	err        error
}

// listInstances asks every socket for its hupd's name and PID.
func listInstances(socks []string) []instance {
	out := make([]instance, len(socks))
	for i, p := range socks {
		out[i] = instance{path: p, name: strings.TrimSuffix(filepath.Base(p), ".sock")}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, _, err := callStatus(ctx, p)
		cancel()
		if err != nil {
			out[i].err = err
			continue
		}
		out[i].name, out[i].pid = st.Name, st.PID
	}
	return out
}

// printInstances writes one line per instance: name, PID, socket.
func printInstances(w io.Writer, found []instance) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tCONTROL")
	for _, in := range found {
		pid := fmt.Sprint(in.pid)
		if in.err != nil {
			pid = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", printable(in.name), pid, in.path)
	}
	tw.Flush()
}
