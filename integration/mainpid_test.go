package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
)

func init() {
	// mainpid FIFO: start a new main process (mode mainpid-new, same
	// process group) that announces itself with MAINPID= and READY=1, then
	// exit 0 once the test writes to FIFO.
	childModes["mainpid"] = func(args []string) {
		next := exec.Command(selfPath(), args...)
		next.Env = append(os.Environ(), envChild+"=mainpid-new")
		next.Stdout, next.Stderr = os.Stdout, os.Stderr
		if err := next.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		f, err := os.Open(args[0]) // blocks until the test opens it to write
		if err != nil {
			os.Exit(4)
		}
		f.Close()
	}
	// mainpid-quick: start a new main process (mainpid-wait), announce it
	// with MAINPID= and READY=1 from here, and exit at once.
	childModes["mainpid-quick"] = func([]string) {
		next := exec.Command(selfPath())
		next.Env = append(os.Environ(), envChild+"=mainpid-wait")
		next.Stdout, next.Stderr = os.Stdout, os.Stderr
		if err := next.Start(); err != nil {
			os.Exit(3)
		}
		if _, err := socketact.Notify(fmt.Sprintf("MAINPID=%d\nREADY=1", next.Process.Pid)); err != nil {
			os.Exit(5)
		}
	}
	childModes["mainpid-wait"] = func([]string) { reportSignalsUntil(syscall.SIGTERM) }
	childModes["mainpid-new"] = func([]string) {
		if _, err := socketact.Notify(fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid())); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(5)
		}
		reportSignalsUntil(syscall.SIGTERM)
	}
}

func selfPath() string {
	p, _ := os.Executable()
	return p
}

// TestMainPIDFollowed: a child that hands over to a new main process
// (MAINPID=, then the original exits, as nginx does for a binary upgrade)
// keeps its generation: no restart, signals and the stop reach the new
// main process, and hupd exits with its status.
func TestMainPIDFollowed(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	h := StartHupd(t, append([]string{"run", "--ready", "notify", "--"}, childCmd("mainpid", fifo)...)...)
	orig := h.ChildPID(1)
	newMain := h.WaitEvent(logev.MainPIDChanged, 1, nil).Int("pid")
	if line := h.Stdout.NextWith(t, "ready"); line != fmt.Sprintf("ready %d", newMain) {
		t.Fatalf("new main says %q, hupd says pid %d", line, newMain)
	}
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // the original main process exits
	e := h.WaitEvent(logev.MainExitFollow, 1, nil)
	if e.Int("old_pid") != orig || e.Int("pid") != newMain {
		t.Fatalf("followed %d -> %d, want %d -> %d", e.Int("old_pid"), e.Int("pid"), orig, newMain)
	}
	h.Signal(syscall.SIGUSR1)
	if line := h.Stdout.NextWith(t, "got"); line != "got USR1" {
		t.Fatalf("new main got %q, want USR1", line)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit %d, want 0", code)
	}
	if line := h.Stdout.NextWith(t, "got"); line != "got TERM" {
		t.Fatalf("new main got %q at stop, want TERM", line)
	}
	for _, e := range h.Events(logev.ChildExited) {
		if e.Int("pid") != newMain {
			t.Errorf("child exited %v: only the new main process should end the generation", e)
		}
	}
	if n := len(h.Events(logev.RestartingChild)); n != 0 {
		t.Errorf("%d restarts", n)
	}
	if len(h.Events(logev.ChildExited)) == 0 {
		t.Error("no exit logged for the new main process")
	}
}

// TestMainPIDQuickHandover: the original process sends MAINPID= and exits
// at once. hupd must still see the datagram before the exit (it orders a
// generation's exit behind what it sent) and follow the new main process.
func TestMainPIDQuickHandover(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--ready", "notify", "--"}, childCmd("mainpid-quick")...)...)
	h.WaitEvent(logev.MainExitFollow, 1, nil)
	line := h.Stdout.NextWith(t, "ready")
	h.Signal(syscall.SIGUSR1)
	if got := h.Stdout.NextWith(t, "got"); got != "got USR1" {
		t.Fatalf("new main (%s) got %q", line, got)
	}
	if code := h.Stop(); code != 0 {
		t.Fatalf("hupd exit %d", code)
	}
	if n := len(h.Events(logev.RestartingChild)); n != 0 {
		t.Errorf("%d restarts", n)
	}
}
