package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/internal/logev"
)

// upgradeArgv is the command line the supervisor under test says hupd was
// started with: its flags go to the new binary's check.
var upgradeArgv = []string{"hupd", "run", "--listen", "tcp://127.0.0.1:0"}

// upgradeNow asks for an in-place upgrade to binary and returns its error.
func (h *supervisorUnderTest) upgradeNow(binary string) error {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return h.sup.Upgrade(ctx, binary)
}

// takeUpgradeAtExec reads the state an upgrade is about to hand over as
// the new image would (TakeUpgrade), from a duplicate of the memfd it left
// open across the exec: call it where the exec runs. It also reports
// whether the memfd and each of fds are open across the exec (TakeUpgrade
// marks them close-on-exec again, as the new image does).
func takeUpgradeAtExec(t *testing.T, fds ...int) (*Upgrade, bool) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.HasPrefix(link, "/memfd:hupd-upgrade") {
			continue
		}
		fd, _ := strconv.Atoi(e.Name())
		open := !cloexec(t, fd)
		for _, f := range fds {
			open = open && !cloexec(t, f)
		}
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(dup)
		os.Setenv(EnvUpgrade, strconv.Itoa(dup)) // TakeUpgrade removes it
		st, err := TakeUpgrade([]string{os.Args[0]})
		if err != nil || st == nil {
			t.Fatalf("TakeUpgrade: %v, %v", st, err)
		}
		if _, ok := os.LookupEnv(EnvUpgrade); ok {
			t.Fatal("TakeUpgrade left its variable in the environment")
		}
		return st, open
	}
	t.Fatal("no upgrade state open at the exec")
	return nil, false
}

// cloexec reports whether fd is close-on-exec.
func cloexec(t *testing.T, fd int) bool {
	t.Helper()
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	return flags&unix.FD_CLOEXEC != 0
}

// TestUpgradeChecksTheNewBinaryAndHandsEverythingOver: the new binary is
// asked for its protocol and checks hupd's flags; at the exec, the state
// names every generation and socket, whose fds stay open across it; when
// the exec fails, hupd goes on as it was (fds close-on-exec again).
func TestUpgradeChecksTheNewBinaryAndHandsEverythingOver(t *testing.T) {
	t.Setenv(upgradeHelperEnv, "compatible")
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Argv = upgradeArgv })
	var (
		state      *Upgrade
		openAtExec bool
	)
	h.spawner.beforeExec = func() {
		sock := fdNum(h.sockets[0].File)
		state, openAtExec = takeUpgradeAtExec(t, sock)
		// TakeUpgrade marked it close-on-exec: as it was at the exec
		// again, for the failed exec to undo.
		if _, err := unix.FcntlInt(uintptr(sock), unix.F_SETFD, 0); err != nil {
			t.Error(err)
		}
	}
	h.sup.SetUpgradeConfig(func() []byte { return []byte("[process]\ncommand = [\"in-force\"]\n") })
	h.run()
	pid := h.ready(1)
	guarded := false
	bin := testBinary(t)
	h.sup.SetUpgradeGuard(func() error { guarded = true; return nil })
	if err := h.upgradeNow(bin); !errors.Is(err, errScriptedExec) {
		t.Fatalf("upgrade: %v, want the scripted exec failure", err)
	}
	helpers := h.spawner.recorded("helper")
	if len(helpers) != 2 || strings.Join(helpers[0].args, " ") != bin+" upgrade-protocol" ||
		strings.Join(helpers[1].args, " ") != bin+" check --listen tcp://127.0.0.1:0" {
		t.Fatalf("checks run: %+v", helpers)
	}
	if !guarded {
		t.Fatal("the upgrade guard was not asked")
	}
	if state == nil || len(state.Gens) != 1 || state.Gens[0].PID != pid || state.Gens[0].State != StateReady ||
		len(state.Listeners) != 1 || state.Upgrades != 1 || state.NextGen != 1 || !openAtExec ||
		string(state.Config) != "[process]\ncommand = [\"in-force\"]\n" {
		t.Fatalf("state at the exec: %+v (fds open across it: %v)", state, openAtExec)
	}
	if gen, spid := state.Serving(); gen != 1 || spid != pid || len(state.Sockets()) != 1 || state.RolledBack() {
		t.Fatalf("state serving %d (pid %d), %d sockets", gen, spid, len(state.Sockets()))
	}
	if !cloexec(t, state.Listeners[0].FD) {
		t.Fatal("the socket stays open across exec after the upgrade failed")
	}
	if res := h.reload(ActionReload); !res.OK {
		t.Fatalf("reload after the failed upgrade: %+v", res)
	}
}

