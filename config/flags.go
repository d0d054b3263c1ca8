package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hupd/hupd/socketact"
)

// FlagKind says how a command-line flag takes its values.
type FlagKind int

const (
	// FlagString takes one value; given again, the last one wins.
	FlagString FlagKind = iota
	// FlagList is repeatable: every value counts, in order.
	FlagList
	// FlagBool is a switch: --flag or --flag=false; its value is "true"
	// or "false".
	FlagBool
)

// Flag is a command-line flag of hupd run and hupd check that sets a
// field of Config. Flags lists them all; the CLI builds its flags from it
// and passes each one given to Override.
type Flag struct {
	Name    string
	Aliases []string
	Kind    FlagKind
	// Usage is the help text; a word in backquotes is the value's
	// placeholder there ("`DURATION`").
	Usage string
	// Default is a FlagBool's value when the flag is not given, as the
	// help shows it; the field's own default is set by Resolve.
	Default bool
	// Global marks a hupd-wide setting (--name, --control, --log-format…),
	// which applies to a file with [[program]] tables too; every other
	// flag sets a program's setting, and Override refuses it there.
	Global bool
	// apply sets the field from the values (at least one) of the flag
	// given as where ("--name"), and records that the value came from it.
	apply func(c *Config, where string, values []string) error
}

