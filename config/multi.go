package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/hupd/hupd/contain"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
)

// Values of [[program]] on_exit: what hupd does when a program ends for
// good (restart policy never, or its start limit reached).
const (
	// OnExitStopAll stops every program (in reverse start order) and ends
	// hupd with the program's exit status. The default.
	OnExitStopAll = "stop-all"
	// OnExitIgnore lets the other programs run on.
	OnExitIgnore = "ignore"
)

// MaxProgramName is the longest program name, in bytes.
const MaxProgramName = 64

// ErrMultiProgram is the error of Resolve on a file with [[program]]
// tables, which only ResolveMulti resolves: hupd run, hupd plan and the
// edits of a running hupd's file report it (until hupd runs several
// programs).
var ErrMultiProgram = errors.New("several programs ([[program]] tables) are not supported here yet: hupd check validates them")

// perProgramKeys are the top-level keys of the single-program form: with
// [[program]] tables, each belongs in a program's table.
var perProgramKeys = []string{"command", "listen", "watch", "process", "reload", "restart", "legacy"}

// ProgramSpec is one program resolved: what a single program resolves to
// (see Resolved), with its name and its place among the others.
type ProgramSpec struct {
	// Name is the [[program]] table's name (see ValidProgramName); "" for
	// the program of the single-program form.
	Name string
	// Where is where the program is configured: its [[program]] header
	// ("hupd.toml:12"); "" for the single-program form.
	Where string
	// After are the programs (by name, each once, in the order written)
	// that must be ready before this one starts, and stop after it.
	After []string
	// OnExit is OnExitStopAll or OnExitIgnore.
	OnExit string
	// Options, Listen, ListenWhere, Watch and Cgroup are the fields of
	// the same names of Resolved, for this program. Options.Name and
	// Options.Control are hupd's (ResolvedMulti.Name and Control).
	Options     supervisor.Options
	Listen      []socketact.Spec
	ListenWhere []string
	Watch       []WatchSpec
	Cgroup      contain.Mode
}

// ResolvedMulti is a fully checked configuration in either form: the
// hupd-wide settings, and every program in start order. The single-program
// form is one program named "" (Resolved.Multi).
type ResolvedMulti struct {
	// Name is the name hupd runs under (Config.ServiceName); Control the
	// control socket's path ("" derives it from Name).
	Name    string
	Control string
	// LogFormat, LogLevel, ConfigFile, WatchConfig, Health and FDStore
	// are the fields of the same names of Resolved.
	LogFormat   string
	LogLevel    slog.Level
	ConfigFile  string
	WatchConfig bool
	Health      HealthSpec
	FDStore     string
	// Programs are in start order: each after the programs it names in
	// After, otherwise in the file's order. They stop in reverse.
	Programs []ProgramSpec
}

// Program returns the program called name, or nil.
func (m *ResolvedMulti) Program(name string) *ProgramSpec {
	for i := range m.Programs {
		if m.Programs[i].Name == name {
			return &m.Programs[i]
		}
	}
	return nil
}

// Multi returns r, a single program, as a ResolvedMulti of one program
// named "". The program's slices are r's.
func (r *Resolved) Multi() *ResolvedMulti {
	m := r.service()
	m.Name, m.Control = r.Options.Name, r.Options.Control
	m.Programs = []ProgramSpec{r.program()}
	return m
}

// service is r's hupd-wide fields.
func (r *Resolved) service() *ResolvedMulti {
	return &ResolvedMulti{LogFormat: r.LogFormat, LogLevel: r.LogLevel, ConfigFile: r.ConfigFile, WatchConfig: r.WatchConfig, Health: r.Health, FDStore: r.FDStore}
}

// program is r's program, unnamed.
func (r *Resolved) program() ProgramSpec {
	return ProgramSpec{OnExit: OnExitStopAll, Options: r.Options, Listen: r.Listen, ListenWhere: r.ListenWhere, Watch: r.Watch, Cgroup: r.Cgroup}
}

// Multi reports whether c has [[program]] tables: the multi-program form,
// which ResolveMulti resolves.
func (c *Config) Multi() bool { return len(c.Programs) > 0 }

