// Package demo is the server behind "hupd demo": a small HTTP server that
// takes its sockets from hupd, says which process answered and what its
// config file says, re-reads that file on SIGHUP and drains on SIGTERM.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// ServerCommand is the hidden subcommand that runs the demo server.
const ServerCommand = "demo-server"

// DefaultConfig is what the demo writes to its config file at start.
const DefaultConfig = "greeting = hello from the hupd demo\n"

// Serve runs the demo server on the sockets hupd passed and returns when it
// has drained after SIGTERM or SIGINT.
func Serve(configPath string, log *slog.Logger) error {
	act, err := socketact.Files()
	if err != nil {
		return err
	}
	if len(act) == 0 {
		return errors.New("demo-server: no sockets: run it with \"hupd demo\"")
	}
	var greeting atomic.Value
	load := func() {
		b, err := os.ReadFile(configPath)
		if err != nil {
			log.Error("demo: reading config", "error", err)
			return
		}
		greeting.Store(strings.TrimSpace(string(b)))
	}
	load()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "pid %d\nconfig %s\n", os.Getpid(), greeting.Load())
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errs := make(chan error, len(act))
	for _, a := range act {
		l, err := net.FileListener(a.File)
		if err != nil {
			return fmt.Errorf("demo-server: socket %s: %w", a.Name, err)
		}
		a.File.Close()
		go func() { errs <- srv.Serve(l) }()
	}
	socketact.Notify("READY=1\nSTATUS=serving")
	log.Info("demo: serving", "pid", os.Getpid(), "sockets", len(act))

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGHUP, unix.SIGTERM, unix.SIGINT)
	for {
		select {
		case err := <-errs:
			return err
		case sig := <-sigs:
			if sig == unix.SIGHUP {
				socketact.Notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
				load()
				log.Info("demo: config reloaded", "pid", os.Getpid())
				socketact.Notify("READY=1")
				continue
			}
			return Drain(srv, 10*time.Second)
		}
	}
}

// Drain shuts srv down without dropping a request: it stops keep-alive
// reuse first and waits a moment so that a request already on its way on an
// idle keep-alive connection is answered rather than cut (net/http's
// Shutdown alone may close such a connection under the request), then
// shuts down, waiting up to timeout for requests in flight.
func Drain(srv *http.Server, timeout time.Duration) error {
	srv.SetKeepAlivesEnabled(false)
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return srv.Shutdown(ctx)
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Sec*1e6 + ts.Nsec/1e3
}

// WriteConfig creates the demo's config file in dir.
func WriteConfig(dir string) (string, error) {
	p := dir + "/demo.conf"
	return p, os.WriteFile(p, []byte(DefaultConfig), 0o644)
}

// Instructions tells a person what to try once the demo listens on addr.
func Instructions(w io.Writer, addr, configPath string) {
	fmt.Fprintf(w, `
hupd demo: hupd (pid %d) holds %s and supervises a small HTTP server.
Try, in another terminal:
  curl http://%s/                        # the answering PID and the config it read
  echo 'greeting = hi' > %s
  kill -HUP %d                           # hupd relays HUP: the server re-reads its config
  kill -9 $(curl -s http://%s/ | awk '/pid/{print $2}')   # crash it: hupd restarts it,
                                         # clients wait in the backlog, none is refused
  kill %d                                # graceful stop (or Ctrl-C)

`, os.Getpid(), addr, addr, configPath, os.Getpid(), addr, os.Getpid())
}
