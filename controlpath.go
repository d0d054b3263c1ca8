package main

import (
	"os"
	"path/filepath"
	"strings"

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
