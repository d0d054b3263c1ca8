package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// sources says where each value came from: a line of the file, or a flag.
type sources struct {
	file  string
	lines map[string]int    // "listen.1.address" -> line
	plain map[string]int    // "listen.address" (the first) -> line
	flags map[string]string // field key -> "--flag"
	// prefix is the key of the [[program]] table ("program.1") whose
	// settings the keys name ("listen.0.address" is
	// "program.1.listen.0.address"); "" at the top level. A key that is
	// not in the file is placed at the table's header.
	prefix string
}

// where says where the value at key ("listen.1.address") came from.
func (s sources) where(key string) string {
	if f, ok := s.flags[key]; ok {
		return f
	}
	return s.at(s.lines, key)
}

// whereUndecoded says where a key the TOML library did not decode is. The
// library names keys of arrays of tables without the index
// ("listen.address"), so "listen.0" is the key "0" of a [[listen]] table,
// not the first [[listen]].
func (s sources) whereUndecoded(key string) string {
	return s.at(s.plain, key)
}

func (s sources) at(lines map[string]int, key string) string {
	if s.file == "" {
		return "command line"
	}
	if n, ok := lines[join(s.prefix, key)]; ok {
		return fmt.Sprintf("%s:%d", s.file, n)
	}
	if n, ok := lines[s.prefix]; ok && s.prefix != "" {
		return fmt.Sprintf("%s:%d", s.file, n)
	}
	return s.file
}

// has reports whether key was set, by a line of the file or by a flag.
func (s sources) has(key string) bool {
	_, flag := s.flags[key]
	_, line := s.lines[join(s.prefix, key)]
	return flag || line
}

// in returns the sources of the settings of the table at prefix
// ("program.1"): the same lines, no flags.
func (s sources) in(prefix string) sources {
	return sources{file: s.file, lines: s.lines, plain: s.plain, prefix: prefix}
}

func (s *sources) setFlag(key, flag string) {
	if s.flags == nil {
		s.flags = map[string]string{}
	}
	s.flags[key] = flag
}

var (
	reHeader = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\s*(\[\[?)\s*([A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*)\s*\]\]?\s*(#.*)?$`)
	})
	reKey = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\s*([A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*)\s*=`)
	})
)

// unplaced is the table prefix after a header keyLines cannot read (a
// quoted name): keys under it are recorded where no lookup finds them, so
// they are reported against the file, never against a wrong line.
const unplaced = "\x00"

// keyLines maps dotted key paths to the line that sets them, both with the
// index of each array of tables ("listen.1.address") and without it, as
// the first line that sets such a key ("listen.address"). It knows bare
// keys, tables and arrays of tables, also inside the last element of an
// array of tables ([[program]], then [program.process] is
// "program.0.process" and [[program.listen]] "program.0.listen.0"), which
// is all hupd.toml uses; a key it cannot place is reported against the
// file alone.
func keyLines(data []byte) (indexed, plainKeys map[string]int) {
	indexed, plainKeys = map[string]int{}, map[string]int{}
	counts := map[string]int{} // indexed path of an array of tables -> tables seen
	// indexedPath is name with the index of the last table of each array
	// of tables it goes through, but not of itself.
	indexedPath := func(name string) string {
		segs := strings.Split(name, ".")
		out := ""
		for i, s := range segs {
			out = join(out, s)
			if n, ok := counts[out]; ok && i < len(segs)-1 {
				out += "." + strconv.Itoa(n-1)
			}
		}
		return out
	}
	prefix, plain := "", ""
	open := "" // delimiter of a multi-line string still open
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		if open != "" {
			open = openAfter(line, open)
			continue
		}
		open = openAfter(line, "")
		if m := reHeader().FindStringSubmatch(line); m != nil {
			name := dotted(m[2])
			path := indexedPath(name)
			if m[1] == "[[" {
				idx := counts[path]
				counts[path]++
				prefix, plain = path+"."+strconv.Itoa(idx), name
			} else {
				prefix, plain = path, name
			}
			setFirst(indexed, prefix, n)
			setFirst(plainKeys, plain, n)
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "[") {
			prefix, plain = unplaced, unplaced
			continue
		}
		if m := reKey().FindStringSubmatch(line); m != nil {
			k := dotted(m[1])
			setFirst(indexed, join(prefix, k), n)
			setFirst(plainKeys, join(plain, k), n)
		}
	}
	return indexed, plainKeys
}

// dotted removes the blanks around the dots of a dotted key.
func dotted(k string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(k, ".", " ")), ".")
}

// openAfter returns the delimiter (three double or three single quotes)
// of the multi-line string still open at the end of line, given the one
// open at its start ("" for none). It follows strings and comments as TOML
// reads them.
func openAfter(line, open string) string {
	for i := 0; i < len(line); {
		if open != "" {
			switch {
			case open == `"""` && line[i] == '\\':
				i += 2
			case strings.HasPrefix(line[i:], open):
				// A run of up to five quotes ends the string: the last
				// three are the delimiter.
				r := 3
				for r < 5 && i+r < len(line) && line[i+r] == open[0] {
					r++
				}
				open, i = "", i+r
			default:
				i++
			}
			continue
		}
		switch c := line[i]; {
		case c == '#':
			return ""
		case strings.HasPrefix(line[i:], `"""`), strings.HasPrefix(line[i:], `'''`):
			open, i = line[i:i+3], i+3
		case c == '"':
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' {
					i++
				}
			}
			i++
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return ""
			}
			i += j + 2
		default:
			i++
		}
	}
	return open
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func setFirst(m map[string]int, k string, n int) {
	if _, ok := m[k]; !ok {
		m[k] = n
	}
}
