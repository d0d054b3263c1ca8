package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/internal/duration"
	"github.com/hupd/hupd/legacy"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
)

// Log formats.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Values of [systemd] fdstore (--fdstore).
const (
	FDStoreAuto = "auto"
	FDStoreYes  = "yes"
	FDStoreNo   = "no"
)

// Errors of a steered socket ([[listen]] steer, --steer) that cannot be
// steered.
var (
	errSteerUnix  = errors.New("steer: a unix socket has no SO_REUSEPORT group; steer TCP and UDP sockets only")
	errSteerAdopt = errors.New(`steer: not with [legacy] mode = "adopt", where the program binds the one socket every generation shares; use mode = "redirect", whose binds get each generation's own socket`)
)

// Resolved is a fully checked configuration.
type Resolved struct {
	Options supervisor.Options
	Listen  []socketact.Spec
	// ListenWhere[i] says where Listen[i] was configured ("hupd.toml:7",
	// "--listen"), for errors that only opening the socket finds.
	ListenWhere []string
	LogFormat   string
	LogLevel    slog.Level
	// Watch are the [[watch]] tables and --watch, paths made absolute.
	Watch []WatchSpec
	// ConfigFile is hupd.toml's absolute path ("" without one); with
	// WatchConfig, its edits are applied as they are saved.
	ConfigFile  string
	WatchConfig bool
	// Health is hupd's own HTTP endpoint; its Address "" is off.
	Health HealthSpec
	// FDStore is [systemd] fdstore: FDStoreAuto, FDStoreYes or FDStoreNo.
	FDStore string
	// Cgroup says whether generations get cgroups (package contain).
	Cgroup contain.Mode
}

// HealthSpec is the resolved [health] table.
type HealthSpec struct {
	Address  string // HOST:PORT for a TCP listener; "" is off
	Failures int    // failed reloads in a row that make /readyz fail; 0 never
	// Where says where Address was configured ("hupd.toml:30",
	// "--health"), for errors that only opening the listener finds.
	Where string
}

// WatchSpec is one resolved [[watch]] table.
type WatchSpec struct {
	Paths        []string // absolute, clean
	Action       supervisor.Action
	Debounce     time.Duration // 0: the watcher's default
	PollInterval time.Duration // 0: inotify
	Where        string        // "hupd.toml:12" or "--watch"
}

// SetCommand sets the command given after "--" on the command line.
func (c *Config) SetCommand(argv []string) {
	if len(argv) > 0 {
		c.Command = argv
		c.src.setFlag("command", "command line")
	}
}

// FillDefaults sets every empty field to its default, so that Encode shows
// the effective configuration.
func (c *Config) FillDefaults() {
	c.fillProgramDefaults()
	def(&c.Systemd.FDStore, FDStoreAuto)
	def(&c.Log.Format, FormatText)
	def(&c.Log.Level, "info")
}

// def sets *p to v when it is empty.
func def(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

// fillProgramDefaults is FillDefaults for the settings of a program.
func (c *Config) fillProgramDefaults() {
	def(&c.Process.StopSignal, signals.Name(supervisor.DefaultStopSignal))
	def(&c.Process.StopTimeout, supervisor.DefaultStopTimeout.String())
	// Sockets a service manager passed to hupd go to the child too.
	def(&c.Reload.Strategy, string(supervisor.DefaultStrategy(len(c.Listen)+socketact.ActivatedCount())))
	def(&c.Reload.ReadyTimeout, supervisor.DefaultReadyTimeout.String())
	if c.Reload.Ready == "" && len(c.Reload.ReadyCommand) == 0 {
		c.Reload.Ready = string(supervisor.ReadyAuto)
		if c.Legacy.Mode != "" {
			c.Reload.Ready = string(supervisor.ReadyListen)
		}
	}
	if c.Reload.MaxDraining == 0 {
		c.Reload.MaxDraining = supervisor.DefaultMaxDraining
	}
	def(&c.Reload.Settle, time.Duration(0).String())
	def(&c.Reload.SteerWait, supervisor.DefaultSteerWait.String())
	// The default grace, within a shorter steer_wait (which bounds it).
	grace := supervisor.DefaultSteerGrace
	if w, err := duration.Parse(c.Reload.SteerWait); err == nil && w > 0 && w < grace {
		grace = w
	}
	def(&c.Reload.SteerGrace, grace.String())
	def(&c.Process.Output, string(supervisor.OutputPipe))
	def(&c.Process.Cgroup, string(contain.ModeAuto))
	def(&c.Reload.Signal, signals.Name(supervisor.DefaultReloadSignal))
	def(&c.Restart.Policy, string(supervisor.DefaultRestartPolicy))
	def(&c.Restart.MinDelay, supervisor.DefaultBackoffMin.String())
	def(&c.Restart.MaxDelay, supervisor.DefaultBackoffMax.String())
	def(&c.Restart.ResetAfter, supervisor.DefaultBackoffReset.String())
	def(&c.Restart.StartLimit, supervisor.StartLimit{Burst: supervisor.DefaultStartBurst, Interval: supervisor.DefaultStartInterval}.String())
	for i := range c.Listen {
		if c.Listen[i].Name == "" {
			c.Listen[i].Name = socketact.UnknownName
		}
	}
}

// Resolve checks every value and returns what the supervisor needs. It
// touches nothing: no socket is opened and no process started. It fills
// c's defaults in and writes each [[listen]] address as its URL, so that
// Encode shows the effective configuration.
//
// A file with [[program]] tables is resolved by ResolveMulti: Resolve
// returns an *Error that wraps ErrMultiProgram, naming the first table.
func (c *Config) Resolve() (*Resolved, error) {
	if len(c.Programs) > 0 {
		return nil, &Error{Where: c.src.where("program.0"), Err: ErrMultiProgram}
	}
	c.FillDefaults()
	r := &Resolved{}
	if err := c.resolveService(r); err != nil {
		return nil, err
	}
	if err := c.resolveProgram(r); err != nil {
		return nil, err
	}
	return r, nil
}

// resolveService checks the hupd-wide settings (name and control are
// checked with the program's options, which carry them) into r: [log],
// the config file, [health] and [systemd].
func (c *Config) resolveService(r *Resolved) error {
	var err error
	if r.LogFormat, err = oneOf(c.Log.Format, FormatText, FormatJSON); err != nil {
		return c.fieldError("log.format", c.Log.Format, err)
	}
	if err := r.LogLevel.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return c.fieldError("log.level", c.Log.Level, errors.New("valid levels are debug, info, warn, error"))
	}
	if c.file != "" {
		abs, err := filepath.Abs(c.file)
		if err != nil {
			return &Error{Where: c.file, Err: err}
		}
		r.ConfigFile = abs
		r.WatchConfig = c.Reload.WatchConfig == nil || *c.Reload.WatchConfig
	}
	if err := c.resolveHealth(r); err != nil {
		return err
	}
	if r.FDStore, err = oneOf(c.Systemd.FDStore, FDStoreAuto, FDStoreYes, FDStoreNo); err != nil {
		return c.fieldError("systemd.fdstore", c.Systemd.FDStore, err)
	}
	return nil
}

