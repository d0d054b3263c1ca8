package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
	"github.com/hupd/hupd/internal/duration"
	"github.com/hupd/hupd/internal/safefile"
)

// Config mirrors hupd.toml; flags override its fields. Durations, signals
// and modes are strings here and are checked by Resolve.
type Config struct {
	Name    string   `toml:"name,omitempty"`
	Command []string `toml:"command"`
	// Control is the control socket's path ("" derives it from name).
	Control string   `toml:"control,omitempty"`
	Listen  []Listen `toml:"listen,omitempty"`
	Watch   []Watch  `toml:"watch,omitempty"`
	Process Process  `toml:"process"`
	Reload  Reload   `toml:"reload"`
	Restart Restart  `toml:"restart"`
	Legacy  Legacy   `toml:"legacy"`
	Health  Health   `toml:"health"`
	Systemd Systemd  `toml:"systemd"`
	Log     Log      `toml:"log"`
	// Programs are the [[program]] tables: with them, hupd runs several
	// programs (the multi-program form, ResolveMulti), and the top level
	// holds only hupd-wide settings (name, control, [health], [systemd],
	// [log]).
	Programs []Program `toml:"program,omitempty"`

	file string
	src  sources
	// in is `program "NAME" ` when c holds the settings of a [[program]]
	// table (see program), "" at the top level: messages name fields
	// with it.
	in string
	// flagWatch is 1 + the index of the [[watch]] table --watch added.
	flagWatch int
}

// Program is one [[program]] table: a program's name, its order and every
// setting a single program has at the top level, in tables of its own
// ([program.process] for [process], [[program.listen]] for [[listen]]…).
type Program struct {
	// Name names the program in logs, cgroups and control requests: see
	// ValidProgramName.
	Name    string   `toml:"name"`
	Command []string `toml:"command"`
	// After names programs that must be ready before this one starts
	// (and that stop after it).
	After []string `toml:"after,omitempty"`
	// OnExit is what hupd does when the program ends for good: OnExitStopAll
	// (the default) or OnExitIgnore.
	OnExit  string   `toml:"on_exit,omitempty"`
	Listen  []Listen `toml:"listen,omitempty"`
	Watch   []Watch  `toml:"watch,omitempty"`
	Process Process  `toml:"process"`
	Reload  Reload   `toml:"reload"`
	Restart Restart  `toml:"restart"`
	Legacy  Legacy   `toml:"legacy"`
}

// Listen is one [[listen]] table.
type Listen struct {
	Name      string `toml:"name,omitempty"`
	Address   string `toml:"address"`
	Backlog   int    `toml:"backlog,omitempty"`
	ReusePort bool   `toml:"reuseport,omitempty"`
	// Steer gives each generation its own socket on the address, in one
	// SO_REUSEPORT group whose new connections hupd steers to the newest
	// ready generation (socketact.Spec.Steer). TCP and UDP only.
	Steer  bool  `toml:"steer,omitempty"`
	V6Only *bool `toml:"v6only,omitempty"`
	// NonBlocking sets O_NONBLOCK on the socket (systemd's NonBlocking=).
	// Default false, or true when the socket is described to nginx
	// (process.handoff or its own env holds "nginx").
	NonBlocking *bool  `toml:"nonblocking,omitempty"`
	Mode        string `toml:"mode,omitempty"`
	Owner       string `toml:"owner,omitempty"`
	Group       string `toml:"group,omitempty"`
	// Env names hand-over dialects (einhorn, server-starter, nginx) that
	// describe this socket besides LISTEN_FDS, on top of process.handoff,
	// which describes every socket: a dialect only some sockets name lists
	// just those, under their own fd numbers (socketact.HandoffEnv). TOML
	// only: --listen has no form for it.
	Env []string `toml:"env,omitempty"`
}

// Watch is one [[watch]] table.
type Watch struct {
	// Paths are files, directories (with everything under them) or
	// globs; relative ones are relative to hupd.toml's directory.
	Paths []string `toml:"paths"`
	// Action is reload (the configured strategy), swap, restart or
	// signal:NAME.
	Action       string `toml:"action,omitempty"`
	Debounce     string `toml:"debounce,omitempty"`
	PollInterval string `toml:"poll_interval,omitempty"`
}

