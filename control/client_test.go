package control

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hupd/hupd/supervisor"
)

func TestCallNotRunning(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	stale := filepath.Join(dir, "stale.sock")
	staleSocket(t, stale)
	for path, errno := range map[string]error{missing: syscall.ENOENT, stale: syscall.ECONNREFUSED} {
		_, err := Call(ctx, path, Request{Cmd: CmdPing})
		if want := "hupd not running? no control socket at " + path; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Call(%s): %v, want %q", path, err, want)
		}
		if !errors.Is(err, errno) {
			t.Errorf("Call(%s): %v, want it to wrap %v", path, err, errno)
		}
	}
	// A regular file is not a socket either; the error names it.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Call(ctx, file, Request{Cmd: CmdPing}); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("Call(regular file): %v", err)
	}
}

func TestCallRejectsForeignReply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for _, answer := range []string{`{"v":2,"ok":true}` + "\n", "garbage\n", ""} {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, answer)
			c.Close()
		}
	}()
	ctx := testCtx(t)
	for _, want := range []string{"speaks protocol version 2", "malformed reply", "closed without a reply"} {
		if _, err := Call(ctx, path, Request{Cmd: CmdPing}); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("Call: %v, want %q naming the path", err, want)
		}
	}
}

// TestUntrustedIsOneError: a server refused for its user is both
// control.ErrUntrusted and supervisor.ErrUntrusted (which refuses
// directories), so one errors.Is catches every refusal of trust.
func TestUntrustedIsOneError(t *testing.T) {
	err := fmt.Errorf("call: %w", &untrustedError{msg: "served by uid 1000"})
	if !errors.Is(err, ErrUntrusted) || !errors.Is(err, supervisor.ErrUntrusted) {
		t.Fatalf("%v: want ErrUntrusted of control and of supervisor", err)
	}
	if errors.Is(err, os.ErrPermission) {
		t.Fatalf("%v is a permission error", err)
	}
}
