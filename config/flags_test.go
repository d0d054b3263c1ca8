package config

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestFlagsRecordTheirSource: every entry of Flags sets something and
// records that it came from its flag, so that an error about the value
// names the flag (--stop-timeout), not the file it overrides. Names are
// unique: Override finds an entry by its name.
func TestFlagsRecordTheirSource(t *testing.T) {
	c := &Config{}
	seen := map[string]bool{}
	for _, f := range Flags() {
		if seen[f.Name] {
			t.Errorf("flag --%s listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Usage == "" {
			t.Errorf("flag --%s has no usage text", f.Name)
		}
		v := "x"
		switch {
		case f.Kind == FlagBool:
			v = "true"
		case f.Name == "env":
			v = "K=V"
		case f.Name == "instances", f.Name == "rolling":
			v = "1"
		}
		// In table order: --watch comes before the --watch-poll that needs it.
		if err := c.Override(f.Name, v); err != nil {
			t.Fatalf("Override(%q, %q): %v", f.Name, v, err)
		}
		var sources []string
		for _, where := range c.src.flags {
			sources = append(sources, where)
		}
		if !slices.Contains(sources, "--"+f.Name) {
			t.Errorf("--%s: no value recorded as coming from it (sources %q)", f.Name, sources)
		}
	}
	if len(seen) == 0 {
		t.Fatal("no flags")
	}
}

// TestFlagPlaceholders: every flag that takes a value names it in its help
// with a placeholder in backquotes, in capitals ("`DURATION`", "`[NAME=]URL`"),
// so that the help never shows urfave/cli's "value"; a switch has none.
func TestFlagPlaceholders(t *testing.T) {
	re := regexp.MustCompile("`([^`]*)`")
	for _, f := range Flags() {
		m := re.FindAllStringSubmatch(f.Usage, -1)
		switch {
		case f.Kind == FlagBool && len(m) > 0:
			t.Errorf("--%s is a switch but shows a placeholder %q", f.Name, m[0][1])
		case f.Kind != FlagBool && len(m) != 1:
			t.Errorf("--%s: %d placeholders in %q, want one", f.Name, len(m), f.Usage)
		case f.Kind != FlagBool && strings.ToUpper(m[0][1]) != m[0][1]:
			t.Errorf("--%s: placeholder %q is not in capitals", f.Name, m[0][1])
		}
	}
}