// Flags lists every flag that sets a Config field, in the order the help
// shows them and the CLI applies them (--watch before --watch-poll).
// Adding a flag is adding an entry here.
func Flags() []Flag {
	return []Flag{
		{Name: "name", Global: true, Usage: "`NAME` of this service in logs",
			apply: setString("name", func(c *Config) *string { return &c.Name })},
		{Name: "listen", Aliases: []string{"l"}, Kind: FlagList, Usage: "open a socket `[NAME=]ADDRESS`: HOST:PORT, :PORT (all addresses), [::1]:PORT or PORT for tcp; /abs/path or @abstract for unix; or a URL: tcp://HOST:PORT, tcp4://, tcp6://[::1]:PORT, udp://, udp4://, udp6://, unix:///path, unix://@abstract (repeatable)",
			apply: overrideListen},
		{Name: "steer", Kind: FlagBool, Usage: "give each generation its own socket on every --listen (or [[listen]]) address, TCP or UDP, and steer new connections to the newest ready one only: an old one's queue empties before it is told to stop",
			apply: overrideSteer},
		{Name: "instances", Usage: "run `N` instances of the program on the same sockets, each with HUPD_INSTANCE=0…N-1 and HUPD_INSTANCES=N (default 1, at most 1024); hupd scale changes it live",
			apply: setCount("process.instances", wantInstances, func(c *Config) *int { return &c.Process.Instances })},
		{Name: "reload", Usage: "reload `STRATEGY`: swap (default with --listen), signal (default without), restart",
			apply: setString("reload.strategy", func(c *Config) *string { return &c.Reload.Strategy })},
		{Name: "reload-signal", Usage: "`SIGNAL` relayed by the signal strategy (default HUP)",
			apply: setString("reload.signal", func(c *Config) *string { return &c.Reload.Signal })},
		{Name: "ready", Usage: "`MODE` that tells when a new generation is ready: auto (default), notify, delay:DURATION, exec:COMMAND, listen (with --legacy)",
			apply: setString("reload.ready", func(c *Config) *string { return &c.Reload.Ready })},
		{Name: "ready-timeout", Usage: "`DURATION` a new generation has to become ready (default 60s)",
			apply: setString("reload.ready_timeout", func(c *Config) *string { return &c.Reload.ReadyTimeout })},
		{Name: "check", Usage: "`COMMAND` (split on spaces, no shell) that must exit 0 before a reload",
			apply: func(c *Config, where string, values []string) error {
				c.Reload.Check = strings.Fields(last(values))
				c.src.setFlag("reload.check", where)
				return nil
			}},
		{Name: "settle", Usage: "keep the old generation of a swap running for `DURATION` (receiving nothing with --steer), so that hupd rollback makes it serve again without a start (default 0s: stop it at once)",
			apply: setString("reload.settle", func(c *Config) *string { return &c.Reload.Settle })},
		{Name: "rolling", Usage: "swap `K` instances at a time (start K new ones, wait until they are ready, stop K old ones, repeat) instead of all at once, for hosts without room for twice the instances (default 0: all at once)",
			apply: setCount("reload.rolling", wantRolling, func(c *Config) *int { return &c.Reload.Rolling })},
		{Name: "steer-wait", Usage: "`DURATION` an old generation's steered socket queue may take to empty before its stop signal (default 5s)",
			apply: setString("reload.steer_wait", func(c *Config) *string { return &c.Reload.SteerWait })},
		{Name: "steer-grace", Usage: "`DURATION` after the steering moves on during which an old steered socket may still get connections whose handshake began before: a client's round trip (default 1s)",
			apply: setString("reload.steer_grace", func(c *Config) *string { return &c.Reload.SteerGrace })},
		{Name: "control", Global: true, Usage: "control socket `PATH` (default from --name under $XDG_RUNTIME_DIR/hupd or /run/hupd)",
			apply: setString("control", func(c *Config) *string { return &c.Control })},
		{Name: "output", Usage: "child output `MODE`: pipe (default: copied, last lines kept) or inherit",
			apply: setString("process.output", func(c *Config) *string { return &c.Process.Output })},
		{Name: "output-prefix", Kind: FlagBool, Usage: "prefix copied child output with [gen N pid P]",
			apply: setBool("process.output_prefix", func(c *Config) *bool { return &c.Process.OutputPrefix })},
		{Name: "watchdog", Usage: "pass WATCHDOG_USEC=`DURATION` to the child; kill it when it misses a WATCHDOG=1",
			apply: setString("process.watchdog", func(c *Config) *string { return &c.Process.Watchdog })},
		{Name: "stop-signal", Usage: "`SIGNAL` that asks the child to stop (default TERM)",
			apply: setString("process.stop_signal", func(c *Config) *string { return &c.Process.StopSignal })},
		{Name: "stop-timeout", Usage: "`DURATION` before SIGKILL after the stop signal (default 30s)",
			apply: setString("process.stop_timeout", func(c *Config) *string { return &c.Process.StopTimeout })},
		{Name: "restart", Usage: "restart `POLICY`: always, on-failure (default), never",
			apply: setString("restart.policy", func(c *Config) *string { return &c.Restart.Policy })},
		{Name: "start-limit", Usage: "give up a crash loop at `BURST/INTERVAL`: BURST failed starts (a generation that exits before it is ready, a crash that is restarted) within INTERVAL while nothing serves, and hupd stops and exits with the program's last status; off: never (default 5/10s)",
			apply: setString("restart.start_limit", func(c *Config) *string { return &c.Restart.StartLimit })},
		{Name: "success-exit-status", Kind: FlagList, Usage: "exit `STATUS` that counts as a success besides 0: a code (143 also matches a death by signal 15) or a signal name (a death by it); on-failure does not restart it, and hupd exits 0 instead of it (repeatable)",
			apply: func(c *Config, where string, values []string) error {
				c.Restart.SuccessExitStatus = StatusList(values)
				c.src.setFlag("restart.success_exit_status", where)
				return nil
			}},
		{Name: "user", Usage: "run the child as `USER` (name or uid; hupd must be root)",
			apply: setString("process.user", func(c *Config) *string { return &c.Process.User })},
		{Name: "group", Usage: "run the child with `GROUP` (name or gid)",
			apply: setString("process.group", func(c *Config) *string { return &c.Process.Group })},
		{Name: "dir", Usage: "run the child in `DIR`",
			apply: setString("process.dir", func(c *Config) *string { return &c.Process.Dir })},
		{Name: "cgroup", Usage: "`MODE`: auto (default: each generation in a cgroup v2 group of its own where hupd may create one, stopped as a unit) or off (process groups only)",
			apply: setString("process.cgroup", func(c *Config) *string { return &c.Process.Cgroup })},
		{Name: "forking", Kind: FlagBool, Usage: "the program daemonizes (forks, its first process exits 0): follow the process it leaves as the main process",
			apply: setBool("process.forking", func(c *Config) *bool { return &c.Process.Forking })},
		{Name: "pidfile", Usage: "`FILE` where a program that daemonizes writes its PID (implies --forking; relative to --dir)",
			apply: setString("process.pidfile", func(c *Config) *string { return &c.Process.Pidfile })},
		{Name: "env", Aliases: []string{"e"}, Kind: FlagList, Usage: "set `KEY=VALUE` in the child's environment (repeatable)",
			apply: overrideEnv},
		{Name: "legacy", Usage: "`MODE` for a program that binds its own ports (Linux seccomp): redirect (its binds get hupd's sockets), adopt (the first program's own sockets are kept for the next)",
			apply: setString("legacy.mode", func(c *Config) *string { return &c.Legacy.Mode })},
		{Name: "handoff", Kind: FlagList, Usage: "also describe the sockets as `DIALECT` does: einhorn, server-starter, nginx (repeatable)",
			apply: func(c *Config, where string, values []string) error {
				c.Process.Handoff = values
				c.src.setFlag("process.handoff", where)
				return nil
			}},
		{Name: "watch", Aliases: []string{"w"}, Kind: FlagList, Usage: "reload when `PATH` changes: a file, a directory (everything under it) or a glob (repeatable; adds to [[watch]])",
			apply: overrideWatch},
		{Name: "watch-poll", Usage: "poll the --watch paths every `DURATION` instead of inotify (network filesystems, FUSE)",
			apply: overrideWatchPoll},
		{Name: "watch-config", Global: true, Kind: FlagBool, Default: true, Usage: "apply edits of the -c file as they are saved",
			apply: func(c *Config, where string, values []string) error {
				b := last(values) == "true"
				c.Reload.WatchConfig = &b
				c.src.setFlag("reload.watch_config", where)
				return nil
			}},
		{Name: "health", Global: true, Usage: "serve /livez, /readyz and /metrics (Prometheus) over HTTP on `ADDRESS` (HOST:PORT, e.g. 127.0.0.1:9901; port 0 picks one and logs it); off by default",
			apply: setString("health.address", func(c *Config) *string { return &c.Health.Address })},
		{Name: "fdstore", Global: true, Usage: "keep the sockets in systemd's fd store, so that they outlive hupd: `MODE` auto (default: when $FDSTORE says the unit has one), yes, no",
			apply: setString("systemd.fdstore", func(c *Config) *string { return &c.Systemd.FDStore })},
		{Name: "log-format", Global: true, Usage: "`FORMAT` of hupd's log: text (default) or json",
			apply: setString("log.format", func(c *Config) *string { return &c.Log.Format })},
		{Name: "log-level", Global: true, Usage: "`LEVEL`: debug, info (default), warn, error",
			apply: setString("log.level", func(c *Config) *string { return &c.Log.Level })},
	}
}