// resolveProgram checks the settings of one program (those of the top
// level in the single form, of a [[program]] table in the multi form:
// see program) into r's Options, Listen, ListenWhere, Watch and Cgroup.
// r's hupd-wide fields are resolved already (resolveService).
func (c *Config) resolveProgram(r *Resolved) error {
	o := &r.Options
	o.Name = c.ServiceName()
	o.UID, o.GID = -1, -1
	var err error
	if o.StopSignal, err = signals.Parse(c.Process.StopSignal); err != nil {
		return c.fieldError("process.stop_signal", "", err)
	}
	if o.ReloadSignal, err = signals.Parse(c.Reload.Signal); err != nil {
		return c.fieldError("reload.signal", "", err)
	}
	durations := []struct {
		key string
		v   string
		dst *time.Duration
	}{
		{"process.stop_timeout", c.Process.StopTimeout, &o.StopTimeout},
		{"reload.ready_timeout", c.Reload.ReadyTimeout, &o.Ready.Timeout},
		{"restart.min_delay", c.Restart.MinDelay, &o.Backoff.Min},
		{"restart.max_delay", c.Restart.MaxDelay, &o.Backoff.Max},
		{"restart.reset_after", c.Restart.ResetAfter, &o.Backoff.ResetAfter},
	}
	for _, d := range durations {
		if *d.dst, err = duration.Parse(d.v); err != nil || *d.dst <= 0 {
			return c.durationError(d.key, d.v, err, "want a positive duration such as 500ms, 30s or 2m")
		}
	}
	if o.SteerWait, err = duration.Parse(c.Reload.SteerWait); err != nil || o.SteerWait <= 0 {
		return c.durationError("reload.steer_wait", c.Reload.SteerWait, err, "want a positive duration such as 5s")
	}
	if o.SteerGrace, err = duration.Parse(c.Reload.SteerGrace); err != nil || o.SteerGrace <= 0 {
		return c.durationError("reload.steer_grace", c.Reload.SteerGrace, err, "want a positive duration such as 1s")
	}
	if o.SteerGrace > o.SteerWait {
		return c.fieldError("reload.steer_grace", c.Reload.SteerGrace,
			fmt.Errorf("longer than steer_wait (%s), which bounds the whole wait before an old generation's stop signal: make steer_wait at least as long", o.SteerWait))
	}
	if o.Settle, err = duration.Parse(c.Reload.Settle); err != nil || o.Settle < 0 {
		return c.durationError("reload.settle", c.Reload.Settle, err, "want a duration such as 30s or 2m, or 0s for none")
	}
	if o.Backoff.Max < o.Backoff.Min {
		return c.fieldError("restart.max_delay", c.Restart.MaxDelay, fmt.Errorf("less than min_delay %s", c.Restart.MinDelay))
	}
	strategy, err := oneOf(c.Reload.Strategy, strategies()...)
	if err != nil {
		return c.fieldError("reload.strategy", c.Reload.Strategy, err)
	}
	o.Reload = supervisor.Strategy(strategy)
	if err := c.resolveReadiness(o); err != nil {
		return err
	}
	if c.Reload.MaxDraining < 0 {
		return c.fieldError("reload.max_draining", strconv.Itoa(c.Reload.MaxDraining), errors.New("must be at least 1"))
	}
	o.MaxDraining = c.Reload.MaxDraining
	o.Check = c.Reload.Check
	if len(o.Check) > 0 && o.Check[0] == "" {
		return c.fieldError("reload.check", "", errors.New("empty command"))
	}
	output, err := oneOf(c.Process.Output, string(supervisor.OutputPipe), string(supervisor.OutputInherit))
	if err != nil {
		return c.fieldError("process.output", c.Process.Output, err)
	}
	o.Output, o.OutputPrefix = supervisor.Output(output), c.Process.OutputPrefix
	if o.Output == supervisor.OutputInherit && r.LogFormat == FormatJSON {
		// The program would write raw lines into hupd's JSON stream.
		return c.fieldError("process.output", c.Process.Output, errors.New(`does not apply with log.format = "json" (--log-format json): every line hupd writes is JSON; use pipe`))
	}
	cgroup, err := oneOf(c.Process.Cgroup, string(contain.ModeAuto), string(contain.ModeOff))
	if err != nil {
		return c.fieldError("process.cgroup", c.Process.Cgroup, err)
	}
	r.Cgroup = contain.Mode(cgroup)
	o.Control = c.Control
	if w := c.Process.Watchdog; w != "" {
		if o.Watchdog, err = duration.Parse(w); err != nil || o.Watchdog <= 0 {
			return c.durationError("process.watchdog", w, err, "want a positive duration such as 10s")
		}
	}
	policy, err := oneOf(c.Restart.Policy, policies()...)
	if err != nil {
		return c.fieldError("restart.policy", c.Restart.Policy, err)
	}
	o.Restart = supervisor.RestartPolicy(policy)
	if o.StartLimit, err = supervisor.ParseStartLimit(c.Restart.StartLimit); err != nil {
		return c.fieldError("restart.start_limit", c.Restart.StartLimit, err)
	}
	for _, v := range c.Restart.SuccessExitStatus {
		code, sig, err := supervisor.ParseExitStatus(v)
		if err != nil {
			return c.fieldError("restart.success_exit_status", v, err)
		}
		if sig != 0 {
			o.SuccessExitStatus.Signals = append(o.SuccessExitStatus.Signals, sig)
		} else {
			o.SuccessExitStatus.Codes = append(o.SuccessExitStatus.Codes, code)
		}
	}

	if err := c.resolveCredentials(o); err != nil {
		return err
	}
	if d := c.Process.Dir; d != "" {
		if fi, err := os.Stat(d); err != nil {
			return c.fieldError("process.dir", d, unwrapPath(err))
		} else if !fi.IsDir() {
			return c.fieldError("process.dir", d, errors.New("not a directory"))
		}
		o.Dir = d
	}
	o.Forking = c.Process.Forking
	if p := c.Process.Pidfile; p != "" || c.src.has("process.pidfile") {
		if p == "" {
			return c.fieldError("process.pidfile", p, errors.New("empty path: name the file the program writes its PID to, or leave pidfile out"))
		}
		if !filepath.IsAbs(p) {
			// Where the program, which writes it, resolves it.
			base := o.Dir
			if base == "" {
				if base, err = os.Getwd(); err != nil {
					return c.fieldError("process.pidfile", p, err)
				}
			}
			p = filepath.Join(base, p)
		}
		o.Pidfile, o.Forking = filepath.Clean(p), true
	}
	for _, k := range sortedKeys(c.Process.Env) {
		if strings.ContainsAny(k, "=\x00") {
			return c.fieldError("process.env."+k, k, errors.New("a variable name cannot hold '=' or NUL"))
		}
		o.Env = append(o.Env, k+"="+c.Process.Env[k])
	}
	for i, l := range c.Listen {
		sp, err := c.resolveListen(i, l)
		if err != nil {
			return err
		}
		for j, prev := range r.Listen {
			if prev.Address.Port != 0 && prev.Address == sp.Address || prev.Address.IsUnix() && prev.Address == sp.Address {
				return c.fieldError(listenKey(i, "address"), l.Address, fmt.Errorf("same address as listen[%d]", j))
			}
		}
		r.Listen = append(r.Listen, sp)
		r.ListenWhere = append(r.ListenWhere, c.src.where(listenKey(i, "address")))
		// The effective configuration names the socket by its URL,
		// whichever form named it (127.0.0.1:80, /run/app.sock).
		c.Listen[i].Address = sp.Address.String()
	}
	if err := c.resolveInstances(r); err != nil {
		return err
	}
	if err := c.resolveWatch(r); err != nil {
		return err
	}
	if len(c.Command) == 0 {
		if c.in != "" {
			return c.fieldError("command", "", errors.New(`no command: give it as command = ["./server"] in the program's table`))
		}
		return c.fieldError("command", "", errors.New("no command: give it after -- (hupd run -- ./server) or as command = [\"./server\"] in hupd.toml"))
	}
	o.Args = c.Command
	for _, h := range c.Process.Handoff {
		if err := handoffErr(h); err != nil {
			return c.fieldError("process.handoff", h, err)
		}
	}
	o.Handoff = c.Process.Handoff
	for i, l := range c.Listen {
		if l.NonBlocking == nil {
			// nginx takes inherited sockets as they are and accepts from
			// every worker: a blocking socket parks the losers in accept(2).
			// That holds for a socket described to nginx by process.handoff
			// (every socket) or by its own env alike.
			r.Listen[i].NonBlocking = socketact.Describes(socketact.HandoffNginx, o.Handoff, r.Listen[i])
		}
	}
	if err := socketact.CheckArgs(c.Command, r.Listen); err != nil {
		return c.fieldError("command", "", err)
	}
	if o.Path, err = supervisor.LookPath(c.Command[0], o.Dir, o.Env); err != nil {
		if c.in != "" {
			// Whose command, and where; the exit status stays the
			// command's (127, 126): not an *Error.
			return fmt.Errorf("%s: %s%w", c.src.where("command"), c.in, err)
		}
		return err
	}
	if len(o.Check) > 0 {
		if _, err := supervisor.LookPath(o.Check[0], o.Dir, o.Env); err != nil {
			return c.fieldError("reload.check", o.Check[0], err)
		}
	}
	if o.Ready.Kind == supervisor.ReadyExec {
		if _, err := supervisor.LookPath(o.Ready.Command[0], o.Dir, o.Env); err != nil {
			return c.fieldError("reload.ready", c.Reload.Ready, err)
		}
	}
	if err := c.resolveLegacy(r); err != nil {
		return err
	}
	if err := c.checkExecSize(r); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return c.fieldError("command", c.Command[0], err)
	}
	return nil
}

