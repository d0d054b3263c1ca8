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
//
// -drain stock replaces that drain with what most Go programs do on
// SIGTERM: net/http's http.Server.Shutdown, bounded by -grace, and exit.
// Shutdown closes idle keep-alive connections at once (a request sent on
// one at that instant is lost) and may close a connection accepted just
// before it unanswered; a stock drain loses requests at every swap on a
// shared socket. hupd's --steer is for such programs (the benchmark's
// scenario 8 compares the two):
//
//	hupd run --steer --listen http=tcp://127.0.0.1:8080 -- ./hello -drain stock
package main

import (
	"context"
	"errors"
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
	drainMode := flag.String("drain", "gentle", "how to stop on SIGTERM: gentle (no request dropped under hupd) or stock (http.Server.Shutdown, what most Go programs do)")
	flag.Parse()
	if *drainMode != "gentle" && *drainMode != "stock" {
		log.Fatalf("hello: -drain %q: valid are gentle, stock", *drainMode)
	}

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
	if *drainMode == "stock" {
		if err := d.shutdown(*grace); err != nil {
			log.Printf("hello: pid %d shut down (stock drain): %v", os.Getpid(), err)
		} else {
			log.Printf("hello: pid %d shut down (stock drain)", os.Getpid())
		}
		return
	}
	if d.drain(*grace) {
		log.Printf("hello: pid %d drained", os.Getpid())
	} else {
		log.Printf("hello: pid %d: connections still open after %s", os.Getpid(), *grace)
	}
}

// drainer serves HTTP and stops without dropping a request.
//
// net/http's Shutdown is not used: a request it reads after it began is
// closed unanswered (the client sees EOF), also on a connection accepted
// just before, and it closes idle keep-alive connections at once, racing
// a client that sends on one at that moment. Under hupd the listening
// socket lives on in hupd and the next generation, so the drain can be
// gentle: stop accepting (new connections queue for the next generation),
// answer every further request with "Connection: close" so that the
// client moves to a new connection, wait until the clients have left, and
// close only the connections still idle after a grace period.
type drainer struct {
	servers   []*http.Server
	listeners []net.Listener
	serving   sync.WaitGroup // the Serve calls
	conns     sync.WaitGroup // connections accepted and not yet closed
	draining  atomic.Bool
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
		// Serve reports StateNew before it returns: once every Serve has
		// returned, every connection is counted.
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				d.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				d.conns.Done()
			}
		},
	}
	d.servers = append(d.servers, srv)
	d.listeners = append(d.listeners, l)
	d.serving.Add(1)
	go func() {
		defer d.serving.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !d.draining.Load() {
			log.Fatalf("hello: %v", err)
		}
	}()
}

// drain stops accepting and waits for every connection to close, for up
// to grace in all. It reports whether they all did.
func (d *drainer) drain(grace time.Duration) bool {
	// How long a client on an idle keep-alive connection has to send one
	// more request (answered with "Connection: close") before its
	// connection is closed.
	const idleGrace = time.Second
	timeout := time.NewTimer(grace)
	defer timeout.Stop()
	d.draining.Store(true)
	for _, l := range d.listeners {
		l.Close() // hupd keeps the socket: new clients wait for the next generation
	}
	d.serving.Wait()
	// Tell hupd: this generation accepts no more (STOPPING=1 comes once it
	// is true, so that "child stopping" means it).
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	closed := make(chan struct{})
	go func() { d.conns.Wait(); close(closed) }()
	idle := time.NewTimer(min(idleGrace, grace))
	defer idle.Stop()
	select {
	case <-closed:
		return true
	case <-timeout.C:
		return false
	case <-idle.C:
	}
	// Close the connections that are idle, and any that becomes so after
	// its request in flight: SetKeepAlivesEnabled(false) does that without
	// Shutdown's refusal of requests read later (a connection accepted
	// before the listener closed may still send its first one).
	for _, s := range d.servers {
		s.SetKeepAlivesEnabled(false)
	}
	select {
	case <-closed:
		return true
	case <-timeout.C:
		return false
	}
}

// shutdown is the stock drain (-drain stock): http.Server.Shutdown on
// every server at once, bounded by grace, as most Go programs stop. It
// closes the listeners and idle connections at once and waits for the
// active ones; what it reports is Shutdown's error (the grace passed).
func (d *drainer) shutdown(grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	errs := make(chan error, len(d.servers))
	for _, s := range d.servers {
		go func() { errs <- s.Shutdown(ctx) }()
	}
	var err error
	for range d.servers {
		err = errors.Join(err, <-errs)
	}
	return err
}
