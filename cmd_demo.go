package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/internal/demo"
	"github.com/hupd/hupd/socketact"
	"github.com/urfave/cli/v2"
)

// demoCommand is "hupd demo": hupd runs its built-in demo server.
func demoCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run hupd on a built-in demo server",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "`HOST:PORT` for the demo server"},
		},
		Action: func(c *cli.Context) error { return runDemo(c.String("listen"), stdout, stderr) },
	}
}

// demoServerCommand is the hidden command the demo runs as its child:
// the demo server itself.
func demoServerCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:   demo.ServerCommand,
		Hidden: true,
		Action: func(c *cli.Context) error {
			return demo.Serve(c.Args().First(), slog.New(slog.NewTextHandler(stderr, nil)))
		},
	}
}

func runDemo(addr string, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "hupd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfgPath, err := demo.WriteConfig(dir)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := &config.Config{Name: "demo", Command: []string{self, demo.ServerCommand, cfgPath}}
	if err := cfg.Override("listen", "http=tcp://"+addr); err != nil {
		return err
	}
	if err := cfg.Override("watch", cfgPath); err != nil {
		return err
	}
	r, err := cfg.Resolve()
	if err != nil {
		return err
	}
	return runResolved(r, stderr, nil, nil, "", nil, func(ls []*socketact.Listener) {
		b := ls[0].Bound
		demo.Instructions(stdout, fmt.Sprintf("%s:%d", b.Host, b.Port), cfgPath)
	})
}