// checkExecSize refuses what execve(2) would refuse with E2BIG ("argument
// list too long", naming nothing): an environment variable or an argument
// of the command, the check or the readiness probe longer than the
// kernel's MAX_ARG_STRLEN, or a command line and environment (hupd's own,
// [process] env and what hupd adds, socketact.ExecReserve) larger than
// the exec limit hupd's stack limit gives (socketact.ExecLimit).
func (c *Config) checkExecSize(r *Resolved) error {
	o := &r.Options
	most := socketact.MaxArgStrlen()
	for _, k := range sortedKeys(c.Process.Env) {
		if n := len(k) + 1 + len(c.Process.Env[k]); n+1 > most {
			return &Error{Where: c.src.where("process.env." + k), Field: c.field("process.env." + k),
				Err: fmt.Errorf("%s=VALUE is %d bytes: more than one environment string may hold (MAX_ARG_STRLEN, %d bytes with its NUL)", k, n, most)}
		}
	}
	readyKey := "reload.ready"
	if len(c.Reload.ReadyCommand) > 0 {
		readyKey = "reload.ready_command"
	}
	progs := []struct {
		key  string
		argv []string
	}{{"command", o.Args}, {"reload.check", o.Check}, {readyKey, o.Ready.Command}}
	for _, p := range progs {
		for i, a := range p.argv {
			if len(a)+1 > most {
				return &Error{Where: c.src.where(p.key), Field: c.field(fmt.Sprintf("%s[%d]", p.key, i)),
					Err: fmt.Errorf("argument of %d bytes: more than one argument may hold (MAX_ARG_STRLEN, %d bytes with its NUL)", len(a), most)}
			}
		}
	}
	names := make([]string, len(r.Listen))
	for i, l := range r.Listen {
		names[i] = l.FDName()
	}
	env := socketact.ChildEnv(os.Environ(), o.Env, names)
	for _, p := range progs {
		if len(p.argv) == 0 {
			continue
		}
		if err := socketact.CheckExecSize(p.argv, env); err != nil {
			key := p.key
			if len(o.Env) > 0 && socketact.ExecSize(nil, o.Env) > socketact.ExecSize(p.argv, nil) {
				key = "process.env"
			}
			return &Error{Where: c.src.where(key), Field: c.field(key), Err: fmt.Errorf("%w (with %d bytes kept for what hupd adds)", err, socketact.ExecReserve)}
		}
	}
	return nil
}

