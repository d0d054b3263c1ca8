package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hupd/hupd/supervisor"
)

// seeds are TOML inputs for the fuzzers: the examples and a few shapes
// the line finder must handle.
func seeds(f *testing.F) {
	f.Helper()
	paths, _ := filepath.Glob("../examples/*.toml")
	for _, p := range append(paths, "../examples/multi/hupd.toml") {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"",
		"command = [\"./a\"]\n[[listen]]\naddress = \"tcp://:0\"\n[[listen]]\naddress = \"unix:///x\"\nmode = \"0600\"\n",
		"[process]\nusr = 1\n",
		"[process.env]\nA = \"1\"\nB = 2\n",
		"a = \"\"\"\nb = 1\n\"\"\"\nc = 1\n",
		"x = [\n'''\nname = 1\n''']\nbogus = 2\n",
		"restart.policy = \"always\"\nlog.fmt = 1\n",
		"[ log ]\n level = \"info\" # c\n[[listen]]\n",
		"\xef\xbb\xbfname = \"x\"\nbad\n",
		"name = 'a'\n\"quoted key\" = 1\n",
		"[[program]]\nname = \"a\"\ncommand = [\"./a\"]\nafter = [\"b\"]\n[[program.listen]]\naddress = \":0\"\n[program.process.env]\nA = \"1\"\n[[program]]\nname = \"b\"\ncommand = [\"./b\"]\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParse checks that any input either parses or yields a one-line
// *Error whose line, when it has one, exists in the input; that an
// unknown key is reported on a line that mentions it; that what parses
// survives Encode and Parse unchanged; and that Resolve and ResolveMulti
// never panic and fail only with one-line errors.
func FuzzParse(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err != nil {
			checkError(t, data, err)
			return
		}
		var b bytes.Buffer
		if err := c.Encode(&b); err != nil {
			t.Fatalf("Encode: %v", err)
		}
		c2, err := Parse("g.toml", b.Bytes())
		if err != nil {
			t.Fatalf("Encode output does not parse: %v\n%s", err, b.Bytes())
		}
		c.src, c2.src, c2.file = sources{}, sources{}, c.file
		if !reflect.DeepEqual(normal(c), normal(c2)) {
			t.Fatalf("Encode/Parse changed the config:\n%#v\n%#v", c, c2)
		}
		_, err = c.Resolve()
		checkResolveError(t, "Resolve", err)
		if c2.Multi() {
			_, err = c2.ResolveMulti()
			checkResolveError(t, "ResolveMulti", err)
		}
	})
}

// checkResolveError fails t unless err, from Resolve or ResolveMulti
// (what), is nil, or a one-line *Error or *supervisor.NotFoundError.
func checkResolveError(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ce *Error
	var nf *supervisor.NotFoundError
	if !errors.As(err, &ce) && !errors.As(err, &nf) {
		t.Fatalf("%s: %v (%T) is neither *Error nor *NotFoundError", what, err, err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Fatalf("%s error is not one line: %q", what, err)
	}
}

// normal makes empty and nil maps and slices compare equal.
func normal(c *Config) *Config {
	n := *c
	if len(n.Process.Env) == 0 {
		n.Process.Env = nil
	}
	if len(n.Listen) == 0 {
		n.Listen = nil
	}
	if len(n.Command) == 0 {
		n.Command = nil
	}
	n.Programs = slices.Clone(n.Programs)
	for i := range n.Programs {
		p := &n.Programs[i]
		if len(p.Process.Env) == 0 {
			p.Process.Env = nil
		}
		if len(p.Listen) == 0 {
			p.Listen = nil
		}
		if len(p.Command) == 0 {
			p.Command = nil
		}
		if len(p.After) == 0 {
			p.After = nil
		}
	}
	if len(n.Programs) == 0 {
		n.Programs = nil
	}
	return &n
}

func checkError(t *testing.T, data []byte, err error) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("%v (%T) is not a *config.Error", err, err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("error is not one line: %q", msg)
	}
	if !strings.HasPrefix(msg, ce.Where) {
		t.Fatalf("message %q does not start with %q", msg, ce.Where)
	}
	if ce.Where == "f.toml" {
		return
	}
	n, cerr := strconv.Atoi(strings.TrimPrefix(ce.Where, "f.toml:"))
	lines := strings.Split(string(data), "\n")
	if cerr != nil || n < 1 || n > len(lines) {
		t.Fatalf("Where %q: not a line of the %d-line input (%v)", ce.Where, len(lines), err)
	}
	if errors.Is(err, ErrUnknownKey) {
		key := msg[strings.Index(msg, `"`):]
		key, _ = strconv.QuotedPrefix(key)
		key, _ = strconv.Unquote(key)
		if !strings.Contains(lines[n-1], key) {
			t.Fatalf("unknown key %q reported on line %d, which is %q", key, n, lines[n-1])
		}
	}
}

// FuzzKeyLines checks that keyLines never panics, and that every line it
// names exists and mentions the last part of its key.
func FuzzKeyLines(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := strings.Split(string(data), "\n")
		indexed, plain := keyLines(data)
		all := map[string]int{}
		for k, n := range indexed {
			all["i:"+k] = n
		}
		for k, n := range plain {
			all["p:"+k] = n
		}
		for key, n := range all {
			key = key[2:]
			if n < 1 || n > len(lines) {
				t.Fatalf("key %q on line %d of %d", key, n, len(lines))
			}
			parts := strings.Split(key, ".")
			line, last := lines[n-1], parts[len(parts)-1]
			ok := strings.Contains(line, last)
			if _, err := strconv.Atoi(last); err == nil && len(parts) > 1 {
				// listen.0: the header [[listen]]
				ok = ok || strings.Contains(line, parts[len(parts)-2])
			}
			if !ok {
				t.Fatalf("key %q placed on line %d: %q", key, n, lines[n-1])
			}
		}
	})
}
