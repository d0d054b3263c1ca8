// Command hupd adds zero-downtime reloads to any server: it holds the
// listening sockets, hands them to the child the systemd way and supervises
// it. See README.md.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/internal/demo"
	"github.com/hupd/hupd/internal/mainthread"
	"github.com/hupd/hupd/internal/run"
	// Imported for its init: in the process hupd starts as its sentinel it
	// runs the sentinel before any other package is initialised.
	_ "github.com/hupd/hupd/internal/sentinel/guard"
	"github.com/hupd/hupd/socketact"
	// Imported first for its init: in a child started as hupd-shim it execs
	// the target before any other package is initialised.
	_ "github.com/hupd/hupd/socketact/shim"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

// version is set with -ldflags "-X main.version=…"; otherwise it comes
// from the build info.
var version = ""

// renameOnCheck, when set at build time (-ldflags "-X
// main.renameOnCheck=NAME"), makes "hupd check" rename the file NAME, in
// its own binary's directory, over its own binary: the integration test of
// an upgrade whose binary is replaced between its check and its exec
// builds one. It is empty in every other build.
var renameOnCheck string

// exitError carries an exit code out of a command action.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	// Children are started from the main thread (see package mainthread).
	os.Exit(mainthread.Serve(func() int {
		return exitCode(newApp(os.Stdout, os.Stderr).Run(os.Args), os.Stderr)
	}))
}

// exitCode is the one place that maps errors to exit codes: 2 for bad
// configuration or usage, 126/127 for a command that cannot run, the child's
// status when it exited, 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	var ee exitError
	if err == nil {
		return 0
	} else if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(stderr, "hupd: %v\n", err)
	var ce *config.Error
	var nf *supervisor.NotFoundError
	var xe *socketact.ExecError
	switch { // a config error wins: a missing check command is a bad setting
	case errors.As(err, &ce), errors.Is(err, errUsage):
		return 2
	case errors.As(err, &nf):
		return nf.Code
	case errors.As(err, &xe):
		return xe.Code
	}
	return 1
}

var errUsage = errors.New("usage")

// onUsageError makes a bad flag a one-line usage error (exit 2) instead of
// urfave/cli's message followed by the help text.
func onUsageError(_ *cli.Context, err error, _ bool) error {
	return usageError("%v", err)
}

func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "hupd",
		Usage: "hot reload for any server: hupd holds the sockets, the child comes and goes",
		Description: `Examples:
   hupd run --listen tcp://:8080 -- ./myserver --flag
   hupd run --listen http=tcp://127.0.0.1:0 --listen admin=unix:///run/app.sock -- ./myserver
   hupd run -c hupd.toml
   hupd check -c hupd.toml
   hupd reload                 # swap to a new generation; waits and says how it went
   hupd status --json
   hupd demo

The child gets the sockets as fds 3, 4, … with LISTEN_FDS, LISTEN_FDNAMES and
LISTEN_PID set to its own PID, as systemd passes them. Signals: TERM, INT and
QUIT stop gracefully (the child gets --stop-signal, then SIGKILL after
--stop-timeout); HUP reloads like "hupd reload" without waiting; USR2
upgrades hupd in place like "hupd upgrade"; every other signal is forwarded
unchanged.`,
		Version:         buildVersion(),
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // main maps errors to codes
		OnUsageError:    onUsageError,
		// Without subcommand: help; with an unknown one: a usage error
		// (urfave/cli would exit 3 with "No help topic").
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError("unknown command %q: valid commands are run, check, reload, status, upgrade, version, demo", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			{
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
					if c.String("config") != "" {
						load = func() (*config.Resolved, error) { return loadConfig(c, argv) }
					}
					return runResolved(r, stderr, load, nil)
				},
			},
			{
				Name:         "check",
				OnUsageError: onUsageError,
				Usage:        "validate a configuration and print the effective settings",
				ArgsUsage:    "[-- COMMAND [ARG...]]",
				Flags:        runFlags(),
				Action: func(c *cli.Context) error {
					if renameOnCheck != "" {
						if self, err := os.Executable(); err == nil {
							os.Rename(filepath.Join(filepath.Dir(self), renameOnCheck), self)
						}
					}
					cfg, err := mergedConfig(c, c.Args().Slice())
					if err != nil {
						return err
					}
					if _, err := cfg.Resolve(); err != nil {
						return err
					}
					var b bytes.Buffer
					if err := cfg.Encode(&b); err != nil {
						return err
					}
					_, err = stdout.Write(b.Bytes())
					return err
				},
			},
			reloadCommand(stdout, stderr),
			statusCommand(stdout),
			upgradeCommand(stdout, stderr),
			{
				Name:   "upgrade-protocol",
				Hidden: true,
				Usage:  "print the upgrade state version this binary reads (hupd upgrade asks)",
				Action: func(*cli.Context) error {
					fmt.Fprintln(stdout, supervisor.UpgradeProtocol)
					return nil
				},
			},
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(*cli.Context) error {
					fmt.Fprintln(stdout, "hupd", buildVersion())
					return nil
				},
			},
			{
				Name:  "demo",
				Usage: "run hupd on a built-in demo server",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "`HOST:PORT` for the demo server"},
				},
				Action: func(c *cli.Context) error { return runDemo(c.String("listen"), stdout, stderr) },
			},
			{
				Name:   demo.ServerCommand,
				Hidden: true,
				Action: func(c *cli.Context) error {
					return demo.Serve(c.Args().First(), slog.New(slog.NewTextHandler(stderr, nil)))
				},
			},
		},
	}
}