// ServiceName is the name hupd runs under, which names its control socket
// (control.DefaultPath) and its cgroup: name when set; else, with a config
// file, the file's base name without its extension ("web.toml" is "web"),
// or its directory's name when the file is called hupd.toml
// ("/srv/shop/hupd.toml" is "shop"); else the command's base name
// ("python3"); else "". Clients (hupd status -c FILE) find the socket with
// the same rule.
func (c *Config) ServiceName() string {
	if c.Name != "" {
		return c.Name
	}
	if c.file != "" {
		if abs, err := filepath.Abs(c.file); err == nil {
			base := filepath.Base(abs)
			stem := strings.TrimSuffix(base, filepath.Ext(base))
			if stem == "hupd" {
				if dir := filepath.Base(filepath.Dir(abs)); dir != "/" && dir != "." {
					return dir
				}
			}
			if stem != "" {
				return stem
			}
		}
	}
	if len(c.Command) > 0 && c.Command[0] != "" {
		return filepath.Base(c.Command[0])
	}
	return ""
}

// What a value of process.instances and reload.rolling must be.
var (
	wantInstances = fmt.Sprintf("want a number of instances from 1 to %d", supervisor.MaxInstances)
	wantRolling   = "want a number of instances to replace at a time: 0 (all at once) up to process.instances"
)

