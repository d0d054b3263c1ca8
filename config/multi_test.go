package config

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/supervisor"
)

// twoPrograms is a valid multi-program file: web (first in the file)
// starts after app. {exe} is a command that exists.
const twoPrograms = `name = "shop"

[log]
level = "debug"

[[program]]
name = "web"
after = ["app"]
command = ["{exe}", "web"]

[[program.listen]]
name = "http"
address = "127.0.0.1:8080"

[program.process]
stop_signal = "QUIT"
instances = 2

[[program.watch]]
paths = ["web.conf"]

[[program]]
name = "app"
on_exit = "ignore"
command = ["{exe}", "app"]

[[program.listen]]
address = "/run/shop/app.sock"

[program.reload]
ready = "notify"
`

func multiSource(t *testing.T, src string) string {
	t.Helper()
	return strings.ReplaceAll(src, "{exe}", executable(t))
}

// TestMultiResolve: each program resolves to what a single program with
// the same settings resolves to, in start order, with its name, where it
// is, after and on_exit; hupd-wide settings are hupd's.
func TestMultiResolve(t *testing.T) {
	src := multiSource(t, twoPrograms)
	c, err := Parse("/srv/shop/hupd.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Multi() {
		t.Fatal("Multi() = false")
	}
	m, err := c.ResolveMulti()
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "shop" || m.LogLevel != -4 || m.LogFormat != FormatText || m.ConfigFile != "/srv/shop/hupd.toml" || !m.WatchConfig || m.FDStore != FDStoreAuto {
		t.Errorf("hupd-wide: %+v", m)
	}
	var names []string
	for _, p := range m.Programs {
		names = append(names, p.Name)
	}
	if !reflect.DeepEqual(names, []string{"app", "web"}) {
		t.Fatalf("start order %q, want app, web", names)
	}
	app, web := m.Program("app"), m.Program("web")
	if m.Program("db") != nil {
		t.Error(`Program("db") is not nil`)
	}
	if web.Where != "/srv/shop/hupd.toml:6" || app.Where != "/srv/shop/hupd.toml:22" {
		t.Errorf("Where: web %q, app %q", web.Where, app.Where)
	}
	if !reflect.DeepEqual(web.After, []string{"app"}) || app.After != nil {
		t.Errorf("After: web %q, app %q", web.After, app.After)
	}
	if web.OnExit != OnExitStopAll || app.OnExit != OnExitIgnore {
		t.Errorf("OnExit: web %q, app %q", web.OnExit, app.OnExit)
	}
	if web.Options.Name != "shop" || app.Options.Name != "shop" {
		t.Errorf("Options.Name: web %q, app %q; want hupd's name", web.Options.Name, app.Options.Name)
	}
	if web.Options.Args[1] != "web" || app.Options.Args[1] != "app" {
		t.Errorf("Args: web %q, app %q", web.Options.Args, app.Options.Args)
	}
	if web.Options.StopSignal != syscall.SIGQUIT || web.Options.Instances != 2 {
		t.Errorf("web: stop signal %v, instances %d", web.Options.StopSignal, web.Options.Instances)
	}
	if app.Options.Ready.Kind != supervisor.ReadyNotify || web.Options.Ready.Kind != supervisor.ReadyAuto {
		t.Errorf("Ready: app %q, web %q", app.Options.Ready.Kind, web.Options.Ready.Kind)
	}
	if len(web.Listen) != 1 || web.Listen[0].Address.String() != "tcp://127.0.0.1:8080" || web.ListenWhere[0] != "/srv/shop/hupd.toml:13" {
		t.Errorf("web listen: %+v at %q", web.Listen, web.ListenWhere)
	}
	if len(app.Listen) != 1 || app.Listen[0].Address.String() != "unix:///run/shop/app.sock" || app.ListenWhere[0] != "/srv/shop/hupd.toml:28" {
		t.Errorf("app listen: %+v at %q", app.Listen, app.ListenWhere)
	}
	if len(web.Watch) != 1 || web.Watch[0].Paths[0] != "/srv/shop/web.conf" || web.Watch[0].Where != "/srv/shop/hupd.toml:20" || len(app.Watch) != 0 {
		t.Errorf("watch: web %+v, app %+v", web.Watch, app.Watch)
	}
	// The same settings at the top level resolve to the same options.
	single := multiSource(t, "command = [\"{exe}\", \"web\"]\n[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\n[process]\nstop_signal = \"QUIT\"\ninstances = 2\n")
	sc, err := Parse("/srv/shop/hupd.toml", []byte(single))
	if err != nil {
		t.Fatal(err)
	}
	sc.Name = "shop"
	sr, err := sc.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	sr.Options.Args, web.Options.Args = nil, nil
	sr.Options.Path, web.Options.Path = "", ""
	if !reflect.DeepEqual(sr.Options, web.Options) || !reflect.DeepEqual(sr.Listen, web.Listen) {
		t.Errorf("web resolves unlike the same single program:\n%+v\n%+v", web.Options, sr.Options)
	}
}