func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "read settings from `FILE` (TOML); flags override it"},
		&cli.StringFlag{Name: "name", Usage: "`NAME` of this service in logs"},
		&cli.StringSliceFlag{Name: "listen", Aliases: []string{"l"}, Usage: "open a socket `[NAME=]URL`: tcp://HOST:PORT, tcp4://, tcp6://[::1]:PORT, udp://, udp4://, udp6://, unix:///path, unix://@abstract (repeatable)"},
		&cli.StringFlag{Name: "reload", Usage: "reload `STRATEGY`: swap (default with --listen), signal (default without), restart"},
		&cli.StringFlag{Name: "reload-signal", Usage: "`SIGNAL` relayed by the signal strategy (default HUP)"},
		&cli.StringFlag{Name: "ready", Usage: "when a new generation is ready: auto (default), notify, delay:`D`, exec:COMMAND"},
		&cli.StringFlag{Name: "ready-timeout", Usage: "`DURATION` a new generation has to become ready (default 60s)"},
		&cli.StringFlag{Name: "check", Usage: "`COMMAND` (split on spaces, no shell) that must exit 0 before a reload"},
		&cli.StringFlag{Name: "control", Usage: "control socket `PATH` (default from --name under $XDG_RUNTIME_DIR/hupd or /run/hupd)"},
		&cli.StringFlag{Name: "output", Usage: "child output: pipe (default: copied, last lines kept) or inherit"},
		&cli.BoolFlag{Name: "output-prefix", Usage: "prefix copied child output with [gen N pid P]"},
		&cli.StringFlag{Name: "watchdog", Usage: "pass WATCHDOG_USEC=`DURATION` to the child; kill it when it misses a WATCHDOG=1"},
		&cli.StringFlag{Name: "stop-signal", Usage: "`SIGNAL` that asks the child to stop (default TERM)"},
		&cli.StringFlag{Name: "stop-timeout", Usage: "`DURATION` before SIGKILL after the stop signal (default 30s)"},
		&cli.StringFlag{Name: "restart", Usage: "restart `POLICY`: always, on-failure (default), never"},
		&cli.StringFlag{Name: "user", Usage: "run the child as `USER` (name or uid; hupd must be root)"},
		&cli.StringFlag{Name: "group", Usage: "run the child with `GROUP` (name or gid)"},
		&cli.StringFlag{Name: "dir", Usage: "run the child in `DIR`"},
		&cli.StringFlag{Name: "cgroup", Usage: "`MODE`: auto (default: each generation in a cgroup v2 group of its own where hupd may create one, stopped as a unit) or off (process groups only)"},
		&cli.BoolFlag{Name: "forking", Usage: "the program daemonizes (forks, its first process exits 0): follow the process it leaves as the main process"},
		&cli.StringFlag{Name: "pidfile", Usage: "`FILE` where a program that daemonizes writes its PID (implies --forking; relative to --dir)"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set `KEY=VALUE` in the child's environment (repeatable)"},
		&cli.StringFlag{Name: "legacy", Usage: "`MODE` for a program that binds its own ports (Linux seccomp): redirect (its binds get hupd's sockets), adopt (the first program's own sockets are kept for the next)"},
		&cli.StringSliceFlag{Name: "handoff", Usage: "also describe the sockets as `DIALECT` does: einhorn, server-starter, nginx (repeatable)"},
		&cli.StringSliceFlag{Name: "watch", Aliases: []string{"w"}, Usage: "reload when `PATH` changes: a file, a directory (everything under it) or a glob (repeatable; adds to [[watch]])"},
		&cli.StringFlag{Name: "watch-poll", Usage: "poll the --watch paths every `DURATION` instead of inotify (network filesystems, FUSE)"},
		&cli.BoolFlag{Name: "watch-config", Value: true, Usage: "apply edits of the -c file as they are saved"},
		&cli.StringFlag{Name: "health", Usage: "serve /livez, /readyz and /metrics (Prometheus) over HTTP on `ADDRESS` (HOST:PORT, e.g. 127.0.0.1:9901; port 0 picks one and logs it); off by default"},
		&cli.StringFlag{Name: "fdstore", Usage: "keep the sockets in systemd's fd store, so that they outlive hupd: auto (default: when $FDSTORE says the unit has one), yes, no"},
		&cli.StringFlag{Name: "log-format", Usage: "`FORMAT` of hupd's log: text (default) or json"},
		&cli.StringFlag{Name: "log-level", Usage: "`LEVEL`: debug, info (default), warn, error"},
	}
}

