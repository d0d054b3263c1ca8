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
	var servers []*http.Server
	for name, ls := range byName {
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "pid %d\nname %s\nconfig %s\n", os.Getpid(), name, config.Load())
		})
		// /slow?d=2s answers after d: a request still in flight when the
		// server is asked to stop.
		mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
			d, _ := time.ParseDuration(r.URL.Query().Get("d"))
			time.Sleep(d)
			fmt.Fprintf(w, "pid %d\nslept %s\n", os.Getpid(), d)
		})
		for _, l := range ls {
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			servers = append(servers, srv)
			go func() {
				if err := srv.Serve(l); err != http.ErrServerClosed {
					log.Fatalf("hello: %v", err)
				}
			}()
		}
	}
	// Handle signals before saying ready: a TERM right after READY must
	// drain, not kill.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
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
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	drain(servers, *grace)
	log.Printf("hello: pid %d drained", os.Getpid())
}

// drain stops every server without dropping a request. net/http's Shutdown
// closes idle keep-alive connections at once, and a request a client has
// just sent on one is then lost (the client sees EOF). So first stop reusing
// connections, give requests already on the wire a moment to arrive, and
// only then shut down, waiting for requests in flight up to grace.
func drain(servers []*http.Server, grace time.Duration) {
	for _, s := range servers {
		s.SetKeepAlivesEnabled(false)
	}
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Shutdown(ctx)
		}()
	}
	wg.Wait()
}
