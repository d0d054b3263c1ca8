// Package loadgen is the benchmark suite's HTTP/1.1 load generator: a few
// client goroutines, each on its own TCP connection(s), that record every
// answer and every failure with its time.
//
// Two client kinds: NewConn dials a new connection for each request (and
// asks the server to close it), the client that sees a refused or reset
// connection when nobody accepts; KeepAlive keeps one connection per
// client and sends request after request on it, the client that sees a
// server closing an idle connection under it (EOF). Nothing is retried:
// a request is answered (2xx) or it is a failure, classified as refused,
// reset, EOF, timeout, non-2xx or other.
//
// The load is closed-loop: each client sends its next request when the
// previous one is answered, as wrk does. That measures the throughput the
// server sustains (what the bare-versus-hupd ratio needs) without a rate to
// guess on a shared 2-core machine, and it never queues more requests than
// there are clients. Its known blind spot is coordinated omission: while
// the server stalls, a client waits instead of sending the requests an
// open-loop client would have sent, so the stall shows as one long latency
// per client and not as many. That is why every result also reports the
// longest gap between two successful answers (the stall) and a time
// series in 100 ms buckets, where a stall is a bucket with no answers.
//
// The request is written by hand and the answer read by a small HTTP/1.1
// parser (status line, headers, Content-Length body, or a body up to EOF
// when the server closes): it costs the 2-core machine the server runs on
// much less CPU than net/http's client, and every error is the socket's
// own, which classifies exactly.
package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stallWarmup (µs, like the answers' times), or a tenth of a shorter load,
// is left out of the stall: the first answers of a load wait for the
// clients' connections and the runtimes to start, with or without reloads.
const stallWarmup = 500_000

// Kind is how a client uses connections.
type Kind string

// Client kinds.
const (
	NewConn   Kind = "new-conn"   // a new TCP connection per request
	KeepAlive Kind = "keep-alive" // one persistent connection per client
)

// Class is what kind of failure a request met.
type Class int

// Failure classes.
const (
	Refused Class = iota // connect refused: nobody listens
	Reset                // connection reset (RST) or broken pipe
	EOF                  // closed without (a complete) answer
	Timeout              // no complete answer within Options.Timeout
	Non2xx               // answered with a status other than 2xx
	Other                // anything else (a malformed answer, …)
	numClasses
)

var classNames = [numClasses]string{"refused", "reset", "eof", "timeout", "non2xx", "other"}

// Classes lists every class name in order.
func Classes() []string { return classNames[:] }

func (c Class) String() string { return classNames[c] }

// Defaults for the zero values of Options.
const (
	DefaultTimeout = 5 * time.Second
	DefaultBucket  = 100 * time.Millisecond
	DefaultPath    = "/"
	// RetryPause is how long a client waits after a failed request before
	// its next one. Without it a refused connect fails in microseconds and
	// the client would spin, taking the CPU a restarting server needs; a
	// real client backs off too. Failures are therefore counted as
	// attempts of at most one per RetryPause per client.
	RetryPause = 10 * time.Millisecond
	// maxFailures bounds the failures kept one by one in a Result; all
	// are counted.
	maxFailures = 1000
)

// Options describe one load.
type Options struct {
	Network string // "tcp" (default), "tcp4", "unix", …
	Addr    string // host:port, or a socket path
	Path    string // request path; DefaultPath when empty
	Kind    Kind
	Clients int           // concurrent clients (connections); 1 when 0
	Timeout time.Duration // per request, connect included; DefaultTimeout when 0
	Bucket  time.Duration // time series resolution; DefaultBucket when 0
}

// Load is a running load; Stop ends it and returns its Result.
type Load struct {
	opts    Options
	start   time.Time
	stop    atomic.Bool
	wg      sync.WaitGroup
	clients []*client

	mu    sync.Mutex
	marks []Mark
}

// Mark labels a moment of the load (a reload), for the time series.
type Mark struct {
	AtMS  float64 `json:"at_ms"` // since the load's start
	Label string  `json:"label"`
}

// Start starts the load's clients and returns at once.
func Start(opts Options) *Load {
	if opts.Network == "" {
		opts.Network = "tcp"
	}
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if opts.Clients <= 0 {
		opts.Clients = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Bucket <= 0 {
		opts.Bucket = DefaultBucket
	}
	l := &Load{opts: opts, start: time.Now()}
	req := "GET " + opts.Path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: hupd-bench\r\n"
	if opts.Kind == NewConn {
		req += "Connection: close\r\n"
	}
	req += "\r\n"
	for range opts.Clients {
		c := &client{l: l, req: []byte(req), ok: make([]sample, 0, 1<<14)}
		l.clients = append(l.clients, c)
		l.wg.Add(1)
		go c.run()
	}
	return l
}

// Since is the time elapsed since the load started.
func (l *Load) Since() time.Duration { return time.Since(l.start) }

// Mark records a labelled moment now.
func (l *Load) Mark(label string) {
	at := ms(l.Since())
	l.mu.Lock()
	l.marks = append(l.marks, Mark{AtMS: at, Label: label})
	l.mu.Unlock()
}

// Stop ends the load: each client finishes the request it has in flight
// (bounded by the timeout), closes its connection, and the recordings are
// merged into a Result.
func (l *Load) Stop() *Result {
	l.stop.Store(true)
	l.wg.Wait()
	return l.result(l.Since())
}

// sample is one answered request: when it completed and how long it took,
// both in µs (uint32: a load of up to 71 minutes).
type sample struct{ at, lat uint32 }

// Failure is one failed request.
type Failure struct {
	AtMS  float64 `json:"at_ms"` // completion, since the load's start
	Class string  `json:"class"`
	Error string  `json:"error"`
}

type failure struct {
	at    uint32
	class Class
	err   error
}

// client is one closed-loop client; only its goroutine writes to it
// until Stop's Wait returns.
type client struct {
	l     *Load
	req   []byte
	conn  net.Conn
	br    *bufio.Reader
	ok    []sample
	fails []failure
}

func (c *client) run() {
	defer c.l.wg.Done()
	defer c.close()
	for !c.l.stop.Load() {
		t0 := time.Now()
		err := c.do(t0)
		t1 := time.Now()
		at := uint32(t1.Sub(c.l.start) / time.Microsecond)
		if err == nil {
			c.ok = append(c.ok, sample{at: at, lat: uint32(t1.Sub(t0) / time.Microsecond)})
			continue
		}
		c.fails = append(c.fails, failure{at: at, class: classify(err), err: err})
		c.close()
		time.Sleep(RetryPause) // back-off, not synchronisation: see RetryPause
	}
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// statusError is an answer with a status other than 2xx.
type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + strconv.Itoa(e.code) }

var errMalformed = errors.New("loadgen: malformed answer")

// do sends one request and reads its answer, dialling first if the client
// has no connection.
func (c *client) do(t0 time.Time) error {
	o := &c.l.opts
	deadline := t0.Add(o.Timeout)
	if c.conn == nil {
		d := net.Dialer{Deadline: deadline}
		conn, err := d.Dial(o.Network, o.Addr)
		if err != nil {
			return err
		}
		c.conn = conn
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 4096)
		} else {
			c.br.Reset(conn)
		}
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := c.conn.Write(c.req); err != nil {
		return err
	}
	closeAfter, err := readAnswer(c.br)
	if err != nil {
		return err
	}
	if closeAfter || o.Kind == NewConn {
		c.close()
	}
	return nil
}

// readAnswer reads one HTTP/1.1 answer from br. It reports whether the
// connection is done (Connection: close, or a body read to EOF), and an
// error for a non-2xx status (after reading its body), a malformed answer,
// or the connection's own error; an EOF before the answer's end is
// io.ErrUnexpectedEOF, and io.EOF before its first byte.
func readAnswer(br *bufio.Reader) (closeAfter bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return true, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return true, errMalformed
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return true, errMalformed
	}
	length := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return true, eofUnexpected(err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return true, errMalformed
		}
		v = bytes.TrimSpace(v)
		switch {
		case asciiEqualFold(k, "Content-Length"):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return true, errMalformed
			}
		case asciiEqualFold(k, "Connection"):
			if asciiEqualFold(v, "close") {
				closeAfter = true
			}
		case asciiEqualFold(k, "Transfer-Encoding"):
			return true, fmt.Errorf("%w: Transfer-Encoding %q is not read", errMalformed, v)
		}
	}
	if length >= 0 {
		if _, err := br.Discard(length); err != nil {
			return true, eofUnexpected(err)
		}
	} else {
		// No length: the body ends when the server closes.
		if _, err := io.Copy(io.Discard, br); err != nil {
			return true, err
		}
		closeAfter = true
	}
	if code < 200 || code > 299 {
		return closeAfter, &statusError{code}
	}
	return closeAfter, nil
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// classify maps a request's error to its failure class.
func classify(err error) Class {
	var se *statusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return Non2xx
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return Reset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EOF
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	default:
		return Other
	}
}

