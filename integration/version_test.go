package integration

import (
	"debug/buildinfo"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestVersion: "hupd version" of the binary TestMain built reports what
// the Go toolchain recorded in it (read back from the file, as go version
// -m does): the module version, and the VCS revision, its time and whether
// the checkout was modified when the build recorded them, which it does
// from a git checkout (TestMain builds with -buildvcs=auto; a git worktree
// records nothing, as Go finds no .git directory there). Then the revision
// is the checkout's HEAD.
func TestVersion(t *testing.T) {
	bi, err := buildinfo.ReadFile(hupdBin)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, s := range bi.Settings {
		want[s.Key] = s.Value
	}
	r := oneShot(t, t.TempDir(), nil, "version", "--json")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("hupd version --json: exit %d, stderr %q", r.code, r.stderr)
	}
	var got struct {
		Version, Module, Revision, Time, Go string
		Modified                            bool
	}
	if err := json.Unmarshal([]byte(strings.Replace(r.stdout, `"module_version"`, `"module"`, 1)), &got); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if got.Module != bi.Main.Version || got.Go != bi.GoVersion || got.Revision != want["vcs.revision"] ||
		got.Time != want["vcs.time"] || got.Modified != (want["vcs.modified"] == "true") {
		t.Errorf("hupd version --json says\n%s\nthe build info: main %q, go %q, settings %q", r.stdout, bi.Main.Version, bi.GoVersion, want)
	}
	line := oneShot(t, t.TempDir(), nil, "version")
	fields := strings.Fields(line.stdout)
	if line.code != 0 || strings.Count(line.stdout, "\n") != 1 || len(fields) < 2 || fields[0] != "hupd" || fields[1] != got.Version {
		t.Fatalf("hupd version: exit %d, %q; want one line \"hupd %s …\"", line.code, line.stdout, got.Version)
	}
	if got.Revision == "" {
		if len(fields) != 2 {
			t.Errorf("hupd version: %q; without VCS information, want only the version", line.stdout)
		}
		t.Logf("the build recorded no VCS information (%q): the revision is not checked against git", line.stdout)
		return
	}
	rev := got.Revision[:12]
	if got.Modified {
		rev += "+modified"
	}
	if len(fields) != 4 || fields[2] != rev || fields[3] != got.Time {
		t.Errorf("hupd version: %q, want \"hupd %s %s %s\"", line.stdout, got.Version, rev, got.Time)
	}
	head, err := exec.Command("git", "-C", "..", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	if h := strings.TrimSpace(string(head)); h != got.Revision {
		t.Errorf("revision %s, but the checkout's HEAD is %s", got.Revision, h)
	}
}
