package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// StatusList is [restart] success_exit_status: exit codes, which TOML
// gives as integers, and signal names, as strings ([143, "SIGTERM"]). Each
// entry is kept as written (143 as "143") and checked by Resolve; a lone
// value is a list of one.
type StatusList []string

// UnmarshalTOML implements toml.Unmarshaler.
func (l *StatusList) UnmarshalTOML(v any) error {
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	var out StatusList // [] is nil: none, as when the key is left out
	for _, it := range items {
		switch x := it.(type) {
		case int64:
			out = append(out, strconv.FormatInt(x, 10))
		case string:
			out = append(out, x)
		default:
			return fmt.Errorf("restart.success_exit_status: %s: want exit codes (integers such as 143) and signal names (strings such as \"TERM\")", tomlKind(it))
		}
	}
	*l = out
	return nil
}

// tomlKind names the TOML type of a decoded value, for messages.
func tomlKind(v any) string {
	switch v.(type) {
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "a nested array"
	case map[string]any, []map[string]any:
		return "a table"
	}
	return "a date or time"
}

// MarshalTOML implements toml.Marshaler: an entry that is a number as
// Resolve reads it is written as an integer, any other as a string.
func (l StatusList) MarshalTOML() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range l {
		if i > 0 {
			b.WriteString(", ")
		}
		if n, err := strconv.Atoi(s); err == nil && strconv.Itoa(n) == s {
			b.WriteString(s)
			continue
		}
		if !utf8.ValidString(s) {
			return nil, errors.New("restart.success_exit_status: not UTF-8")
		}
		b.WriteString(tomlString(s))
	}
	b.WriteByte(']')
	return []byte(b.String()), nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
