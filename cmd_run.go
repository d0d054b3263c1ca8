package main

import (
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/internal/mainthread"
	"github.com/hupd/hupd/internal/run"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
	"github.com/hupd/hupd/watch"
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
			// hupd.toml is read once: its hash is of the very bytes
			// resolved (what its edits compare with). The new image of
			// an upgrade resolves the bytes in force in the previous one,
			// which the state carries: it takes over exactly what runs,
			// then applies the file on disk as an edit if it differs.
			var data []byte
			var err error
			if p := c.String("config"); p != "" {
				data, err = configData(p)
			}
			var cfg *config.Config
			if err == nil {
				cfg, err = mergedConfigData(c, argv, data)
			}
			if err == nil && cfg.Multi() {
				return runMulti(c, cfg, data, stderr)
			}
			var r *config.Resolved
			if err == nil {
				r, err = cfg.Resolve()
			}
			if err != nil {
				// The file's log.format is not known: the flag's is.
				return fatalIn(err, c.String("log-format") == config.FormatJSON, c.String("name"))
			}
			var load func() (*config.Resolved, error)
			var parse func([]byte) (*config.Resolved, error)
			var hash string
			if c.String("config") != "" {
				hash = watch.HashData(r.ConfigFile, data)
				load = func() (*config.Resolved, error) { return loadConfig(c, argv) }
				parse = func(data []byte) (*config.Resolved, error) {
					cfg, err := mergedConfigData(c, argv, data)
					if err != nil {
						return nil, err
					}
					return cfg.Resolve()
				}
			}
			return runResolved(r, stderr, load, parse, hash, data, nil)
		},
	}
}

// configData is the content of hupd.toml (path) that hupd run resolves:
// in the new image of an upgrade, the version in force in the previous
// one when the state carries it (supervisor.UpgradeConfig), else the
// file's.
func configData(path string) ([]byte, error) {
	if data, ok := supervisor.UpgradeConfig(); ok {
		return data, nil
	}
	return config.ReadFile(path)
}

// runMulti runs a file with [[program]] tables: its mistakes are one-line
// errors with nothing started.
//
// data is hupd.toml's content as cfg was read from it (nil without one).
func runMulti(c *cli.Context, cfg *config.Config, data []byte, stderr io.Writer) error {
	m, err := cfg.ResolveMulti()
	if err != nil {
		return fatalIn(err, c.String("log-format") == config.FormatJSON, c.String("name"))
	}
	top := &config.Resolved{LogFormat: m.LogFormat, LogLevel: m.LogLevel}
	log, level := newLogger(top, stderr)
	outputs(m, top)
	setup := run.Setup{Log: log, Level: level, Version: buildVersion()}
	if c.String("config") != "" {
		// hupd.toml again, as at start; its log.format stays top's.
		argv := c.Args().Slice()
		setup.ConfigHash, setup.ConfigData = watch.HashData(m.ConfigFile, data), data
		setup.ParseMulti = func(data []byte) (*config.ResolvedMulti, error) {
			cfg, err := mergedConfigData(c, argv, data)
			if err != nil {
				return nil, err
			}
			if !cfg.Multi() {
				return nil, errFormChanged
			}
			m, err := cfg.ResolveMulti()
			if err != nil {
				return nil, err
			}
			outputs(m, top)
			return m, nil
		}
		setup.LoadMulti = func() (*config.ResolvedMulti, error) {
			data, err := config.ReadFile(c.String("config"))
			if err != nil {
				return nil, err
			}
			return setup.ParseMulti(data)
		}
	}
	if mainthread.Serving() {
		setup.Thread = mainthread.Do
	}
	code, err := run.RunMulti(m, setup)
	if err != nil {
		return fatalIn(err, m.LogFormat == config.FormatJSON, m.Name)
	}
	return exitError{code}
}

// errFormChanged refuses an edit of a running hupd's file from the
// multi-program form to the single-program form.
var errFormChanged = errors.New("hupd.toml has no [[program]] table any more: changing to the single-program form needs a restart of hupd")

// outputs sends the output of m's programs where hupd's own goes, as
// records in JSON when top's log.format is json.
func outputs(m *config.ResolvedMulti, top *config.Resolved) {
	for i := range m.Programs {
		o := &m.Programs[i].Options
		o.Stdout, o.Stderr = os.Stdout, os.Stderr
		if top.LogFormat == config.FormatJSON {
			o.OutputRecords = func(w io.Writer) slog.Handler { return newLogHandler(top, w, childOutputLevel) }
		}
	}
}

func newLogger(r *config.Resolved, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(r.LogLevel)
	return slog.New(newLogHandler(r, w, level)), level
}

// newLogHandler is the handler of every record hupd writes to w: its own,
// and its children's output lines in JSON. run.Run adds the service's
// name to it (every record carries it).
func newLogHandler(r *config.Resolved, w io.Writer, level slog.Leveler) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if r.LogFormat == config.FormatJSON {
		opts.ReplaceAttr = durationString
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// childOutputLevel is the level of the handler that writes children's
// output lines as records (at Info): whatever hupd's own level, they pass.
const childOutputLevel = slog.LevelInfo

// durationString writes durations as Go duration strings ("1.5s"), as
// status --json and hupd.toml do, instead of slog's JSON nanoseconds.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// runResolved runs r; load, when not nil, reads the configuration again
// (hupd.toml edits are applied while hupd runs), and hash is that of the
// bytes of hupd.toml r was resolved from (run.Setup.ConfigHash), data
// those bytes (run.Setup.ConfigData).
func runResolved(r *config.Resolved, stderr io.Writer, load func() (*config.Resolved, error), parse func([]byte) (*config.Resolved, error), hash string, data []byte, onListen func([]*socketact.Listener)) error {
	r.Options.Stdin, r.Options.Stdout, r.Options.Stderr = os.Stdin, os.Stdout, os.Stderr
	log, level := newLogger(r, stderr)
	if r.LogFormat == config.FormatJSON {
		// Every line hupd writes is JSON: its children's too. Their lines
		// are always written, as in text mode: --log-level is hupd's own.
		r.Options.OutputRecords = func(w io.Writer) slog.Handler { return newLogHandler(r, w, childOutputLevel) }
	}
	setup := run.Setup{Log: log, Level: level, Load: load, Parse: parse, ConfigHash: hash, ConfigData: data, OnListen: onListen, Version: buildVersion()}
	if mainthread.Serving() {
		// main runs the app inside mainthread.Serve: children are forked
		// from the main thread. (Elsewhere, a test, the supervisor locks
		// a thread of its own.)
		setup.Thread = mainthread.Do
	}
	code, err := run.Run(r, setup)
	if err != nil {
		return fatalIn(err, r.LogFormat == config.FormatJSON, r.Options.Name)
	}
	return exitError{code}
}
