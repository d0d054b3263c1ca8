package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

// badListen is two listeners that every TOML case can put before its
// mistake: a unix socket file with a mode and a TCP port. Neither may
// outlive hupd's failure.
const badListen = `[[listen]]
name = "unix"
address = "unix://{sock}"
mode = "0600"

[[listen]]
name = "tcp"
address = "tcp://127.0.0.1:{port}"
`

// badMark marks the line a TOML case expects its error on.
const badMark = "# <-"

// allSignals is the list a bad signal name must offer.
const allSignals = "valid signals are HUP, INT, QUIT, ILL, TRAP, ABRT, BUS, FPE, KILL, USR1, SEGV, USR2, PIPE, ALRM, TERM, STKFLT, CHLD, CONT, STOP, TSTP, TTIN, TTOU, URG, XCPU, XFSZ, VTALRM, PROF, WINCH, IO, PWR, SYS, RTMIN+N"

// badCase is one bad input. Strings may hold {hello} (the hello example),
// {dir} (the case's directory, hupd's working directory), {sock} (a unix
// socket path), {port} (a free TCP port) and {busy} (a port the test
// holds); a TOML case also {listen} (badListen).
type badCase struct {
	name string
	toml string   // written to {dir}/hupd.toml and passed with -c
	args []string // flags after the subcommand
	cmd  []string // command after "--"; nil means {hello}, empty none
	code int
	// where the message must say first, after "hupd: "; for a TOML case
	// without it, "hupd.toml:N" where line N holds badMark.
	where string
	says  []string // and what it must say
	// runOnly: only "hupd run" finds it (opening the sockets); "hupd
	// check" accepts the input.
	runOnly bool
	// stackKiB, when set, is hupd's RLIMIT_STACK (ulimit -s), which sets
	// how large a command line and environment may be.
	stackKiB int
}

