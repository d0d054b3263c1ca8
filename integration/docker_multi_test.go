package integration

// The two-program container image of examples/docker/multi/Dockerfile,
// without a container engine (none runs here): the final stage's COPY and
// RUN steps (but apt-get: the test machine has Debian's nginx and
// gunicorn, the packages the image installs) are replayed in a directory
// standing for its WORKDIR, and its ENTRYPOINT and CMD run as its USER, as
// PID 1 of new PID, mount and network namespaces, as TestContainerPID1Image
// does for the root Dockerfile.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

// dmImage is what the final stage of examples/docker/multi/Dockerfile
// sets and does.
type dmImage struct {
	entrypoint, cmd, health []string
	uid                     int
	workdir                 string
	stopSignal              syscall.Signal
	copies                  [][]string // COPY SRC... DEST from the build context
	runs                    []string   // RUN shell commands, apt-get's left out
}

// dmReadDockerfile reads the final stage of path (dockerStage) and wants
// it complete for TestDockerMultiImage.
func dmReadDockerfile(t *testing.T, path string) dmImage {
	t.Helper()
	img := dockerStage(t, path)
	if !slices.Equal(img.entrypoint, []string{"/usr/local/bin/hupd"}) || len(img.cmd) == 0 || img.uid <= 0 ||
		img.stopSignal == 0 || len(img.health) == 0 || !filepath.IsAbs(img.workdir) || len(img.copies) == 0 {
		t.Fatalf("%s's final stage: %+v: want ENTRYPOINT [\"/usr/local/bin/hupd\"], a CMD, a numeric non-root USER, a STOPSIGNAL, a HEALTHCHECK, a WORKDIR and a COPY", path, img)
	}
	return img
}

// dockerStage reads what the final stage of the Dockerfile at path sets,
// continuation lines joined (also for the repository's own Dockerfile:
// contReadDockerfile).
func dockerStage(t *testing.T, path string) dmImage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var img dmImage
	var lines []string
	for l := range strings.SplitSeq(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") {
			continue
		}
		if n := len(lines); n > 0 && strings.HasSuffix(lines[n-1], "\\") {
			lines[n-1] = strings.TrimSuffix(lines[n-1], "\\") + " " + l
			continue
		}
		lines = append(lines, l)
	}
	for _, line := range lines {
		inst, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		var err error
		switch strings.ToUpper(inst) {
		case "FROM":
			img = dmImage{uid: -1}
		case "ENTRYPOINT":
			err = json.Unmarshal([]byte(rest), &img.entrypoint)
		case "CMD":
			err = json.Unmarshal([]byte(rest), &img.cmd)
		case "USER":
			u, _, _ := strings.Cut(rest, ":")
			img.uid, err = strconv.Atoi(u)
		case "WORKDIR":
			img.workdir = rest
		case "STOPSIGNAL":
			img.stopSignal = unix.SignalNum(rest)
		case "HEALTHCHECK":
			_, c, ok := strings.Cut(rest, " CMD ")
			if !ok {
				err = fmt.Errorf("no CMD")
				break
			}
			err = json.Unmarshal([]byte(c), &img.health)
		case "COPY":
			if !strings.HasPrefix(rest, "--from") {
				img.copies = append(img.copies, strings.Fields(rest))
			}
		case "RUN":
			if !strings.Contains(rest, "apt-get") {
				img.runs = append(img.runs, rest)
			}
		}
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
	}
	return img
}

