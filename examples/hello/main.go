// Command hello is a minimal zero-downtime-ready HTTP server for hupd.
//
// It takes its listening sockets from hupd (or systemd) with go-systemd's
// activation package, tells hupd it is ready with daemon.SdNotify, answers
// every request with its PID, the socket's name and the content of its
// config file, re-reads that file on SIGHUP, and drains gracefully on
// SIGTERM so that no request is dropped when hupd replaces it.
//
//	go build -o hello ./examples/hello
//	hupd run --listen http=tcp://127.0.0.1:8080 -- ./hello -config hello.conf
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	configPath := flag.String("config", "", "file whose content every response shows")
	grace := flag.Duration("grace", 30*time.Second, "longest time to finish requests in flight on SIGTERM")
	flag.Parse()

	var config atomic.Value
	load := func() {
		config.Store("")
		if *configPath == "" {
			return
		}
		b, err := os.ReadFile(*configPath)
		if err != nil {
			log.Printf("hello: %v", err)
			return
		}
		config.Store(strings.TrimSpace(string(b)))
	}
	load()

	byName, err := activation.ListenersWithNames()
	if err != nil {
		log.Fatalf("hello: %v", err)
	}
	if len(byName) == 0 {
		log.Fatal("hello: no sockets passed (LISTEN_FDS): run me under hupd or systemd")
	}
	// Subscribe before READY=1: a stop right after readiness must drain,
	// not kill.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	d := &drainer{}
	for name, ls := range byName {
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "pid %d\nname %s\nconfig %s\n", os.Getpid(), name, config.Load())
		})
		// /slow?d=2s answers after d: a request still in flight when the
		// server is asked to stop.
		mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
			dur, _ := time.ParseDuration(r.URL.Query().Get("d"))
			time.Sleep(dur)
			fmt.Fprintf(w, "pid %d\nslept %s\n", os.Getpid(), dur)
		})
		for _, l := range ls {
			d.serve(l, mux)
		}
	}
	daemon.SdNotify(false, daemon.SdNotifyReady)
	log.Printf("hello: pid %d serving %d socket name(s)", os.Getpid(), len(byName))

	for sig := range sigs {
		if sig != syscall.SIGHUP {
			break
		}
		daemon.SdNotify(false, fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", time.Now().UnixMicro()))
		load()
		daemon.SdNotify(false, daemon.SdNotifyReady)
	}
	d.drain(*grace)
	log.Printf("hello: pid %d drained", os.Getpid())
}

// drainer serves HTTP and stops without dropping a request.
//
// net/http's Shutdown (and SetKeepAlivesEnabled(false)) closes idle
// keep-alive connections at once, and a request a client sends on one at
// that moment is lost: the client sees EOF or a reset. Under hupd the
// listening socket lives on in hupd and the next generation, so the drain
// can be gentle: stop accepting (new connections queue for the next
// generation), answer every further request on an open connection with
// "Connection: close" so that the client moves to a new connection, wait
// until the clients have left, and only then shut down what remains.
type drainer struct {
	servers   []*http.Server
	listeners []net.Listener
	serving   sync.WaitGroup // the Serve calls
	draining  atomic.Bool
	mu        sync.Mutex
	open      int           // connections not yet closed
	idle      chan struct{} // closed when open drops to 0 while draining
}

func (d *drainer) serve(l net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d.draining.Load() {
				w.Header().Set("Connection", "close")
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         d.track,
	}
	d.servers = append(d.servers, srv)
	d.listeners = append(d.listeners, l)
	d.serving.Add(1)
	go func() {
		defer d.serving.Done()
		if err := srv.Serve(l); err != nil && !d.draining.Load() {
			log.Fatalf("hello: %v", err)
		}
	}()
}

func (d *drainer) track(_ net.Conn, st http.ConnState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch st {
	case http.StateNew:
		d.open++
	case http.StateClosed, http.StateHijacked:
		d.open--
		if d.open == 0 && d.idle != nil {
			close(d.idle)
			d.idle = nil
		}
	}
}

// drain stops accepting, lets clients finish and leave for up to
// idleGrace (requests in flight for up to grace), then shuts down.
func (d *drainer) drain(grace time.Duration) {
	const idleGrace = time.Second
	d.draining.Store(true)
	for _, l := range d.listeners {
		l.Close() // hupd keeps the socket: new clients wait for the next generation
	}
	// Count open connections only once every Serve has returned: a
	// connection accepted just before the close must be waited for, or
	// Shutdown drops its request unanswered (net/http serves no request
	// it reads after Shutdown began).
	d.serving.Wait()
	// Tell hupd: this generation accepts no more (STOPPING=1 comes once it
	// is true, so that "child stopping" means it).
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	d.mu.Lock()
	left := make(chan struct{})
	if d.open == 0 {
		close(left)
	} else {
		d.idle = left
	}
	d.mu.Unlock()
	select {
	case <-left:
	case <-time.After(min(idleGrace, grace)):
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range d.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Shutdown(ctx)
		}()
	}
	wg.Wait()
}