// resolveInstances checks [process] instances and [reload] rolling, alone
// and against what they cannot go with: a program that daemonizes runs
// as one instance; a rolling swap keeps no old instance settling, and
// needs old and new instances accepting together, which steering (one
// generation gets every new connection) does not give. It runs once the
// sockets, forking and settle are resolved.
func (c *Config) resolveInstances(r *Resolved) error {
	o := &r.Options
	n, k := c.Process.Instances, c.Reload.Rolling
	if c.src.has("process.instances") || n != 0 {
		if n < 1 || n > supervisor.MaxInstances {
			return c.fieldError("process.instances", strconv.Itoa(n), errors.New(wantInstances))
		}
	}
	instances := max(n, 1)
	if k < 0 || k > instances {
		return c.fieldError("reload.rolling", strconv.Itoa(k), fmt.Errorf("want 0 (all at once) up to the number of instances (%d)", instances))
	}
	if instances > 1 && o.Forking {
		key := "process.forking"
		if c.Process.Pidfile != "" {
			key = "process.pidfile"
		}
		return c.fieldError("process.instances", strconv.Itoa(n),
			fmt.Errorf("not with %s (set at %s): a program that daemonizes runs as one instance, its daemon found by its pidfile or as the only orphan", key, c.src.where(key)))
	}
	if k > 0 && o.Settle > 0 {
		return c.fieldError("reload.rolling", strconv.Itoa(k),
			fmt.Errorf("not with reload.settle = %q (set at %s): a rolling swap stops old instances as it goes, none is kept settling", c.Reload.Settle, c.src.where("reload.settle")))
	}
	if k > 0 {
		for i, sp := range r.Listen {
			if sp.Steer {
				return c.fieldError("reload.rolling", strconv.Itoa(k),
					fmt.Errorf("not with a steered socket (listen[%d] steer, set at %s): steering sends every new connection to one generation, and a rolling swap needs old and new instances accepting together", i, c.src.where(listenKey(i, "steer"))))
			}
		}
	}
	o.Instances, o.Rolling = n, k
	return nil
}

// resolveWatch checks the [[watch]] tables; relative paths are relative
// to r.ConfigFile's directory.
func (c *Config) resolveWatch(r *Resolved) error {
	for i, w := range c.Watch {
		key := func(k string) string { return fmt.Sprintf("watch.%d.%s", i, k) }
		ws := WatchSpec{Where: c.src.where(key("paths"))}
		if len(w.Paths) == 0 {
			return c.fieldError(key("paths"), "", errors.New("no paths: list files, directories or globs to watch"))
		}
		for _, p := range w.Paths {
			if p == "" || strings.ContainsRune(p, 0) {
				return c.fieldError(key("paths"), p, errors.New("want a file, directory or glob"))
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(r.ConfigFile), p)
			}
			p = filepath.Clean(p)
			if _, err := filepath.Match(p, ""); err != nil {
				return c.fieldError(key("paths"), p, errors.New("malformed glob pattern"))
			}
			ws.Paths = append(ws.Paths, p)
		}
		a, err := supervisor.ParseAction(w.Action)
		if err != nil {
			return c.fieldError(key("action"), w.Action, err)
		}
		ws.Action = a
		for _, d := range []struct {
			k, v string
			dst  *time.Duration
		}{{"debounce", w.Debounce, &ws.Debounce}, {"poll_interval", w.PollInterval, &ws.PollInterval}} {
			if d.v == "" {
				continue
			}
			if *d.dst, err = duration.Parse(d.v); err != nil || *d.dst <= 0 {
				return c.durationError(key(d.k), d.v, err, "want a positive duration such as 200ms or 2s")
			}
		}
		r.Watch = append(r.Watch, ws)
	}
	return nil
}

// resolveHealth checks the [health] table. The address is only parsed
// here: a port in use shows when hupd opens it, before the first child.
func (c *Config) resolveHealth(r *Resolved) error {
	h := c.Health
	if h.Failures < 0 {
		return c.fieldError("health.failures", strconv.Itoa(h.Failures), errors.New("must not be negative (0 is off)"))
	}
	if h.Address == "" {
		if h.Failures > 0 {
			return c.fieldError("health.failures", strconv.Itoa(h.Failures), errors.New("goes with health.address (--health): the endpoint is off"))
		}
		return nil
	}
	if err := checkHostPort(h.Address); err != nil {
		return c.fieldError("health.address", h.Address, err)
	}
	r.Health = HealthSpec{Address: h.Address, Failures: h.Failures, Where: c.src.where("health.address")}
	return nil
}

