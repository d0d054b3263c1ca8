package integration

import (
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// TestMultiEditReAddReleases: a program removed from hupd.toml is released
// once it ended: its cgroup is gone once hupd says it released it
// (ProgramReleased; it stayed until hupd exited), a program of the same
// name added again gets a fresh one and serves, and after two add/remove
// cycles hupd's exit finds no cgroups left behind
// (the removed program's manager, kept until exit, removed its namesake's
// cgroup and warned "cgroups left behind").
func TestMultiEditReAddReleases(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	app, extra := helloProgram("app"), helloProgram("extra", "app")
	h, path := startFleetFile(t, []string{"--watch-config=false"}, app)
	h.WaitEvent(logev.ChildReady, 1, ofProgram("app"))
	if evs := h.Events(logev.ContainmentGroups); len(evs) > 0 {
		noCgroups(t, "hupd cannot use cgroups here: "+evs[0].Str("reason"))
	}
	for round := 1; round <= 2; round++ {
		rewriteFleet(t, path, app, extra)
		if code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet"); code != 0 {
			t.Fatalf("round %d: hupd reload (extra added): exit %d, stderr %q:\n%s", round, code, errOut, out)
		}
		pid := h.WaitEvent(logev.ChildReady, round, ofProgram("extra")).Int("pid")
		if got := fleetGet(t, HostPort(h.WaitEvent(logev.Listening, round, ofProgram("extra")).Str("address"))); got != pid {
			t.Fatalf("round %d: extra answered by pid %d, want %d", round, got, pid)
		}
		st := fleetStatus(t, h)["extra"]
		if st.Status == nil || st.Status.Containment == nil || st.Status.Containment.Cgroup == "" {
			t.Fatalf("round %d: extra's status has no cgroup: %+v", round, st.Status)
		}
		dir := st.Status.Containment.Cgroup
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("round %d: extra's cgroup: %v", round, err)
		}

		rewriteFleet(t, path, app)
		if code, out, errOut := fleetCLI(t, h, "reload", "--name", "fleet"); code != 0 {
			t.Fatalf("round %d: hupd reload (extra removed): exit %d, stderr %q:\n%s", round, code, errOut, out)
		}
		h.WaitEvent(logev.ProgramReleased, round, ofProgram("extra")) // once its cgroup was closed
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("round %d: extra's cgroup %s after its removal: %v, want it gone", round, dir, err)
		}
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d, want 0", code)
	}
	if evs := h.Events(logev.CgroupsLeftBehind); len(evs) > 0 {
		t.Fatalf("cgroups left behind at exit: %v", evs)
	}
}
