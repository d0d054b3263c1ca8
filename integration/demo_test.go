package integration

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the README's first command the way a new user does: hupd
// demo prints where it listens and what to try; the demo server answers;
// saving its config swaps it for a new process that has read the new
// content, so does a reload through the control socket, and TERM stops
// everything with exit 0.
func TestDemo(t *testing.T) {
	h := StartHupdCmd(t, exec.Command(hupdBin, "demo", "--listen", "127.0.0.1:0"))
	var addr, config string
	reHolds := regexp.MustCompile(`holds (127\.0\.0\.1:\d+) `)
	reConfig := regexp.MustCompile(`echo 'greeting = hi' > (\S+)`)
	for addr == "" || config == "" {
		line := h.Stdout.Next(t)
		if m := reHolds.FindStringSubmatch(line); m != nil {
			addr = m[1]
		}
		if m := reConfig.FindStringSubmatch(line); m != nil {
			config = m[1]
		}
	}
	body := get(t, "http://"+addr+"/")
	if !strings.Contains(body, "config greeting = hello from the hupd demo") {
		t.Fatalf("demo answered %q", body)
	}
	// Saved: the watcher swaps. The old server answers until the new one
	// is ready (and may accept a connection or two more before it has
	// closed its listener): ask until the new one answers.
	if err := os.WriteFile(config, []byte("greeting = hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitGreeting(t, addr, "hi", "hello from the hupd demo")
	if err := os.WriteFile(config, []byte("greeting = again\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hupdBin, "reload", "--name", "demo")
	cmd.Env = h.Cmd.Env // the same private runtime directory
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "reload ok (swap)") {
		t.Fatalf("hupd reload: %v: %s", err, out)
	}
	waitGreeting(t, addr, "again", "hi")
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd demo exited %d, want 0", code)
	}
}

// waitGreeting asks the demo at addr until it answers with greeting; until
// then it must answer with the previous one.
func waitGreeting(t *testing.T, addr, greeting, previous string) {
	t.Helper()
	start := time.Now()
	for body := get(t, "http://"+addr+"/"); !strings.Contains(body, "config greeting = "+greeting); body = get(t, "http://"+addr+"/") {
		if !strings.Contains(body, "config greeting = "+previous) || time.Since(start) > deadline {
			t.Fatalf("waiting for greeting %q the demo answered %q", greeting, body)
		}
	}
}