// checkHostPort says why a is not a TCP HOST:PORT for net.Listen, or nil.
// HOST may be empty (every address), an IP address or a host name.
func checkHostPort(a string) error {
	const want = "want HOST:PORT such as 127.0.0.1:9901 or :9901"
	if strings.Contains(a, "://") {
		return errors.New(want + ", without a scheme")
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		// *net.AddrError has no Unwrap: its reason is the Err field.
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%s (%s)", want, ae.Err)
		}
		return fmt.Errorf("%s (%v)", want, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if _, err := netip.ParseAddr(host); err != nil && host != "" && !validHostName(host) {
		return fmt.Errorf("invalid host %q: want an IP address or a host name", host)
	}
	return nil
}

// validHostName reports whether h is made of DNS labels: letters, digits
// and hyphens, separated by dots.
func validHostName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func (c *Config) resolveReadiness(o *supervisor.Options) error {
	timeout := o.Ready.Timeout
	if len(c.Reload.ReadyCommand) > 0 {
		if c.Reload.Ready != "" && c.Reload.Ready != string(supervisor.ReadyExec) {
			return c.fieldError("reload.ready_command", "", fmt.Errorf("goes with ready = \"exec\", not %q", c.Reload.Ready))
		}
		o.Ready = supervisor.Readiness{Kind: supervisor.ReadyExec, Command: c.Reload.ReadyCommand, Timeout: timeout}
		return nil
	}
	r, err := supervisor.ParseReadiness(c.Reload.Ready)
	if err != nil {
		c.quoteFix("reload.ready", err)
		return c.fieldError("reload.ready", "", err)
	}
	r.Timeout = timeout
	o.Ready = r
	return nil
}

// resolveLegacy checks [legacy] against the rest; with bind redirection
// the readiness defaults to "listen".
func (c *Config) resolveLegacy(r *Resolved) error {
	o := &r.Options
	mode := c.Legacy.Mode
	if mode == "" {
		if o.Ready.Kind == supervisor.ReadyListen {
			return c.fieldError("reload.ready", c.Reload.Ready, errors.New(`needs [legacy] mode = "redirect" or "adopt" (--legacy): only then does hupd see the program's listen calls`))
		}
		return nil
	}
	if mode != supervisor.LegacyRedirect && mode != supervisor.LegacyAdopt {
		return c.fieldError("legacy.mode", mode, errors.New(`want "redirect" or "adopt"`))
	}
	if len(r.Listen) == 0 {
		return c.fieldError("legacy.mode", mode, errors.New("gives the program's binds hupd's sockets: give at least one [[listen]] (--listen)"))
	}
	with := fmt.Sprintf("with [legacy] mode = %q", mode)
	if len(o.Handoff) > 0 {
		return c.fieldError("process.handoff", strings.Join(o.Handoff, ","), errors.New("does not apply "+with+": the program gets no inherited sockets"))
	}
	for i, l := range c.Listen {
		if len(l.Env) > 0 {
			return c.fieldError(listenKey(i, "env"), strings.Join(l.Env, ","), errors.New("does not apply "+with+": the program gets no inherited sockets"))
		}
	}
	for _, a := range o.Args {
		if strings.Contains(a, "{fd:") {
			return c.fieldError("command", a, errors.New("{fd:NAME} does not apply "+with+": the program gets no inherited sockets ({port:NAME} does)"))
		}
	}
	if mode == supervisor.LegacyAdopt {
		for i, sp := range r.Listen {
			if sp.Steer {
				return &Error{Where: c.src.where(listenKey(i, "steer")), Field: c.field(fieldName(listenKey(i, "address"))), Value: sp.Address.String(), Err: errSteerAdopt}
			}
		}
		if err := c.checkAdopt(r); err != nil {
			return err
		}
	}
	if err := legacy.CheckProgram(o.Path); err != nil {
		return c.fieldError("legacy.mode", mode, err)
	}
	o.Legacy = mode
	if c.Reload.Ready == "" && len(c.Reload.ReadyCommand) == 0 {
		o.Ready.Kind = supervisor.ReadyListen
	}
	return nil
}

// checkAdopt refuses what adopt mode cannot do: the program binds each
// socket and sets it up itself, so hupd needs a fixed address to know it
// by and sets none of the socket's options. It marks the specs Adopt.
func (c *Config) checkAdopt(r *Resolved) error {
	own := errors.New(`does not apply with [legacy] mode = "adopt": the program sets its socket up itself`)
	for i := range r.Listen {
		sp := &r.Listen[i]
		a := sp.Address
		switch {
		case !a.IsUnix() && a.Port == 0:
			return c.fieldError(listenKey(i, "address"), a.String(), errors.New(`needs a fixed port with [legacy] mode = "adopt": hupd knows the program's socket by its address`))
		case !a.IsUnix() && a.Host != "" && !isIP(a.Host):
			return c.fieldError(listenKey(i, "address"), a.String(), errors.New(`needs an IP address, not a name, with [legacy] mode = "adopt": hupd compares it with the program's bound address`))
		case a.Network == socketact.Unixgram && !a.IsAbstract():
			return c.fieldError(listenKey(i, "address"), a.String(), errors.New(`a unixgram socket file cannot be adopted (hupd would create the file as itself, not as the program): use [legacy] mode = "redirect", or an abstract name`))
		}
		sp.Adopt = true
		if i >= len(c.Listen) {
			continue // from --listen: no options
		}
		l := c.Listen[i]
		for _, o := range []struct {
			key, val string
			set      bool
		}{
			{"backlog", strconv.Itoa(l.Backlog), l.Backlog != 0},
			{"reuseport", "true", l.ReusePort},
			{"v6only", fmt.Sprint(l.V6Only != nil && *l.V6Only), l.V6Only != nil},
			{"nonblocking", fmt.Sprint(l.NonBlocking != nil && *l.NonBlocking), l.NonBlocking != nil},
			{"mode", l.Mode, l.Mode != ""},
			{"owner", l.Owner, l.Owner != ""},
			{"group", l.Group, l.Group != ""},
		} {
			if o.set {
				return c.fieldError(listenKey(i, o.key), o.val, own)
			}
		}
	}
	return nil
}

func (c *Config) resolveListen(i int, l Listen) (socketact.Spec, error) {
	sp := socketact.Spec{Backlog: l.Backlog, ReusePort: l.ReusePort, V6Only: l.V6Only, NonBlocking: l.NonBlocking != nil && *l.NonBlocking, UID: -1, GID: -1}
	if l.Name != "" && l.Name != socketact.UnknownName {
		if err := socketact.ValidName(l.Name); err != nil {
			return socketact.Spec{}, c.fieldError(listenKey(i, "name"), l.Name, errors.New(strings.TrimPrefix(err.Error(), "socketact: ")))
		}
		sp.Name = l.Name
	}
	a, err := socketact.ParseAddress(l.Address)
	if err != nil {
		// The field and value are already in the message: keep the reason.
		return socketact.Spec{}, c.fieldError(listenKey(i, "address"), l.Address, errors.New(strings.TrimPrefix(err.Error(), socketact.ErrBadAddress.Error()+" "+strconv.Quote(l.Address)+": ")))
	}
	sp.Address = a
	if l.Steer && a.IsUnix() {
		// The address names the socket: with --steer the field does not.
		return socketact.Spec{}, &Error{Where: c.src.where(listenKey(i, "steer")), Field: c.field(fieldName(listenKey(i, "address"))), Value: a.String(), Err: errSteerUnix}
	}
	sp.Steer = l.Steer
	if l.Backlog < 0 {
		return socketact.Spec{}, c.fieldError(listenKey(i, "backlog"), strconv.Itoa(l.Backlog), errors.New("must not be negative"))
	}
	// env: the dialects that describe this socket besides LISTEN_FDS, on
	// top of process.handoff's (see socketact.HandoffEnv). It is not a
	// property of the socket: a new env keeps it, in a new generation.
	for _, d := range l.Env {
		if err := handoffErr(d); err != nil {
			return socketact.Spec{}, c.fieldError(listenKey(i, "env"), d, err)
		}
	}
	sp.Handoff = slices.Clone(l.Env)
	fileOnly := func(k, v string) error {
		if v != "" && (!a.IsUnix() || a.IsAbstract()) {
			return c.fieldError(listenKey(i, k), v, errors.New("applies only to unix socket files"))
		}
		return nil
	}
	for _, kv := range [][2]string{{"mode", l.Mode}, {"owner", l.Owner}, {"group", l.Group}} {
		if err := fileOnly(kv[0], kv[1]); err != nil {
			return socketact.Spec{}, err
		}
	}
	if l.V6Only != nil && (a.IsUnix() || strings.HasSuffix(a.Network, "4")) {
		return socketact.Spec{}, c.fieldError(listenKey(i, "v6only"), strconv.FormatBool(*l.V6Only), errors.New("applies only to IPv6 sockets"))
	}
	if l.Mode != "" {
		m, err := strconv.ParseUint(l.Mode, 8, 32)
		if err != nil || m > 0o7777 || m == 0 {
			return socketact.Spec{}, c.fieldError(listenKey(i, "mode"), l.Mode, errors.New("want an octal file mode such as \"0660\""))
		}
		sp.Mode = uint32(m)
	}
	if l.Owner != "" {
		u, err := lookupUser(l.Owner)
		if err != nil {
			return socketact.Spec{}, c.fieldError(listenKey(i, "owner"), l.Owner, err)
		}
		sp.UID = u.uid
	}
	if l.Group != "" {
		g, err := lookupGroup(l.Group)
		if err != nil {
			return socketact.Spec{}, c.fieldError(listenKey(i, "group"), l.Group, err)
		}
		sp.GID = g
	}
	return sp, nil
}

// handoffErr says why d is not a hand-over dialect, listing the valid
// ones, or returns nil. The *Error it goes into shows d already.
func handoffErr(d string) error {
	if err := socketact.ValidHandoff(d); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "unknown hand-over "+strconv.Quote(d)+": "))
	}
	return nil
}