// Override applies a command-line flag (one of Flags, by its Name).
// With [[program]] tables, only a Global flag applies. Flags replace the
// file's values; --listen replaces all [[listen]]
// tables, --env adds to [process.env], --watch adds a [[watch]] table.
// Without values it changes nothing.
func (c *Config) Override(flag string, values ...string) error {
	if len(values) == 0 {
		return nil
	}
	for _, f := range Flags() {
		if f.Name != flag {
			continue
		}
		if c.Multi() && !f.Global {
			return &Error{Where: "--" + flag, Err: fmt.Errorf("sets a program's setting: with [[program]] tables (the first at %s), set it in the table of each program it is for", c.src.where(programKey(0)))}
		}
		return f.apply(c, "--"+flag, values)
	}
	return fmt.Errorf("config: no field for flag --%s", flag)
}

// last is the value that counts for a flag given more than once.
func last(values []string) string { return values[len(values)-1] }

// setString is the apply of a flag that sets the string field at key.
func setString(key string, field func(*Config) *string) func(*Config, string, []string) error {
	return func(c *Config, where string, values []string) error {
		*field(c) = last(values)
		c.src.setFlag(key, where)
		return nil
	}
}

// setBool is the apply of a FlagBool that sets the bool field at key.
func setBool(key string, field func(*Config) *bool) func(*Config, string, []string) error {
	return func(c *Config, where string, values []string) error {
		*field(c) = last(values) == "true"
		c.src.setFlag(key, where)
		return nil
	}
}

