package config

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestResolveInstances: [process] instances and [reload] rolling, and
// --instances and --rolling over them, reach the supervisor's options;
// not set, both are 0 (one instance, all at once) and hupd check's output
// leaves them out; set, it shows them.
func TestResolveInstances(t *testing.T) {
	exe := executable(t)
	head := `command = ["` + exe + `"]` + "\n[[listen]]\naddress = \"tcp://127.0.0.1:0\"\n"
	for _, tc := range []struct {
		src                 string
		flags               [][2]string
		instances, rolling  int
		encoded, notEncoded []string
	}{
		{src: "", notEncoded: []string{"instances", "rolling"}},
		{src: "[process]\ninstances = 4\n[reload]\nrolling = 1\n", instances: 4, rolling: 1,
			encoded: []string{"instances = 4\n", "rolling = 1\n"}},
		{src: "[process]\ninstances = 1024\n", instances: 1024, encoded: []string{"instances = 1024\n"}, notEncoded: []string{"rolling"}},
		{src: "[process]\ninstances = 4\n[reload]\nrolling = 2\n", flags: [][2]string{{"instances", "2"}, {"rolling", "0"}}, instances: 2,
			encoded: []string{"instances = 2\n"}, notEncoded: []string{"rolling"}},
		{flags: [][2]string{{"instances", " 3"}, {"rolling", "3"}}, instances: 3, rolling: 3},
	} {
		c, err := Parse("f.toml", []byte(head+tc.src))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range tc.flags {
			if err := c.Override(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
		}
		r, err := c.Resolve()
		if err != nil {
			t.Fatalf("%q %v: %v", tc.src, tc.flags, err)
		}
		if o := r.Options; o.Instances != tc.instances || o.Rolling != tc.rolling {
			t.Errorf("%q %v: instances %d, rolling %d; want %d, %d", tc.src, tc.flags, o.Instances, o.Rolling, tc.instances, tc.rolling)
		}
		out := encode(t, c)
		for _, s := range tc.encoded {
			if !strings.Contains(out, s) {
				t.Errorf("%q %v: check output lacks %q:\n%s", tc.src, tc.flags, s, out)
			}
		}
		for _, s := range tc.notEncoded {
			if strings.Contains(out, s) {
				t.Errorf("%q %v: check output shows %q:\n%s", tc.src, tc.flags, s, out)
			}
		}
	}
}

// TestInstancesRefusals pins every refusal of instances and rolling, byte
// for byte, as hupd run and hupd check print them after "hupd: ": out of
// range, not a number (in the file and in a flag), rolling past the
// instances, several instances of a program that daemonizes, and a
// rolling swap with settle or a steered socket. Each names the key and
// where it was set.
func TestInstancesRefusals(t *testing.T) {
	exe := executable(t)
	head := `command = ["` + exe + `"]` + "\n"
	for _, tc := range []struct {
		src   string
		flags [][2]string
		want  string
	}{
		{src: "[process]\ninstances = 0\n", want: `f.toml:3: process.instances = "0": want a number of instances from 1 to 1024`},
		{src: "[process]\ninstances = -2\n", want: `f.toml:3: process.instances = "-2": want a number of instances from 1 to 1024`},
		{src: "[process]\ninstances = 2000\n", want: `f.toml:3: process.instances = "2000": want a number of instances from 1 to 1024`},
		{src: "[process]\ninstances = 1025\n", want: `f.toml:3: process.instances = "1025": want a number of instances from 1 to 1024`},
		{src: "[process]\ninstances = \"4\"\n", want: `f.toml:3: process.instances: want a number of instances from 1 to 1024`},
		{src: "[process]\ninstances = 2.5\n", want: `f.toml:3: process.instances: want a number of instances from 1 to 1024`},
		{flags: [][2]string{{"instances", "0"}}, want: `--instances: process.instances = "0": want a number of instances from 1 to 1024`},
		{flags: [][2]string{{"instances", "-1"}}, want: `--instances: process.instances = "-1": want a number of instances from 1 to 1024`},
		{flags: [][2]string{{"instances", "two"}}, want: `--instances: process.instances = "two": want a number of instances from 1 to 1024`},
		{flags: [][2]string{{"instances", "1e3"}}, want: `--instances: process.instances = "1e3": want a number of instances from 1 to 1024`},
		{flags: [][2]string{{"instances", "99999999999999999999"}}, want: `--instances: process.instances = "99999999999999999999": want a number of instances from 1 to 1024`},
		{src: "[process]\ninstances = 4\n", flags: [][2]string{{"instances", "1025"}}, want: `--instances: process.instances = "1025": want a number of instances from 1 to 1024`},
		{src: "[reload]\nrolling = -1\n", want: `f.toml:3: reload.rolling = "-1": want 0 (all at once) up to the number of instances (1)`},
		{src: "[process]\ninstances = 2\n[reload]\nrolling = 3\n", want: `f.toml:5: reload.rolling = "3": want 0 (all at once) up to the number of instances (2)`},
		{src: "[reload]\nrolling = \"1\"\n", want: `f.toml:3: reload.rolling: want a number of instances to replace at a time: 0 (all at once) up to process.instances`},
		{src: "[process]\ninstances = 2\n", flags: [][2]string{{"rolling", "x"}}, want: `--rolling: reload.rolling = "x": want a number of instances to replace at a time: 0 (all at once) up to process.instances`},
		{src: "[process]\ninstances = 2\n", flags: [][2]string{{"rolling", "3"}}, want: `--rolling: reload.rolling = "3": want 0 (all at once) up to the number of instances (2)`},
		{src: "[process]\ninstances = 2\nforking = true\n",
			want: `f.toml:3: process.instances = "2": not with process.forking (set at f.toml:4): a program that daemonizes runs as one instance, its daemon found by its pidfile or as the only orphan`},
		{src: "[process]\ninstances = 2\npidfile = \"/run/x.pid\"\n",
			want: `f.toml:3: process.instances = "2": not with process.pidfile (set at f.toml:4): a program that daemonizes runs as one instance, its daemon found by its pidfile or as the only orphan`},
		{src: "[process]\nforking = true\n", flags: [][2]string{{"instances", "3"}},
			want: `--instances: process.instances = "3": not with process.forking (set at f.toml:3): a program that daemonizes runs as one instance, its daemon found by its pidfile or as the only orphan`},
		{src: "[process]\ninstances = 2\n[reload]\nrolling = 1\nsettle = \"30s\"\n",
			want: `f.toml:5: reload.rolling = "1": not with reload.settle = "30s" (set at f.toml:6): a rolling swap stops old instances as it goes, none is kept settling`},
		{src: "[process]\ninstances = 2\n[reload]\nrolling = 1\n", flags: [][2]string{{"settle", "1m"}},
			want: `f.toml:5: reload.rolling = "1": not with reload.settle = "1m" (set at --settle): a rolling swap stops old instances as it goes, none is kept settling`},
		{src: "[process]\ninstances = 2\n[reload]\nrolling = 1\n[[listen]]\naddress = \"tcp://127.0.0.1:0\"\n[[listen]]\naddress = \"tcp://127.0.0.1:0\"\nsteer = true\n",
			want: `f.toml:5: reload.rolling = "1": not with a steered socket (listen[1] steer, set at f.toml:10): steering sends every new connection to one generation, and a rolling swap needs old and new instances accepting together`},
		{src: "[process]\ninstances = 2\n[[listen]]\naddress = \"tcp://127.0.0.1:0\"\n", flags: [][2]string{{"steer", "true"}, {"rolling", "1"}},
			want: `--rolling: reload.rolling = "1": not with a steered socket (listen[0] steer, set at --steer): steering sends every new connection to one generation, and a rolling swap needs old and new instances accepting together`},
	} {
		c, err := Parse("f.toml", []byte(head+tc.src))
		for _, f := range tc.flags {
			if err != nil {
				break
			}
			err = c.Override(f[0], f[1])
		}
		if err == nil {
			_, err = c.Resolve()
		}
		asError(t, err)
		if err.Error() != tc.want {
			t.Errorf("%q %v:\n got %s\nwant %s", strings.ReplaceAll(tc.src, "\n", " "), tc.flags, err, tc.want)
		}
	}
}

// TestValidKeysMatchFields: the keys an unknown-key error offers for each
// table are exactly the keys of its struct (a key missing there is never
// offered, and examples/hupd.toml, checked against the same list, need
// not show it).
func TestValidKeysMatchFields(t *testing.T) {
	for table, v := range map[string]any{
		"": Config{}, "listen": Listen{}, "watch": Watch{}, "process": Process{}, "reload": Reload{},
		"restart": Restart{}, "legacy": Legacy{}, "health": Health{}, "systemd": Systemd{}, "log": Log{},
	} {
		var keys []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			if name, _, _ := strings.Cut(typ.Field(i).Tag.Get("toml"), ","); name != "" {
				keys = append(keys, name)
			}
		}
		sort.Strings(keys)
		if got := validKeys(table); !slices.Equal(got, keys) {
			t.Errorf("validKeys(%q) = %v; the struct's keys are %v", table, got, keys)
		}
	}
}
