package integration

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
)

// TestHelperStraySignals: a helper hupd starts for a reload (its check, a
// readiness command) is not the service, but signals meant for the service
// reach it: systemctl kill -s HUP sends to every process of the unit, and
// hupd starts the reload's check in answer to the HUP while systemd is
// still going through the unit's processes (found under a real systemd:
// "check failed: /usr/bin/test: killed by signal HUP", TestSystemdService).
// A helper starts with the reload signals ignored: this check sends each
// to itself and passes only if it is still alive afterwards; a readiness
// command does the same. TERM keeps its default for what a helper runs: the
// script starts a process and stops it with TERM (with TERM ignored too,
// as at first, its wait hung and every reload failed at the timeout; found
// by review).
func TestHelperStraySignals(t *testing.T) {
	script := filepath.Join(t.TempDir(), "survive")
	src := "#!/bin/sh\nfor s in HUP USR1 USR2; do kill -s $s $$; done\n" +
		"sleep 60 & p=$!\nkill -TERM $p\nwait $p\ntest $? -eq 143\n"
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "exec:" + script,
		"--ready-timeout", "10s", "--check", script, "--"}, childCmd("http")...)...)
	h.WaitEvent(logev.ChildReady, 1, nil)
	for i := 1; i <= 3; i++ {
		h.Signal(syscall.SIGHUP)
		if e := h.WaitEvent(logev.ReloadDone, i, nil); e.Int("pid") != h.ChildPID(i+1) {
			t.Fatalf("reload %d: %v", i, e)
		}
	}
	if failed := h.Events(logev.ReloadFailed); len(failed) != 0 {
		t.Fatalf("failed reloads: %v", failed)
	}
	h.Stop()
}

// TestCheckStraySignalRetried: a signal meant for the service can also
// reach a check in the instant after hupd starts it, before it could
// ignore anything. hupd never sends a check such a signal, so a check it
// killed is run again: this one (python3, HUP back to its default action)
// dies of HUP the first time it runs, and the reload still succeeds.
func TestCheckStraySignalRetried(t *testing.T) {
	python := needTool(t, "python3")
	dir := t.TempDir()
	script := filepath.Join(dir, "check.py")
	marker := filepath.Join(dir, "ran")
	src := "import os, signal, sys\nif not os.path.exists(sys.argv[1]):\n    open(sys.argv[1], 'w').close()\n" +
		"    signal.signal(signal.SIGHUP, signal.SIG_DFL)\n    os.kill(os.getpid(), signal.SIGHUP)\n"
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "delay:10ms",
		"--check", python + " " + script + " " + marker, "--"}, childCmd("http")...)...)
	h.WaitEvent(logev.ChildReady, 1, nil)
	h.Signal(syscall.SIGHUP)
	e := h.WaitEvent(logev.CheckStraySignal, 1, nil)
	if e.Str("signal") != "HUP" {
		t.Errorf("%v: want signal HUP", e)
	}
	if e := h.WaitEvent(logev.ReloadDone, 1, nil); e.Int("pid") != h.ChildPID(2) {
		t.Fatalf("reload: %v", e)
	}
	if n := len(h.Events(logev.CheckStarted)); n != 2 {
		t.Errorf("the check started %d times, want 2", n)
	}
	h.Stop()
}

// TestReloadStartStraySignal: a signal meant for the whole service
// (systemctl kill -s HUP) also reaches the generation hupd starts for the
// reload that signal began, and a program dies of HUP until it has set up
// its handler. hupd never sends a starting generation such a signal, so
// the reload starts another instead of failing: this program kills itself
// with HUP once, as it starts (while a file exists).
func TestReloadStartStraySignal(t *testing.T) {
	dir := t.TempDir()
	arm := filepath.Join(dir, "arm")
	script := filepath.Join(dir, "prog")
	src := "#!/bin/sh\nif [ -e " + arm + " ]; then rm -f " + arm + "; kill -s HUP $$; fi\nexec \"$@\"\n"
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	h := StartHupd(t, append([]string{"run", "--listen", "http=tcp://127.0.0.1:0", "--ready", "delay:50ms", "--", script},
		childCmd("http")...)...)
	h.WaitEvent(logev.ChildReady, 1, nil)
	if err := os.WriteFile(arm, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.Signal(syscall.SIGHUP)
	if e := h.WaitEvent(logev.ReloadStartStraySignal, 1, nil); e.Int("gen") != 2 || e.Str("signal") != "HUP" {
		t.Errorf("%v: want generation 2, signal HUP", e)
	}
	if e := h.WaitEvent(logev.ReloadDone, 1, nil); e.Int("pid") != h.ChildPID(3) {
		t.Fatalf("reload: %v; want generation 3 serving", e)
	}
	if failed := h.Events(logev.ReloadFailed); len(failed) != 0 {
		t.Fatalf("failed reloads: %v", failed)
	}
	h.Stop()
}