// Process is the [process] table.
type Process struct {
	User        string            `toml:"user,omitempty"`
	Group       string            `toml:"group,omitempty"`
	Dir         string            `toml:"dir,omitempty"`
	Env         map[string]string `toml:"env,omitempty"`
	StopSignal  string            `toml:"stop_signal"`
	StopTimeout string            `toml:"stop_timeout"`
	// Watchdog is passed to the child as WATCHDOG_USEC; "" is none.
	Watchdog string `toml:"watchdog,omitempty"`
	// Output is pipe (copy, keep the last lines) or inherit.
	Output       string `toml:"output"`
	OutputPrefix bool   `toml:"output_prefix,omitempty"`
	// Handoff lists hand-over dialects besides LISTEN_FDS: einhorn,
	// server-starter, nginx.
	Handoff []string `toml:"handoff,omitempty"`
	// Cgroup is auto (a cgroup v2 group per generation where hupd may
	// create one, process groups otherwise) or off (process groups only).
	Cgroup string `toml:"cgroup,omitempty"`
	// Forking is for a program that daemonizes (its first process forks
	// and exits 0): the process it leaves becomes the main process.
	Forking bool `toml:"forking,omitempty"`
	// Pidfile is where such a program writes its daemon's PID (implies
	// forking); a relative path is relative to the program's directory
	// (dir, else hupd's working directory).
	Pidfile string `toml:"pidfile,omitempty"`
	// Instances is how many processes of the program each generation
	// runs on the same sockets (supervisor.Options.Instances): 1 to
	// supervisor.MaxInstances; 0, not set, is 1.
	Instances int `toml:"instances,omitzero"`
}

// Reload is the [reload] table.
type Reload struct {
	Strategy string `toml:"strategy"`
	// Ready is auto, notify, delay:DURATION or exec:COMMAND;
	// ReadyCommand is the exec form's argv when it needs spaces.
	Ready        string   `toml:"ready"`
	ReadyCommand []string `toml:"ready_command,omitempty"`
	ReadyTimeout string   `toml:"ready_timeout"`
	Check        []string `toml:"check,omitempty"`
	MaxDraining  int      `toml:"max_draining"`
	Signal       string   `toml:"signal"`
	// WatchConfig applies edits of hupd.toml as they are saved (default
	// true when there is a hupd.toml).
	WatchConfig *bool `toml:"watch_config,omitempty"`
	// Settle keeps the old generation of a swap running that long
	// (supervisor.Options.Settle); "0s", the default, stops it at once.
	Settle string `toml:"settle"`
	// SteerWait bounds the wait for an old generation's steered sockets
	// to empty their queues before its stop signal
	// (supervisor.Options.SteerWait).
	SteerWait string `toml:"steer_wait"`
	// SteerGrace is how long a steered socket the steering moved away from
	// may still receive connections whose handshake began before
	// (supervisor.Options.SteerGrace).
	SteerGrace string `toml:"steer_grace"`
	// Rolling is how many instances a swap replaces at a time
	// (supervisor.Options.Rolling): 0, the default, all at once.
	Rolling int `toml:"rolling,omitzero"`
}

// Restart is the [restart] table.
type Restart struct {
	Policy     string `toml:"policy"`
	MinDelay   string `toml:"min_delay"`
	MaxDelay   string `toml:"max_delay"`
	ResetAfter string `toml:"reset_after"`
	// StartLimit is "BURST/INTERVAL" (supervisor.ParseStartLimit), "off"
	// or "0".
	StartLimit string `toml:"start_limit"`
	// SuccessExitStatus lists exit codes and signal names that count as a
	// success (supervisor.SuccessStatus).
	SuccessExitStatus StatusList `toml:"success_exit_status,omitempty"`
}

// Legacy is the [legacy] table.
type Legacy struct {
	// Mode "redirect" gives the [[listen]] sockets to a program that binds
	// its own ports; "" hands them over as inherited fds.
	Mode string `toml:"mode,omitempty"`
}

