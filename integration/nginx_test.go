package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// nginxExample copies examples/nginx with config (signal.toml or
// swap.toml) into a temporary repository root and returns that root and
// the unix socket the copy serves on.
//
// The one adjustment: the example serves on 127.0.0.1:8080, and nginx must
// find in its own nginx.conf the address of the socket it inherits, before
// hupd binds it, so hupd's port 0 cannot work with nginx. The copy serves
// on a unix socket in a directory of the test's own instead, in hupd.toml
// and nginx.conf alike.
func nginxExample(t *testing.T, config string) (root, sock string) {
	t.Helper()
	needTool(t, "/usr/sbin/nginx") // the examples name it: a normal user's PATH lacks /usr/sbin
	sock = filepath.Join(sockDir(t), "http.sock")
	root = copyExample(t, "nginx", []string{config, "nginx.conf", "tmp/.gitignore"}, map[string][][2]string{
		config:       {{`address = "tcp://127.0.0.1:8080"`, `address = "unix://` + sock + `"`}},
		"nginx.conf": {{"listen 127.0.0.1:8080;", "listen unix:" + sock + ";"}},
	})
	return root, sock
}

// TestNginxSwapInheritsSockets: examples/nginx/swap.toml. Whole nginx
// masters (Debian's nginx, run with "daemon off") swap blue/green on
// hupd's socket, which each one takes from NGINX="3;" (handoff nginx)
// instead of binding it; the old master leaves on QUIT, nginx's graceful
// stop. A client making a new connection per request throughout three
// swaps sees no failure, and the socket file outlives every master (nginx
// does not unlink an inherited socket).
func TestNginxSwapInheritsSockets(t *testing.T) {
	t.Parallel()
	root, sock := nginxExample(t, "swap.toml")
	h := StartHupdIn(t, root, "examples/nginx/swap.toml")
	h.WaitEvent(logev.ChildReady, 1, nil)

	n, workers := swapsUnderLoad(t, h, "unix", sock, 3, func(body string) bool { return strings.HasPrefix(body, "config v1, nginx worker ") })
	if len(workers) < 2 {
		t.Fatalf("answered by %d nginx workers across three swaps, want several", len(workers))
	}
	t.Logf("%d requests across three swaps, answered by %d nginx workers", n, len(workers))
	if n := strings.Count(h.Stderr(), `using inherited sockets from "3;"`); n != 4 {
		t.Fatalf("%d nginx masters said they use the inherited socket, want 4:\n%s", n, h.Stderr())
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("socket file after three swaps: %v", err)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket file after hupd's exit: %v", err)
	}
}

// TestNginxSignalWithCheck: examples/nginx/signal.toml. nginx reloads in
// place (strategy signal: HUP to its master) after `nginx -t` passed as
// the check command, on `hupd reload` and when the watched nginx.conf is
// saved; an edit is picked up, and a broken edit is refused with nginx's
// own error as the reason while the running configuration keeps serving.
func TestNginxSignalWithCheck(t *testing.T) {
	t.Parallel()
	root, sock := nginxExample(t, "signal.toml")
	conf := filepath.Join(root, "examples", "nginx", "nginx.conf")
	h := StartHupdIn(t, root, "examples/nginx/signal.toml")
	h.WaitEvent(logev.ChildReady, 1, nil)
	get := func() string { return fetch(t, "unix", sock, "/") }
	version := func(body string) string {
		v, ok := strings.CutPrefix(body, "config ")
		if !ok || !strings.Contains(v, ", nginx worker ") {
			t.Fatalf("nginx answered %q, want a configuration version and a worker", body)
		}
		return v[:strings.IndexByte(v, ',')]
	}
	if v := version(get()); v != "v1" {
		t.Fatalf("nginx serves %s, want v1", v)
	}

	// hupd reload: the check passes, HUP goes to the master.
	if out, err := hupdReload(h); err != nil || !strings.HasPrefix(out, "reload ok (signal)") {
		t.Fatalf("reload: %v: %s", err, out)
	}

	// Saving nginx.conf: the watch runs the same reload.
	editExample(t, conf, "config v1", "config v2")
	if e := h.WaitEvent(logev.ReloadDone, 2, nil); e.Str("strategy") != "signal" {
		t.Fatalf("%v: want a signal reload", e)
	}
	if e := h.WaitEvent(logev.ReloadStarted, 2, nil); !strings.HasPrefix(e.Str("cause"), "changed: ") {
		t.Fatalf("%v: want the reload caused by the edit", e)
	}
	// The master starts new workers and asks the old ones to finish: ask
	// until a new one answers; until then only an old one may.
	for v := version(get()); v != "v2"; v = version(get()) {
		if v != "v1" {
			t.Fatalf("after the reload nginx serves %s", v)
		}
	}

	// A broken edit: the watch's reload fails its check, and so does
	// hupd reload, with nginx's own error. nginx names the file by the
	// prefix (-p) and name (-c) it was given.
	nginxErr := `unknown directive "retrun" in examples/nginx/nginx.conf:`
	editExample(t, conf, "return 200", "retrun 200")
	if e := h.WaitEvent(logev.ReloadFailed, 1, nil); !strings.Contains(e.Str("reason"), "check failed") || !strings.Contains(e.Str("reason"), nginxErr) {
		t.Fatalf("%v: want the watch's reload refused with nginx's error", e)
	}
	out, err := hupdReload(h)
	if err == nil || !strings.Contains(out, "check failed") || !strings.Contains(out, nginxErr) {
		t.Fatalf("broken config: %v: %s; want the reload refused with nginx's error", err, out)
	}
	// An old worker that has not left yet may still answer v1.
	if v := version(get()); v != "v2" && v != "v1" {
		t.Fatalf("after the refused reload nginx serves %s, want the configuration in force", v)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exited %d", code)
	}
	// Counted once hupd is gone, when the test has read its whole log
	// (nginx serving v2 proves the second HUP was sent, not that its line
	// has been read).
	if n := len(h.Events(logev.ReloadSignalSent)); n != 2 {
		t.Fatalf("HUP sent %d times, want twice (the broken config never reaches nginx)", n)
	}
}
