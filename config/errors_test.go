package config

import (
	"strings"
	"testing"
)

// TestFieldErrorMessages pins the message of an error from each place
// Resolve checks a field (the top level, [[watch]], [health],
// [legacy] and adopt, [[listen]], [process] user and group, instances and
// rolling, readiness):
// the bad-input tests and users' scripts read them, byte for byte.
func TestFieldErrorMessages(t *testing.T) {
	exe := executable(t)
	for _, tc := range []struct{ src, want string }{
		{"[log]\nformat = \"yaml\"\n", `f.toml:3: log.format = "yaml": valid values are text, json`},
		{"[process]\nstop_timeout = \"soon\"\n", `f.toml:3: process.stop_timeout = "soon": want a positive duration such as 500ms, 30s or 2m`},
		{"[[watch]]\npaths = []\n", `f.toml:3: watch[0].paths: no paths: list files, directories or globs to watch`},
		{"[[watch]]\npaths = [\"/a\"]\ndebounce = \"-1s\"\n", `f.toml:4: watch[0].debounce = "-1s": want a positive duration such as 200ms or 2s`},
		{"[health]\nfailures = -1\n", `f.toml:3: health.failures = "-1": must not be negative (0 is off)`},
		{"[health]\naddress = \"127.0.0.1\"\n", `f.toml:3: health.address = "127.0.0.1": want HOST:PORT such as 127.0.0.1:9901 or :9901 (missing port in address)`},
		{"[legacy]\nmode = \"bind\"\n", `f.toml:3: legacy.mode = "bind": want "redirect" or "adopt"`},
		{"[legacy]\nmode = \"redirect\"\n[[listen]]\naddress = \"tcp://127.0.0.1:0\"\nenv = [\"einhorn\"]\n",
			`f.toml:6: listen[0].env = "einhorn": does not apply with [legacy] mode = "redirect": the program gets no inherited sockets`},
		{"[legacy]\nmode = \"adopt\"\n[[listen]]\naddress = \"tcp://127.0.0.1:0\"\n",
			`f.toml:5: listen[0].address = "tcp://127.0.0.1:0": needs a fixed port with [legacy] mode = "adopt": hupd knows the program's socket by its address`},
		{"[legacy]\nmode = \"adopt\"\n[[listen]]\naddress = \"tcp://127.0.0.1:8080\"\nbacklog = 5\n",
			`f.toml:6: listen[0].backlog = "5": does not apply with [legacy] mode = "adopt": the program sets its socket up itself`},
		{"[[listen]]\naddress = \"tcp://127.0.0.1:0\"\n[[listen]]\naddress = \"tcp://127.0.0.1:0\"\nbacklog = -1\n",
			`f.toml:6: listen[1].backlog = "-1": must not be negative`},
		{"[[listen]]\naddress = \"tcp://127.0.0.1:0\"\nmode = \"0660\"\n",
			`f.toml:4: listen[0].mode = "0660": applies only to unix socket files`},
		{"[[listen]]\naddress = \"tcp://127.0.0.1:8080\"\n[[listen]]\naddress = \"tcp://127.0.0.1:8080\"\n",
			`f.toml:5: listen[1].address = "tcp://127.0.0.1:8080": same address as listen[0]`},
		{"[process]\nuser = \"no-such-user-hupd\"\n", `f.toml:3: process.user = "no-such-user-hupd": unknown user`},
		{"[reload]\nready = \"notify\"\nready_command = [\"x\"]\n", `f.toml:4: reload.ready_command: goes with ready = "exec", not "notify"`},
		{"[process]\ninstances = 0\n", `f.toml:3: process.instances = "0": want a number of instances from 1 to 1024`},
		{"[process]\ninstances = 3\n[reload]\nrolling = 4\n", `f.toml:5: reload.rolling = "4": want 0 (all at once) up to the number of instances (3)`},
		{"[reload]\nready = \"listen\"\n", `f.toml:3: reload.ready = "listen": needs [legacy] mode = "redirect" or "adopt" (--legacy): only then does hupd see the program's listen calls`},
	} {
		c, err := Parse("f.toml", []byte(`command = ["`+exe+`"]`+"\n"+tc.src))
		if err != nil {
			t.Fatalf("%q: %v", tc.src, err)
		}
		_, err = c.Resolve()
		asError(t, err)
		if err.Error() != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", strings.ReplaceAll(tc.src, "\n", " "), err, tc.want)
		}
	}
}