func (c *Config) resolveCredentials(o *supervisor.Options) error {
	p := c.Process
	if p.User == "" && p.Group == "" {
		return nil
	}
	if p.User != "" {
		u, err := lookupUser(p.User)
		if err != nil {
			return c.fieldError("process.user", p.User, err)
		}
		o.UID, o.GID, o.Groups = u.uid, u.gid, u.groups
	}
	if p.Group != "" {
		g, err := lookupGroup(p.Group)
		if err != nil {
			return c.fieldError("process.group", p.Group, err)
		}
		o.GID = g
		if p.User == "" {
			o.Groups = []int{g}
		} else if !contains(o.Groups, g) {
			o.Groups = append(o.Groups, g)
		}
	}
	if os.Geteuid() != 0 && (o.UID >= 0 && o.UID != os.Geteuid() || o.GID >= 0 && o.GID != os.Getegid()) {
		key, v := "process.user", p.User
		if p.User == "" {
			key, v = "process.group", p.Group
		}
		return c.fieldError(key, v, errors.New("changing user or group needs hupd to run as root"))
	}
	if o.UID >= 0 && o.UID != os.Geteuid() && !effectiveCap(capKill) {
		// Without it, neither the stop signal nor the SIGKILL at the stop
		// timeout reaches the child: it could never be stopped.
		return c.fieldError("process.user", p.User, errors.New("hupd lacks CAP_KILL, without which it cannot signal a child that runs as another user (a container started with --cap-drop ALL needs --cap-add KILL)"))
	}
	return nil
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// capKill is CAP_KILL's bit in the capability sets.
const capKill = 5

// effectiveCap reports whether hupd has capability bit in its effective
// set (/proc/self/status CapEff); true if that cannot be read.
func effectiveCap(bit uint) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			set, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err != nil || set&(1<<bit) != 0
		}
	}
	return true
}