// TestUpgradeConfig: the content of hupd.toml in force that a state
// carries is read without taking the state (TakeUpgrade reads it after,
// the same); a state without it, or no upgrade, gives none.
func TestUpgradeConfig(t *testing.T) {
	memState := func(st *Upgrade) int {
		t.Helper()
		data, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.MemfdCreate("hupd-upgrade-test", unix.MFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if _, err := unix.Write(fd, data); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	in := []byte("[[program]]\nname = \"app\"\n\x00\xff") // bytes, whatever they are
	t.Setenv(EnvUpgrade, "")
	os.Unsetenv(EnvUpgrade)
	if data, ok := UpgradeConfig(); ok || data != nil {
		t.Fatalf("no upgrade: %q, %v", data, ok)
	}
	os.Setenv(EnvUpgrade, strconv.Itoa(memState(&Upgrade{Version: upgradeVersion, Config: in})))
	data, ok := UpgradeConfig()
	if !ok || string(data) != string(in) {
		t.Fatalf("UpgradeConfig: %q, %v; want %q", data, ok, in)
	}
	if _, ok := os.LookupEnv(EnvUpgrade); !ok {
		t.Fatal("UpgradeConfig took the state")
	}
	st, err := TakeUpgrade([]string{os.Args[0]})
	if err != nil || st == nil || string(st.Config) != string(in) {
		t.Fatalf("TakeUpgrade after it: %+v, %v", st, err)
	}
	os.Setenv(EnvUpgrade, strconv.Itoa(memState(&Upgrade{Version: upgradeVersion})))
	if data, ok := UpgradeConfig(); ok || data != nil {
		t.Fatalf("a state without the content (an older binary's): %q, %v", data, ok)
	}
	os.Setenv(EnvUpgrade, strconv.Itoa(memState(&Upgrade{Version: upgradeVersion + 1, Config: in})))
	if data, ok := UpgradeConfig(); ok || data != nil {
		t.Fatalf("a state of another version: %q, %v", data, ok)
	}
}

// TestUpgradeRefusals: what an upgrade refuses before its exec, hupd going
// on as it was.
func TestUpgradeRefusals(t *testing.T) {
	bin := testBinary(t)
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, answer, binary, want string
		guard, execGuard           error
	}{
		{"incompatible", "incompatible", bin, "not compatible", nil, nil},
		{"refuses the configuration", "refuse", bin, "refuses the configuration: check --listen", nil, nil},
		{"relative path", "compatible", "hupd", "not an absolute path", nil, nil},
		{"script", "compatible", script, "not an ELF executable", nil, nil},
		{"missing", "compatible", "/nonexistent/hupd", "no such file", nil, nil},
		{"guard", "compatible", bin, "guard says no", errors.New("guard says no"), nil},
		{"exec guard", "compatible", bin, "a reload is being answered", nil, errors.New("a reload is being answered")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(upgradeHelperEnv, tc.answer)
			h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Argv = upgradeArgv }).run()
			h.ready(1)
			if tc.guard != nil {
				h.sup.SetUpgradeGuard(func() error { return tc.guard })
			}
			if tc.execGuard != nil {
				h.sup.SetExecGuard(func() error { return tc.execGuard })
			}
			err := h.upgradeNow(tc.binary)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("upgrade: %v, want %q", err, tc.want)
			}
			if n := len(h.spawner.recorded("exec")); n != 0 {
				t.Fatalf("exec asked for %d times", n)
			}
			h.logged(logev.UpgradeFailed, 0, 1)
			keepsServing(t, h, 1)
		})
	}
}

// TestUpgradeWaitsForASteadyState: an upgrade is refused while a reload
// runs or a restart is pending.
func TestUpgradeWaitsForASteadyState(t *testing.T) {
	t.Setenv(upgradeHelperEnv, "compatible")
	bin := testBinary(t)
	h := newSupervisorUnderTest(t, []string{"ready", "extend"}, nil).run()
	h.ready(1)
	h.reloadAsync(ActionReload, "test")
	h.logged(logev.ReadyTimeoutExtended, 2, 1)
	if err := h.upgradeNow(bin); err == nil || !strings.Contains(err.Error(), "a reload is in progress") {
		t.Fatalf("upgrade during a reload: %v", err)
	}
}

// TestUpgradeWhoseExecFails: the exec itself runs and fails (the checked
// file lost its execute permission after the checks); every generation
// stays hupd's, and the next upgrade can run.
func TestUpgradeWhoseExecFails(t *testing.T) {
	t.Setenv(upgradeHelperEnv, "compatible")
	bin := filepath.Join(t.TempDir(), "hupd-new")
	copyFile(t, testBinary(t), bin)
	h := newSupervisorUnderTest(t, []string{"ready"}, nil)
	h.spawner.execErr = nil // the real exec runs
	h.run()
	h.ready(1)
	h.sup.SetUpgradeGuard(func() error { return os.Chmod(bin, 0o644) })
	err := h.upgradeNow(bin)
	if !errors.Is(err, unix.EACCES) {
		t.Fatalf("upgrade: %v, want EACCES from the exec", err)
	}
	if res := h.reload(ActionReload); !res.OK {
		t.Fatalf("reload after the failed exec: %+v", res)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeCheckStraySignalRetried: a check of the new binary killed by
// a stray USR2 (the signal that asked for the upgrade, sent to the whole
// service) is run again, and the upgrade goes on to its exec.
func TestUpgradeCheckStraySignalRetried(t *testing.T) {
	t.Setenv(upgradeHelperEnv, "usr2-once:"+filepath.Join(t.TempDir(), "killed"))
	h := newSupervisorUnderTest(t, []string{"ready"}, func(o *Options) { o.Argv = upgradeArgv }).run()
	h.ready(1)
	if err := h.upgradeNow(testBinary(t)); !errors.Is(err, errScriptedExec) {
		t.Fatalf("upgrade: %v, want the scripted exec failure (the checks passed)", err)
	}
	h.logged(logev.CheckStraySignal, 0, 1)
	if n := len(h.spawner.recorded("helper")); n != 3 {
		t.Fatalf("%d checks run, want 3 (upgrade-protocol twice, then check)", n)
	}
}
