// Package cgtest finds a cgroup v2 mount that tests may create groups in.
// It is for tests only.
package cgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Mount returns a cgroup2 mount where this process may create a group (a
// hybrid host has one at /sys/fs/cgroup/unified), or skips t saying why
// (fails it when CI is set: CI runs where cgroups can be had, and a skipped
// cgroup test would pass for one that ran).
func Mount(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Skip(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 || g[0] != "cgroup2" {
			continue
		}
		probe := filepath.Join(f[4], fmt.Sprintf("hupd-cgtest-%d", os.Getpid()))
		if err := os.Mkdir(probe, 0o755); err != nil {
			skip(t, fmt.Sprintf("cgroup2 at %s not writable: %v", f[4], err))
		}
		os.Remove(probe)
		return f[4]
	}
	skip(t, "no cgroup2 mount")
	return ""
}

func skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why + " (CI is set: the cgroup path must be tested)")
	}
	t.Skip(why)
}

// Group makes a cgroup named name-PID under Mount, killed and removed when
// t ends, or skips t.
func Group(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(Mount(t), fmt.Sprintf("%s-%d", name, os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create %s: %v", dir, err)
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		os.Remove(dir)
	})
	return dir
}
