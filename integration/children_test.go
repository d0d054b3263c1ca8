package integration

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"
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
	Args         []string // the mode's arguments, as received
}

func init() {
	// env: print one JSON ChildEnv line, then block until a signal ends it.
	childModes["env"] = func(args []string) {
		ce := describeSelf()
		ce.Args = args
		json.NewEncoder(os.Stdout).Encode(ce)
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
		// Before the first answer: a test may stop hupd as soon as it has
		// one, and TERM's default action would end this child with 143.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		for name, ls := range byName {
			for _, l := range ls {
				go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, "pid %d name %s", os.Getpid(), name)
				}))
			}
		}
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
	// last-words N: print "ready PID"; on TERM print N numbered lines and
	// "end", then exit 0 at once. Its stdout pipe is grown to 1 MiB first,
	// so that up to that much is still unread when it has exited.
	childModes["last-words"] = func(args []string) {
		n, _ := strconv.Atoi(args[0])
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		unix.FcntlInt(os.Stdout.Fd(), unix.F_SETPIPE_SZ, 1<<20)
		fmt.Println("ready", os.Getpid())
		<-sigs
		w := bufio.NewWriterSize(os.Stdout, 1<<16)
		for i := range n {
			fmt.Fprintf(w, "line %d of the child's last words\n", i)
		}
		fmt.Fprintln(w, "end")
		w.Flush()
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
	// watch-serve [-tag T] [-hold-if FILE -release DIR] PATH...: read PATHs and
	// report them (see watchServe).
	childModes["watch-serve"] = watchServe
}

// WatchReport is what the watch-serve child mode prints, as one line
// "watch-serve JSON", each time it reads its files.
type WatchReport struct {
	PID  int
	Why  string   // "start", or the name of the signal that made it read again
	Tag  string   // its -tag
	Args []string // its arguments after the flags
	// Files maps each file read to its content: a PATH that is a
	// directory contributes every regular file in it (symlinks followed,
	// hidden names skipped) as PATH/NAME.
	Files   map[string]string
	Missing []string // PATHs that could not be read
	// ListenFDs and Names are LISTEN_FDS and LISTEN_FDNAMES, split.
	ListenFDs int
	Names     []string
}

// watchServe reads the files named by its arguments and prints a
// WatchReport, serves HTTP on every passed socket (answering "pid N", as
// swap-serve does) and sends READY=1. On HUP, USR1 or USR2 it says
// RELOADING=1, reads the files again, prints another report and sends
// READY=1, so that a reload by signal ends once the files are read. On
// TERM it drains as swap-serve does and exits 0. With -hold-if FILE, when
// FILE exists at start, it waits for DIR/release-PID (-release DIR)
// before READY=1. -tag T is copied into every report.
func watchServe(args []string) {
	fs := flag.NewFlagSet("watch-serve", flag.ExitOnError)
	holdIf := fs.String("hold-if", "", "when this file exists at start, hold READY=1 until -release DIR/release-PID exists")
	release := fs.String("release", "", "directory of the release-PID files")
	tag := fs.String("tag", "", "copied into every report")
	fs.Parse(args)
	pid := os.Getpid()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	names := activatedNames()
	watchReport(pid, "start", *tag, fs.Args(), names)
	srv := &swapServer{pid: pid}
	for i, name := range names {
		f := os.NewFile(uintptr(3+i), name)
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "watch-serve: fd %d: %v\n", 3+i, err)
			os.Exit(3)
		}
		srv.serve(l)
	}
	if *holdIf != "" {
		if _, err := os.Stat(*holdIf); err == nil {
			fmt.Fprintf(os.Stderr, "watch-serve pid %d: holding READY=1 until release-%d\n", pid, pid)
			swapAwaitFile(*release, "release-"+strconv.Itoa(pid))
		}
	}
	rdMustNotify("READY=1")
	for s := range sigs {
		if s == syscall.SIGTERM {
			break
		}
		rdMustNotify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", rdMonotonicUsec()))
		watchReport(pid, strings.TrimPrefix(unixSignalName(s.(syscall.Signal)), "SIG"), *tag, fs.Args(), names)
		rdMustNotify("READY=1")
	}
	srv.stopAccepting()
	srv.drain()
}

// watchReport reads paths and prints one WatchReport line.
func watchReport(pid int, why, tag string, paths, names []string) {
	r := WatchReport{PID: pid, Why: why, Tag: tag, Args: paths, Files: map[string]string{}, ListenFDs: len(names), Names: names}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			r.Missing = append(r.Missing, p)
			continue
		}
		if !fi.IsDir() {
			if b, err := os.ReadFile(p); err == nil {
				r.Files[p] = string(b)
			} else {
				r.Missing = append(r.Missing, p)
			}
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			r.Missing = append(r.Missing, p)
			continue
		}
		for _, e := range ents {
			f := filepath.Join(p, e.Name())
			if fi, err := os.Stat(f); err != nil || strings.HasPrefix(e.Name(), ".") || !fi.Mode().IsRegular() {
				continue
			}
			if b, err := os.ReadFile(f); err == nil {
				r.Files[f] = string(b)
			}
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	// One write, so that the line reaches hupd's output whole.
	os.Stdout.Write(append([]byte("watch-serve "), append(b, '\n')...))
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
