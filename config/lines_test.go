package config

import (
	"reflect"
	"testing"
)

func TestKeyLines(t *testing.T) {
	src := `# comment = 1
name = "x"   # trailing
command = ["./a",
  "b = c",
]

[[listen]]
address = "tcp://:1"

  [[ listen ]] # second
  address = "tcp://:2"
  mode    = "0600"

[process]
env.A = "1"
dir . sub = "x"
desc = """
fake = 1
"""
after = 1

[process.env]
B = "2"
lit = '''one
two = 3'''
last = true
`
	// Keys outside arrays of tables are in both maps.
	common := map[string]int{
		"name": 2, "command": 3,
		"process": 14, "process.env.A": 15, "process.dir.sub": 16, "process.desc": 17,
		"process.after": 20,
		"process.env":   22, "process.env.B": 23, "process.env.lit": 24, "process.env.last": 26,
	}
	wantIndexed := map[string]int{
		"listen.0": 7, "listen.0.address": 8,
		"listen.1": 10, "listen.1.address": 11, "listen.1.mode": 12,
	}
	wantPlain := map[string]int{"listen": 7, "listen.address": 8, "listen.mode": 12}
	for k, n := range common {
		wantIndexed[k], wantPlain[k] = n, n
	}
	indexed, plain := keyLines([]byte(src))
	if !reflect.DeepEqual(indexed, wantIndexed) {
		t.Errorf("indexed:\n got  %v\n want %v", indexed, wantIndexed)
	}
	if !reflect.DeepEqual(plain, wantPlain) {
		t.Errorf("plain:\n got  %v\n want %v", plain, wantPlain)
	}
}

// TestKeyLinesNumericKey: a key named "0" in a [[listen]] table is
// "listen.0" for the TOML library, which is not the first [[listen]].
func TestKeyLinesNumericKey(t *testing.T) {
	indexed, plain := keyLines([]byte("[[listen]]\n0 = \"\"\n"))
	if indexed["listen.0"] != 1 || indexed["listen.0.0"] != 2 || plain["listen.0"] != 2 {
		t.Fatalf("indexed %v, plain %v", indexed, plain)
	}
	_, err := Parse("n.toml", []byte("[[listen]]\n0 = \"\"\n"))
	if ce := asError(t, err); ce.Where != "n.toml:2" {
		t.Fatalf("%v: want n.toml:2", err)
	}
}

func TestKeyLinesEmpty(t *testing.T) {
	for _, src := range []string{"", "\n\n", "# only comments\n", "[[", "= 1", "'''"} {
		if indexed, plain := keyLines([]byte(src)); len(indexed)+len(plain) != 0 {
			t.Errorf("keyLines(%q) = %v, %v, want none", src, indexed, plain)
		}
	}
}

func TestSourcesWhere(t *testing.T) {
	s := sources{file: "h.toml", lines: map[string]int{"log.level": 4}}
	s.setFlag("log.format", "--log-format")
	for key, want := range map[string]string{
		"log.level":  "h.toml:4",
		"log.format": "--log-format",
		"command":    "h.toml", // not in the file: the file alone
	} {
		if got := s.where(key); got != want {
			t.Errorf("where(%q) = %q, want %q", key, got, want)
		}
	}
	if got := (sources{}).where("command"); got != "command line" {
		t.Errorf("without a file: %q", got)
	}
}

func TestKeyLinesStringsAndComments(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		key       string
		line      int // 0: not placed
	}{
		{"multi-line string on an array line", "command = [\n\"\"\"\nbogus = 1\n\"\"\",\n]\nbogus = 2\n", "bogus", 6},
		{"literal multi-line string", "name = '''\nbogus = 1\n'''\nbogus = 2\n", "bogus", 4},
		{"delimiter in a basic string", `name = "a\"\"\"b"` + "\nbogus = 2\n", "bogus", 2},
		{"delimiter in a comment", "name = \"x\" # \"\"\"\nbogus = 2\n", "bogus", 2},
		{"delimiter in a literal string", "name = '\"\"\"'\nbogus = 2\n", "bogus", 2},
		{"string closed on its line", "name = \"\"\"a\"\"\"\nbogus = 2\n", "bogus", 2},
		{"five quotes close", "name = \"\"\"\na\"\"\"\"\"\nbogus = 2\n", "bogus", 3},
		{"escaped quote in multi-line", "name = \"\"\"\na\\\"\"\"\nbogus = 1\n\"\"\"\nbogus = 2\n", "bogus", 5},
		{"spaces around header dots", "[ process . env ]\nA = \"1\"\n", "process.env.A", 2},
		{"quoted header: unplaced", "[log]\nlevel = \"info\"\n[\"log\".x]\nlevel = 1\n", "log.level", 2},
		{"quoted header hides its keys", "[\"process\"]\nusr = 1\n", "process.usr", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, plain := keyLines([]byte(tc.src))
			if got := plain[tc.key]; got != tc.line {
				t.Fatalf("line of %q = %d, want %d", tc.key, got, tc.line)
			}
		})
	}
}

// TestUnknownKeyLineAfterMultiLineString is the case above end to end: the
// unknown key is reported where it is, not inside the string.
func TestUnknownKeyLineAfterMultiLineString(t *testing.T) {
	_, err := Parse("m.toml", []byte("command = [\n\"\"\"\nbogus = 1\n\"\"\",\n]\nbogus = 2\n"))
	if ce := asError(t, err); ce.Where != "m.toml:6" {
		t.Fatalf("%v: want m.toml:6", err)
	}
}
