package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		closeAfter bool
		class      Class // -1: no error
	}{
		{"ok", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, -1},
		{"close", "HTTP/1.1 204 No Content\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n", true, -1},
		{"body to EOF", "HTTP/1.0 200 OK\r\n\r\nhello", true, -1},
		{"503", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno", false, Non2xx},
		{"nothing", "", true, EOF},
		{"cut in headers", "HTTP/1.1 200 OK\r\nContent-Le", true, EOF},
		{"cut in body", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhel", true, EOF},
		{"garbage", "SSH-2.0-OpenSSH\r\n", true, Other},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", true, Other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closeAfter, err := readAnswer(bufio.NewReader(strings.NewReader(tc.in)))
			switch {
			case tc.class < 0 && err != nil:
				t.Fatalf("error %v", err)
			case tc.class >= 0 && (err == nil || classify(err) != tc.class):
				t.Fatalf("error %v, want class %s", err, tc.class)
			case err == nil && closeAfter != tc.closeAfter:
				t.Fatalf("closeAfter %v, want %v", closeAfter, tc.closeAfter)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Class
	}{
		{&net.OpError{Op: "dial", Err: &netSyscallError{syscall.ECONNREFUSED}}, Refused},
		{&net.OpError{Op: "read", Err: &netSyscallError{syscall.ECONNRESET}}, Reset},
		{&net.OpError{Op: "write", Err: &netSyscallError{syscall.EPIPE}}, Reset},
		{io.EOF, EOF},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), EOF},
		{&net.OpError{Op: "read", Err: errTimeout{}}, Timeout},
		{&statusError{500}, Non2xx},
		{errors.New("?"), Other},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

type netSyscallError struct{ errno syscall.Errno }

func (e *netSyscallError) Error() string { return e.errno.Error() }
func (e *netSyscallError) Unwrap() error { return e.errno }

type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }

// serve runs an HTTP server on a new port until the test ends.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// run loads addr with kind for about d: the length of the load measured.
func run(t *testing.T, addr string, kind Kind, d time.Duration) *Result {
	t.Helper()
	l := Start(Options{Addr: addr, Kind: kind, Clients: 2, Timeout: time.Second})
	time.Sleep(d) // the load's length, not a synchronisation
	return l.Stop()
}

func TestLoadAnswered(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	for _, kind := range []Kind{KeepAlive, NewConn} {
		r := run(t, addr, kind, 300*time.Millisecond)
		if r.Failed != 0 || r.Requests == 0 {
			t.Fatalf("%s: %d answered, %d failed: %+v", kind, r.Requests, r.Failed, r.Failures)
		}
		if r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || r.Latency.Max < r.Latency.P99 {
			t.Errorf("%s: latency %+v", kind, r.Latency)
		}
		n := 0
		for _, b := range r.Buckets {
			n += b.Requests
		}
		if int64(n) != r.Requests || len(r.Buckets) < 3 {
			t.Errorf("%s: buckets hold %d of %d answers in %d buckets", kind, n, r.Requests, len(r.Buckets))
		}
	}
}

func TestLoadFailures(t *testing.T) {
	// Nobody listens: every attempt is refused, one per RetryPause.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	r := run(t, closed, NewConn, 100*time.Millisecond)
	if r.Requests != 0 || r.ByClass["refused"] == 0 || r.ByClass["refused"] != r.Failed {
		t.Errorf("closed port: %d answered, by class %v", r.Requests, r.ByClass)
	}
	if len(r.Failures) == 0 || r.Failures[0].Class != "refused" {
		t.Errorf("closed port: failures %+v", r.Failures)
	}

	addr := serve(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusServiceUnavailable) })
	r = run(t, addr, KeepAlive, 100*time.Millisecond)
	if r.Requests != 0 || r.ByClass["non2xx"] == 0 {
		t.Errorf("503: %d answered, by class %v", r.Requests, r.ByClass)
	}

	// A server that answers the first request of each connection and then
	// closes it without a word: the keep-alive client's second request on
	// it meets EOF (or a reset).
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	go func() {
		for {
			c, err := raw.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				http.ReadRequest(br) // the next request, left unanswered
			}()
		}
	}()
	r = run(t, raw.Addr().String(), KeepAlive, 100*time.Millisecond)
	if r.Requests == 0 || r.ByClass["eof"]+r.ByClass["reset"] == 0 || r.StallMS <= 0 {
		t.Errorf("dropping server: %d answered, by class %v, stall %v", r.Requests, r.ByClass, r.StallMS)
	}
}
