package integration

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// initAllocLimit is the most a package of hupd's own may allocate while
// it initialises (GODEBUG=inittrace=1). Every hupd process pays it at
// start, `hupd status` and the other client commands included: tables,
// compiled expressions and the like are built on first use instead.
const initAllocLimit = 8 << 10

// TestInitAllocations: no package of hupd's own allocates more than
// initAllocLimit bytes in its init, and what the module's packages
// allocate in all stays under 32 KiB (config's compiled expressions took
// 41 KB at every start before they were compiled on first use). hupd's
// own packages are those of its module, the runtime's report of each
// init read from hupd --version's standard error.
func TestInitAllocations(t *testing.T) {
	cmd := exec.Command(hupdBin, "--version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hupd --version: %v\n%s", err, out)
	}
	total, seen := 0, 0
	for line := range strings.Lines(string(out)) {
		// init github.com/hupd/hupd/config @1.5 ms, 0.02 ms clock, 1496 bytes, 17 allocs
		f := strings.Fields(line)
		if len(f) < 11 || f[0] != "init" || !strings.HasPrefix(f[1], "github.com/hupd/hupd") || f[8] != "bytes," {
			continue
		}
		n, err := strconv.Atoi(f[7])
		if err != nil {
			t.Fatalf("inittrace line %q: %v", line, err)
		}
		seen++
		total += n
		t.Logf("%s: %d bytes", f[1], n)
		if n > initAllocLimit {
			t.Errorf("package %s allocates %d bytes in its init; want at most %d (build it on first use)", f[1], n, initAllocLimit)
		}
	}
	if seen == 0 {
		t.Fatalf("no init of hupd's own packages in hupd --version's inittrace:\n%s", out)
	}
	if total > 32<<10 {
		t.Errorf("hupd's packages allocate %d bytes in their inits; want under 32 KiB", total)
	}
}