// TestMultiErrors pins the message of each mistake in a multi-program
// file: the line and field it names, and what it says. Each case is
// the start of a file whose [[program]] tables follow ({exe} exists).
func TestMultiErrors(t *testing.T) {
	const web = "[[program]]\nname = \"web\"\ncommand = [\"{exe}\"]\n"
	const app = "[[program]]\nname = \"app\"\ncommand = [\"{exe}\"]\n"
	for _, tc := range []struct{ name, src, want string }{
		// Mixed forms.
		{"command at the top level", "name = \"x\"\ncommand = [\"{exe}\"]\n" + web,
			`m.toml:2: command: not with [[program]] tables (the first at m.toml:3): beside them, the top level holds only hupd-wide settings (name, control, [health], [systemd], [log]); move it into the table of the program it is for`},
		{"[[listen]] at the top level", web + "[[listen]]\naddress = \":8080\"\n",
			`m.toml:4: [[listen]]: not with [[program]] tables (the first at m.toml:1): beside them, the top level holds only hupd-wide settings (name, control, [health], [systemd], [log]); move it into the table of the program it is for`},
		{"[process] at the top level", "[process]\nstop_signal = \"QUIT\"\n" + web,
			`m.toml:1: [process]: not with [[program]] tables (the first at m.toml:3): beside them, the top level holds only hupd-wide settings (name, control, [health], [systemd], [log]); move it into the table of the program it is for`},
		{"dotted key at the top level", "reload.ready = \"notify\"\n" + web,
			`m.toml:1: [reload]: not with [[program]] tables (the first at m.toml:2): beside them, the top level holds only hupd-wide settings (name, control, [health], [systemd], [log]); move it into the table of the program it is for`},
		{"first of several at the top level", "name = \"x\"\n[legacy]\nmode = \"redirect\"\n[process]\nstop_signal = \"QUIT\"\n" + web,
			`m.toml:2: [legacy]: not with [[program]] tables (the first at m.toml:6): beside them, the top level holds only hupd-wide settings (name, control, [health], [systemd], [log]); move it into the table of the program it is for`},
		{"key in another case at the top level", "Command = [\"{exe}\"]\n" + web,
			`m.toml:1: command: not with [[program]] tables (the first at m.toml:2): beside them, the top level holds only hupd-wide settings (name, control, [health], [systemd], [log]); move it into the table of the program it is for`},
		{"quoted key at the top level", "\"process\".stop_signal = \"QUIT\"\n" + web,
			`m.toml: [process]: not with [[program]] tables (the first at m.toml:2): beside them, the top level holds only hupd-wide settings (name, control, [health], [systemd], [log]); move it into the table of the program it is for`},
		// Names.
		{"missing name", web + "[[program]]\ncommand = [\"{exe}\"]\n",
			`m.toml:4: program[1].name: missing: give each [[program]] a name = "..."`},
		{"empty name", web + "[[program]]\nname = \"\"\ncommand = [\"{exe}\"]\n",
			`m.toml:5: program[1].name: empty: want letters, digits, '-', '_' and '.', beginning with a letter or a digit: the name goes into cgroup names, log records and control requests`},
		{"name with a slash", "[[program]]\nname = \"a/b\"\ncommand = [\"{exe}\"]\n",
			`m.toml:2: program[0].name = "a/b": want letters, digits, '-', '_' and '.', beginning with a letter or a digit: the name goes into cgroup names, log records and control requests`},
		{"name with a space", "[[program]]\nname = \"my app\"\ncommand = [\"{exe}\"]\n",
			`m.toml:2: program[0].name = "my app": want letters, digits, '-', '_' and '.', beginning with a letter or a digit: the name goes into cgroup names, log records and control requests`},
		{"name beginning with a dot", "[[program]]\nname = \"..\"\ncommand = [\"{exe}\"]\n",
			`m.toml:2: program[0].name = "..": want letters, digits, '-', '_' and '.', beginning with a letter or a digit: the name goes into cgroup names, log records and control requests`},
		{"name too long", "[[program]]\nname = \"" + strings.Repeat("a", 65) + "\"\ncommand = [\"{exe}\"]\n",
			`m.toml:2: program[0].name = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": longer than 64 bytes`},
		{"duplicate name", web + app + web,
			`m.toml:8: program[2].name = "web": already the name of program[0] (m.toml:2): each program needs a name of its own`},
		// after.
		{"after an unknown program", web + "after = [\"db\"]\n" + app,
			`m.toml:4: program "web" after = "db": no program of that name: the programs are web, app`},
		{"after itself", web + app + "after = [\"app\"]\n",
			`m.toml:7: program "app" after: a cycle: app → app (each starts after the next): no program of it could start`},
		{"cycle of two", web + "after = [\"app\"]\n" + app + "after = [\"web\"]\n",
			`m.toml:4: program "web" after: a cycle: web → app → web (each starts after the next): no program of it could start`},
		{"cycle of three, found from a program outside it", "[[program]]\nname = \"front\"\ncommand = [\"{exe}\"]\nafter = [\"b\"]\n" +
			"[[program]]\nname = \"a\"\ncommand = [\"{exe}\"]\nafter = [\"c\"]\n" +
			"[[program]]\nname = \"b\"\ncommand = [\"{exe}\"]\nafter = [\"a\"]\n" +
			"[[program]]\nname = \"c\"\ncommand = [\"{exe}\"]\nafter = [\"b\"]\n",
			`m.toml:8: program "a" after: a cycle: a → c → b → a (each starts after the next): no program of it could start`},
		// Sockets two programs use.
		{"same TCP address", web + "[[program.listen]]\naddress = \"127.0.0.1:8080\"\n" + app + "[[program.listen]]\naddress = \"tcp://127.0.0.1:8080\"\n",
			`m.toml:10: program "app" listen[0].address = "tcp://127.0.0.1:8080": already the address of program "web" listen[0] (m.toml:5): two programs cannot hold one socket`},
		{"same unix socket file", web + "[[program.listen]]\naddress = \"/run/a.sock\"\n" + app + "[[program.listen]]\nname = \"x\"\naddress = \"unix:///run/../run/./a.sock\"\n",
			`m.toml:11: program "app" listen[0].address = "unix:///run/../run/./a.sock": already the address of program "web" listen[0] (m.toml:5): two programs cannot hold one socket`},
		{"same abstract name", web + "[[program.listen]]\naddress = \"@shop\"\n" + app + "[[program.listen]]\naddress = \"unix://@shop\"\n",
			`m.toml:10: program "app" listen[0].address = "unix://@shop": already the address of program "web" listen[0] (m.toml:5): two programs cannot hold one socket`},
		// One program's settings.
		{"bad on_exit", web + "on_exit = \"restart\"\n",
			`m.toml:4: program "web" on_exit = "restart": valid values are ignore, stop-all`},
		{"no command", "[[program]]\nname = \"web\"\n[program.process]\nstop_signal = \"QUIT\"\n",
			`m.toml:1: program "web" command: no command: give it as command = ["./server"] in the program's table`},
		{"bad address", web + "[[program.listen]]\naddress = \"tcp://:http\"\n",
			`m.toml:5: program "web" listen[0].address = "tcp://:http": port "http" is not a number from 0 to 65535`},
		{"same address twice in one program", app + web + "[[program.listen]]\naddress = \":8080\"\n[[program.listen]]\naddress = \":8080\"\n",
			`m.toml:10: program "web" listen[1].address = ":8080": same address as listen[0]`},
		{"bad duration", app + web + "[program.process]\nstop_timeout = \"soon\"\n",
			`m.toml:8: program "web" process.stop_timeout = "soon": want a positive duration such as 500ms, 30s or 2m`},
		{"duration without a unit", web + "[program.reload]\nready_timeout = \"30\"\n",
			`m.toml:5: program "web" reload.ready_timeout: "30" is not a duration: write "30s"`},
		{"bad watch", web + "[[program.watch]]\npaths = []\n",
			`m.toml:5: program "web" watch[0].paths: no paths: list files, directories or globs to watch`},
		{"bad instances", web + "[program.process]\ninstances = 2000\n",
			`m.toml:5: program "web" process.instances = "2000": want a number of instances from 1 to 1024`},
		{"watch_config in a program", web + "[program.reload]\nwatch_config = false\n",
			`m.toml:5: program "web" reload.watch_config = "false": is hupd's, not a program's: edits of the file apply to every program; give --watch-config=false to hupd instead`},
		{"bad env name", web + "[program.process.env]\n\"A=B\" = \"1\"\n",
			`m.toml:1: program "web" process.env.A=B = "A=B": a variable name cannot hold '=' or NUL`},
		{"hupd-wide setting checked too", "[log]\nformat = \"yaml\"\n" + web,
			`m.toml:2: log.format = "yaml": valid values are text, json`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("m.toml", []byte(multiSource(t, tc.src)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ResolveMulti()
			asError(t, err)
			if err.Error() != tc.want {
				t.Errorf("got  %s\nwant %s", err, tc.want)
			}
		})
	}
}

// TestMultiStartOrder: programs start after those they name, in file
// order among those free to start; a name in after twice counts once.
func TestMultiStartOrder(t *testing.T) {
	for _, tc := range []struct {
		after map[string][]string // by program, in the file's order a..e
		want  string
	}{
		{nil, "a b c d e"},
		{map[string][]string{"a": {"e"}}, "b c d e a"},
		{map[string][]string{"a": {"b", "c"}, "b": {"c"}}, "c b a d e"},
		{map[string][]string{"b": {"d"}, "c": {"d"}, "a": {"d", "d"}}, "d a b c e"},
		{map[string][]string{"e": {"a"}, "d": {"e"}, "c": {"d"}}, "a b e d c"},
	} {
		var src strings.Builder
		for _, n := range []string{"a", "b", "c", "d", "e"} {
			src.WriteString("[[program]]\nname = \"" + n + "\"\ncommand = [\"{exe}\"]\n")
			if len(tc.after[n]) > 0 {
				src.WriteString("after = [\"" + strings.Join(tc.after[n], "\", \"") + "\"]\n")
			}
		}
		c, err := Parse("o.toml", []byte(multiSource(t, src.String())))
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.ResolveMulti()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range m.Programs {
			got = append(got, p.Name)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("after %v: order %q, want %q", tc.after, got, tc.want)
		}
		if a := m.Program("a"); len(a.After) != len(uniq(tc.after["a"])) {
			t.Errorf("after %v: a.After = %q", tc.after, a.After)
		}
	}
}

// TestMultiSharedAddressesAllowed: port 0 twice is two sockets, and so
// are one port on two networks (TCP and UDP) or two hosts.
func TestMultiSharedAddressesAllowed(t *testing.T) {
	src := "[[program]]\nname = \"a\"\ncommand = [\"{exe}\"]\n" +
		"[[program.listen]]\naddress = \"127.0.0.1:0\"\n[[program.listen]]\naddress = \"tcp://127.0.0.1:8080\"\n" +
		"[[program]]\nname = \"b\"\ncommand = [\"{exe}\"]\n" +
		"[[program.listen]]\naddress = \"127.0.0.1:0\"\n[[program.listen]]\naddress = \"udp://127.0.0.1:8080\"\n[[program.listen]]\naddress = \"tcp://127.0.0.2:8080\"\n"
	c, err := Parse("s.toml", []byte(multiSource(t, src)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResolveMulti(); err != nil {
		t.Fatal(err)
	}
}

// TestMultiParseErrors: what Parse reports inside [[program]] tables
// names their lines and lists their keys.
func TestMultiParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"[[program]]\nname = \"web\"\nbogus = 1\n",
			`p.toml:3: unknown key "bogus": valid keys in [program] are after, command, legacy, listen, name, on_exit, process, reload, restart, watch`},
		{"[[program]]\nname = \"web\"\n[program.process]\nusr = \"x\"\n",
			`p.toml:4: unknown key "usr": valid keys in [program.process] are cgroup, dir, env, forking, group, handoff, instances, output, output_prefix, pidfile, stop_signal, stop_timeout, user, watchdog`},
		{"[[program]]\nname = \"web\"\n[[program.listen]]\naddres = \":1\"\n",
			`p.toml:4: unknown key "addres": valid keys in [program.listen] are address, backlog, env, group, mode, name, nonblocking, owner, reuseport, steer, v6only`},
		{"[[program]]\nname = \"web\"\n[program.process]\ninstances = \"2\"\n",
			`p.toml:4: program.process.instances: want a number of instances from 1 to 1024`},
		{"[[program]]\nname = \"web\"\n[program.process]\nstop_timeout = 30\n",
			`p.toml:4: program.process.stop_timeout: "30" is not a duration: write "30s"`},
	} {
		_, err := Parse("p.toml", []byte(tc.src))
		asError(t, err)
		if err.Error() != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.src, err, tc.want)
		}
	}
}

