// Command cpuserver is the benchmark's single-threaded, CPU-bound HTTP
// server (scenario 9, instances): what --instances is for. It runs Go on
// one thread (GOMAXPROCS 1), as Python, Node or Ruby run their code, and
// spends a fixed amount of CPU on each request (-work rounds of a hash),
// so that one process saturates one core while the load generator's own
// CPU per request stays small beside it.
//
// It serves the socket hupd passes on fd 3 (LISTEN_FDS, LISTEN_PID its
// own), says READY=1 on its NOTIFY_SOCKET, answers "pid N\ninstance I\n"
// (HUPD_INSTANCE) and drains on SIGTERM as examples/hello does: stop
// accepting (the socket lives on in hupd and the other instances), answer
// each further request with "Connection: close", close the keep-alive
// connections still idle after a second, exit once none is left.
package main

import (
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hupd/hupd/socketact"
)

func main() {
	runtime.GOMAXPROCS(1)
	work := flag.Int("work", 2000, "rounds of FNV-1a over 1 KiB per request")
	grace := flag.Duration("grace", 5*time.Second, "longest drain on SIGTERM")
	flag.Parse()

	files, err := socketact.Files()
	if err != nil {
		log.Fatalf("cpuserver: %v", err)
	}
	if len(files) != 1 {
		log.Fatalf("cpuserver: %d sockets passed (LISTEN_FDS, LISTEN_PID): want 1; run me under hupd", len(files))
	}
	l, err := net.FileListener(files[0].File)
	if err != nil {
		log.Fatalf("cpuserver: %v", err)
	}
	files[0].File.Close()
	instance := os.Getenv("HUPD_INSTANCE")
	block := make([]byte, 1024)
	for i := range block {
		block[i] = byte(i)
	}

	var (
		draining atomic.Bool
		conns    sync.WaitGroup
	)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := fnv.New64a()
			for range *work {
				h.Write(block)
			}
			if draining.Load() {
				w.Header().Set("Connection", "close")
			}
			fmt.Fprintf(w, "pid %d\ninstance %s\nsum %x\n", os.Getpid(), instance, h.Sum64())
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				conns.Done()
			}
		},
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Fatalf("cpuserver: %v", err)
		}
	}()
	if _, err := socketact.Notify("READY=1\nSTATUS=instance " + instance + ", pid " + strconv.Itoa(os.Getpid())); err != nil {
		log.Printf("cpuserver: notify: %v", err)
	}

	<-sigs
	draining.Store(true)
	l.Close() // new connections wait in hupd's socket for another process
	<-served  // Serve has counted every connection it accepted
	socketact.Notify("STOPPING=1")
	closed := make(chan struct{})
	go func() { conns.Wait(); close(closed) }()
	select {
	case <-closed:
		return
	case <-time.After(min(time.Second, *grace)):
	}
	srv.SetKeepAlivesEnabled(false) // closes the idle ones, and each busy one after its answer
	select {
	case <-closed:
	case <-time.After(*grace):
		log.Printf("cpuserver: pid %d: connections still open after %s", os.Getpid(), *grace)
	}
}