// Health is the [health] table: hupd's own HTTP endpoint for probes and
// metrics (/livez, /readyz, /metrics). Off unless Address is set.
type Health struct {
	// Address is HOST:PORT of a TCP listener hupd opens for itself; it
	// is never one of the [[listen]] sockets and never passed to a child.
	Address string `toml:"address,omitempty"`
	// Failures: /readyz fails once this many reloads in a row have failed,
	// until one succeeds. 0, the default, never.
	Failures int `toml:"failures,omitempty"`
}

// Systemd is the [systemd] table: what hupd does for a service manager
// that started it, besides notifying it.
type Systemd struct {
	// FDStore keeps the [[listen]] sockets in the service manager's fd
	// store, so that they outlive hupd: auto (the default: when the manager
	// says it keeps fds, $FDSTORE), yes (whenever $NOTIFY_SOCKET is set) or
	// no.
	FDStore string `toml:"fdstore"`
}

// Log is the [log] table.
type Log struct {
	Format string `toml:"format"`
	Level  string `toml:"level"`
}

// Error is a configuration error: where the value came from, the field, the
// value and the reason. Its message is one line.
type Error struct {
	Where string // "hupd.toml:12", "hupd.toml" or "--listen"
	Field string // "listen[1].address"; empty for syntax errors
	Value string
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Where)
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, " = %q", e.Value)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrUnknownKey is wrapped by errors about keys hupd does not know.
var ErrUnknownKey = errors.New("unknown key")

// MaxFileSize is the largest hupd.toml Load reads (1 MiB). The file must
// be a regular file (or a symlink to one): a FIFO, a device or a directory
// is refused without blocking (see internal/safefile).
const MaxFileSize = 1 << 20

// Load reads and decodes a TOML file. Unknown keys are errors, and so is
// a path that is not a regular file or a file larger than MaxFileSize:
// "hupd.toml: not a regular file (fifo)", "hupd.toml: larger than 1 MiB".
func Load(path string) (*Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// ReadFile reads the file Load would decode, with Load's checks and
// errors: Load is ReadFile then Parse. A caller that must know exactly
// which bytes were decoded (to hash them) reads once with ReadFile and
// hands the same bytes to Parse. The content is never nil.
func ReadFile(path string) ([]byte, error) {
	data, err := safefile.ReadFile(path, MaxFileSize)
	if err != nil {
		return nil, &Error{Where: path, Err: unwrapPath(err)}
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// Parse decodes TOML data read from file (used in messages).
func Parse(file string, data []byte) (*Config, error) {
	c := &Config{file: file}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Where: lineWhere(file, errorLine(data, pe.Position)), Err: errors.New(oneLine(pe.Message))}
		}
		// A value of the wrong type is a plain error that carries its line
		// and key only in its text: "toml: line 3 (last key "a.b"): …".
		msg := oneLine(err.Error())
		if m := reDecodeErr().FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			if key, err := strconv.Unquote(m[2]); err == nil {
				e := &Error{Where: lineWhere(file, n), Field: key, Err: errors.New(m[3])}
				if want, ok := countKeys[topKey(key)]; ok {
					e.Err = errors.New(want)
				}
				if num, ok := durationNumber(data, key); ok {
					e.Err = &duration.NoUnitError{Number: num, Quote: true}
				}
				return nil, e
			}
		}
		return nil, &Error{Where: file, Err: errors.New(strings.TrimPrefix(msg, "toml: "))}
	}
	c.src = sources{file: file}
	c.src.lines, c.src.plain = keyLines(stripBOM(data))
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		parent := k[:len(k)-1].String()
		return nil, &Error{
			Where: c.src.whereUndecoded(k.String()),
			Err:   fmt.Errorf("%w %q: valid keys%s are %s", ErrUnknownKey, k[len(k)-1], inTable(parent), strings.Join(validKeys(parent), ", ")),
		}
	}
	return c, nil
}

// countKeys are the keys whose values are whole numbers that Resolve
// checks, with what a value of another type gets told (in a [[program]]
// table too: see programKey).
var countKeys = map[string]string{
	"process.instances": wantInstances,
	"reload.rolling":    wantRolling,
}

// durationKeys are the keys whose values are durations, as the TOML
// library names them (without the index of an array of tables).
var durationKeys = map[string]bool{
	"process.stop_timeout": true, "process.watchdog": true, "reload.ready_timeout": true,
	"reload.settle": true, "reload.steer_wait": true,
	"restart.min_delay": true, "restart.max_delay": true, "restart.reset_after": true,
	"watch.debounce": true, "watch.poll_interval": true,
}

