package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
	"golang.org/x/sys/unix"
)

// executable writes an executable file and returns its path.
func executable(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "server")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// asError asserts that err is a one-line *Error and returns it.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Fatalf("error is not one line: %q", err.Error())
	}
	return ce
}

func TestParseFull(t *testing.T) {
	src := `name = "web"
command = ["./server", "-v"]

[[listen]]
name = "http"
address = "tcp://:8080"
backlog = 128
reuseport = true
v6only = false

[[listen]]
address = "unix:///run/web.sock"
mode = "0660"
owner = "1000"
group = "1000"

[process]
user = "1000"
group = "1000"
dir = "/srv"
stop_signal = "INT"
stop_timeout = "10s"

[process.env]
A = "1"

[reload]
strategy = "signal"
signal = "USR2"

[restart]
policy = "always"
min_delay = "1s"
max_delay = "1m"
reset_after = "5m"

[log]
format = "json"
level = "debug"
`
	c, err := Parse("web.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	f := false
	want := &Config{
		Name:    "web",
		Command: []string{"./server", "-v"},
		Listen: []Listen{
			{Name: "http", Address: "tcp://:8080", Backlog: 128, ReusePort: true, V6Only: &f},
			{Address: "unix:///run/web.sock", Mode: "0660", Owner: "1000", Group: "1000"},
		},
		Process: Process{User: "1000", Group: "1000", Dir: "/srv", Env: map[string]string{"A": "1"}, StopSignal: "INT", StopTimeout: "10s"},
		Reload:  Reload{Strategy: "signal", Signal: "USR2"},
		Restart: Restart{Policy: "always", MinDelay: "1s", MaxDelay: "1m", ResetAfter: "5m"},
		Log:     Log{Format: "json", Level: "debug"},
	}
	c.src, want.file, want.src = sources{}, "web.toml", sources{}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if c.File() != "web.toml" {
		t.Fatalf("File() = %q", c.File())
	}
}

func TestParseSyntaxErrorNamesLine(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
	}{
		{"unclosed array", "command = [\"./a\"\n[process]\n", 2},
		{"unclosed table", "command = [\"./a\"]\n\n[process\n", 3},
		{"bare value", "command = [\"./a\"]\nname = web\n", 2},
		{"duplicate key", "name = \"a\"\n\nname = \"b\"\n", 3},
		{"unterminated string", "name = \"a\n", 1},
		{"duplicate table", "[log]\nlevel = \"info\"\n[log]\n", 3},
		// The library counts a line as ended once it read its newline.
		{"newline ends table name", "[process\nuser = \"x\"\n", 1},
		{"newline in string", "\n\nname = \"a\nb\"\n", 3},
		{"after a BOM", "\xef\xbb\xbfname = \"a\"\n[process\n", 2},
		{"unexpected EOF", "command = [\n\"a\",\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.toml", []byte(tc.src))
			ce := asError(t, err)
			if want := "bad.toml:" + strconv.Itoa(tc.line); ce.Where != want {
				t.Fatalf("Where = %q, want %q (%v)", ce.Where, want, err)
			}
			if !strings.HasPrefix(err.Error(), ce.Where+": ") {
				t.Fatalf("message %q does not start with %q", err, ce.Where)
			}
		})
	}
}

func TestParseTypeErrorNamesLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, src, where, field string
	}{
		{"string for array", "name = \"x\"\ncommand = \"./server\"\n", "t.toml:2", "command"},
		{"int for string", "[process]\n\nstop_timeout = 30\n", "t.toml:3", "process.stop_timeout"},
		{"int in env", "[process.env]\nA = \"1\"\nB = 2\n", "t.toml:3", "process.env.B"},
		{"string for bool", "[[listen]]\naddress = \"tcp://:1\"\nreuseport = \"yes\"\n", "t.toml:3", "listen.reuseport"},
		{"table for listen", "[listen]\naddress = \"tcp://:1\"\n", "t.toml:1", "listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tc.src))
			ce := asError(t, err)
			if ce.Where != tc.where || ce.Field != tc.field {
				t.Fatalf("Where, Field = %q, %q; want %q, %q (%v)", ce.Where, ce.Field, tc.where, tc.field, err)
			}
			if strings.Contains(err.Error(), " toml:") {
				t.Fatalf("message %q repeats the library's prefix", err)
			}
		})
	}
}