type userIDs struct {
	uid, gid int
	groups   []int
}

func lookupUser(name string) (userIDs, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, numErr := strconv.Atoi(name); numErr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		if n, numErr := strconv.ParseUint(name, 10, 32); numErr == nil {
			// A numeric id without a passwd entry is valid, as in containers.
			return userIDs{uid: int(n), gid: int(n), groups: []int{int(n)}}, nil
		}
		return userIDs{}, errors.New("unknown user")
	}
	ids := userIDs{}
	ids.uid, _ = strconv.Atoi(u.Uid)
	ids.gid, _ = strconv.Atoi(u.Gid)
	gids, _ := u.GroupIds()
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil {
			ids.groups = append(ids.groups, n)
		}
	}
	if !contains(ids.groups, ids.gid) {
		ids.groups = append(ids.groups, ids.gid)
	}
	return ids, nil
}

func lookupGroup(name string) (int, error) {
	if g, err := user.LookupGroup(name); err == nil {
		return strconv.Atoi(g.Gid)
	}
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return int(n), nil
	}
	return 0, errors.New("unknown group")
}

func oneOf(v string, valid ...string) (string, error) {
	for _, s := range valid {
		if v == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("valid values are %s", strings.Join(valid, ", "))
}

func strategies() []string {
	out := make([]string, len(supervisor.Strategies))
	for i, s := range supervisor.Strategies {
		out[i] = string(s)
	}
	return out
}

func policies() []string {
	out := make([]string, len(supervisor.RestartPolicies))
	for i, p := range supervisor.RestartPolicies {
		out[i] = string(p)
	}
	return out
}

// fieldError is the *Error about the value at key ("listen.1.address"):
// where the value came from (file:line or the flag), the field as
// messages name it ("listen[1].address"), the value ("" to leave it out)
// and what is wrong with it.
func (c *Config) fieldError(key, value string, err error) *Error {
	return &Error{Where: c.src.where(key), Field: c.field(fieldName(key)), Value: value, Err: err}
}

// field is the name messages give the field name of c: as it is at the
// top level, after the program's name in a [[program]] table
// (`program "web" listen[0].address`).
func (c *Config) field(name string) string { return c.in + name }

// durationError is the error of the duration field at key whose value v
// did not parse (err) or is not positive: a bare number gets the form to
// write instead ("30" is not a duration: write 30s), anything else want.
func (c *Config) durationError(key, v string, err error, want string) *Error {
	var nu *duration.NoUnitError
	if errors.As(err, &nu) {
		c.quoteFix(key, nu)
		return c.fieldError(key, "", nu)
	}
	return c.fieldError(key, v, errors.New(want))
}

// quoteFix makes the fix a *duration.NoUnitError in err suggests a TOML
// string when the value at key came from the file.
func (c *Config) quoteFix(key string, err error) {
	var nu *duration.NoUnitError
	if _, flag := c.src.flags[key]; errors.As(err, &nu) && !flag {
		nu.Quote = true
	}
}

// listenKey is the key of field k of the i-th [[listen]] table:
// "listen.1.address".
func listenKey(i int, k string) string { return fmt.Sprintf("listen.%d.%s", i, k) }

// fieldName turns "listen.1.address" into "listen[1].address".
func fieldName(key string) string {
	parts := strings.Split(key, ".")
	var b strings.Builder
	for i, p := range parts {
		if _, err := strconv.Atoi(p); err == nil {
			fmt.Fprintf(&b, "[%s]", p)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