var badCases = []badCase{
	// TOML syntax and structure.
	{
		name: "malformed TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[process " + badMark + "\nstop_signal = \"TERM\"\n",
		says: []string{"expected '.' or ']' to end table name"},
	},
	{
		name: "unterminated string", code: 2,
		toml: "{listen}\nname = \"hello " + badMark + "\ncommand = [\"{hello}\"]\n",
		says: []string{"strings cannot contain newlines"},
	},
	{
		name: "wrong type", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[process]\nstop_signal = 15 " + badMark + "\n",
		says: []string{"process.stop_signal: incompatible types"},
	},
	{
		name: "bare number for a duration in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[process]\nstop_timeout = 30 " + badMark + "\n",
		says: []string{`process.stop_timeout: "30" is not a duration: write "30s"`},
	},
	{
		name: "bare number for a duration in a flag", code: 2,
		args:  []string{"--listen", "unix://{sock}", "--ready-timeout", "30"},
		where: "--ready-timeout: ", says: []string{`reload.ready_timeout: "30" is not a duration: write 30s`},
	},
	{
		name: "unknown key", code: 2,
		toml: "command = [\"{hello}\"]\ncomand = [\"{hello}\"] " + badMark + "\n{listen}",
		says: []string{`unknown key "comand": valid keys at the top level are command, control, health, legacy, listen, log, name, process, program, reload, restart`},
	},
	{
		name: "unknown key in the second listen", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}adress = \"tcp://:1\" " + badMark + "\n",
		says: []string{`unknown key "adress": valid keys in [listen] are address, backlog, env, group, mode, name, nonblocking, owner, reuseport, steer, v6only`},
	},
	{
		name: "unknown table", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[proces] " + badMark + "\nuser = \"root\"\n",
		says: []string{`unknown key "proces": valid keys at the top level are`},
	},
	{
		name: "missing config file", code: 2, args: []string{"-c", "missing.toml"},
		where: "missing.toml: ", says: []string{"no such file or directory"},
	},

	// Listen addresses, on the command line and in the file.
	{
		name: "unbracketed IPv6 in --listen", code: 2,
		args:  []string{"--listen", "unix://{sock}", "--listen", "tcp://127.0.0.1:{port}", "--listen", "::1:80"},
		where: "--listen: ",
		says:  []string{`listen[2].address = "::1:80": an IPv6 address needs brackets: [::1]:80; want HOST:PORT, :PORT, [IPV6]:PORT or PORT (tcp), /ABSOLUTE/PATH or @ABSTRACT (unix), or SCHEME://ADDRESS`},
	},
	{
		name: "no port in --listen", code: 2,
		args:  []string{"--listen", "web=localhost"},
		where: "--listen: ",
		says:  []string{`listen[0].address = "localhost": missing port; want HOST:PORT, :PORT, [IPV6]:PORT or PORT (tcp), /ABSOLUTE/PATH or @ABSTRACT (unix), or SCHEME://ADDRESS`},
	},
	{
		name: "relative unix path in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[[listen]]\naddress = \"run/app.sock\" " + badMark + "\n",
		says: []string{`listen[2].address = "run/app.sock": a unix socket path must be absolute: `, "; want HOST:PORT, :PORT,"},
	},
	{
		name: "scheme without slashes in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[[listen]]\naddress = \"tcp:8080\" " + badMark + "\n",
		says: []string{`listen[2].address = "tcp:8080": a scheme wants "://": write "tcp://:8080"`},
	},
	{
		name: "bad URL in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[[listen]]\naddress = \"tcp://[::1:80\" " + badMark + "\n",
		says: []string{`listen[2].address = "tcp://[::1:80": missing ']' in address`},
	},
	{
		name: "relative unix path in --listen", code: 2,
		args:  []string{"--listen", "admin=unix://run/admin.sock"},
		where: "--listen: ", says: []string{`listen[0].address = "unix://run/admin.sock": unix socket path must be absolute`},
	},
	{
		name: "unknown scheme in --listen", code: 2,
		args:  []string{"--listen", "unix://{sock}", "--listen", "https://:443"},
		where: "--listen: ",
		says:  []string{`listen[1].address = "https://:443": unknown scheme "https": valid schemes are tcp, tcp4, tcp6, udp, udp4, udp6, unix, unixgram`},
	},
	{
		name: "unknown scheme in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[[listen]]\nname = \"x\"\naddress = \"sctp://:9\" " + badMark + "\n",
		says: []string{`listen[2].address = "sctp://:9": unknown scheme "sctp": valid schemes are tcp,`},
	},
	{
		name: "port out of range in --listen", code: 2,
		args:  []string{"--listen", "tcp://127.0.0.1:{port}", "--listen", "http=tcp://127.0.0.1:65536"},
		where: "--listen: ", says: []string{`listen[1].address = "tcp://127.0.0.1:65536": port "65536" is not a number from 0 to 65535`},
	},
	{
		name: "port out of range in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[[listen]]\naddress = \"udp://:-5\" " + badMark + "\n",
		says: []string{`listen[2].address = "udp://:-5": port "-5" is not a number from 0 to 65535`},
	},
	{
		name: "same address twice", code: 2,
		args:  []string{"--listen", "tcp://127.0.0.1:{port}", "--listen", "tcp://127.0.0.1:{port}"},
		where: "--listen: ", says: []string{`listen[1].address = "tcp://127.0.0.1:{port}": same address as listen[0]`},
	},
	{
		name: "same address in short and URL form", code: 2,
		args:  []string{"--listen", "tcp://127.0.0.1:{port}", "--listen", "127.0.0.1:{port}"},
		where: "--listen: ", says: []string{`listen[1].address = "127.0.0.1:{port}": same address as listen[0]`},
	},
	{
		name: "same unix path in short and URL form", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[[listen]]\naddress = \"{sock}\" " + badMark + "\n",
		says: []string{`listen[2].address = "{sock}": same address as listen[0]`},
	},
	{
		name: "bad socket name", code: 2,
		args:  []string{"--listen", "a:b=tcp://127.0.0.1:{port}"},
		where: "--listen: ", says: []string{`listen[0].name = "a:b"`, "without ':'"},
	},
	{
		name: "mode on a tcp socket", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}mode = \"0600\" " + badMark + "\n",
		says: []string{`listen[1].mode = "0600": applies only to unix socket files`},
	},
	{
		name: "v6only on tcp4", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[[listen]]\naddress = \"tcp4://127.0.0.1:0\"\nv6only = true " + badMark + "\n",
		says: []string{`listen[2].v6only = "true": applies only to IPv6 sockets`},
	},
	{
		name: "unknown hand-over in listen env", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}env = [\"nginx\", \"inetd\"] " + badMark + "\n",
		says: []string{`listen[1].env = "inetd": valid ones are einhorn, server-starter, nginx`},
	},
	{
		name: "bad mode", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[[listen]]\naddress = \"unix://{sock}2\"\nmode = \"0999\" " + badMark + "\n",
		says: []string{`listen[2].mode = "0999": want an octal file mode such as "0660"`},
	},
	{
		name: "unknown socket owner", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[[listen]]\naddress = \"unix://{sock}2\"\nowner = \"no-such-user-hupd\" " + badMark + "\n",
		says: []string{`listen[2].owner = "no-such-user-hupd": unknown user`},
	},
	{
		name: "unknown socket group", code: 2,
		toml: "command = [\"{hello}\"]\n[[listen]]\naddress = \"unix://{sock}\"\ngroup = \"no-such-group-hupd\" " + badMark + "\n",
		says: []string{`listen[0].group = "no-such-group-hupd": unknown group`},
	},

	// Ports in use: found only when binding, after other sockets opened.
	{
		name: "port in use", code: 1, runOnly: true,
		args:  []string{"--listen", "u=unix://{sock}", "--listen", "t=tcp://127.0.0.1:{port}", "--listen", "busy=tcp://127.0.0.1:{busy}"},
		where: "--listen: ", says: []string{"listen tcp://127.0.0.1:{busy}: bind: address already in use"},
	},
	{
		name: "port in use in TOML", code: 1, runOnly: true,
		toml: "command = [\"{hello}\"]\n{listen}\n[[listen]]\nname = \"busy\"\naddress = \"tcp://127.0.0.1:{busy}\" " + badMark + "\n",
		says: []string{"listen tcp://127.0.0.1:{busy}: bind: address already in use"},
	},

	// hupd's own health endpoint: a bad address is a configuration error;
	// a port in use is found when hupd opens it, after the [[listen]]
	// sockets, which must not outlive the failure.
	{
		name: "bad health address", code: 2, args: []string{"--listen", "unix://{sock}", "--health", "127.0.0.1"},
		where: "--health: ", says: []string{`health.address = "127.0.0.1": want HOST:PORT such as 127.0.0.1:9901 or :9901 (missing port in address)`},
	},
	{
		name: "health address with a scheme", code: 2, args: []string{"--health", "http://127.0.0.1:9901"},
		where: "--health: ", says: []string{`health.address = "http://127.0.0.1:9901": want HOST:PORT such as 127.0.0.1:9901 or :9901, without a scheme`},
	},
	{
		name: "bad health address in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[health]\naddress = \"localhost:99999\" " + badMark + "\n",
		says: []string{`health.address = "localhost:99999": port "99999" is not a number from 0 to 65535`},
	},
	{
		name: "health failures without an address", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[health]\nfailures = 2 " + badMark + "\n",
		says: []string{`health.failures = "2": goes with health.address (--health): the endpoint is off`},
	},
	{
		name: "health port in use", code: 1, runOnly: true,
		args:  []string{"--listen", "u=unix://{sock}", "--listen", "t=tcp://127.0.0.1:{port}", "--health", "127.0.0.1:{busy}"},
		where: "--health: ", says: []string{`health.address = "127.0.0.1:{busy}": bind: address already in use`},
	},
	{
		name: "health port in use in TOML", code: 1, runOnly: true,
		toml: "command = [\"{hello}\"]\n{listen}\n[health]\naddress = \"127.0.0.1:{busy}\" " + badMark + "\n",
		says: []string{`health.address = "127.0.0.1:{busy}": bind: address already in use`},
	},
	{
		name: "health port is a listen port", code: 1, runOnly: true,
		args:  []string{"--listen", "u=unix://{sock}", "--listen", "t=tcp://127.0.0.1:{port}", "--health", "127.0.0.1:{port}"},
		where: "--health: ", says: []string{`health.address = "127.0.0.1:{port}": bind: address already in use`},
	},

	// The command.
	{
		name: "missing command", code: 127, args: []string{"--listen", "unix://{sock}"}, cmd: []string{"./no-such-server"},
		where: `command "./no-such-server": `, says: []string{"no such file"},
	},
	{
		name: "command not in PATH", code: 127, cmd: []string{"no-such-server-hupd"},
		where: `command "no-such-server-hupd": `, says: []string{"not found in PATH"},
	},
	{
		name: "missing command in TOML", code: 127,
		toml: "command = [\"./gone\", \"-v\"]\n{listen}", cmd: []string{},
		where: `command "./gone": `, says: []string{"no such file"},
	},
	{
		name: "non-executable file", code: 126, args: []string{"--listen", "tcp://127.0.0.1:{port}"}, cmd: []string{"./plain"},
		where: `command "./plain": `, says: []string{"permission denied"},
	},
	{
		name: "non-executable file by absolute path", code: 126, cmd: []string{"{dir}/plain", "arg"},
		where: `command "{dir}/plain": `, says: []string{"permission denied"},
	},
	{
		name: "directory as command", code: 126, cmd: []string{"./sub"},
		where: `command "./sub": `, says: []string{"is a directory"},
	},
	{
		name: "no command at all", code: 2, args: []string{"--listen", "unix://{sock}", "--listen", "tcp://127.0.0.1:{port}"}, cmd: []string{},
		where: "command line: command: ", says: []string{"no command: give it after -- (hupd run -- ./server) or as command = [\"./server\"] in hupd.toml"},
	},
	{
		name: "no command in TOML", code: 2, toml: "{listen}", cmd: []string{},
		where: "hupd.toml: command: ", says: []string{"no command"},
	},
	{
		name: "empty command in TOML", code: 2, toml: "command = [] " + badMark + "\n{listen}", cmd: []string{},
		says: []string{"command: no command"},
	},

	// Signals, users, durations, strategies, environment.
	{
		name: "bad signal name", code: 2, args: []string{"--stop-signal", "HUPP"},
		where: "--stop-signal: ", says: []string{`process.stop_signal: invalid signal "HUPP": ` + allSignals},
	},
	{
		name: "bad signal name in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[reload]\nsignal = \"USR3\" " + badMark + "\n",
		says: []string{`reload.signal: invalid signal "USR3": ` + allSignals},
	},
	{
		name: "signal number out of range", code: 2, args: []string{"--reload-signal", "65"},
		where: "--reload-signal: ", says: []string{`reload.signal: invalid signal "65": numbers go from 1 to 64`},
	},
	{
		name: "unknown user", code: 2, args: []string{"--user", "no-such-user-hupd"},
		where: "--user: ", says: []string{`process.user = "no-such-user-hupd": unknown user`},
	},
	{
		name: "unknown user in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[process]\nuser = \"no-such-user-hupd\" " + badMark + "\n",
		says: []string{`process.user = "no-such-user-hupd": unknown user`},
	},
	{
		name: "unknown group", code: 2, args: []string{"--group", "no-such-group-hupd"},
		where: "--group: ", says: []string{`process.group = "no-such-group-hupd": unknown group`},
	},
	{
		name: "unknown group in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[process]\n\ngroup = \"no-such-group-hupd\" " + badMark + "\n",
		says: []string{`process.group = "no-such-group-hupd": unknown group`},
	},
	{
		name: "bad duration", code: 2, args: []string{"--stop-timeout", "10"},
		where: "--stop-timeout: ", says: []string{`process.stop_timeout: "10" is not a duration: write 10s`},
	},
	{
		name: "bad duration in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[restart]\nmin_delay = \"1s\"\nmax_delay = \"soon\" " + badMark + "\n",
		says: []string{`restart.max_delay = "soon": want a positive duration`},
	},
	{
		name: "max_delay below min_delay", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[restart]\nmin_delay = \"1m\"\nmax_delay = \"1s\" " + badMark + "\n",
		says: []string{`restart.max_delay = "1s": less than min_delay 1m`},
	},
	{
		name: "unknown reload strategy", code: 2, args: []string{"--reload", "bluegreen"},
		where: "--reload: ", says: []string{`reload.strategy = "bluegreen": valid values are signal, swap, restart`},
	},
	{
		name: "unknown reload strategy in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[reload]\nstrategy = \"graceful\" " + badMark + "\n",
		says: []string{`reload.strategy = "graceful": valid values are signal, swap, restart`},
	},
	{
		name: "bad readiness", code: 2, args: []string{"--ready", "soon"},
		where: "--ready: ", says: []string{`reload.ready: unknown readiness "soon": valid forms are auto, notify, listen, delay:DURATION, exec:COMMAND`},
	},
	{
		name: "bad readiness in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[reload]\nready = \"delay:x\" " + badMark + "\n",
		says: []string{`reload.ready: readiness "delay:x": want delay:DURATION`},
	},
	{
		name: "missing check command", code: 2, args: []string{"--check", "{dir}/nocheck -t"},
		where: "--check: ", says: []string{`reload.check = "{dir}/nocheck"`, "no such file"},
	},
	{
		name: "missing readiness probe", code: 2, args: []string{"--ready", "exec:{dir}/noprobe"},
		where: "--ready: ", says: []string{`reload.ready = "exec:{dir}/noprobe"`, "no such file"},
	},
	{
		name: "unknown restart policy", code: 2, args: []string{"--restart", "sometimes"},
		where: "--restart: ", says: []string{`restart.policy = "sometimes": valid values are always, on-failure, never`},
	},
	{
		name: "start limit without interval", code: 2, args: []string{"--start-limit", "5/"},
		where: "--start-limit: ", says: []string{`restart.start_limit = "5/": want BURST/INTERVAL such as "5/10s" (5 failed starts within 10 s), or "off"`},
	},
	{
		name: "start limit with a bad burst", code: 2, args: []string{"--start-limit", "x/10s"},
		where: "--start-limit: ", says: []string{`restart.start_limit = "x/10s": burst "x": want a positive whole number of failed starts, as in "5/10s" (or "off" for no limit)`},
	},
	{
		name: "start limit with a negative burst", code: 2, args: []string{"--start-limit", "-5/10s"},
		where: "--start-limit: ", says: []string{`restart.start_limit = "-5/10s": burst "-5": want a positive whole number`},
	},
	{
		name: "start limit with a zero interval in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[restart]\npolicy = \"always\"\nstart_limit = \"5/0s\" " + badMark + "\n",
		says: []string{`restart.start_limit = "5/0s": interval "0s": want a positive duration with its unit, as in "5/10s" or "3/1m"`},
	},
	{
		name: "start limit with a bare interval in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[restart]\nstart_limit = \"5/10\" " + badMark + "\n",
		says: []string{`restart.start_limit = "5/10": interval "10": want a positive duration with its unit`},
	},
	{
		name: "unknown signal in --success-exit-status", code: 2, args: []string{"--success-exit-status", "143", "--success-exit-status", "SIGTREM"},
		where: "--success-exit-status: ", says: []string{`restart.success_exit_status = "SIGTREM": want an exit code (0 to 255) or a signal name: invalid signal "SIGTREM": ` + allSignals},
	},
	{
		name: "exit code out of range in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[restart]\nsuccess_exit_status = [143, \"TERM\", 300] " + badMark + "\n",
		says: []string{`restart.success_exit_status = "300": exit code 300: exit codes go from 0 to 255`},
	},
	{
		name: "negative exit code in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[restart]\nsuccess_exit_status = [-1] " + badMark + "\n",
		says: []string{`restart.success_exit_status = "-1": exit code -1: exit codes go from 0 to 255`},
	},
	{
		name: "exit status of the wrong type in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[restart]\nsuccess_exit_status = [143, 1.5] " + badMark + "\n",
		says: []string{`restart.success_exit_status: a float: want exit codes (integers such as 143) and signal names (strings such as "TERM")`},
	},
	{
		name: "--env without '='", code: 2, args: []string{"--env", "A=1", "--env", "NOEQUALS"},
		where: `--env = "NOEQUALS": `, says: []string{"want KEY=VALUE"},
	},
	{
		name: "missing dir", code: 2, args: []string{"--dir", "{dir}/nowhere"},
		where: "--dir: ", says: []string{`process.dir = "{dir}/nowhere": no such file or directory`},
	},
	{
		name: "bad log level", code: 2, args: []string{"--log-level", "loud"},
		where: "--log-level: ", says: []string{`log.level = "loud": valid levels are debug, info, warn, error`},
	},

	// Bind redirection.
	{
		name: "unknown legacy mode", code: 2, args: []string{"--listen", "tcp://127.0.0.1:{port}", "--legacy", "rewrite"},
		where: "--legacy: ", says: []string{`legacy.mode = "rewrite": want "redirect"`},
	},
	{
		name: "legacy redirect without sockets", code: 2, args: []string{"--legacy", "redirect"},
		where: "--legacy: ", says: []string{"give at least one [[listen]]"},
	},
	{
		name: "readiness listen without redirect", code: 2, args: []string{"--listen", "tcp://127.0.0.1:{port}", "--ready", "listen"},
		where: "--ready: ", says: []string{`reload.ready = "listen": needs [legacy] mode = "redirect"`},
	},
	{
		name: "legacy redirect with a hand-over", code: 2, args: []string{"--listen", "tcp://127.0.0.1:{port}", "--legacy", "redirect", "--handoff", "einhorn"},
		where: "--handoff: ", says: []string{"does not apply with [legacy]"},
	},
	{
		name: "legacy redirect with {fd:NAME}", code: 2, args: []string{"--listen", "http=tcp://127.0.0.1:{port}", "--legacy", "redirect"},
		cmd: []string{"{hello}", "-fd", "{fd:http}"}, where: "", says: []string{"{fd:NAME} does not apply with [legacy]"},
	},
	{
		name: "legacy redirect with a listen env", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}env = [\"nginx\"] " + badMark + "\n[legacy]\nmode = \"redirect\"\n",
		says: []string{`listen[1].env = "nginx": does not apply with [legacy] mode = "redirect"`},
	},
	{
		name: "legacy adopt on port 0", code: 2, args: []string{"--listen", "tcp://127.0.0.1:0", "--legacy", "adopt"},
		where: "--listen: ", says: []string{`listen[0].address = "tcp://127.0.0.1:0": needs a fixed port with [legacy] mode = "adopt"`},
	},
	{
		name: "legacy adopt with a backlog", code: 2,
		toml: "command = [\"{hello}\"]\n[legacy]\nmode = \"adopt\"\n[[listen]]\naddress = \"tcp://127.0.0.1:{port}\"\nbacklog = 16 " + badMark + "\n",
		says: []string{`listen[0].backlog = "16": does not apply with [legacy] mode = "adopt": the program sets its socket up itself`},
	},

	// Instances (issue 18).
	{
		name: "zero instances by flag", code: 2, args: []string{"--listen", "tcp://127.0.0.1:{port}", "--instances", "0"},
		where: "--instances: ", says: []string{`process.instances = "0": want a number of instances from 1 to 1024`},
	},
	{
		name: "instances not a number by flag", code: 2, args: []string{"--listen", "tcp://127.0.0.1:{port}", "--instances", "two"},
		where: "--instances: ", says: []string{`process.instances = "two": want a number of instances from 1 to 1024`},
	},
	{
		name: "too many instances in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[process]\ninstances = 2000 " + badMark + "\n",
		says: []string{`process.instances = "2000": want a number of instances from 1 to 1024`},
	},
	{
		name: "negative instances in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[process]\ninstances = -1 " + badMark + "\n",
		says: []string{`process.instances = "-1": want a number of instances from 1 to 1024`},
	},
	{
		name: "instances not a number in TOML", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[process]\ninstances = \"4\" " + badMark + "\n",
		says: []string{`process.instances: want a number of instances from 1 to 1024`},
	},
	{
		name: "rolling above instances", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[process]\ninstances = 2\n[reload]\nrolling = 3 " + badMark + "\n",
		says: []string{`reload.rolling = "3": want 0 (all at once) up to the number of instances (2)`},
	},
	{
		name: "negative rolling by flag", code: 2, args: []string{"--listen", "tcp://127.0.0.1:{port}", "--instances", "2", "--rolling", "-1"},
		where: "--rolling: ", says: []string{`reload.rolling = "-1": want 0 (all at once) up to the number of instances (2)`},
	},
	{
		name: "instances of a forking program", code: 2, args: []string{"--listen", "tcp://127.0.0.1:{port}", "--instances", "2", "--forking"},
		where: "--instances: ", says: []string{`process.instances = "2": not with process.forking (set at --forking): a program that daemonizes runs as one instance`},
	},
	{
		name: "rolling with settle", code: 2, args: []string{"--listen", "tcp://127.0.0.1:{port}", "--instances", "2", "--rolling", "1", "--settle", "30s"},
		where: "--rolling: ", says: []string{`reload.rolling = "1": not with reload.settle = "30s" (set at --settle): a rolling swap stops old instances as it goes`},
	},
	{
		name: "rolling with a steered socket", code: 2,
		toml: "command = [\"{hello}\"]\n[[listen]]\naddress = \"tcp://127.0.0.1:{port}\"\nsteer = true\n[process]\ninstances = 2\n[reload]\nrolling = 1 " + badMark + "\n",
		says: []string{`reload.rolling = "1": not with a steered socket (listen[0] steer, set at hupd.toml:4): steering sends every new connection to one generation`},
	},

	// What execve would refuse with E2BIG ("argument list too long").
	{
		name: "environment variable longer than MAX_ARG_STRLEN", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[process.env]\nSMALL = \"x\"\nBIG = \"" + strings.Repeat("x", 200000) + "\" " + badMark + "\n",
		says: []string{"process.env.BIG: BIG=VALUE is 200004 bytes: more than one environment string may hold (MAX_ARG_STRLEN, 131072 bytes with its NUL)"},
	},
	{
		name: "argument longer than MAX_ARG_STRLEN", code: 2, cmd: []string{},
		toml: "command = [\"{hello}\", \"-x\", \"" + strings.Repeat("y", 131072) + "\"] " + badMark + "\n{listen}",
		says: []string{"command[2]: argument of 131072 bytes: more than one argument may hold (MAX_ARG_STRLEN, 131072 bytes with its NUL)"},
	},
	{
		name: "check argument longer than MAX_ARG_STRLEN", code: 2,
		toml: "command = [\"{hello}\"]\n{listen}\n[reload]\ncheck = [\"/bin/true\", \"" + strings.Repeat("z", 140000) + "\"] " + badMark + "\n",
		says: []string{"reload.check[1]: argument of 140000 bytes: more than one argument may hold"},
	},
	{
		// 1 MiB of stack allows 256 KiB of arguments and environment.
		name: "arguments and environment larger than the exec limit", code: 2, stackKiB: 1024,
		toml: "command = [\"{hello}\"]\n{listen}\n[process.env] " + badMark + "\n" +
			"A = \"" + strings.Repeat("a", 100000) + "\"\nB = \"" + strings.Repeat("b", 100000) + "\"\nC = \"" + strings.Repeat("c", 100000) + "\"\n",
		says: []string{"process.env: arguments and environment too large for exec: ", " of environment); the limit is 262144 bytes, a quarter of the stack limit (RLIMIT_STACK 1048576 bytes) (with 4096 bytes kept for what hupd adds)"},
	},

	// Several programs ([[program]] tables): hupd check and hupd run find
	// the same mistakes; no command after "--" (it would be one).
	{
		name: "multi: per-program setting at the top level", code: 2, cmd: []string{},
		toml: "command = [\"{hello}\"] " + badMark + "\n[[program]]\nname = \"web\"\ncommand = [\"{hello}\"]\n",
		says: []string{"command: not with [[program]] tables (the first at hupd.toml:2)"},
	},
	{
		name: "multi: two programs of one name", code: 2, cmd: []string{},
		toml: "[[program]]\nname = \"web\"\ncommand = [\"{hello}\"]\n[[program]]\nname = \"web\" " + badMark + "\ncommand = [\"{hello}\"]\n",
		says: []string{`program[1].name = "web": already the name of program[0] (hupd.toml:2)`},
	},
	{
		name: "multi: after an unknown program", code: 2, cmd: []string{},
		toml: "[[program]]\nname = \"web\"\ncommand = [\"{hello}\"]\nafter = [\"db\"] " + badMark + "\n",
		says: []string{`program "web" after = "db": no program of that name: the programs are web`},
	},
	{
		name: "multi: a cycle in after", code: 2, cmd: []string{},
		toml: "[[program]]\nname = \"web\"\ncommand = [\"{hello}\"]\nafter = [\"app\"] " + badMark + "\n" +
			"[[program]]\nname = \"app\"\ncommand = [\"{hello}\"]\nafter = [\"web\"]\n",
		says: []string{`program "web" after: a cycle: web → app → web`},
	},
	{
		name: "multi: one socket for two programs", code: 2, cmd: []string{},
		toml: "[[program]]\nname = \"web\"\ncommand = [\"{hello}\"]\n[[program.listen]]\naddress = \"tcp://127.0.0.1:{port}\"\n" +
			"[[program]]\nname = \"app\"\ncommand = [\"{hello}\"]\n[[program.listen]]\naddress = \"unix://{sock}\"\n" +
			"[[program.listen]]\naddress = \"127.0.0.1:{port}\" " + badMark + "\n",
		says: []string{`program "app" listen[1].address = "tcp://127.0.0.1:{port}": already the address of program "web" listen[0] (hupd.toml:5)`},
	},
	{
		name: "multi: a bad duration in a program", code: 2, cmd: []string{},
		toml: "[[program]]\nname = \"web\"\ncommand = [\"{hello}\"]\n[program.process]\nstop_timeout = \"soon\" " + badMark + "\n",
		says: []string{`program "web" process.stop_timeout = "soon": want a positive duration`},
	},
	{
		name: "multi: a program's command not found", code: 127, cmd: []string{},
		toml: "[[program]]\nname = \"web\"\ncommand = [\"{hello}\"]\n[[program]]\nname = \"app\"\ncommand = [\"{dir}/missing\"] " + badMark + "\n",
		says: []string{`program "app" command "{dir}/missing": no such file`},
	},
	{
		name: "multi: a per-program flag", code: 2, cmd: []string{}, args: []string{"--listen", "tcp://127.0.0.1:{port}"},
		toml:  "[[program]]\nname = \"web\"\ncommand = [\"{hello}\"]\n",
		where: "--listen: ", says: []string{"sets a program's setting: with [[program]] tables (the first at hupd.toml:1)"},
	},
	{
		// A valid file: hupd check accepts it; hupd run finds the one
		// health endpoint's port in use and starts nothing.
		name: "multi: health port in use", code: 1, cmd: []string{}, runOnly: true,
		toml: "[health]\naddress = \"127.0.0.1:{busy}\" " + badMark + "\n[[program]]\nname = \"web\"\ncommand = [\"{hello}\"]\n[[program.listen]]\naddress = \"tcp://127.0.0.1:{port}\"\n" +
			"[[program]]\nname = \"app\"\ncommand = [\"{hello}\"]\n[[program.listen]]\naddress = \"unix://{sock}\"\n",
		says: []string{`health.address = "127.0.0.1:{busy}": bind: address already in use`},
	},

	// Usage.
	{
		name: "unknown flag", code: 2, args: []string{"--bogus"},
		where: "usage: ", says: []string{"flag provided but not defined: -bogus"},
	},
	{
		name: "flag without its value", code: 2, args: []string{"--listen"}, cmd: []string{},
		where: "usage: ", says: []string{"flag needs an argument: -listen"},
	},
}

