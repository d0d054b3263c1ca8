// Package demo is the server behind "hupd demo": a small HTTP server that
// takes its sockets from hupd, says which process answered and what its
// config file says, re-reads that file on SIGHUP and drains on SIGTERM.
//
// It speaks just enough HTTP/1.1 for curl and load generators (one request
// per connection) on package net, so that hupd's binary does not carry
// net/http: hupd is never in the data path, and its memory is mostly its
// own binary's pages.
package demo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/sdnotify"
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
	s := &server{configPath: configPath, log: log}
	s.load()
	for _, a := range act {
		l, err := net.FileListener(a.File)
		if err != nil {
			return fmt.Errorf("demo-server: socket %s: %w", a.Name, err)
		}
		a.File.Close()
		s.listeners = append(s.listeners, l)
		go s.accept(l)
	}
	// Subscribe before READY=1: a stop right after readiness must drain,
	// not kill.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGHUP, unix.SIGTERM, unix.SIGINT)
	socketact.Notify("READY=1\nSTATUS=serving")
	log.Info(logev.DemoServing, "pid", os.Getpid(), "sockets", len(act))
	for sig := range sigs {
		if sig != unix.SIGHUP {
			break
		}
		socketact.Notify("RELOADING=1\n" + sdnotify.MonotonicUsec())
		s.load()
		log.Info(logev.DemoConfigReloaded, "pid", os.Getpid())
		socketact.Notify("READY=1")
	}
	s.drain(10 * time.Second)
	return nil
}

type server struct {
	configPath string
	log        *slog.Logger
	greeting   atomic.Value
	listeners  []net.Listener
	conns      sync.WaitGroup
}

func (s *server) load() {
	b, err := os.ReadFile(s.configPath)
	if err != nil {
		s.log.Error(logev.DemoConfigError, "error", err)
		return
	}
	s.greeting.Store(strings.TrimSpace(string(b)))
}

func (s *server) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return // closed by drain
		}
		s.conns.Add(1)
		go s.serve(c)
	}
}

// serve answers one request and closes the connection.
func (s *server) serve(c net.Conn) {
	defer s.conns.Done()
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(io.LimitReader(c, 16<<10), 4096)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	for { // skip the headers up to the blank line
		h, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if h == "\r\n" || h == "\n" {
			break
		}
	}
	status, body := "200 OK", fmt.Sprintf("pid %d\nconfig %s\n", os.Getpid(), s.greeting.Load())
	if method, _, _ := strings.Cut(line, " "); method != "GET" && method != "HEAD" {
		status, body = "405 Method Not Allowed", "only GET\n"
	}
	fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, len(body), body)
}

// drain stops accepting (hupd keeps the socket open: new connections wait
// for the next generation) and waits for requests in flight, up to timeout.
func (s *server) drain(timeout time.Duration) {
	for _, l := range s.listeners {
		l.Close()
	}
	socketact.Notify("STOPPING=1") // accepting no more
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		s.log.Warn(logev.DemoDrainTimeout)
	}
}

// WriteConfig creates the demo's config file in dir.
func WriteConfig(dir string) (string, error) {
	p := dir + "/demo.conf"
	return p, os.WriteFile(p, []byte(DefaultConfig), 0o644)
}

// Instructions tells a person what to try once the demo listens on addr.
func Instructions(w io.Writer, addr, configPath string) {
	pid := os.Getpid()
	self, err := os.Executable() // with "go run", a temporary build that works while the demo runs
	if err != nil {
		self = "hupd"
	}
	fmt.Fprintf(w, `
hupd demo: hupd (pid %[1]d) holds %[2]s and supervises a small HTTP server.
Try, in another terminal:

  curl http://%[2]s/
      the answering PID and the config it read
  echo 'greeting = hi' > %[3]s
      hupd sees the new content and swaps blue/green: a new server starts on
      the same socket with the new config, then the old one drains
  %[4]s reload --name demo
      the same on demand, waiting for the outcome (kill -HUP %[1]d: without)
  %[4]s status --name demo
  kill -9 $(curl -s http://%[2]s/ | awk '/pid/{print $2}')
      crash it: hupd restarts it, and clients wait in the backlog meanwhile
  kill %[1]d
      graceful stop (or Ctrl-C here)

`, pid, addr, configPath, self)
}
