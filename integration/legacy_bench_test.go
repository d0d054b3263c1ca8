package integration

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hupd/hupd/legacy"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// What bind redirection costs the program (README "Performance"):
//
//	go test -run '^$' -bench 'Trap|Bind' -count 5 ./integration/
//
// BenchmarkSyscall{Plain,Trapped}: one getppid(2) in a program started
// without and with the trap filter (every syscall runs the filter; only
// bind and listen go to hupd). BenchmarkBind{Plain,Continued,Redirected}:
// socket + bind + close, without the filter (port 0), with it for an
// address hupd does not hold (the call continues), and for a held address
// (hupd installs its socket). Each starts one child that runs b.N
// iterations and reports its own time, so process start is not counted.
func BenchmarkSyscallPlain(b *testing.B)   { benchLegacyChild(b, false, "syscall", false) }
func BenchmarkSyscallTrapped(b *testing.B) { benchLegacyChild(b, true, "syscall", false) }
func BenchmarkBindPlain(b *testing.B)      { benchLegacyChild(b, false, "bind", false) }
func BenchmarkBindContinued(b *testing.B)  { benchLegacyChild(b, true, "bind", false) }
func BenchmarkBindRedirected(b *testing.B) { benchLegacyChild(b, true, "bind", true) }

func init() {
	// legacy-loop OP N PORT: N times OP (syscall: getppid; bind: socket,
	// bind 127.0.0.1:PORT, close), then print the time taken in ns.
	childModes["legacy-loop"] = func(args []string) {
		n, _ := strconv.Atoi(args[1])
		port, _ := strconv.Atoi(args[2])
		t0 := time.Now()
		for range n {
			if args[0] == "syscall" {
				unix.Getppid()
				continue
			}
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				fmt.Println("socket:", err)
				os.Exit(1)
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				fmt.Println("bind:", err)
				os.Exit(1)
			}
			unix.Close(fd)
		}
		fmt.Println(time.Since(t0).Nanoseconds())
	}
}

func benchLegacyChild(b *testing.B, trap bool, op string, held bool) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	port := 0
	if held {
		port = l.Addr().(*net.TCPAddr).Port
	}
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	c := &socketact.Command{Shim: hupdBin, Path: selfBin, Args: []string{selfBin, op, strconv.Itoa(b.N), strconv.Itoa(port)},
		Env: []string{envChild + "=legacy-loop"}, UID: -1, GID: -1, Stdout: w, Trap: trap}
	b.ResetTimer()
	p, wait, err := c.Start()
	w.Close()
	if err != nil {
		b.Fatal(err)
	}
	notify, err := wait()
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan struct{})
	if notify != nil {
		h, err := legacy.Describe(f)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			legacy.NewServer(notify, []legacy.Socket{h}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil).Serve()
			close(served)
		}()
	} else {
		close(served)
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	p.Wait()
	<-served
	b.StopTimer()
	ns, perr := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil || perr != nil {
		b.Fatalf("child said %q: %v", line, err)
	}
	b.ReportMetric(float64(ns)/float64(b.N), "ns/call")
}