// TestBadInput runs hupd on each bad input and checks that it fails at
// once with exactly one line on stderr that starts "hupd: ", names where
// the mistake is and what it is, with the documented exit status (2 for
// configuration and usage, 127 for a missing command, 126 for one that
// cannot run, 1 for a port in use), nothing on stdout, and nothing left
// behind: no hupd or child process, no socket file, no port held. Unless
// only binding finds the mistake, "hupd check" must fail the same way.
func TestBadInput(t *testing.T) {
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			subs := []string{"run", "check"}
			if tc.runOnly {
				subs = subs[:1]
			}
			var first oneShotResult
			for _, sub := range subs {
				r := runBadCase(t, tc, sub)
				if sub == "check" && (r.code != first.code || r.stderr != first.stderr) {
					t.Errorf("hupd check: exit %d, stderr %q; hupd run: exit %d, stderr %q", r.code, r.stderr, first.code, first.stderr)
				}
				first = r
			}
		})
	}
}

// TestBadInputCommand covers mistakes in the subcommand itself.
func TestBadInputCommand(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"bogus", "--", "./server"}, {"--bogus", "run"}} {
		r := oneShot(t, t.TempDir(), nil, args...)
		if r.code != 2 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "hupd: usage: ") {
			t.Errorf("hupd %q: exit %d, stdout %q, stderr %q; want 2 and one usage line", args, r.code, r.stdout, r.stderr)
		}
	}
	r := oneShot(t, t.TempDir(), nil, "bogus")
	if want := "hupd: usage: unknown command \"bogus\": valid commands are run, check, reload, rollback, scale, status, logs, upgrade, plan, version, demo, completion\n"; r.stderr != want {
		t.Errorf("unknown command: %q, want %q", r.stderr, want)
	}
}