// ValidProgramName says why name cannot name a program, or returns nil.
// A name is 1 to MaxProgramName letters, digits, '-', '_' and '.',
// beginning with a letter or a digit: it names a cgroup (a directory), log
// records and control requests.
func ValidProgramName(name string) error {
	const want = "want letters, digits, '-', '_' and '.', beginning with a letter or a digit: the name goes into cgroup names, log records and control requests"
	if name == "" {
		return errors.New("empty: " + want)
	}
	if len(name) > MaxProgramName {
		return fmt.Errorf("longer than %d bytes", MaxProgramName)
	}
	for i, r := range name {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !letter && (i == 0 || r != '-' && r != '_' && r != '.') {
			return errors.New(want)
		}
	}
	return nil
}

// ResolveMulti checks every value of either form and returns what hupd
// runs. It touches nothing: no socket is opened and no process started.
// The single-program form resolves as Resolve does, into one program
// named "". In the multi-program form it also checks the programs
// together: names present, valid and unique; after naming other programs
// and making no cycle; no socket address used by two programs; and no
// per-program setting at the top level or from a flag or the command
// line. Like Resolve, it fills the defaults in and writes each listen
// address as its URL, so that EncodeMulti shows the effective
// configuration.
func (c *Config) ResolveMulti() (*ResolvedMulti, error) {
	if !c.Multi() {
		r, err := c.Resolve()
		if err != nil {
			return nil, err
		}
		return r.Multi(), nil
	}
	if err := c.checkForms(); err != nil {
		return nil, err
	}
	def(&c.Systemd.FDStore, FDStoreAuto)
	def(&c.Log.Format, FormatText)
	def(&c.Log.Level, "info")
	// WatchConfig: the top level's [reload] watch_config, which only
	// --watch-config sets here (checkForms refuses a [reload] table).
	svc := &Resolved{}
	if err := c.resolveService(svc); err != nil {
		return nil, err
	}
	if err := c.checkNames(); err != nil {
		return nil, err
	}
	order, err := c.startOrder()
	if err != nil {
		return nil, err
	}
	specs := make([]ProgramSpec, len(c.Programs))
	for i := range c.Programs {
		p := &c.Programs[i]
		v := c.program(i)
		if v.Reload.WatchConfig != nil {
			return nil, v.fieldError("reload.watch_config", strconv.FormatBool(*v.Reload.WatchConfig),
				errors.New("is hupd's, not a program's: edits of the file apply to every program; give --watch-config=false to hupd instead"))
		}
		onExit := p.OnExit
		if onExit == "" {
			onExit = OnExitStopAll
		}
		if _, err := oneOf(onExit, OnExitIgnore, OnExitStopAll); err != nil {
			return nil, v.fieldError("on_exit", p.OnExit, err)
		}
		v.fillProgramDefaults()
		r := *svc
		if err := v.resolveProgram(&r); err != nil {
			return nil, err
		}
		// The effective settings, for EncodeMulti.
		p.OnExit = onExit
		p.Command, p.Listen, p.Watch, p.Process, p.Reload, p.Restart, p.Legacy = v.Command, v.Listen, v.Watch, v.Process, v.Reload, v.Restart, v.Legacy
		s := r.program()
		s.Name, s.Where, s.OnExit, s.After = p.Name, c.src.where(programKey(i)), onExit, uniq(p.After)
		specs[i] = s
	}
	if err := c.checkAddresses(specs); err != nil {
		return nil, err
	}
	m := svc.service()
	m.Name, m.Control = c.ServiceName(), c.Control
	for _, i := range order {
		m.Programs = append(m.Programs, specs[i])
	}
	return m, nil
}

// programKey is the key of the i-th [[program]] table: "program.1".
func programKey(i int) string { return "program." + strconv.Itoa(i) }

// program returns a Config that holds the settings of the i-th [[program]]
// table as the single-program form holds them at the top level, with the
// hupd-wide ones, so that the same code resolves both. Its errors name the
// table's lines and the program (`program "web" listen[0].address`).
func (c *Config) program(i int) *Config {
	p := c.Programs[i]
	return &Config{
		Name: c.Name, Control: c.Control, Health: c.Health, Systemd: c.Systemd, Log: c.Log,
		Command: p.Command, Listen: p.Listen, Watch: p.Watch, Process: p.Process, Reload: p.Reload, Restart: p.Restart, Legacy: p.Legacy,
		file: c.file, src: c.src.in(programKey(i)), in: fmt.Sprintf("program %q ", p.Name),
	}
}