// TestKeyLinesPrograms: tables and arrays of tables inside a [[program]]
// table are placed in it.
func TestKeyLinesPrograms(t *testing.T) {
	src := "name = \"x\"\n[[program]]\nname = \"a\"\n[[program.listen]]\naddress = \":1\"\n[[program.listen]]\naddress = \":2\"\n" +
		"[program.process]\nstop_signal = \"QUIT\"\n[program.process.env]\nA = \"1\"\n" +
		"[[program]]\nname = \"b\"\n[[program.listen]]\naddress = \":3\"\n[[program.watch]]\npaths = []\n"
	indexed, plain := keyLines([]byte(src))
	for k, n := range map[string]int{
		"program.0": 2, "program.0.name": 3, "program.0.listen.0": 4, "program.0.listen.0.address": 5,
		"program.0.listen.1.address": 7, "program.0.process.stop_signal": 9, "program.0.process.env.A": 11,
		"program.1": 12, "program.1.name": 13, "program.1.listen.0.address": 15, "program.1.watch.0.paths": 17,
	} {
		if indexed[k] != n {
			t.Errorf("indexed[%q] = %d, want %d", k, indexed[k], n)
		}
	}
	if plain["program.listen.address"] != 5 || plain["program.process.env.A"] != 11 {
		t.Errorf("plain: %v", plain)
	}
}

