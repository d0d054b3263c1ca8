package control

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultPath returns where hupd instance name listens:
// $XDG_RUNTIME_DIR/hupd/NAME.sock when XDG_RUNTIME_DIR is set, else
// /run/hupd/NAME.sock for root, else $TMPDIR/hupd-UID/NAME.sock. NAME is
// name with every character outside [A-Za-z0-9._-] and a leading '.'
// replaced by '_'; an empty name is "hupd".
func DefaultPath(name string) string {
	return defaultPath(name, os.Getenv("XDG_RUNTIME_DIR"), os.Geteuid(), os.TempDir())
}

func defaultPath(name, xdg string, euid int, tmp string) string {
	file := sanitizeName(name) + ".sock"
	switch {
	case xdg != "":
		return filepath.Join(xdg, "hupd", file)
	case euid == 0:
		return filepath.Join("/run/hupd", file)
	default:
		return filepath.Join(tmp, "hupd-"+strconv.Itoa(euid), file)
	}
}

func sanitizeName(name string) string {
	if name == "" {
		return "hupd"
	}
	var b strings.Builder
	for i, r := range name {
		ok := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
			r == '_' || r == '-' || r == '.' && i > 0
		if !ok {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}
