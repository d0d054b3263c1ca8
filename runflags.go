package main

import (
	"strconv"

	"github.com/hupd/hupd/config"
	"github.com/urfave/cli/v2"
)

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