// checkForms refuses a file that mixes the two forms: a per-program
// setting at the top level (or a command after "--") with [[program]]
// tables.
func (c *Config) checkForms() error {
	first := c.src.where(programKey(0))
	if f, ok := c.src.flags["command"]; ok {
		return &Error{Where: f, Err: fmt.Errorf("a command after -- does not apply with [[program]] tables (the first at %s): give each program its command in its table", first)}
	}
	key, line := "", 0
	for k, n := range c.src.lines {
		// The TOML library matches keys without regard to case.
		top, _, _ := strings.Cut(strings.ToLower(k), ".")
		if slices.Contains(perProgramKeys, top) && (line == 0 || n < line) {
			key, line = top, n
		}
	}
	if line == 0 {
		// One the line finder cannot place (a quoted key): the file.
		// [reload] watch_config is hupd's (--watch-config sets it).
		reload := c.Reload
		reload.WatchConfig = nil
		set := map[string]bool{"command": len(c.Command) > 0, "listen": len(c.Listen) > 0, "watch": len(c.Watch) > 0,
			"process": !reflect.ValueOf(c.Process).IsZero(), "reload": !reflect.ValueOf(reload).IsZero(),
			"restart": !reflect.ValueOf(c.Restart).IsZero(), "legacy": c.Legacy != Legacy{}}
		for _, k := range perProgramKeys {
			if set[k] {
				key = k
				break
			}
		}
		if key == "" {
			return nil
		}
	}
	what := key
	switch key {
	case "listen", "watch":
		what = "[[" + key + "]]"
	case "process", "reload", "restart", "legacy":
		what = "[" + key + "]"
	}
	return &Error{Where: lineWhere(c.src.file, line), Field: what,
		Err: fmt.Errorf("not with [[program]] tables (the first at %s): beside them, the top level holds only hupd-wide settings (name, control, [health], [systemd], [log]); move it into the table of the program it is for", first)}
}

// checkNames checks that every program has a valid name of its own.
func (c *Config) checkNames() error {
	seen := map[string]int{}
	for i, p := range c.Programs {
		key := programKey(i)
		field := fieldName(key) + ".name"
		if p.Name == "" && !c.src.has(key+".name") {
			return &Error{Where: c.src.where(key), Field: field, Err: errors.New(`missing: give each [[program]] a name = "..."`)}
		}
		if err := ValidProgramName(p.Name); err != nil {
			return &Error{Where: c.src.where(key + ".name"), Field: field, Value: p.Name, Err: err}
		}
		if j, ok := seen[p.Name]; ok {
			return &Error{Where: c.src.where(key + ".name"), Field: field, Value: p.Name,
				Err: fmt.Errorf("already the name of %s (%s): each program needs a name of its own", fieldName(programKey(j)), c.src.where(programKey(j)+".name"))}
		}
		seen[p.Name] = i
	}
	return nil
}

// startOrder checks after and returns the indexes of the programs in
// start order: each after those it names, in file order among those free
// to start.
func (c *Config) startOrder() ([]int, error) {
	index := map[string]int{}
	var names []string
	for i, p := range c.Programs {
		index[p.Name] = i
		names = append(names, p.Name)
	}
	deps := make([][]int, len(c.Programs))
	for i, p := range c.Programs {
		for _, a := range p.After {
			j, ok := index[a]
			if !ok {
				return nil, c.program(i).fieldError("after", a, fmt.Errorf("no program of that name: the programs are %s", strings.Join(names, ", ")))
			}
			deps[i] = append(deps[i], j)
		}
	}
	placed := make([]bool, len(c.Programs))
	var order []int
	for len(order) < len(c.Programs) {
		next := -1
		for i := range c.Programs {
			if !placed[i] && !slices.ContainsFunc(deps[i], func(j int) bool { return !placed[j] }) {
				next = i
				break
			}
		}
		if next < 0 {
			return nil, c.cycleError(deps, placed)
		}
		placed[next] = true
		order = append(order, next)
	}
	return order, nil
}

