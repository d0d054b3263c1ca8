package watch

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileMounts returns the paths that name a regular file which is a mount
// point of its own: a Kubernetes subPath mount or a docker -v FILE bind
// mount. Such a file never changes when its source is replaced (a
// ConfigMap update, an editor's rename-on-save): the mount holds on to the
// old inode. Mount the directory instead.
func FileMounts(paths []string) []string {
	points := mountPoints()
	var out []string
	for _, p := range paths {
		if hasMeta(p) {
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(real); err == nil && fi.Mode().IsRegular() && points[real] {
			out = append(out, p)
		}
	}
	return out
}

// mountPoints reads the mount points of hupd's mount namespace.
func mountPoints() map[string]bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	points := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID parent major:minor root mountpoint options …
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			points[unescapeMount(fields[4])] = true
		}
	}
	return points
}

// unescapeMount undoes mountinfo's octal escapes ("\040" for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