// setCount is the apply of a flag that sets the whole-number field at
// key; a value that is not one is an error that says want. Its range is
// checked by Resolve, as the file's.
func setCount(key, want string, field func(*Config) *int) func(*Config, string, []string) error {
	return func(c *Config, where string, values []string) error {
		v := last(values)
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return &Error{Where: where, Field: key, Value: v, Err: errors.New(want)}
		}
		*field(c) = n
		c.src.setFlag(key, where)
		return nil
	}
}

// overrideListen: --listen [NAME=]ADDRESS replaces every [[listen]] table.
func overrideListen(c *Config, where string, values []string) error {
	c.Listen = nil
	for i, lv := range values {
		l := Listen{Address: lv}
		if name, addr := socketact.CutListenName(lv); addr != lv {
			l.Name, l.Address = name, addr
		}
		c.Listen = append(c.Listen, l)
		for _, k := range []string{"name", "address"} {
			c.src.setFlag(fmt.Sprintf("listen.%d.%s", i, k), where)
		}
	}
	return nil
}

// overrideSteer: --steer steers every socket (those --listen gave, or
// the file's [[listen]] tables), and needs one.
func overrideSteer(c *Config, where string, values []string) error {
	v := last(values) == "true"
	if len(c.Listen) == 0 {
		if !v {
			return nil
		}
		return &Error{Where: where, Err: errors.New("no socket to steer: give --listen (or [[listen]] in the -c file)")}
	}
	for i := range c.Listen {
		c.Listen[i].Steer = v
		c.src.setFlag(listenKey(i, "steer"), where)
	}
	return nil
}

// overrideEnv: --env KEY=VALUE adds to [process.env].
func overrideEnv(c *Config, where string, values []string) error {
	if c.Process.Env == nil {
		c.Process.Env = map[string]string{}
	}
	for _, kv := range values {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return &Error{Where: where, Value: kv, Err: errors.New("want KEY=VALUE")}
		}
		c.Process.Env[k] = val
		c.src.setFlag("process.env."+k, where)
	}
	return nil
}

// overrideWatch: the --watch paths are added to the file's [[watch]]
// tables as one more, relative to the directory hupd starts in.
func overrideWatch(c *Config, where string, values []string) error {
	w := Watch{}
	for _, p := range values {
		if p != "" && !filepath.IsAbs(p) {
			if abs, err := filepath.Abs(p); err == nil {
				p = abs
			}
		}
		w.Paths = append(w.Paths, p)
	}
	c.Watch = append(c.Watch, w)
	c.flagWatch = len(c.Watch)
	i := len(c.Watch) - 1
	c.src.setFlag(fmt.Sprintf("watch.%d.paths", i), where)
	return nil
}

// overrideWatchPoll: --watch-poll sets the poll interval of the table
// --watch added, and needs one.
func overrideWatchPoll(c *Config, where string, values []string) error {
	v := last(values)
	if c.flagWatch == 0 {
		return &Error{Where: where, Value: v, Err: errors.New("goes with --watch")}
	}
	i := c.flagWatch - 1
	c.Watch[i].PollInterval = v
	c.src.setFlag(fmt.Sprintf("watch.%d.poll_interval", i), where)
	return nil
}