// cycleError names a cycle among the programs not placed, each of which
// waits for another not placed: from the first of them in the file, it
// follows after until a program comes again, and names the cycle from the
// first in the file of its programs ("web → app → web": web starts after
// app, which starts after web).
func (c *Config) cycleError(deps [][]int, placed []bool) error {
	waitsFor := func(i int) int {
		for _, j := range deps[i] {
			if !placed[j] {
				return j
			}
		}
		return -1 // not reached: each program not placed waits for one
	}
	start := slices.Index(placed, false)
	var path []int
	at := map[int]int{}
	for i := start; ; i = waitsFor(i) {
		if k, ok := at[i]; ok {
			path = path[k:]
			break
		}
		at[i] = len(path)
		path = append(path, i)
	}
	first := slices.Index(path, slices.Min(path))
	path = append(path[first:], path[:first]...)
	var b strings.Builder
	for _, i := range append(path, path[0]) {
		if b.Len() > 0 {
			b.WriteString(" → ")
		}
		b.WriteString(c.Programs[i].Name)
	}
	return c.program(path[0]).fieldError("after", "", fmt.Errorf("a cycle: %s (each starts after the next): no program of it could start", b.String()))
}

// checkAddresses refuses a socket address two programs use: the same IP
// address and port (port 0, a port picked when the socket is opened, is
// never the same), the same unix socket file (however its path is
// written) or the same abstract name. Within one program, resolveProgram
// checks it.
func (c *Config) checkAddresses(specs []ProgramSpec) error {
	type owner struct{ prog, listen int }
	seen := map[string]owner{}
	for i, s := range specs {
		for j, sp := range s.Listen {
			k, ok := addressKey(sp.Address)
			if !ok {
				continue
			}
			if prev, dup := seen[k]; dup && prev.prog != i {
				v := c.program(i)
				return v.fieldError(listenKey(j, "address"), sp.Address.String(),
					fmt.Errorf("already the address of program %q listen[%d] (%s): two programs cannot hold one socket", specs[prev.prog].Name, prev.listen, specs[prev.prog].ListenWhere[prev.listen]))
			}
			if _, dup := seen[k]; !dup {
				seen[k] = owner{i, j}
			}
		}
	}
	return nil
}

// addressKey is what two addresses share when they are one socket;
// false for an address that is never shared (port 0).
func addressKey(a socketact.Address) (string, bool) {
	switch {
	case a.IsAbstract():
		return a.Network + " " + a.Path, true
	case a.IsUnix():
		return "file " + samePath(a.Path), true
	case a.Port == 0:
		return "", false
	}
	return a.String(), true
}

// samePath is p clean, its directory's symbolic links resolved when they
// can be: two paths of one file are the same string.
func samePath(p string) string {
	p = filepath.Clean(p)
	if dir, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		return filepath.Join(dir, filepath.Base(p))
	}
	return p
}

// uniq is s without repeats, in order; nil for none.
func uniq(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// EncodeMulti writes the effective configuration of a multi-program c,
// resolved by ResolveMulti into m, as TOML: the hupd-wide settings, then
// each program's table in start order (m's), under a comment line
// "# program NAME". It reads back as the same configuration.
func (c *Config) EncodeMulti(w *bytes.Buffer, m *ResolvedMulti) error {
	top := struct {
		Name    string  `toml:"name,omitempty"`
		Control string  `toml:"control,omitempty"`
		Health  Health  `toml:"health"`
		Systemd Systemd `toml:"systemd"`
		Log     Log     `toml:"log"`
	}{c.Name, c.Control, c.Health, c.Systemd, c.Log}
	if err := toml.NewEncoder(w).Encode(top); err != nil {
		return err
	}
	for _, s := range m.Programs {
		i := slices.IndexFunc(c.Programs, func(p Program) bool { return p.Name == s.Name })
		if i < 0 {
			return fmt.Errorf("config: no program %q in %s", s.Name, c.file)
		}
		fmt.Fprintf(w, "\n# program %s\n", s.Name)
		one := struct {
			Program []Program `toml:"program"`
		}{[]Program{c.Programs[i]}}
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(one); err != nil {
			return err
		}
		// A blank line before each of the program's tables, as between
		// the top level's.
		lines := strings.Split(b.String(), "\n")
		for j, l := range lines {
			if j > 0 && lines[j-1] != "" && strings.HasPrefix(strings.TrimSpace(l), "[") {
				w.WriteByte('\n')
			}
			w.WriteString(l)
			if j < len(lines)-1 {
				w.WriteByte('\n')
			}
		}
	}
	return nil
}