// overridable are the run flags that map onto config fields.
var overridable = []string{"name", "listen", "reload", "reload-signal", "ready", "ready-timeout", "check",
	"control", "output", "output-prefix", "watchdog", "stop-signal", "stop-timeout",
	"restart", "user", "group", "dir", "cgroup", "forking", "pidfile", "env", "legacy", "handoff", "watch", "watch-poll", "watch-config", "health", "fdstore", "log-format", "log-level"}

func mergedConfig(c *cli.Context, argv []string) (*config.Config, error) {
	cfg := &config.Config{}
	if p := c.String("config"); p != "" {
		var err error
		if cfg, err = config.Load(p); err != nil {
			return nil, err
		}
	}
	for _, name := range overridable {
		if !c.IsSet(name) {
			continue
		}
		var vals []string
		switch flagByName(c, name).(type) {
		case *cli.StringSliceFlag:
			vals = c.StringSlice(name)
		case *cli.BoolFlag:
			vals = []string{strconv.FormatBool(c.Bool(name))}
		default:
			vals = []string{c.String(name)}
		}
		if err := cfg.Override(name, vals...); err != nil {
			return nil, err
		}
	}
	cfg.SetCommand(argv)
	return cfg, nil
}

func flagByName(c *cli.Context, name string) cli.Flag {
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func loadConfig(c *cli.Context, argv []string) (*config.Resolved, error) {
	cfg, err := mergedConfig(c, argv)
	if err != nil {
		return nil, err
	}
	return cfg.Resolve()
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
func runResolved(r *config.Resolved, stderr io.Writer, load func() (*config.Resolved, error), onListen func([]*socketact.Listener)) error {
	r.Options.Stdin, r.Options.Stdout, r.Options.Stderr = os.Stdin, os.Stdout, os.Stderr
	log, level := newLogger(r, stderr)
	code, err := run.Run(r, run.Setup{Log: log, Level: level, Load: load, OnListen: onListen, Version: buildVersion(), Thread: mainthread.Do})
	if err != nil {
		return err
	}
	return exitError{code}
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
	return runResolved(r, stderr, nil, func(ls []*socketact.Listener) {
		b := ls[0].Bound
		demo.Instructions(stdout, fmt.Sprintf("%s:%d", b.Host, b.Port), cfgPath)
	})
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