// runBadCase runs one case with subcommand sub in a fresh directory and
// checks everything TestBadInput promises. It returns the result with the
// case's paths and ports put back as placeholders, so that the results of
// two runs compare.
func runBadCase(t *testing.T, tc badCase, sub string) oneShotResult {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "plain"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Socket files go to a short path of their own (sun_path is small).
	sockDir, err := os.MkdirTemp("", "hupd-bad-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := fixedPort(t, "tcp4")
	busyPort := busy.Addr().(*net.TCPAddr).Port

	expand := strings.NewReplacer(
		"{listen}", badListen, // first: it holds placeholders too
	).Replace
	vars := strings.NewReplacer(
		"{hello}", helloBin, "{dir}", dir, "{sock}", filepath.Join(sockDir, "s.sock"),
		"{port}", strconv.Itoa(port), "{busy}", strconv.Itoa(busyPort),
	).Replace
	sub1 := func(s string) string { return vars(expand(s)) }

	argv := []string{sub}
	where := sub1(tc.where)
	if tc.toml != "" {
		text := sub1(tc.toml)
		if err := os.WriteFile(filepath.Join(dir, "hupd.toml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		argv = append(argv, "-c", "hupd.toml")
		if where == "" {
			where = fmt.Sprintf("hupd.toml:%d: ", markedLine(t, text))
		}
	}
	for _, a := range tc.args {
		argv = append(argv, sub1(a))
	}
	cmd := tc.cmd
	if cmd == nil {
		cmd = []string{"{hello}"}
	}
	if len(cmd) > 0 {
		argv = append(argv, "--")
		for _, a := range cmd {
			argv = append(argv, sub1(a))
		}
	}
	before := badListDir(t, dir)

	mark := "HUPD_TEST_BADINPUT=" + badToken()
	t.Cleanup(func() { // also after a failure that ends the test early
		for _, pid := range badLeftovers(mark) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	r := oneShotStack(t, dir, []string{mark}, tc.stackKiB, argv...)

	if r.code != tc.code {
		t.Errorf("hupd %s: exit %d, want %d", sub, r.code, tc.code)
	}
	if r.stdout != "" {
		t.Errorf("hupd %s: stdout %q, want nothing", sub, r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "hupd: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("hupd %s: stderr is not one line starting \"hupd: \":\n%s", sub, r.stderr)
	}
	msg := strings.TrimSuffix(strings.TrimPrefix(r.stderr, "hupd: "), "\n")
	if !strings.HasPrefix(msg, where) {
		t.Errorf("hupd %s: message %q does not start with %q", sub, msg, where)
	}
	for _, s := range tc.says {
		if s = sub1(s); !strings.Contains(msg, s) {
			t.Errorf("hupd %s: message %q does not say %q", sub, msg, s)
		}
	}

	// Nothing left behind.
	if pids := badLeftovers(mark); len(pids) > 0 {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Errorf("hupd %s: processes left running: %v", sub, pids)
	}
	if ents, _ := os.ReadDir(sockDir); len(ents) > 0 {
		t.Errorf("hupd %s: left %s in the socket directory", sub, ents[0].Name())
	}
	if after := badListDir(t, dir); !slices.Equal(before, after) {
		t.Errorf("hupd %s: directory was %q, is %q", sub, before, after)
	}
	badBindable(t, port)
	// The busy port is still the test's, and free once the test lets go.
	if c, err := net.Dial("tcp", busy.Addr().String()); err != nil {
		t.Errorf("busy port %d: %v", busyPort, err)
	} else {
		c.Close()
	}
	busy.Close()
	badBindable(t, busyPort)

	unexpand := strings.NewReplacer(filepath.Join(sockDir, "s.sock"), "{sock}", dir, "{dir}", helloBin, "{hello}",
		strconv.Itoa(port), "{port}", strconv.Itoa(busyPort), "{busy}").Replace
	r.stderr = unexpand(r.stderr)
	return r
}

// markedLine returns the number of the line of text that holds badMark.
func markedLine(t *testing.T, text string) int {
	t.Helper()
	for i, line := range strings.Split(text, "\n") {
		if strings.Contains(line, badMark) {
			return i + 1
		}
	}
	t.Fatalf("TOML case without %q and without where:\n%s", badMark, text)
	return 0
}

// badBindable fails t unless the port can be bound again.
func badBindable(t *testing.T, port int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Errorf("port %d is still held: %v", port, err)
		return
	}
	l.Close()
}

func badToken() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// badLeftovers returns the live processes whose environment holds mark:
// hupd and everything it started inherit it.
func badLeftovers(mark string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == mark && processAlive(pid) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

func badListDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// TestExecSizeEdit: an edit of hupd.toml that gives the child an
// environment variable execve would refuse (E2BIG) is refused naming it,
// and changes nothing: the same generation serves.
func TestExecSizeEdit(t *testing.T) {
	t.Parallel()
	sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
	tables := []string{wtHTTP, wtWatch("", wtDebounce, sent)}
	w, conf := wtStartConf(t, t.TempDir(), wtTOML([]string{"-tag", "v1", sent}, tables...))
	pid := w.ChildPID(1)
	w.startReport(1)
	bad := wtTOML([]string{"-tag", "v2", sent}, append(tables, "[process.env]\nBIG = \""+strings.Repeat("x", 200000)+"\"\n")...)
	wtWrite(t, conf, bad)
	e := w.WaitEvent(logev.ConfigNotApplied, 1, nil)
	want := fmt.Sprintf("%s:%d: process.env.BIG: BIG=VALUE is 200004 bytes: more than one environment string may hold (MAX_ARG_STRLEN, 131072 bytes with its NUL)",
		conf, strings.Count(bad, "\n"))
	if e.Str("error") != want {
		t.Fatalf("error %q, want %q", e.Str("error"), want)
	}
	rcOnly(w, pid)
	if body := fetch(t, "tcp", HostPort(w.Listening("http")), "/"); swapPID(body) != pid {
		t.Fatalf("answered %q, want pid %d", body, pid)
	}
	w.stop()
}

// TestExecTooLargeAtSpawn: when execve refuses a child's command line and
// environment all the same (here hupd's stack limit, which sets the exec
// limit, was lowered after the configuration was checked), the reload
// fails saying so in words and with the sizes, not just "argument list too
// long"; the old generation serves on.
func TestExecTooLargeAtSpawn(t *testing.T) {
	t.Parallel()
	sent := writeFile(t, t.TempDir(), "sentinel", "s0\n")
	env := "[process.env]\nA = \"" + strings.Repeat("a", 100000) + "\"\nB = \"" + strings.Repeat("b", 100000) + "\"\n"
	w, _ := wtStartConf(t, t.TempDir(), wtTOML([]string{sent}, wtHTTP, env))
	pid := w.ChildPID(1)
	w.startReport(1)
	standby := w.WaitEvent(logev.StandbyReady, 1, nil).Int("pid")
	// 256 KiB of stack allow 128 KiB of arguments and environment, less
	// than the 200 KB of A and B. The standby shim, already started,
	// execs the next generation: it gets the lower limit too.
	for _, p := range []int{w.Cmd.Process.Pid, standby} {
		var old unix.Rlimit
		if err := unix.Prlimit(p, unix.RLIMIT_STACK, nil, &old); err != nil {
			t.Fatal(err)
		}
		if err := unix.Prlimit(p, unix.RLIMIT_STACK, &unix.Rlimit{Cur: 256 << 10, Max: old.Max}, nil); err != nil {
			t.Fatal(err)
		}
	}
	r := oneShot(t, "", nil, "reload", "--control", w.ctl)
	t.Logf("hupd reload: %s", r.stderr)
	if r.code != 1 || !strings.Contains(r.stderr, ": arguments and environment too large for exec: ") || !strings.Contains(r.stderr, "argument list too long") {
		t.Fatalf("hupd reload: exit %d, stderr %q; want 1 saying the arguments and environment are too large for exec", r.code, r.stderr)
	}
	if body := fetch(t, "tcp", HostPort(w.Listening("http")), "/"); swapPID(body) != pid {
		t.Fatalf("answered %q, want pid %d", body, pid)
	}
	w.stop()
}
