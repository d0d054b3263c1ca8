package integration

// Which file an upgrade runs (finding 6 of issue 13): the binary is
// resolved once, against the client's working directory, opened by hupd,
// checked from that open file and executed from it.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
)

var (
	upSwapperOnce sync.Once
	upSwapper     string // hupd whose "check" renames "hupd-evil" over itself
	upSwapperErr  error
)

// upgradeSwapper builds, once, a hupd of version "checked-swapper" that,
// when run as "hupd check", renames the file hupd-evil of its own
// directory over its own binary (see main.renameOnCheck).
func upgradeSwapper(t *testing.T) string {
	t.Helper()
	upSwapperOnce.Do(func() {
		upSwapper = filepath.Join(filepath.Dir(hupdBin), "hupd-swapper")
		cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-ldflags", "-X main.version=checked-swapper -X main.renameOnCheck=hupd-evil", "-o", upSwapper, "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			upSwapperErr = &buildError{upSwapper, err, string(out)}
		}
	})
	if upSwapperErr != nil {
		t.Fatal(upSwapperErr)
	}
	return upSwapper
}

// upLink hard-links src to dir/name (a link, not a copy: see
// TestUpgradeUnderLoad) and returns the path.
func upLink(t *testing.T, src, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.Link(src, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUpgradeBinaryRelative: `hupd upgrade --binary hupd-next` run from a
// directory that holds hupd-next runs that file, though hupd's own working
// directory and its PATH hold other files of that name; and a relative
// path sent to the control socket as is (which hupd used to look up
// through PATH for the check and execute against its own working
// directory: two different files) is refused.
func TestUpgradeBinaryRelative(t *testing.T) {
	t.Parallel()
	v2, failing := upgradeBins(t)
	hupdDir, pathDir, clientDir := t.TempDir(), t.TempDir(), t.TempDir()
	upLink(t, failing, hupdDir, "hupd-next")
	upLink(t, failing, pathDir, "hupd-next")
	upLink(t, v2, clientDir, "hupd-next")
	cmd := exec.Command(hupdBin, withJSONLog([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--", helloBin})...)
	cmd.Dir = hupdDir
	cmd.Env = append(os.Environ(), "PATH="+pathDir+":"+os.Getenv("PATH"))
	h := StartHupdCmd(t, cmd)
	ctl := h.WaitEvent(logev.ControlSocket, 1, nil).Str("path")
	h.WaitEvent(logev.ChildReady, 1, nil)
	child := h.ChildPID(1)

	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	rep, err := control.Call(ctx, ctl, control.Request{Cmd: control.CmdUpgrade, Binary: "hupd-next"})
	if err != nil || rep.OK || !strings.Contains(rep.Error, `binary "hupd-next": not an absolute path`) {
		t.Fatalf("upgrade request with a relative binary: %+v, %v; want it refused as not absolute", rep, err)
	}

	client := exec.Command(hupdBin, "upgrade", "--binary", "hupd-next")
	client.Dir, client.Env = clientDir, cmd.Env
	out, err := client.CombinedOutput()
	want := "upgrade ok: hupd pid " + strconv.Itoa(h.Cmd.Process.Pid) + " now runs 2.0-upgrade-test"
	if err != nil || !strings.HasPrefix(string(out), want) {
		t.Fatalf("hupd upgrade --binary hupd-next from %s: %v %q; want %q", clientDir, err, out, want)
	}
	if e := h.WaitEvent(logev.Upgraded, 1, nil); e.Int("generations") != 1 {
		t.Fatalf("%v", e)
	}
	st := statusOf(t, h)
	if pids := genPIDs(st); st["version"] != "2.0-upgrade-test" || len(pids) != 1 || pids[0] != child {
		t.Fatalf("after the upgrade: version %v generations %v; want 2.0-upgrade-test serving with %d", st["version"], pids, child)
	}
	if len(h.Events(logev.UpgradeTakeOverFailed)) > 0 {
		t.Fatalf("a binary that refuses to take over ran")
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}

// TestUpgradeBinaryReplacedAfterCheck: the file at --binary is renamed over
// by another hupd while it is being checked (the candidate, run as "hupd
// check", does it to itself). hupd executes the file it checked, not the
// one the path names by then: the version it reports afterwards is the
// checked binary's. It used to exec the path again.
func TestUpgradeBinaryReplacedAfterCheck(t *testing.T) {
	t.Parallel()
	v2, _ := upgradeBins(t)
	swapper := upgradeSwapper(t)
	dir := t.TempDir()
	next := upLink(t, swapper, dir, "hupd-next")
	upLink(t, v2, dir, "hupd-evil")
	h := StartHupd(t, "run", "--listen", "http=tcp://127.0.0.1:0", "--", helloBin)
	h.WaitEvent(logev.ChildReady, 1, nil)
	child := h.ChildPID(1)
	out, code := hupdCtl(t, h, "upgrade", "--binary", next)
	want := "upgrade ok: hupd pid " + strconv.Itoa(h.Cmd.Process.Pid) + " now runs checked-swapper"
	if code != 0 || !strings.HasPrefix(out, want) {
		t.Fatalf("hupd upgrade --binary %s: exit %d %q; want %q", next, code, out, want)
	}
	// The rename did happen: the path names the other binary now (its
	// version, then the revision when the build recorded one).
	b, err := exec.Command(next, "version").Output()
	if f := strings.Fields(string(b)); err != nil || len(f) < 2 || f[0] != "hupd" || f[1] != "2.0-upgrade-test" {
		t.Fatalf("%s version: %q %v; want the binary renamed over it", next, b, err)
	}
	st := statusOf(t, h)
	if pids := genPIDs(st); st["version"] != "checked-swapper" || len(pids) != 1 || pids[0] != child {
		t.Fatalf("after the upgrade: version %v generations %v; want checked-swapper serving with %d", st["version"], pids, child)
	}
	// Its name is hupd's, not the number of the fd it was run from.
	if comm, err := os.ReadFile("/proc/" + strconv.Itoa(h.Cmd.Process.Pid) + "/comm"); err != nil || strings.TrimSpace(string(comm)) != filepath.Base(hupdBin) {
		t.Errorf("comm after the upgrade: %q %v; want %q", comm, err, filepath.Base(hupdBin))
	}
	if bad := leftovers(t, h.Cmd.Process.Pid); len(bad) > 0 {
		t.Errorf("left open by the upgrade: %v", bad)
	}
	if out, code := hupdCtl(t, h, "reload"); code != 0 || !strings.HasPrefix(out, "reload ok (swap)") {
		t.Fatalf("reload after the upgrade: %d %s", code, out)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
}
