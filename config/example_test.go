package config

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// optionalSetting is a commented-out setting in an example: "#key = value",
// with no blank between the "#" and the key (prose has one).
var optionalSetting = regexp.MustCompile(`(?m)^#([a-z_]+ = .*)$`)

// TestExampleUsesEveryKey keeps examples/hupd.toml complete: with its
// optional settings enabled, it sets every key hupd knows, in every table.
func TestExampleUsesEveryKey(t *testing.T) {
	data, err := os.ReadFile("../examples/hupd.toml")
	if err != nil {
		t.Fatal(err)
	}
	all := optionalSetting.ReplaceAll(data, []byte("$1"))
	if _, err := Parse("hupd.toml (optional settings enabled)", all); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if _, err := toml.Decode(string(all), &doc); err != nil {
		t.Fatal(err)
	}
	tables := map[string]map[string]any{"": doc}
	for _, name := range []string{"process", "reload", "restart", "health", "systemd", "log"} {
		tables[name], _ = doc[name].(map[string]any)
	}
	listen := map[string]any{}
	ls, _ := doc["listen"].([]map[string]any)
	for _, l := range ls {
		for k, v := range l {
			listen[k] = v
		}
	}
	tables["listen"] = listen
	for name, tbl := range tables {
		var missing []string
		for _, k := range validKeys(name) {
			if name == "" && k == "program" {
				continue // the other form: examples/multi/hupd.toml
			}
			if _, ok := tbl[k]; !ok {
				missing = append(missing, k)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("examples/hupd.toml: %s lacks %s", strings.TrimSpace(inTable(name)), strings.Join(missing, ", "))
		}
	}
	if env, _ := tables["process"]["env"].(map[string]any); len(env) == 0 {
		t.Error("examples/hupd.toml: no [process.env] entry")
	}
	var unix bool
	for _, l := range ls {
		unix = unix || strings.HasPrefix(l["address"].(string), "unix://") && l["mode"] != nil
	}
	if !unix {
		t.Error("examples/hupd.toml: no unix socket with a mode")
	}
}

// TestExamplesResolve checks every example as it ships (optional settings
// left out), with its command replaced by one that exists: whatever the
// host, each value is valid. integration/check_test.go runs `hupd check`
// on them with the real hello binary.
func TestExamplesResolve(t *testing.T) {
	paths, err := filepath.Glob("../examples/*.toml")
	if err != nil || len(paths) < 2 {
		t.Fatalf("examples: %v, %v", paths, err)
	}
	exe := executable(t)
	for _, p := range paths {
		c, err := Load(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(c.Command) == 0 || c.Command[0] != "./hello" {
			t.Errorf("%s: command %q, want the hello example (./hello)", p, c.Command)
		}
		c.SetCommand([]string{exe})
		if _, err := c.Resolve(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
