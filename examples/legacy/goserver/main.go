// Command goserver stands for a legacy program: an HTTP server that binds
// its own port with net.Listen and knows nothing about hupd, LISTEN_FDS or
// sd_notify. Built static (CGO_ENABLED=0), it is what a vendor binary
// looks like to hupd. Under `hupd run --legacy redirect` its bind gets
// hupd's socket, so blue/green swaps refuse no connection although the
// program was not changed for it.
//
// It answers every request with "goserver pid N". On SIGTERM it stops
// accepting, answers what is in flight without keep-alive, and exits: the
// graceful drain any server needs to be swapped without dropping requests.
// Not with http.Server.Shutdown: a connection accepted just before it
// whose request is read just after it is closed unanswered (the client
// sees EOF). Instead it counts open connections and waits for none.
//
//	CGO_ENABLED=0 go build -o goserver ./examples/legacy/goserver
//	hupd run --legacy redirect --listen tcp://:8080 -- ./goserver -addr :8080
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	grace := flag.Duration("grace", 30*time.Second, "longest time to finish requests in flight on SIGTERM")
	flag.Parse()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("goserver: %v", err)
	}
	log.Printf("goserver: pid %d listening on %s", os.Getpid(), l.Addr())
	var (
		conns    sync.WaitGroup // accepted and not yet closed
		draining atomic.Bool
	)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close") // move on to a new connection
		}
		fmt.Fprintf(w, "goserver pid %d\n", os.Getpid())
	}), ConnState: func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			conns.Add(1)
		case http.StateHijacked, http.StateClosed:
			conns.Done()
		}
	}}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		log.Fatalf("goserver: %v", err)
	case <-stop:
	}
	// Stop accepting, and let Serve return: every connection it accepted
	// has been counted by then. The socket itself stays open in hupd, with
	// the connections not yet accepted. Further answers carry
	// "Connection: close".
	draining.Store(true)
	l.Close()
	<-done
	drained := make(chan struct{})
	go func() { conns.Wait(); close(drained) }()
	deadline := time.After(*grace)
	// A client on an idle keep-alive connection gets a second to send one
	// more request (answered, with "Connection: close"); only then are the
	// connections still idle closed. Closing them at once would cut the
	// request a client sends on one at that instant.
	select {
	case <-drained:
		return
	case <-deadline:
		log.Printf("goserver: connections still open after %s", *grace)
		return
	case <-time.After(min(time.Second, *grace)):
	}
	srv.SetKeepAlivesEnabled(false)
	select {
	case <-drained:
	case <-deadline:
		log.Printf("goserver: connections still open after %s", *grace)
	}
}
