package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// sources says where each value came from: a line of the file, or a flag.
type sources struct {
	file  string
	lines map[string]int    // "listen.1.address" and "listen.address" (first) -> line
	flags map[string]string // field key -> "--flag"
}

func (s sources) where(key string) string {
	if f, ok := s.flags[key]; ok {
		return f
	}
	if s.file == "" {
		return "command line"
	}
	if n, ok := s.lines[key]; ok {
		return fmt.Sprintf("%s:%d", s.file, n)
	}
	return s.file
}

func (s *sources) setFlag(key, flag string) {
	if s.flags == nil {
		s.flags = map[string]string{}
	}
	s.flags[key] = flag
}

var (
	reHeader = regexp.MustCompile(`^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(#.*)?$`)
	reKey    = regexp.MustCompile(`^\s*([A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*)\s*=`)
)

// keyLines maps dotted key paths to the line that sets them. It knows bare
// keys, tables and arrays of tables, which is all hupd.toml uses; a key it
// cannot place is reported against the file alone.
func keyLines(data []byte) map[string]int {
	out := map[string]int{}
	counts := map[string]int{}
	prefix, plain := "", ""
	inMulti := ""
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		if inMulti != "" {
			if strings.Count(line, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		if m := reHeader.FindStringSubmatch(line); m != nil {
			name := m[2]
			if m[1] == "[[" {
				idx := counts[name]
				counts[name]++
				prefix, plain = name+"."+strconv.Itoa(idx), name
			} else {
				prefix, plain = name, name
			}
			setFirst(out, prefix, n)
			setFirst(out, plain, n)
			continue
		}
		if m := reKey.FindStringSubmatch(line); m != nil {
			k := strings.Join(strings.Fields(strings.ReplaceAll(m[1], ".", " ")), ".")
			setFirst(out, join(prefix, k), n)
			setFirst(out, join(plain, k), n)
			for _, q := range []string{`"""`, `'''`} {
				if strings.Count(line, q)%2 == 1 {
					inMulti = q
				}
			}
		}
	}
	return out
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
