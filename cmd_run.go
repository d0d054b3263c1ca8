package main

import (
	"io"
	"log/slog"
	"os"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/internal/mainthread"
	"github.com/hupd/hupd/internal/run"
	"github.com/hupd/hupd/socketact"
	"github.com/urfave/cli/v2"
)

// runCommand is "hupd run": it resolves the flags and hupd.toml and runs
// the command until hupd stops.
func runCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "run",
		OnUsageError: onUsageError,
		Usage:        "run a command under hupd",
		ArgsUsage:    "[-- COMMAND [ARG...]]",
		Flags:        runFlags(),
		Action: func(c *cli.Context) error {
			argv := c.Args().Slice()
			r, err := loadConfig(c, argv)
			if err != nil {
				return err
			}
			var load func() (*config.Resolved, error)
			var parse func([]byte) (*config.Resolved, error)
			if c.String("config") != "" {
				load = func() (*config.Resolved, error) { return loadConfig(c, argv) }
				parse = func(data []byte) (*config.Resolved, error) {
					cfg, err := mergedConfigData(c, argv, data)
					if err != nil {
						return nil, err
					}
					return cfg.Resolve()
				}
			}
			return runResolved(r, stderr, load, parse, nil)
		},
	}
}

func newLogger(r *config.Resolved, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(r.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if r.LogFormat == config.FormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}

// runResolved runs r; load, when not nil, reads the configuration again
// (hupd.toml edits are applied while hupd runs).
func runResolved(r *config.Resolved, stderr io.Writer, load func() (*config.Resolved, error), parse func([]byte) (*config.Resolved, error), onListen func([]*socketact.Listener)) error {
	r.Options.Stdin, r.Options.Stdout, r.Options.Stderr = os.Stdin, os.Stdout, os.Stderr
	log, level := newLogger(r, stderr)
	setup := run.Setup{Log: log, Level: level, Load: load, Parse: parse, OnListen: onListen, Version: buildVersion()}
	if mainthread.Serving() {
		// main runs the app inside mainthread.Serve: children are forked
		// from the main thread. (Elsewhere, a test, the supervisor locks
		// a thread of its own.)
		setup.Thread = mainthread.Do
	}
	code, err := run.Run(r, setup)
	if err != nil {
		return err
	}
	return exitError{code}
}