// TestDockerMultiImage: the image of examples/docker/multi as its
// Dockerfile builds it. hupd, as PID 1 and as the image's user, starts the
// app, then nginx; a request through nginx reaches the app on the
// published port; every process of the container runs as the image's
// user (nginx's workers too); the HEALTHCHECK command run inside the
// container succeeds; `docker exec … hupd reload app` swaps the app alone
// (nginx's master keeps its PID); `docker stop` stops nginx, then the app,
// and hupd exits 0 with nothing left behind.
func TestDockerMultiImage(t *testing.T) {
	needTool(t, "/usr/sbin/nginx", "nginx")
	needTool(t, "/usr/bin/gunicorn", "gunicorn")
	needTool(t, "python3")
	nsenter := needTool(t, "nsenter")
	img := dmReadDockerfile(t, "../examples/docker/multi/Dockerfile")

	// The image's filesystem, as far as the example goes: WORKDIR with
	// the COPYs, then the RUN steps.
	root := t.TempDir()
	for _, d := range []string{root, filepath.Dir(root)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	work := filepath.Join(root, img.workdir)
	for _, c := range img.copies {
		dest := filepath.Join(work, c[len(c)-1])
		if err := os.MkdirAll(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, src := range c[:len(c)-1] {
			b, err := os.ReadFile(filepath.Join("..", src))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dest, filepath.Base(src)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, r := range img.runs {
		cmd := exec.Command("sh", "-ec", r)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("RUN %s: %v\n%s", r, err, out)
		}
	}
	// The container's own /tmp: the app's socket (the example's path is
	// the host's /tmp here) and hupd's control socket.
	tmp := contTmpDir(t, img.uid)
	conf := filepath.Join(work, "examples", "multi")
	for _, f := range []string{"hupd.toml", "nginx.conf"} {
		p := filepath.Join(conf, f)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "/tmp/hupd-multi-app.sock", filepath.Join(tmp, "app.sock"))
		if s == string(b) {
			t.Fatalf("%s does not name /tmp/hupd-multi-app.sock: the example changed, adjust the test", f)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"TMPDIR=" + tmp, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

	h, hupdPID, pidns := dmStart(t, work, img.uid, env, img.cmd...)
	appPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("app")).Int("pid")
	webPID := h.WaitEvent(logev.ChildReady, 1, ofProgram("web")).Int("pid")
	master := func(body string) int {
		t.Helper()
		var m, w int
		if _, err := fmt.Sscanf(body, "app master %d worker %d: hello v1\n", &m, &w); err != nil {
			t.Fatalf("through nginx: %q: %v", body, err)
		}
		return m
	}
	m1 := master(contGet(t, hupdPID, "http://127.0.0.1:8080/"))
	want := strings.Repeat(strconv.Itoa(img.uid)+"\t", 3) + strconv.Itoa(img.uid)
	// Every worker has started: ready, each master may still be starting
	// its second one (nginx's readiness waits for one of its workers,
	// gunicorn's READY=1 for none). Each says so in its output.
	h.waitFor("2 gunicorn and 2 nginx workers started", func() bool {
		out := h.stderr.String()
		return strings.Count(out, "Booting worker with pid") >= 2 && strings.Count(out, "start worker process ") >= 2
	})
	members := contMembers(t, pidns)
	if len(members) < 7 { // hupd, gunicorn's master and 2 workers, nginx's master and 2 workers
		t.Fatalf("%d processes in the container, want at least 7: %v", len(members), members)
	}
	for _, p := range members {
		if st := contStatus(t, p.host); strings.ReplaceAll(st["Uid"], " ", "\t") != want || strings.ReplaceAll(st["Gid"], " ", "\t") != want {
			t.Fatalf("process %d (%s) runs with Uid %q Gid %q, want the image's user %d", p.host, st["Name"], st["Uid"], st["Gid"], img.uid)
		}
	}

	// Inside the container: as `docker exec` (and Docker's HEALTHCHECK)
	// run a command, in its namespaces, as its user, with its environment.
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	id := strconv.Itoa(img.uid)
	inside := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, nsenter, append([]string{"--target", strconv.Itoa(hupdPID), "--mount", "--pid", "--net",
			"--setuid", id, "--setgid", id, "--wd=" + work, "--"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := inside(img.health...); err != nil {
		t.Fatalf("HEALTHCHECK %q: %v\n%s", img.health, err, out)
	}
	out, err := inside(hupdBin, "reload", "-q", "app")
	if err != nil || !strings.HasPrefix(out, fmt.Sprintf("app: reload ok (swap): gen 1 pid %d -> gen 2 pid ", appPID)) {
		t.Fatalf("hupd reload app inside the container: %v: %q", err, out)
	}
	h.WaitEvent(logev.ChildExited, 1, ofProgramGen("app", 1))
	if m2 := master(contGet(t, hupdPID, "http://127.0.0.1:8080/")); m2 == m1 {
		t.Fatalf("after the app's reload the same master %d answers", m1)
	}
	if started := h.Events(logev.ChildStarted); slices.ContainsFunc(started, func(e Event) bool {
		return ofProgram("web")(e) && e.Int("pid") != webPID
	}) {
		t.Fatalf("reloading the app started another nginx: %v", started)
	}

	// docker stop
	procKill(t, hupdPID, img.stopSignal)
	procWait(t, h, 0)
	if ended := h.Events(logev.ProgramEnded); len(ended) != 2 || ended[0].Str("program") != "web" || ended[1].Str("program") != "app" {
		t.Fatalf("programs ended in the order %v, want web then app", ended)
	}
	if left := contMembers(t, pidns); len(left) != 0 {
		t.Fatalf("processes left in the namespace after hupd exited: %v", left)
	}
}

// dmStart is contStart with hupd started in dir (the image's WORKDIR), in
// a network namespace of its own, as uid.
func dmStart(t *testing.T, dir string, uid int, env []string, args ...string) (h *Hupd, pid int, pidns string) {
	t.Helper()
	contNeed(t, true)
	entry := append([]string{"--lo", "--uid", strconv.Itoa(uid), "--", hupdBin}, withJSONLog(args)...)
	cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--net"}, childCmd("cont-entry", entry...)...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	h = StartHupdCmd(t, cmd)
	h.WaitEvent(logev.ChildStarted, 1, nil) // the exec chain has reached hupd
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", h.Cmd.Process.Pid, h.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	kids := strings.Fields(string(b))
	if len(kids) != 1 {
		t.Fatalf("unshare %d has children %v, want just hupd", h.Cmd.Process.Pid, kids)
	}
	pid, _ = strconv.Atoi(kids[0])
	if ns := procNSpid(t, pid); len(ns) != 2 || ns[1] != 1 {
		t.Fatalf("hupd (host pid %d) NSpid %v: want PID 1 in a namespace of its own", pid, ns)
	}
	if pidns, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil {
		t.Fatal(err)
	}
	return h, pid, pidns
}
