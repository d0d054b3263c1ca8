package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
)

// ChildEnv is what the "env" child mode reports about itself.
type ChildEnv struct {
	PID, PPID    int
	UID, GID     int
	Groups       []int
	Cwd          string
	Env          map[string]string
	FDs          []int  // open fds
	SigIgn       string // from /proc/self/status
	SigBlk       string
	PGID         int
	ListenerKind []string // per passed fd: network and address
}

func init() {
	// env: print one JSON ChildEnv line, then block until a signal ends it.
	childModes["env"] = func([]string) {
		json.NewEncoder(os.Stdout).Encode(describeSelf())
		select {}
	}
	// http: serve HTTP with go-systemd's activation on every passed socket,
	// answering "pid N name NAME"; print "ready" and exit 0 on TERM.
	childModes["http"] = func([]string) {
		byName, err := activation.ListenersWithNames()
		if err != nil || len(byName) == 0 {
			fmt.Fprintf(os.Stderr, "child http: no listeners (%v)\n", err)
			os.Exit(3)
		}
		for name, ls := range byName {
			for _, l := range ls {
				go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, "pid %d name %s", os.Getpid(), name)
				}))
			}
		}
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		fmt.Println("ready", os.Getpid())
		<-sigs
	}
	// signals: print "ready PID", then one line "got NAME" per signal
	// received; exit 0 after TERM.
	childModes["signals"] = func([]string) { reportSignalsUntil(syscall.SIGTERM) }
	// ignore-term: ignore TERM (and INT), print "ready PID", block.
	childModes["ignore-term"] = func([]string) {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		fmt.Println("ready", os.Getpid())
		select {}
	}
	// exit CODE: exit with CODE at once.
	childModes["exit"] = func(args []string) {
		n, _ := strconv.Atoi(args[0])
		os.Exit(n)
	}
	// kill SIG: die of signal SIG (with its default action).
	childModes["kill"] = func(args []string) {
		n, _ := strconv.Atoi(args[0])
		signal.Reset()
		syscall.Kill(os.Getpid(), syscall.Signal(n))
		select {}
	}
	// sleep: print "ready PID" and block until killed.
	childModes["sleep"] = func([]string) {
		fmt.Println("ready", os.Getpid())
		select {}
	}
}

// reportSignalsUntil prints "ready PID", then "got NAME" for every signal
// it receives, and returns after until.
func reportSignalsUntil(until syscall.Signal) {
	sigs := make(chan os.Signal, 64)
	var all []os.Signal
	for s := syscall.Signal(1); s < 32; s++ {
		if s != syscall.SIGKILL && s != syscall.SIGSTOP && s != syscall.SIGURG && s != syscall.SIGCHLD {
			all = append(all, s)
		}
	}
	signal.Notify(sigs, all...)
	fmt.Println("ready", os.Getpid())
	for s := range sigs {
		fmt.Println("got", strings.TrimPrefix(unixSignalName(s.(syscall.Signal)), "SIG"))
		if s == until {
			return
		}
	}
}

func describeSelf() ChildEnv {
	ce := ChildEnv{PID: os.Getpid(), PPID: os.Getppid(), UID: os.Getuid(), GID: os.Getgid(), Env: map[string]string{}}
	ce.Groups, _ = os.Getgroups()
	ce.Cwd, _ = os.Getwd()
	ce.PGID, _ = syscall.Getpgid(0)
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		ce.Env[k] = v
	}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		// Skip the fd ReadDir itself uses and the ones the Go runtime opens
		// for itself (cgroup limits, the netpoller).
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd") ||
			strings.HasPrefix(target, "/sys/fs/cgroup/") || strings.HasPrefix(target, "anon_inode:[event") {
			continue
		}
		ce.FDs = append(ce.FDs, fd)
	}
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			ce.SigIgn = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "SigBlk:"); ok {
			ce.SigBlk = strings.TrimSpace(v)
		}
	}
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	for fd := 3; fd < 3+n; fd++ {
		f := os.NewFile(uintptr(fd), "")
		kind := "?"
		if l, err := net.FileListener(f); err == nil {
			kind = l.Addr().Network() + " " + l.Addr().String()
			l.Close()
		} else if pc, err := net.FilePacketConn(f); err == nil {
			kind = pc.LocalAddr().Network() + " " + pc.LocalAddr().String()
			pc.Close()
		}
		ce.ListenerKind = append(ce.ListenerKind, kind)
	}
	return ce
}

// readChildEnv reads the env child's JSON line from hupd's stdout.
func readChildEnv(h *Hupd) ChildEnv {
	h.t.Helper()
	var ce ChildEnv
	line := h.Stdout.NextWith(h.t, "{")
	if err := json.Unmarshal([]byte(line), &ce); err != nil {
		h.t.Fatalf("child env line %q: %v", line, err)
	}
	return ce
}