func TestParseUnknownKey(t *testing.T) {
	for _, tc := range []struct {
		name, src, where, key, table string
		valid                        []string
	}{
		{
			name: "top level", src: "command = [\"./a\"]\n\ncomand = [\"./b\"]\n",
			where: "u.toml:3", key: "comand", table: "at the top level",
			valid: []string{"command", "control", "health", "legacy", "listen", "log", "name", "process", "program", "reload", "restart", "systemd", "watch"},
		},
		{
			name: "health", src: "[health]\naddres = \"127.0.0.1:9901\"\n",
			where: "u.toml:2", key: "addres", table: "in [health]", valid: []string{"address", "failures"},
		},
		{
			name: "process", src: "[process]\nusr = \"www\"\n",
			where: "u.toml:2", key: "usr", table: "in [process]",
			valid: []string{"cgroup", "dir", "env", "forking", "group", "handoff", "instances", "output", "output_prefix", "pidfile", "stop_signal", "stop_timeout", "user", "watchdog"},
		},
		{
			name: "second listen", src: "[[listen]]\naddress = \"tcp://:1\"\n\n[[listen]]\naddress = \"tcp://:2\"\nmod = \"0600\"\n",
			where: "u.toml:6", key: "mod", table: "in [listen]",
			valid: []string{"address", "backlog", "env", "group", "mode", "name", "nonblocking", "owner", "reuseport", "steer", "v6only"},
		},
		{
			name: "table", src: "[reload]\nsignal = \"HUP\"\n[relaod]\nsignal = \"HUP\"\n",
			where: "u.toml:3", key: "relaod", table: "at the top level",
		},
		{
			name: "dotted key", src: "restart.polcy = \"always\"\n",
			where: "u.toml:1", key: "polcy", table: "in [restart]",
			valid: []string{"max_delay", "min_delay", "policy", "reset_after", "start_limit", "success_exit_status"},
		},
		{
			name: "log", src: "[log]\nfmt = \"json\" # comment\n",
			where: "u.toml:2", key: "fmt", table: "in [log]", valid: []string{"format", "level"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("u.toml", []byte(tc.src))
			ce := asError(t, err)
			if !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("%v does not wrap ErrUnknownKey", err)
			}
			if ce.Where != tc.where {
				t.Fatalf("Where = %q, want %q (%v)", ce.Where, tc.where, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`+tc.key+`"`) || !strings.Contains(msg, tc.table) {
				t.Fatalf("message %q does not name key %q %s", msg, tc.key, tc.table)
			}
			if tc.valid != nil && !strings.HasSuffix(msg, "are "+strings.Join(tc.valid, ", ")) {
				t.Fatalf("message %q does not list the valid keys %v", msg, tc.valid)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hupd.toml")
	if err := os.WriteFile(p, []byte("name = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil || c.Name != "x" || c.File() != p {
		t.Fatalf("Load = %+v, %v", c, err)
	}

	_, err = Load(filepath.Join(dir, "missing.toml"))
	ce := asError(t, err)
	if ce.Where != filepath.Join(dir, "missing.toml") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v (Where %q)", err, ce.Where)
	}
	if strings.Count(err.Error(), "missing.toml") != 1 {
		t.Fatalf("message %q names the file more than once", err)
	}
}

func TestErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{Where: "h.toml:3", Field: "log.level", Value: "loud", Err: errors.New("bad")}, `h.toml:3: log.level = "loud": bad`},
		{Error{Where: "--env", Value: "X", Err: errors.New("want KEY=VALUE")}, `--env = "X": want KEY=VALUE`},
		{Error{Where: "h.toml:1", Err: errors.New("syntax")}, `h.toml:1: syntax`},
		{Error{Where: "h.toml", Field: "command", Err: errors.New("none")}, `h.toml: command: none`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	inner := errors.New("inner")
	if err := error(&Error{Err: inner}); !errors.Is(err, inner) {
		t.Error("Unwrap does not reach the cause")
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"listen.1.address":     "listen[1].address",
		"command":              "command",
		"process.env.A":        "process.env.A",
		"listen.0.v6only":      "listen[0].v6only",
		"restart.reset_after":  "restart.reset_after",
		"listen.12.mode":       "listen[12].mode",
		"process.stop_timeout": "process.stop_timeout",
	} {
		if got := fieldName(in); got != want {
			t.Errorf("fieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResolveDefaults(t *testing.T) {
	exe := executable(t)
	c := &Config{Command: []string{exe, "-x"}}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	o := r.Options
	if o.Path != exe || !reflect.DeepEqual(o.Args, []string{exe, "-x"}) {
		t.Errorf("Path, Args = %q, %q", o.Path, o.Args)
	}
	if o.StopSignal != supervisor.DefaultStopSignal || o.ReloadSignal != supervisor.DefaultReloadSignal ||
		o.StopTimeout != supervisor.DefaultStopTimeout || o.Reload != supervisor.StrategySignal ||
		o.Restart != supervisor.DefaultRestartPolicy || o.UID != -1 || o.GID != -1 {
		t.Errorf("defaults not applied: %+v", o)
	}
	if o.Backoff != (supervisor.Backoff{Min: supervisor.DefaultBackoffMin, Max: supervisor.DefaultBackoffMax, ResetAfter: supervisor.DefaultBackoffReset}) {
		t.Errorf("backoff %+v", o.Backoff)
	}
	if r.LogFormat != FormatText || r.LogLevel.String() != "INFO" || len(r.Listen) != 0 {
		t.Errorf("log %q %v, listen %v", r.LogFormat, r.LogLevel, r.Listen)
	}
}

func TestResolveFull(t *testing.T) {
	exe := executable(t)
	sock := filepath.Join(t.TempDir(), "a.sock")
	src := `command = ["` + filepath.Base(exe) + `"]
[[listen]]
name = "http"
address = "tcp6://[::1]:0"
backlog = 16
v6only = true
[[listen]]
address = "unix://` + sock + `"
mode = "600"
owner = "0"
group = "0"
[process]
dir = "` + filepath.Dir(exe) + `"
stop_signal = "sigint"
stop_timeout = "1500ms"
[process.env]
PATH = "` + filepath.Dir(exe) + `"
B = "2"
A = "x=y"
[reload]
signal = "RTMIN+2"
[restart]
policy = "never"
min_delay = "10ms"
max_delay = "10ms"
reset_after = "1h"
[log]
format = "json"
level = "warn"
`
	c, err := Parse("f.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	o := r.Options
	if o.Path != exe {
		t.Errorf("command found in PATH from [process.env] and dir: %q, want %q", o.Path, exe)
	}
	if o.StopSignal != unix.SIGINT || o.ReloadSignal != 36 || o.StopTimeout != 1500*time.Millisecond {
		t.Errorf("signals/timeouts %v %v %v", o.StopSignal, o.ReloadSignal, o.StopTimeout)
	}
	if want := []string{"A=x=y", "B=2", "PATH=" + filepath.Dir(exe)}; !reflect.DeepEqual(o.Env, want) {
		t.Errorf("Env = %q, want %q (sorted)", o.Env, want)
	}
	if o.Restart != supervisor.RestartNever || o.Backoff.Min != 10*time.Millisecond || o.Backoff.ResetAfter != time.Hour {
		t.Errorf("restart %v %+v", o.Restart, o.Backoff)
	}
	if r.LogFormat != FormatJSON || r.LogLevel.String() != "WARN" {
		t.Errorf("log %q %v", r.LogFormat, r.LogLevel)
	}
	if len(r.Listen) != 2 {
		t.Fatalf("listen %+v", r.Listen)
	}
	l0, l1 := r.Listen[0], r.Listen[1]
	if l0.Name != "http" || l0.Address != (socketact.Address{Network: "tcp6", Host: "::1"}) || l0.Backlog != 16 || l0.V6Only == nil || !*l0.V6Only {
		t.Errorf("listen[0] = %+v", l0)
	}
	if l1.Name != "" || l1.FDName() != socketact.UnknownName || l1.Address.Path != sock || l1.Mode != 0o600 || l1.UID != 0 || l1.GID != 0 {
		t.Errorf("listen[1] = %+v", l1)
	}
	if want := []string{"f.toml:4", "f.toml:8"}; !reflect.DeepEqual(r.ListenWhere, want) {
		t.Errorf("ListenWhere = %q, want %q", r.ListenWhere, want)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Resolve created the socket file: %v", err)
	}
}

// TestResolveErrors checks that every bad value yields a one-line *Error
// that names where it came from, the field and the value.
func TestResolveErrors(t *testing.T) {
	exe := executable(t)
	notDir := exe
	cmd := `command = ["` + exe + `"]` + "\n"
	for _, tc := range []struct {
		name, src         string
		where, field, val string
		says              string
	}{
		{"log format", cmd + "[log]\nformat = \"xml\"\n", "c.toml:3", "log.format", "xml", "valid values are text, json"},
		{"log level", cmd + "[log]\nlevel = \"loud\"\n", "c.toml:3", "log.level", "loud", "valid levels are debug, info, warn, error"},
		{"stop signal", cmd + "[process]\nstop_signal = \"TERMM\"\n", "c.toml:3", "process.stop_signal", "", `invalid signal "TERMM": valid signals are HUP, INT, QUIT`},
		{"reload signal", cmd + "[reload]\nsignal = \"65\"\n", "c.toml:3", "reload.signal", "", "numbers go from 1 to 64"},
		{"stop timeout", cmd + "[process]\nstop_timeout = \"30 s\"\n", "c.toml:3", "process.stop_timeout", "30 s", "want a positive duration"},
		{"negative delay", cmd + "[restart]\nmin_delay = \"-1s\"\n", "c.toml:3", "restart.min_delay", "-1s", "want a positive duration"},
		{"zero reset", cmd + "[restart]\n\nreset_after = \"0s\"\n", "c.toml:4", "restart.reset_after", "0s", "want a positive duration"},
		{"max below min", cmd + "[restart]\nmin_delay = \"2s\"\nmax_delay = \"1s\"\n", "c.toml:4", "restart.max_delay", "1s", "less than min_delay 2s"},
		{"start limit without interval", cmd + "[restart]\nstart_limit = \"5/\"\n", "c.toml:3", "restart.start_limit", "5/", "want BURST/INTERVAL such as \"5/10s\""},
		{"start limit bare number", cmd + "[restart]\nstart_limit = \"5\"\n", "c.toml:3", "restart.start_limit", "5", "want BURST/INTERVAL such as \"5/10s\""},
		{"start limit bad burst", cmd + "[restart]\nstart_limit = \"x/10s\"\n", "c.toml:3", "restart.start_limit", "x/10s", `burst "x": want a positive whole number`},
		{"start limit negative burst", cmd + "[restart]\nstart_limit = \"-1/10s\"\n", "c.toml:3", "restart.start_limit", "-1/10s", `burst "-1": want a positive whole number`},
		{"start limit zero burst", cmd + "[restart]\nstart_limit = \"0/10s\"\n", "c.toml:3", "restart.start_limit", "0/10s", `burst "0": want a positive whole number of failed starts, as in "5/10s" (or "off" for no limit)`},
		{"start limit zero interval", cmd + "[restart]\nstart_limit = \"5/0s\"\n", "c.toml:3", "restart.start_limit", "5/0s", `interval "0s": want a positive duration with its unit`},
		{"start limit negative interval", cmd + "[restart]\nstart_limit = \"5/-10s\"\n", "c.toml:3", "restart.start_limit", "5/-10s", `interval "-10s": want a positive duration`},
		{"start limit interval without unit", cmd + "[restart]\nstart_limit = \"5/10\"\n", "c.toml:3", "restart.start_limit", "5/10", `interval "10": want a positive duration with its unit, as in "5/10s"`},
		{"success status out of range", cmd + "[restart]\nsuccess_exit_status = [143, 256]\n", "c.toml:3", "restart.success_exit_status", "256", "exit code 256: exit codes go from 0 to 255"},
		{"success status negative", cmd + "[restart]\nsuccess_exit_status = [-1]\n", "c.toml:3", "restart.success_exit_status", "-1", "exit code -1: exit codes go from 0 to 255"},
		{"success status bad signal", cmd + "[restart]\n\nsuccess_exit_status = [\"SIGTERM\", \"SIGTREM\"]\n", "c.toml:4", "restart.success_exit_status", "SIGTREM", `want an exit code (0 to 255) or a signal name: invalid signal "SIGTREM": valid signals are HUP, INT`},
		{"success status empty", cmd + "[restart]\nsuccess_exit_status = [\"\"]\n", "c.toml:3", "restart.success_exit_status", "", "empty: want an exit code (0 to 255) or a signal name"},
		{"strategy", cmd + "[reload]\nstrategy = \"bluegreen\"\n", "c.toml:3", "reload.strategy", "bluegreen", "valid values are signal, swap, restart"},
		{"ready", cmd + "[reload]\nready = \"soon\"\n", "c.toml:3", "reload.ready", "", "valid forms are auto, notify"},
		{"ready delay", cmd + "[reload]\nready = \"delay:x\"\n", "c.toml:3", "reload.ready", "", "delay:DURATION"},
		{"ready timeout", cmd + "[reload]\nready_timeout = \"0s\"\n", "c.toml:3", "reload.ready_timeout", "0s", "positive duration"},
		{"output", cmd + "[process]\noutput = \"tee\"\n", "c.toml:3", "process.output", "tee", "valid values are pipe, inherit"},
		{"output inherit with json logs", cmd + "[log]\nformat = \"json\"\n[process]\noutput = \"inherit\"\n", "c.toml:5", "process.output", "inherit", `does not apply with log.format = "json"`},
		{"cgroup", cmd + "[process]\ncgroup = \"on\"\n", "c.toml:3", "process.cgroup", "on", "valid values are auto, off"},
		{"policy", cmd + "[restart]\npolicy = \"sometimes\"\n", "c.toml:3", "restart.policy", "sometimes", "valid values are always, on-failure, never"},
		{"user", cmd + "[process]\nuser = \"no-such-user-hupd\"\n", "c.toml:3", "process.user", "no-such-user-hupd", "unknown user"},
		{"group", cmd + "[process]\ngroup = \"no-such-group-hupd\"\n", "c.toml:3", "process.group", "no-such-group-hupd", "unknown group"},
		{"dir missing", cmd + "[process]\ndir = \"/no/such/dir\"\n", "c.toml:3", "process.dir", "/no/such/dir", "no such file or directory"},
		{"dir not a dir", cmd + "[process]\ndir = \"" + notDir + "\"\n", "c.toml:3", "process.dir", notDir, "not a directory"},
		{"no command", "command = []\n", "c.toml:1", "command", "", "no command"},
		{"no command at all", "name = \"x\"\n", "c.toml", "command", "", "no command"},
		{"no port", cmd + "[[listen]]\naddress = \"localhost\"\n", "c.toml:3", "listen[0].address", "localhost", "missing port; want HOST:PORT, :PORT, [IPV6]:PORT or PORT (tcp), /ABSOLUTE/PATH or @ABSTRACT (unix), or SCHEME://ADDRESS"},
		{"relative path", cmd + "[[listen]]\naddress = \"run/app.sock\"\n", "c.toml:3", "listen[0].address", "run/app.sock", "a unix socket path must be absolute"},
		{"ipv6 without brackets", cmd + "[[listen]]\naddress = \"::1:80\"\n", "c.toml:3", "listen[0].address", "::1:80", "an IPv6 address needs brackets: [::1]:80"},
		{"short and url forms of one address", cmd + "[[listen]]\naddress = \"tcp://127.0.0.1:80\"\n[[listen]]\naddress = \"127.0.0.1:80\"\n", "c.toml:5", "listen[1].address", "127.0.0.1:80", "same address as listen[0]"},
		{"short and url forms of one path", cmd + "[[listen]]\naddress = \"/run/a.sock\"\n[[listen]]\naddress = \"unix:///run/a.sock\"\n", "c.toml:5", "listen[1].address", "unix:///run/a.sock", "same address as listen[0]"},
		{"unknown scheme", cmd + "[[listen]]\naddress = \"http://:80\"\n", "c.toml:3", "listen[0].address", "http://:80", `unknown scheme "http": valid schemes are tcp, tcp4`},
		{"port range", cmd + "[[listen]]\naddress = \"tcp://:65536\"\n", "c.toml:3", "listen[0].address", "tcp://:65536", "not a number from 0 to 65535"},
		{"second listen", cmd + "[[listen]]\naddress = \"tcp://:1\"\n[[listen]]\nname = \"b\"\naddress = \"tcp://[::1\"\n", "c.toml:6", "listen[1].address", "tcp://[::1", "missing ']'"},
		{"duplicate address", cmd + "[[listen]]\naddress = \"tcp://:1\"\n[[listen]]\naddress = \"tcp://:1\"\n", "c.toml:5", "listen[1].address", "tcp://:1", "same address as listen[0]"},
		{"name", cmd + "[[listen]]\nname = \"a:b\"\naddress = \"tcp://:1\"\n", "c.toml:3", "listen[0].name", "a:b", "without ':'"},
		{"backlog", cmd + "[[listen]]\naddress = \"tcp://:1\"\nbacklog = -1\n", "c.toml:4", "listen[0].backlog", "-1", "must not be negative"},
		{"mode on tcp", cmd + "[[listen]]\naddress = \"tcp://:1\"\nmode = \"0600\"\n", "c.toml:4", "listen[0].mode", "0600", "applies only to unix socket files"},
		{"owner on abstract", cmd + "[[listen]]\naddress = \"unix://@x\"\nowner = \"0\"\n", "c.toml:4", "listen[0].owner", "0", "applies only to unix socket files"},
		{"mode not octal", cmd + "[[listen]]\naddress = \"unix:///tmp/x.sock\"\nmode = \"rw-rw----\"\n", "c.toml:4", "listen[0].mode", "rw-rw----", "want an octal file mode"},
		{"mode 8", cmd + "[[listen]]\naddress = \"unix:///tmp/x.sock\"\nmode = \"0680\"\n", "c.toml:4", "listen[0].mode", "0680", "want an octal file mode"},
		{"mode too big", cmd + "[[listen]]\naddress = \"unix:///tmp/x.sock\"\nmode = \"17777\"\n", "c.toml:4", "listen[0].mode", "17777", "want an octal file mode"},
		{"mode zero", cmd + "[[listen]]\naddress = \"unix:///tmp/x.sock\"\nmode = \"0\"\n", "c.toml:4", "listen[0].mode", "0", "want an octal file mode"},
		{"v6only on tcp4", cmd + "[[listen]]\naddress = \"tcp4://:1\"\nv6only = true\n", "c.toml:4", "listen[0].v6only", "true", "applies only to IPv6 sockets"},
		{"v6only on unix", cmd + "[[listen]]\naddress = \"unix:///tmp/x.sock\"\nv6only = false\n", "c.toml:4", "listen[0].v6only", "false", "applies only to IPv6 sockets"},
		{"listen owner", cmd + "[[listen]]\naddress = \"unix:///tmp/x.sock\"\nowner = \"no-such-user-hupd\"\n", "c.toml:4", "listen[0].owner", "no-such-user-hupd", "unknown user"},
		{"listen group", cmd + "[[listen]]\naddress = \"unix:///tmp/x.sock\"\ngroup = \"no-such-group-hupd\"\n", "c.toml:4", "listen[0].group", "no-such-group-hupd", "unknown group"},
		{"listen env", cmd + "[[listen]]\naddress = \"tcp://:1\"\nenv = [\"nginx\", \"inetd\"]\n", "c.toml:4", "listen[0].env", "inetd", "valid ones are einhorn, server-starter, nginx"},
		{"second listen env", cmd + "[[listen]]\naddress = \"tcp://:1\"\nenv = [\"einhorn\"]\n[[listen]]\nenv = [\"systemd\"]\naddress = \"tcp://:2\"\n", "c.toml:6", "listen[1].env", "systemd", "valid ones are einhorn, server-starter, nginx"},
		{"listen env with legacy", cmd + "[[listen]]\naddress = \"tcp://:1\"\nenv = [\"nginx\", \"einhorn\"]\n[legacy]\nmode = \"redirect\"\n", "c.toml:4", "listen[0].env", "nginx,einhorn", `does not apply with [legacy] mode = "redirect": the program gets no inherited sockets`},
		{"listen env empty", cmd + "[[listen]]\naddress = \"tcp://:1\"\nenv = [\"\"]\n", "c.toml:4", "listen[0].env", "", "valid ones are einhorn, server-starter, nginx"},
		{"env name", cmd + "[process.env]\n\"A=B\" = \"1\"\n", "c.toml", "process.env.A=B", "A=B", "cannot hold '='"},
		{"watch no paths", cmd + "[[watch]]\naction = \"swap\"\n", "c.toml", "watch[0].paths", "", "no paths"},
		{"watch empty path", cmd + "[[watch]]\npaths = [\"\"]\n", "c.toml:3", "watch[0].paths", "", "want a file, directory or glob"},
		{"watch bad glob", cmd + "[[watch]]\npaths = [\"/etc/[a\"]\n", "c.toml:3", "watch[0].paths", "/etc/[a", "malformed glob"},
		{"watch action", cmd + "[[watch]]\npaths = [\"/a\"]\naction = \"bounce\"\n", "c.toml:4", "watch[0].action", "bounce", "valid actions are reload, swap, restart, signal, signal:NAME"},
		{"watch signal", cmd + "[[watch]]\npaths = [\"/a\"]\naction = \"signal:HUPP\"\n", "c.toml:4", "watch[0].action", "signal:HUPP", `invalid signal "HUPP"`},
		{"watch debounce", cmd + "[[watch]]\npaths = [\"/a\"]\ndebounce = \"0s\"\n", "c.toml:4", "watch[0].debounce", "0s", "positive duration"},
		{"second watch poll", cmd + "[[watch]]\npaths = [\"/a\"]\n[[watch]]\npaths = [\"/b\"]\npoll_interval = \"often\"\n", "c.toml:6", "watch[1].poll_interval", "often", "positive duration"},
		{"health no port", cmd + "[health]\naddress = \"127.0.0.1\"\n", "c.toml:3", "health.address", "127.0.0.1", "want HOST:PORT such as 127.0.0.1:9901 or :9901 (missing port in address)"},
		{"health scheme", cmd + "[health]\naddress = \"tcp://127.0.0.1:9901\"\n", "c.toml:3", "health.address", "tcp://127.0.0.1:9901", "without a scheme"},
		{"health port range", cmd + "[health]\n\naddress = \"127.0.0.1:65536\"\n", "c.toml:4", "health.address", "127.0.0.1:65536", `port "65536" is not a number from 0 to 65535`},
		{"health port name", cmd + "[health]\naddress = \"localhost:http\"\n", "c.toml:3", "health.address", "localhost:http", `port "http" is not a number`},
		{"health bad host", cmd + "[health]\naddress = \"a b:1\"\n", "c.toml:3", "health.address", "a b:1", `invalid host "a b"`},
		{"health too many colons", cmd + "[health]\naddress = \"::1:80\"\n", "c.toml:3", "health.address", "::1:80", "too many colons"},
		{"health negative failures", cmd + "[health]\naddress = \":0\"\nfailures = -1\n", "c.toml:4", "health.failures", "-1", "must not be negative"},
		{"health failures without address", cmd + "[health]\nfailures = 3\n", "c.toml:3", "health.failures", "3", "goes with health.address (--health)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("c.toml", []byte(tc.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			_, err = c.Resolve()
			ce := asError(t, err)
			if ce.Where != tc.where || ce.Field != tc.field || ce.Value != tc.val {
				t.Fatalf("Where, Field, Value = %q, %q, %q; want %q, %q, %q\n%v", ce.Where, ce.Field, ce.Value, tc.where, tc.field, tc.val, err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("message %q does not say %q", err, tc.says)
			}
			if strings.HasSuffix(tc.field, ".address") && strings.Count(err.Error(), strconv.Quote(tc.val)) != 1 {
				t.Errorf("message %q repeats the address %q", err, tc.val)
			}
		})
	}
}

func TestResolveStrategyDefault(t *testing.T) {
	c := &Config{Command: []string{executable(t)}}
	r, err := c.Resolve()
	if err != nil || r.Options.Reload != supervisor.StrategySignal {
		t.Fatalf("no sockets: %v, %v; want signal", r.Options.Reload, err)
	}
	c = &Config{Command: []string{executable(t)}, Listen: []Listen{{Address: "tcp://127.0.0.1:0"}}}
	if r, err = c.Resolve(); err != nil || r.Options.Reload != supervisor.StrategySwap {
		t.Fatalf("sockets: %v, %v; want swap", r.Options.Reload, err)
	}
}

func TestResolveCommandNotFound(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd  string
		code int
	}{
		{filepath.Join(dir, "missing"), 127},
		{"no-such-command-hupd", 127},
		{plain, 126},
		{dir, 126},
	} {
		c := &Config{Command: []string{tc.cmd}}
		_, err := c.Resolve()
		var nf *supervisor.NotFoundError
		if !errors.As(err, &nf) || nf.Code != tc.code {
			t.Errorf("%s: %v, want NotFoundError with code %d", tc.cmd, err, tc.code)
			continue
		}
		if !strings.Contains(err.Error(), `"`+tc.cmd+`"`) || strings.ContainsRune(err.Error(), '\n') {
			t.Errorf("%s: message %q does not name the command on one line", tc.cmd, err)
		}
	}
}

func TestResolveChangeUserNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may change user")
	}
	c := &Config{Command: []string{executable(t)}, Process: Process{User: "0"}}
	c.Override("user", "0")
	_, err := c.Resolve()
	ce := asError(t, err)
	if ce.Where != "--user" || !strings.Contains(err.Error(), "needs hupd to run as root") {
		t.Fatalf("%v", err)
	}
}

func TestOverride(t *testing.T) {
	src := `command = ["./server"]
name = "file"
[[listen]]
name = "a"
address = "tcp://:1"
[[listen]]
address = "tcp://:2"
[process]
stop_timeout = "5s"
[process.env]
KEEP = "1"
SET = "file"
[log]
level = "debug"
`
	c, err := Parse("o.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		flag string
		vals []string
	}{
		{"name", []string{"flag"}},
		{"listen", []string{"http=tcp://127.0.0.1:0", "unix:///tmp/x=y.sock"}},
		{"stop-timeout", []string{"1s", "2s"}}, // the last one wins
		{"env", []string{"SET=flag", "NEW=a=b"}},
		{"reload", []string{"signal"}},
		{"reload-signal", []string{"USR1"}},
		{"stop-signal", []string{"QUIT"}},
		{"restart", []string{"always"}},
		{"user", []string{""}},
		{"group", []string{""}},
		{"dir", []string{"/"}},
		{"log-format", []string{"json"}},
		{"log-level", nil}, // no values: no change
		{"health", []string{"127.0.0.1:9901"}},
		{"cgroup", []string{"off"}},
	} {
		if err := c.Override(o.flag, o.vals...); err != nil {
			t.Fatalf("Override(%q): %v", o.flag, err)
		}
	}
	want := []Listen{{Name: "http", Address: "tcp://127.0.0.1:0"}, {Address: "unix:///tmp/x=y.sock"}}
	if !reflect.DeepEqual(c.Listen, want) {
		t.Errorf("--listen replaces every [[listen]]: %+v", c.Listen)
	}
	if c.Name != "flag" || c.Process.StopTimeout != "2s" || c.Reload.Signal != "USR1" || c.Process.StopSignal != "QUIT" ||
		c.Restart.Policy != "always" || c.Process.Dir != "/" || c.Log.Format != "json" || c.Log.Level != "debug" ||
		c.Health.Address != "127.0.0.1:9901" || c.Process.Cgroup != "off" {
		t.Errorf("flags not applied: %+v", c)
	}
	if want := map[string]string{"KEEP": "1", "SET": "flag", "NEW": "a=b"}; !reflect.DeepEqual(c.Process.Env, want) {
		t.Errorf("--env adds to [process.env]: %v", c.Process.Env)
	}
	for key, want := range map[string]string{
		"name": "--name", "listen.1.address": "--listen", "process.stop_timeout": "--stop-timeout",
		"process.env.SET": "--env", "process.env.KEEP": "o.toml:11", "log.level": "o.toml:14",
		"health.address": "--health", "process.cgroup": "--cgroup",
	} {
		if got := c.src.where(key); got != want {
			t.Errorf("where(%q) = %q, want %q", key, got, want)
		}
	}
	c.SetCommand(nil)
	if c.Command[0] != "./server" {
		t.Errorf("SetCommand(nil) replaced the command: %q", c.Command)
	}
	c.SetCommand([]string{"./other"})
	if c.Command[0] != "./other" || c.src.where("command") != "command line" {
		t.Errorf("SetCommand: %q from %q", c.Command, c.src.where("command"))
	}
}

func TestOverrideErrors(t *testing.T) {
	c := &Config{}
	for _, v := range []string{"NOEQUALS", "=value"} {
		err := c.Override("env", "A=1", v)
		ce := asError(t, err)
		if ce.Where != "--env" || ce.Value != v || !strings.Contains(err.Error(), "want KEY=VALUE") {
			t.Errorf("--env %q: %v", v, err)
		}
	}
	if err := c.Override("no-such-flag", "x"); err == nil {
		t.Error("unknown flag accepted")
	}
}

// TestFlagErrorsNameTheFlag checks that a bad value given on the command
// line is reported against its flag, not the file it overrides.
func TestFlagErrorsNameTheFlag(t *testing.T) {
	exe := executable(t)
	for _, tc := range []struct {
		flag, val, field string
	}{
		{"stop-signal", "HUPP", "process.stop_signal"},
		{"reload-signal", "0", "reload.signal"},
		{"stop-timeout", "soon", "process.stop_timeout"},
		{"reload", "bluegreen", "reload.strategy"},
		{"ready", "soon", "reload.ready"},
		{"restart", "maybe", "restart.policy"},
		{"start-limit", "5/", "restart.start_limit"},
		{"start-limit", "5/0s", "restart.start_limit"},
		{"success-exit-status", "NOSUCHSIG", "restart.success_exit_status"},
		{"user", "no-such-user-hupd", "process.user"},
		{"group", "no-such-group-hupd", "process.group"},
		{"dir", "/no/such/dir", "process.dir"},
		{"log-format", "yaml", "log.format"},
		{"log-level", "trace", "log.level"},
		{"listen", "tcp://:99999", "listen[0].address"},
		{"listen", "a:b=tcp://:1", "listen[0].name"},
		{"watch", "/etc/[a", "watch[0].paths"},
		{"health", "127.0.0.1", "health.address"},
		{"health", "127.0.0.1:x", "health.address"},
	} {
		c, err := Parse("f.toml", []byte(`command = ["`+exe+`"]`+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Override(tc.flag, tc.val); err != nil {
			t.Fatal(err)
		}
		_, err = c.Resolve()
		ce := asError(t, err)
		if ce.Where != "--"+tc.flag || (tc.field != "" && ce.Field != tc.field) {
			t.Errorf("--%s %s: Where, Field = %q, %q\n%v", tc.flag, tc.val, ce.Where, ce.Field, err)
		}
	}
}

func TestNoFileWhere(t *testing.T) {
	c := &Config{}
	_, err := c.Resolve()
	ce := asError(t, err)
	if ce.Where != "command line" || ce.Field != "command" {
		t.Fatalf("%v", err)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	exe := executable(t)
	c := &Config{Command: []string{exe}, Name: "x"}
	if err := c.Override("listen", "a=tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.Encode(&b); err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("enc.toml", b.Bytes())
	if err != nil {
		t.Fatalf("Encode output does not parse: %v\n%s", err, b.String())
	}
	if _, err := c2.Resolve(); err != nil {
		t.Fatalf("Encode output does not resolve: %v\n%s", err, b.String())
	}
	c.src, c2.src, c2.file = sources{}, sources{}, ""
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip:\n%+v\n%+v", c, c2)
	}
}

// TestResolveShortAddresses checks that the short address forms, in the
// file and in --listen, resolve to the sockets their URLs name, and that
// the effective configuration names each by its URL.
func TestResolveShortAddresses(t *testing.T) {
	exe := executable(t)
	src := `command = ["` + exe + `"]
[[listen]]
name = "web"
address = ":8080"
[[listen]]
address = "127.0.0.1:9000"
[[listen]]
address = "[::1]:9001"
[[listen]]
address = "9002"
[[listen]]
address = "/run/app=1.sock"
[[listen]]
address = "@app"
[[listen]]
address = "localhost:9003"
[[listen]]
address = "udp://:53"
`
	want := []socketact.Address{
		{Network: socketact.TCP, Port: 8080},
		{Network: socketact.TCP, Host: "127.0.0.1", Port: 9000},
		{Network: socketact.TCP, Host: "::1", Port: 9001},
		{Network: socketact.TCP, Port: 9002},
		{Network: socketact.Unix, Path: "/run/app=1.sock"},
		{Network: socketact.Unix, Path: "@app"},
		{Network: socketact.TCP, Host: "localhost", Port: 9003},
		{Network: socketact.UDP, Port: 53},
	}
	urls := []string{"tcp://:8080", "tcp://127.0.0.1:9000", "tcp://[::1]:9001", "tcp://:9002", "unix:///run/app=1.sock", "unix://@app", "tcp://localhost:9003", "udp://:53"}
	c, err := Parse("s.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	for i, sp := range r.Listen {
		if sp.Address != want[i] {
			t.Errorf("listen[%d] = %+v, want %+v", i, sp.Address, want[i])
		}
		if c.Listen[i].Address != urls[i] {
			t.Errorf("listen[%d]: effective address %q, want %q", i, c.Listen[i].Address, urls[i])
		}
		if r.ListenWhere[i] != "s.toml:"+strconv.Itoa(4+2*i) {
			t.Errorf("listen[%d] from %q", i, r.ListenWhere[i])
		}
	}
	if len(r.Listen) != len(want) {
		t.Fatalf("%d sockets, want %d", len(r.Listen), len(want))
	}

	// The same in --listen, names included.
	f := &Config{Command: []string{exe}}
	if err := f.Override("listen", "web=:8080", "127.0.0.1:9000", "[::1]:9001", "9002", "/run/app=1.sock", "@app", "localhost:9003", "udp://:53"); err != nil {
		t.Fatal(err)
	}
	rf, err := f.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	for i, sp := range rf.Listen {
		if sp.Address != want[i] || sp.Name != r.Listen[i].Name || f.Listen[i].Address != urls[i] {
			t.Errorf("--listen %d: %+v (effective %q), want %+v named %q", i, sp, f.Listen[i].Address, want[i], r.Listen[i].Name)
		}
	}
}

func TestResolveWatch(t *testing.T) {
	exe := executable(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "hupd.toml")
	src := `command = ["` + exe + `"]
[[watch]]
paths = ["app.conf", "/etc/tls/", "conf.d/*.conf"]
action = "signal:USR1"
debounce = "50ms"
poll_interval = "2s"
[[watch]]
paths = ["/srv/x"]
`
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := []WatchSpec{
		{Paths: []string{filepath.Join(dir, "app.conf"), "/etc/tls", filepath.Join(dir, "conf.d/*.conf")},
			Action:   supervisor.Action{Strategy: supervisor.StrategySignal, Signal: unix.SIGUSR1},
			Debounce: 50 * time.Millisecond, PollInterval: 2 * time.Second, Where: file + ":3"},
		{Paths: []string{"/srv/x"}, Where: file + ":8"},
	}
	if !reflect.DeepEqual(r.Watch, want) {
		t.Fatalf("Watch = %+v\nwant %+v", r.Watch, want)
	}
	if r.ConfigFile != file || !r.WatchConfig {
		t.Fatalf("ConfigFile, WatchConfig = %q, %v", r.ConfigFile, r.WatchConfig)
	}
}

func TestOverrideWatch(t *testing.T) {
	exe := executable(t)
	c, err := Parse("f.toml", []byte(`command = ["`+exe+`"]
[[watch]]
paths = ["/a"]
[reload]
watch_config = true
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]string{{"watch", "rel.conf", "/b"}, {"watch-poll", "1s"}, {"watch-config", "false"}} {
		if err := c.Override(f[0], f[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if len(r.Watch) != 2 || !reflect.DeepEqual(r.Watch[1].Paths, []string{filepath.Join(wd, "rel.conf"), "/b"}) ||
		r.Watch[1].PollInterval != time.Second || r.Watch[0].PollInterval != 0 || r.Watch[1].Where != "--watch" {
		t.Fatalf("--watch adds a group: %+v", r.Watch)
	}
	if r.WatchConfig {
		t.Fatal("--watch-config=false ignored")
	}
	err = (&Config{}).Override("watch-poll", "1s")
	if ce := asError(t, err); ce.Where != "--watch-poll" || !strings.Contains(err.Error(), "goes with --watch") {
		t.Fatalf("--watch-poll alone: %v", err)
	}
}

// TestResolveNonBlocking: nonblocking defaults to true for a socket
// described to nginx, by process.handoff (every socket) or by its own env
// (that socket alone); an explicit value wins.
func TestResolveNonBlocking(t *testing.T) {
	no, yes := false, true
	exe := executable(t)
	for _, tc := range []struct {
		handoff []string
		env     []string // of the first socket; the second has none
		set     *bool    // the first socket's nonblocking
		want    [2]bool
	}{
		{nil, nil, nil, [2]bool{false, false}},
		{[]string{"einhorn"}, nil, nil, [2]bool{false, false}},
		{[]string{"nginx"}, nil, nil, [2]bool{true, true}},
		{[]string{"nginx"}, nil, &no, [2]bool{false, true}},
		{nil, []string{"nginx"}, nil, [2]bool{true, false}},
		{nil, []string{"einhorn", "nginx"}, nil, [2]bool{true, false}},
		{nil, []string{"server-starter"}, nil, [2]bool{false, false}},
		{nil, []string{"nginx"}, &no, [2]bool{false, false}},
		{nil, []string{"einhorn"}, &yes, [2]bool{true, false}},
		{[]string{"nginx"}, []string{"einhorn"}, nil, [2]bool{true, true}},
	} {
		c := &Config{Command: []string{exe}, Process: Process{Handoff: tc.handoff},
			Listen: []Listen{{Address: "tcp://127.0.0.1:0", NonBlocking: tc.set, Env: tc.env}, {Address: "unix://@hupd-test"}}}
		r, err := c.Resolve()
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]bool{r.Listen[0].NonBlocking, r.Listen[1].NonBlocking}; got != tc.want {
			t.Errorf("handoff %v, env %v, nonblocking %v: got %v, want %v", tc.handoff, tc.env, tc.set, got, tc.want)
		}
	}
}

// TestResolveListenEnv: [[listen]] env becomes the socket's
// Spec.Handoff, next to process.handoff, which stays in Options.Handoff;
// a socket without env has none.
func TestResolveListenEnv(t *testing.T) {
	exe := executable(t)
	c, err := Parse("e.toml", []byte(`command = ["`+exe+`"]
[[listen]]
name = "http"
address = "tcp://127.0.0.1:0"
env = ["nginx", "einhorn"]
[[listen]]
name = "admin"
address = "unix://@hupd-test-admin"
[[listen]]
name = "metrics"
address = "tcp://127.0.0.1:0"
env = []
[process]
handoff = ["server-starter"]
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Options.Handoff, []string{"server-starter"}) {
		t.Errorf("Options.Handoff = %q", r.Options.Handoff)
	}
	want := [][]string{{"nginx", "einhorn"}, nil, {}}
	for i, w := range want {
		if got := r.Listen[i].Handoff; len(got) != len(w) || len(w) > 0 && !reflect.DeepEqual(got, w) {
			t.Errorf("listen[%d].Handoff = %q, want %q", i, got, w)
		}
	}
	// The spec owns its list: editing the Config does not change it.
	c.Listen[0].Env[0] = "server-starter"
	if r.Listen[0].Handoff[0] != "nginx" {
		t.Error("Spec.Handoff shares the Config's slice")
	}
	if !r.Listen[0].NonBlocking || r.Listen[1].NonBlocking || r.Listen[2].NonBlocking {
		t.Errorf("nonblocking defaults: %v %v %v, want true false false", r.Listen[0].NonBlocking, r.Listen[1].NonBlocking, r.Listen[2].NonBlocking)
	}
	// The effective configuration (hupd check) shows it and reads back.
	var b bytes.Buffer
	if err := c.Encode(&b); err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("enc.toml", b.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if !reflect.DeepEqual(c2.Listen[0].Env, []string{"server-starter", "einhorn"}) || c2.Listen[1].Env != nil {
		t.Fatalf("round trip: %q, %q\n%s", c2.Listen[0].Env, c2.Listen[1].Env, b.String())
	}
}

// TestResolveHealth: [health] is off by default; an address is taken as
// HOST:PORT (empty host, IP, host name; port 0), with where it came from.
func TestResolveHealth(t *testing.T) {
	exe := executable(t)
	cmd := `command = ["` + exe + `"]` + "\n"
	c, err := Parse("h.toml", []byte(cmd))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil || r.Health != (HealthSpec{}) {
		t.Fatalf("no [health]: %+v, %v; want off", r.Health, err)
	}
	for _, addr := range []string{"127.0.0.1:9901", ":0", "[::1]:9901", "[fe80::1%lo]:1", "localhost:9901", "pod-1.example.org:80", "0.0.0.0:65535"} {
		c, err := Parse("h.toml", []byte(cmd+"[health]\naddress = \""+addr+"\"\nfailures = 2\n"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Resolve()
		if err != nil {
			t.Errorf("%s: %v", addr, err)
			continue
		}
		if want := (HealthSpec{Address: addr, Failures: 2, Where: "h.toml:3"}); r.Health != want {
			t.Errorf("%s: %+v, want %+v", addr, r.Health, want)
		}
	}
	// The flag wins over the file, and says so; "" turns it off.
	c, err = Parse("h.toml", []byte(cmd+"[health]\naddress = \"127.0.0.1:1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Override("health", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Resolve(); err != nil || r.Health.Address != "127.0.0.1:0" || r.Health.Where != "--health" {
		t.Fatalf("--health: %+v, %v", r.Health, err)
	}
	if err := c.Override("health", ""); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Resolve(); err != nil || r.Health != (HealthSpec{}) {
		t.Fatalf("--health \"\": %+v, %v; want off", r.Health, err)
	}
}

// TestResolveFDStore: [systemd] fdstore is auto by default, the flag wins
// over the file, and anything but auto, yes or no is an error that names
// the field and lists the valid values.
func TestResolveFDStore(t *testing.T) {
	cmd := `command = ["` + executable(t) + `"]` + "\n"
	for toml, want := range map[string]string{"": FDStoreAuto, "[systemd]\nfdstore = \"yes\"\n": FDStoreYes, "[systemd]\nfdstore = \"no\"\n": FDStoreNo} {
		c, err := Parse("s.toml", []byte(cmd+toml))
		if err != nil {
			t.Fatal(err)
		}
		if r, err := c.Resolve(); err != nil || r.FDStore != want {
			t.Errorf("%q: %+v, %v; want %s", toml, r, err, want)
		}
	}
	c, err := Parse("s.toml", []byte(cmd+"[systemd]\nfdstore = \"no\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Override("fdstore", "yes"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Resolve(); err != nil || r.FDStore != FDStoreYes {
		t.Errorf("--fdstore yes over the file's no: %+v, %v", r, err)
	}
	if _, err := Parse("s.toml", []byte(cmd+"[systemd]\nfdstores = \"yes\"\n")); err == nil || !strings.Contains(err.Error(), "fdstore") {
		t.Errorf("unknown key in [systemd]: %v, want an error listing fdstore", err)
	}
	c, err = Parse("s.toml", []byte(cmd+"[systemd]\nfdstore = \"always\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve()
	if want := `s.toml:3: systemd.fdstore = "always": valid values are auto, yes, no`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestResolveStartLimit: the start limit's default (systemd's), its forms,
// and "off" or "0" for none.
func TestResolveStartLimit(t *testing.T) {
	exe := executable(t)
	for _, tc := range []struct {
		toml, flag string
		want       supervisor.StartLimit
	}{
		{"", "", supervisor.StartLimit{Burst: supervisor.DefaultStartBurst, Interval: supervisor.DefaultStartInterval}},
		{"3/1m", "", supervisor.StartLimit{Burst: 3, Interval: time.Minute}},
		{"3/1m", "7/500ms", supervisor.StartLimit{Burst: 7, Interval: 500 * time.Millisecond}},
		{"off", "", supervisor.StartLimit{}},
		{"0", "", supervisor.StartLimit{}},
		{"3/1m", "off", supervisor.StartLimit{}},
	} {
		src := `command = ["` + exe + `"]` + "\n"
		if tc.toml != "" {
			src += "[restart]\nstart_limit = \"" + tc.toml + "\"\n"
		}
		c, err := Parse("f.toml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if tc.flag != "" {
			if err := c.Override("start-limit", tc.flag); err != nil {
				t.Fatal(err)
			}
		}
		r, err := c.Resolve()
		if err != nil {
			t.Fatalf("%q %q: %v", tc.toml, tc.flag, err)
		}
		if r.Options.StartLimit != tc.want {
			t.Errorf("%q %q: %+v, want %+v", tc.toml, tc.flag, r.Options.StartLimit, tc.want)
		}
		if c.Restart.StartLimit == "" {
			t.Errorf("%q %q: the effective configuration shows no start_limit", tc.toml, tc.flag)
		}
	}
}

// TestResolveSuccessExitStatus: exit codes (TOML integers, or numbers as
// --success-exit-status gives them) and signal names, mixed in one array;
// the flag replaces the file's list; the list survives Encode.
func TestResolveSuccessExitStatus(t *testing.T) {
	exe := executable(t)
	src := `command = ["` + exe + `"]` + "\n[restart]\nsuccess_exit_status = [143, \"SIGTERM\", \"usr1\", 0]\n"
	c, err := Parse("f.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := supervisor.SuccessStatus{Codes: []int{143, 0}, Signals: []syscall.Signal{unix.SIGTERM, unix.SIGUSR1}}
	if got := r.Options.SuccessExitStatus; !reflect.DeepEqual(got, want) {
		t.Errorf("file: %+v, want %+v", got, want)
	}
	var b bytes.Buffer
	if err := c.Encode(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `success_exit_status = [143, "SIGTERM", "usr1", 0]`) {
		t.Errorf("Encode:\n%s", b.String())
	}
	c2, err := Parse("g.toml", b.Bytes())
	if err != nil || !reflect.DeepEqual(c2.Restart.SuccessExitStatus, c.Restart.SuccessExitStatus) {
		t.Fatalf("round trip: %v, %q", err, c2.Restart.SuccessExitStatus)
	}

	if err := c.Override("success-exit-status", "75", "KILL"); err != nil {
		t.Fatal(err)
	}
	r, err = c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want = supervisor.SuccessStatus{Codes: []int{75}, Signals: []syscall.Signal{unix.SIGKILL}}
	if got := r.Options.SuccessExitStatus; !reflect.DeepEqual(got, want) {
		t.Errorf("flag: %+v, want %+v", got, want)
	}

	// A lone value is a list of one.
	c, err = Parse("f.toml", []byte(`command = ["`+exe+`"]`+"\n[restart]\nsuccess_exit_status = 143\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err = c.Resolve(); err != nil || !reflect.DeepEqual(r.Options.SuccessExitStatus.Codes, []int{143}) {
		t.Errorf("lone value: %+v, %v", r.Options.SuccessExitStatus, err)
	}
}

// TestParseSuccessExitStatusWrongType: what is neither an integer nor a
// string is refused with the line and the field.
func TestParseSuccessExitStatusWrongType(t *testing.T) {
	for _, tc := range []struct{ src, where, says string }{
		{"[restart]\npolicy = \"always\"\nsuccess_exit_status = [1.5]\n", "w.toml:3", "restart.success_exit_status: a float: want exit codes (integers such as 143) and signal names (strings such as \"TERM\")"},
		{"[restart]\nsuccess_exit_status = true\n", "w.toml:2", "restart.success_exit_status: a boolean:"},
		{"[restart]\nsuccess_exit_status = [[143]]\n", "w.toml:2", "restart.success_exit_status: a nested array:"},
	} {
		_, err := Parse("w.toml", []byte(tc.src))
		ce := asError(t, err)
		if ce.Where != tc.where || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: %v; want at %s, saying %q", tc.src, err, tc.where, tc.says)
		}
	}
}

// TestServiceName pins the default name (and so the control socket) of a
// hupd: name when set, else the config file's stem, or its directory for
// hupd.toml, else the command's base name. Two python3 services from two
// config files do not share a socket.
func TestServiceName(t *testing.T) {
	for _, tc := range []struct {
		file, name string
		cmd        []string
		want       string
	}{
		{"", "", []string{"/usr/bin/python3", "-m", "http.server"}, "python3"},
		{"", "web", []string{"python3"}, "web"},
		{"/etc/hupd/web.toml", "", []string{"python3"}, "web"},
		{"/etc/hupd/api.conf.toml", "", []string{"python3"}, "api.conf"},
		{"/srv/shop/hupd.toml", "", []string{"python3"}, "shop"},
		{"/hupd.toml", "", []string{"python3"}, "hupd"},
		{"/srv/shop/hupd.toml", "front", []string{"python3"}, "front"},
		{"", "", nil, ""},
	} {
		c := &Config{file: tc.file, Name: tc.name, Command: tc.cmd}
		if got := c.ServiceName(); got != tc.want {
			t.Errorf("file %q name %q command %q: ServiceName() = %q, want %q", tc.file, tc.name, tc.cmd, got, tc.want)
		}
	}
	c, err := Parse("/srv/shop/hupd.toml", []byte(`command = ["python3"]`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.Options.Name != "shop" {
		t.Errorf("Resolve: Options.Name = %q, want shop", r.Options.Name)
	}
}