// durationNumber returns the number written without quotes at the
// duration key of data ("stop_timeout = 30"), which decodes but does not
// fit the string field; in an array of tables, the first table's number,
// as the decoder fails on the first.
func durationNumber(data []byte, key string) (string, bool) {
	if !durationKeys[topKey(key)] {
		return "", false
	}
	var v any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&v); err != nil {
		return "", false
	}
	return numberAt(v, strings.Split(key, "."))
}

func numberAt(v any, path []string) (string, bool) {
	switch v := v.(type) {
	case map[string]any:
		if len(path) > 0 {
			return numberAt(v[path[0]], path[1:])
		}
	case []map[string]any:
		for _, t := range v {
			if n, ok := numberAt(t, path); ok {
				return n, true
			}
		}
	case int64:
		if len(path) == 0 {
			return strconv.FormatInt(v, 10), true
		}
	case float64:
		if len(path) == 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
			return strconv.FormatFloat(v, 'f', -1, 64), true
		}
	}
	return "", false
}

// topKey is the key of a [[program]] table's setting as the top level
// names it: "program.process.instances" is "process.instances".
func topKey(key string) string {
	return strings.TrimPrefix(key, "program.")
}

var reDecodeErr = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^toml: line (\d+) \(last key ("(?:[^"\\]|\\.)*")\): (.*)$`)
})

// errorLine returns the line of a syntax error. The library's line number
// is off by one when the offending byte is a newline (it counts that line
// as ended) and is always 1 for a NUL byte; the byte offset is right, so
// count the lines up to it.
func errorLine(data []byte, pos toml.Position) int {
	data = stripBOM(data) // offsets count from after the BOM
	if pos.Len <= 0 || pos.Start < 0 || pos.Start > len(data) {
		return pos.Line
	}
	return 1 + bytes.Count(data[:pos.Start], []byte("\n"))
}

// stripBOM removes the byte-order mark the TOML library skips.
func stripBOM(data []byte) []byte {
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe", "\xfe\xff"} {
		if rest, ok := bytes.CutPrefix(data, []byte(bom)); ok {
			return rest
		}
	}
	return data
}

// lineWhere returns "file:line", or file when the line is unknown.
func lineWhere(file string, line int) string {
	if line <= 0 {
		return file
	}
	return fmt.Sprintf("%s:%d", file, line)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func inTable(parent string) string {
	if parent == "" {
		return " at the top level"
	}
	return " in [" + parent + "]"
}

// validKeys lists the keys of the table at parent ("" for the top level).
func validKeys(parent string) []string {
	if p := topKey(parent); p != parent && p != "" {
		parent = p // [program.process] has [process]'s keys
	}
	keys := map[string][]string{
		"":        {"name", "command", "control", "listen", "watch", "process", "reload", "restart", "legacy", "health", "systemd", "log", "program"},
		"program": {"name", "command", "after", "on_exit", "listen", "watch", "process", "reload", "restart", "legacy"},
		"watch":   {"paths", "action", "debounce", "poll_interval"},
		"listen":  {"name", "address", "backlog", "reuseport", "steer", "v6only", "nonblocking", "mode", "owner", "group", "env"},
		"process": {"user", "group", "dir", "env", "stop_signal", "stop_timeout", "watchdog", "output", "output_prefix", "handoff", "cgroup", "forking", "pidfile", "instances"},
		"reload":  {"strategy", "signal", "ready", "ready_command", "ready_timeout", "check", "max_draining", "watch_config", "settle", "steer_wait", "steer_grace", "rolling"},
		"restart": {"policy", "min_delay", "max_delay", "reset_after", "start_limit", "success_exit_status"},
		"legacy":  {"mode"},
		"health":  {"address", "failures"},
		"systemd": {"fdstore"},
		"log":     {"format", "level"},
	}[parent]
	sort.Strings(keys)
	return keys
}

// File returns the path the config was loaded from, or "".
func (c *Config) File() string { return c.file }

// Encode writes c as TOML.
func (c *Config) Encode(w *bytes.Buffer) error {
	return toml.NewEncoder(w).Encode(c)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