// Latency summarises a set of latencies, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Bucket is one interval of the time series.
type Bucket struct {
	AtMS     float64         `json:"at_ms"` // the interval's start, since the load's start
	Requests int             `json:"requests"`
	Failures map[string]int  `json:"failures,omitempty"` // by class
	P50      float64         `json:"p50_ms"`
	P99      float64         `json:"p99_ms"`
	byClass  [numClasses]int // filled first, then copied to Failures
	lats     []uint32        // µs, sorted when summarised
}

// Result is what a load measured.
type Result struct {
	Kind       Kind             `json:"kind"`
	Clients    int              `json:"clients"`
	DurationMS float64          `json:"duration_ms"`
	Requests   int64            `json:"requests"` // answered 2xx
	Failed     int64            `json:"failed"`
	ByClass    map[string]int64 `json:"failed_by_class"`
	PerSecond  float64          `json:"per_second"` // answered per second
	Latency    Latency          `json:"latency"`
	// StallMS is the longest time between two successive answers (by any
	// client) after the first stallWarmup of the load, StallAtMS where it
	// began; a load that ended with no answer after some time does not
	// count that tail.
	StallMS   float64   `json:"stall_ms"`
	StallAtMS float64   `json:"stall_at_ms"`
	BucketMS  float64   `json:"bucket_ms"`
	Buckets   []Bucket  `json:"buckets"`
	Failures  []Failure `json:"failures,omitempty"` // the first maxFailures, by time
	Marks     []Mark    `json:"marks,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (l *Load) result(elapsed time.Duration) *Result {
	bucketUS := uint32(l.opts.Bucket / time.Microsecond)
	nb := int(elapsed/l.opts.Bucket) + 1
	buckets := make([]Bucket, nb)
	for i := range buckets {
		buckets[i].AtMS = ms(time.Duration(i) * l.opts.Bucket)
	}
	r := &Result{Kind: l.opts.Kind, Clients: l.opts.Clients, DurationMS: ms(elapsed), ByClass: map[string]int64{},
		BucketMS: ms(l.opts.Bucket)}
	var all []uint32
	var done []uint32 // completion times of answers
	var fails []failure
	for _, c := range l.clients {
		for _, s := range c.ok {
			all = append(all, s.lat)
			done = append(done, s.at)
			b := &buckets[min(int(s.at/bucketUS), nb-1)]
			b.lats = append(b.lats, s.lat)
		}
		fails = append(fails, c.fails...)
	}
	for _, name := range classNames {
		r.ByClass[name] = 0
	}
	slices.SortFunc(fails, func(a, b failure) int { return int(a.at) - int(b.at) })
	for _, f := range fails {
		r.ByClass[f.class.String()]++
		buckets[min(int(f.at/bucketUS), nb-1)].byClass[f.class]++
		if len(r.Failures) < maxFailures {
			r.Failures = append(r.Failures, Failure{AtMS: float64(f.at) / 1000, Class: f.class.String(), Error: f.err.Error()})
		}
	}
	r.Requests, r.Failed = int64(len(all)), int64(len(fails))
	if elapsed > 0 {
		r.PerSecond = float64(r.Requests) / elapsed.Seconds()
	}
	slices.Sort(all)
	r.Latency = Latency{P50: pct(all, 50), P90: pct(all, 90), P99: pct(all, 99)}
	if len(all) > 0 {
		r.Latency.Max = float64(all[len(all)-1]) / 1000
	}
	slices.Sort(done)
	warmup := min(int64(stallWarmup), elapsed.Microseconds()/10)
	for i := 1; i < len(done); i++ {
		if int64(done[i-1]) < warmup {
			continue // the clients' and the runtime's start-up, not the server
		}
		if gap := float64(done[i]-done[i-1]) / 1000; gap > r.StallMS {
			r.StallMS, r.StallAtMS = gap, float64(done[i-1])/1000
		}
	}
	for i := range buckets {
		b := &buckets[i]
		slices.Sort(b.lats)
		b.Requests, b.P50, b.P99 = len(b.lats), pct(b.lats, 50), pct(b.lats, 99)
		b.lats = nil
		for c, n := range b.byClass {
			if n > 0 {
				if b.Failures == nil {
					b.Failures = map[string]int{}
				}
				b.Failures[Class(c).String()] = n
			}
		}
	}
	r.Buckets = buckets
	l.mu.Lock()
	r.Marks = slices.Clone(l.marks)
	l.mu.Unlock()
	return r
}

// pct is the p-th percentile (nearest rank) of sorted µs values, in ms.
func pct(sorted []uint32, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // ceil(n·p/100), 1-based
	return float64(sorted[max(i, 1)-1]) / 1000
}