// TestResolveRefusesMulti: Resolve, which hupd run and config edits use,
// refuses [[program]] tables rather than resolve an empty program.
func TestResolveRefusesMulti(t *testing.T) {
	c, err := Parse("r.toml", []byte(multiSource(t, "name = \"x\"\n\n[[program]]\nname = \"a\"\ncommand = [\"{exe}\"]\n")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Resolve()
	if ce := asError(t, err); !errors.Is(err, ErrMultiProgram) || ce.Where != "r.toml:3" {
		t.Fatalf("Resolve: %v; want ErrMultiProgram at r.toml:3", err)
	}
}

// TestResolveMultiSingle: the single-program form resolves as Resolve
// resolves it, into one program named "".
func TestResolveMultiSingle(t *testing.T) {
	src := multiSource(t, "name = \"one\"\ncommand = [\"{exe}\"]\n[[listen]]\naddress = \":0\"\n[[watch]]\npaths = [\"a\"]\n[process]\ncgroup = \"off\"\n[health]\naddress = \":0\"\n")
	c1, err := Parse("/etc/one.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := Parse("/etc/one.toml", []byte(src))
	r, err := c1.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	m, err := c2.ResolveMulti()
	if err != nil {
		t.Fatal(err)
	}
	want := &ResolvedMulti{Name: "one", LogFormat: r.LogFormat, LogLevel: r.LogLevel, ConfigFile: "/etc/one.toml", WatchConfig: true, Health: r.Health, FDStore: r.FDStore,
		Programs: []ProgramSpec{{OnExit: OnExitStopAll, Options: r.Options, Listen: r.Listen, ListenWhere: r.ListenWhere, Watch: r.Watch, Cgroup: r.Cgroup}}}
	if !reflect.DeepEqual(m, want) || !reflect.DeepEqual(r.Multi(), want) {
		t.Fatalf("ResolveMulti of the single form:\n got %+v\nwant %+v", m, want)
	}
	if c2.Multi() {
		t.Error("Multi() = true for the single form")
	}
}

// TestMultiFlags: with [[program]] tables, a flag that sets a program's
// setting is refused, naming the first table; hupd-wide flags apply; a
// command after -- is refused by ResolveMulti.
func TestMultiFlags(t *testing.T) {
	src := multiSource(t, "[[program]]\nname = \"a\"\ncommand = [\"{exe}\"]\n")
	for _, f := range Flags() {
		c, err := Parse("f.toml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		v := "1s"
		if f.Kind == FlagBool {
			v = "true"
		}
		err = c.Override(f.Name, v)
		if f.Global {
			if ce := (*Error)(nil); errors.As(err, &ce) && strings.Contains(ce.Error(), "program") {
				t.Errorf("--%s, hupd-wide: %v", f.Name, err)
			}
			continue
		}
		want := "--" + f.Name + ": sets a program's setting: with [[program]] tables (the first at f.toml:1), set it in the table of each program it is for"
		if err == nil || err.Error() != want {
			t.Errorf("--%s: %v, want %s", f.Name, err, want)
		}
	}
	var global []string
	for _, f := range Flags() {
		if f.Global {
			global = append(global, f.Name)
		}
	}
	if want := "name control watch-config health fdstore log-format log-level"; strings.Join(global, " ") != want {
		t.Errorf("hupd-wide flags: %s, want %s", strings.Join(global, " "), want)
	}

	c, _ := Parse("f.toml", []byte(src))
	for _, kv := range [][2]string{{"name", "shop"}, {"log-format", "json"}, {"health", "127.0.0.1:0"}, {"watch-config", "false"}} {
		if err := c.Override(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := c.ResolveMulti()
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "shop" || m.LogFormat != FormatJSON || m.Health.Address != "127.0.0.1:0" || m.Health.Where != "--health" || m.WatchConfig {
		t.Errorf("hupd-wide flags not applied: %+v", m)
	}

	c, _ = Parse("f.toml", []byte(src))
	c.SetCommand([]string{"./server"})
	_, err = c.ResolveMulti()
	if want := `command line: a command after -- does not apply with [[program]] tables (the first at f.toml:1): give each program its command in its table`; err == nil || err.Error() != want {
		t.Errorf("command after --: %v, want %s", err, want)
	}
}

// TestEncodeMulti: the effective configuration reads back as the same
// configuration, programs in start order, each under its heading.
func TestEncodeMulti(t *testing.T) {
	c, err := Parse("/srv/shop/hupd.toml", []byte(multiSource(t, twoPrograms)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.ResolveMulti()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.EncodeMulti(&b, m); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if a, w := strings.Index(out, "\n# program app\n[[program]]\n"), strings.Index(out, "\n# program web\n[[program]]\n"); a < 0 || w < a {
		t.Fatalf("programs not under their headings in start order:\n%s", out)
	}
	c2, err := Parse("/srv/shop/hupd.toml", b.Bytes())
	if err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	m2, err := c2.ResolveMulti()
	if err != nil {
		t.Fatal(err)
	}
	var b2 bytes.Buffer
	if err := c2.EncodeMulti(&b2, m2); err != nil {
		t.Fatal(err)
	}
	if b2.String() != out {
		t.Errorf("encoded again:\n%s\nfirst:\n%s", b2.String(), out)
	}
	// The same, but for where each value is: lines of another file.
	for _, m := range []*ResolvedMulti{m, m2} {
		for i := range m.Programs {
			p := &m.Programs[i]
			p.Where, p.ListenWhere = "", nil
			for j := range p.Watch {
				p.Watch[j].Where = ""
			}
		}
	}
	if !reflect.DeepEqual(m2, m) {
		t.Errorf("resolved again:\n%+v\nfirst:\n%+v", m2, m)
	}
}

// TestMultiExample checks examples/multi/hupd.toml as it ships, with its
// commands replaced by one that exists: it resolves, nginx (web) starts
// after the app, and its [[program]] tables use every key a program has
// but [legacy].
// integration/check_test.go runs `hupd check` on it.
func TestMultiExample(t *testing.T) {
	c, err := Load("../examples/multi/hupd.toml")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	exe := executable(t)
	for i := range c.Programs {
		c.Programs[i].Command[0] = exe
	}
	for _, k := range validKeys("program") {
		// Neither nginx nor gunicorn binds its own port; [legacy] is
		// examples/hupd.toml's, with every other key of a program.
		keys[k] = k == "legacy"
	}
	data, err := os.ReadFile("../examples/multi/hupd.toml")
	if err != nil {
		t.Fatal(err)
	}
	for k := range c.src.lines {
		if parts := strings.Split(k, "."); len(parts) > 2 && parts[0] == "program" {
			keys[parts[2]] = true
		}
	}
	for k, used := range keys {
		if !used {
			t.Errorf("examples/multi/hupd.toml: no [[program]] sets %s", k)
		}
	}
	if !bytes.Contains(data, []byte("hupd run")) {
		t.Error("examples/multi/hupd.toml does not say what hupd run does with it")
	}
	m, err := c.ResolveMulti()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Programs) != 2 || m.Programs[0].Name != "app" || m.Programs[1].Name != "web" {
		t.Fatalf("programs %+v, want app then web", m.Programs)
	}
	app, web := m.Programs[0], m.Programs[1]
	if !app.Listen[0].Address.IsUnix() || web.Listen[0].Address.IsUnix() || !web.Listen[0].NonBlocking {
		t.Errorf("want nginx on TCP (non-blocking, for nginx) in front of the app on a unix socket: web %+v, app %+v", web.Listen, app.Listen)
	}
}

// TestMultiCommandNotFound: a program's missing command is a
// *supervisor.NotFoundError (its exit status, 127), named with the
// program and the line of its command.
func TestMultiCommandNotFound(t *testing.T) {
	src := multiSource(t, "[[program]]\nname = \"web\"\ncommand = [\"{exe}\"]\n[[program]]\nname = \"app\"\n\ncommand = [\"./no-such-app\"]\n")
	c, err := Parse("n.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ResolveMulti()
	var nf *supervisor.NotFoundError
	if !errors.As(err, &nf) || nf.Code != 127 {
		t.Fatalf("%v (%T): want a *supervisor.NotFoundError, code 127", err, err)
	}
	if want := `n.toml:7: program "app" command "./no-such-app": no such file`; err.Error() != want {
		t.Fatalf("got  %s\nwant %s", err, want)
	}
}
