package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/supervisor"
)

// DefaultStatusTimeout is how long a request waits for the supervisor to
// answer before /livez and /readyz say 503.
const DefaultStatusTimeout = time.Second

// DefaultHeaderTimeout is how long a client has, from its connection's
// accept, to send its whole request head.
const DefaultHeaderTimeout = 5 * time.Second

// Limits of the HTTP server (http1.go). Probes and scrapes are small
// requests answered within StatusTimeout; nothing here needs to wait
// longer.
const (
	writeTimeout = 10 * time.Second
	// maxConns bounds the connections held at once (a goroutine and an
	// 8 KiB buffer each). The server always accepts: at the bound it
	// closes the connection that has waited longest without sending its
	// request, so that idle or trickling clients (a slowloris) cannot keep
	// a kubelet's probe waiting, which would get the pod restarted. Only
	// when every held connection is being answered is the new one closed.
	maxConns = 64
)

// Source is what the endpoint reports on; *supervisor.Supervisor is one.
// Status is a snapshot of the supervisor's state; StatusUsage adds what
// each generation uses, sampled now (it reads files, for /metrics only).
type Source interface {
	Status() supervisor.Status
	StatusUsage() supervisor.Status
}

// Options configure a Server. Address is required; the others have
// working zero values.
type Options struct {
	// Address is HOST:PORT to listen on (TCP). Port 0 picks a free port:
	// see Server.Addr.
	Address string
	// Failures makes /readyz answer 503 once this many reloads in a row
	// have failed, until one succeeds; 0 never. The old generation still
	// serves meanwhile, and /livez is not affected: a Kubernetes readiness
	// probe then takes the pod out of the Service's endpoints, so that new
	// traffic goes to pods that took the new version, while the old
	// generation goes on serving the connections it has; the pod is not
	// restarted.
	Failures int
	// StatusTimeout bounds how long a request waits for the supervisor's
	// answer; 0 is DefaultStatusTimeout.
	StatusTimeout time.Duration
	// HeaderTimeout bounds the time from a connection's accept to the end
	// of its request head; the server closes a connection that has not
	// sent it by then, without an answer. 0 is DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// Log receives the HTTP server's own errors (at debug level); nil
	// discards them.
	Log *slog.Logger
}

// Server is hupd's health and metrics endpoint. Listen opens its socket,
// Start serves it with a Source, Close stops it.
type Server struct {
	opts   Options
	ln     net.Listener
	one    *reporter       // the single program's (Hooks, Start)
	ctx    context.Context // ends with Close: requests stop waiting
	cancel context.CancelFunc

	mu      sync.Mutex
	started bool
	closed  bool
	multi   bool                 // started with StartPrograms
	reps    []*reporter          // what it reports on, in start order; set by Start or StartPrograms
	recs    map[string]*recorder // ProgramHooks' recorders, by program name
	conns   map[net.Conn]*conn   // being served
	wg      sync.WaitGroup       // the accept loop, connections and Status calls
}

// ProgramState is what a program of several is doing, for /readyz.
type ProgramState int

// Program states.
const (
	// ProgramWaiting: not started yet (it waits for its after programs).
	ProgramWaiting ProgramState = iota
	// ProgramRunning: its supervisor runs and answers Status.
	ProgramRunning
	// ProgramEnded: its supervisor has returned, or it will never start.
	ProgramEnded
)

// Program is one of several programs a Server reports on (StartPrograms).
type Program struct {
	// Name labels its samples (program="NAME") and is what
	// /readyz?program=NAME asks for.
	Name string
	// Source answers for it while it runs: it is asked only then.
	Source Source
	// State says what it does now; it is called from request goroutines.
	State func() ProgramState
	// After names the programs it starts after, for /readyz's answer while
	// it waits.
	After []string
	// EndIgnored: once it has ended, /readyz of all programs leaves it out
	// (hupd goes on without it: on_exit = "ignore"); /readyz?program=NAME
	// still says it ended.
	EndIgnored bool
}

// reporter is one program the Server reports on.
type reporter struct {
	prog Program // Name "" and State nil for the single program
	rec  *recorder
	call [2]*statusCall // the Status and StatusUsage calls in flight, if any; under the Server's mu
}

// state is what r's program does now; the single program always runs.
func (r *reporter) state() ProgramState {
	if r.prog.State == nil {
		return ProgramRunning
	}
	return r.prog.State()
}

// why prefixes a reason with the program's name when there are several.
func (r *reporter) why(reason string) string {
	if r.prog.Name == "" {
		return reason
	}
	return "program " + r.prog.Name + ": " + reason
}

// conn is a connection's state for admission.
type conn struct {
	accepted time.Time
	answered bool // its request head was read: it is being answered
}

// statusCall is one Status call that any number of requests wait for.
type statusCall struct {
	done chan struct{} // closed when st is set
	st   supervisor.Status
}

// Listen opens the listener; nothing is served until Start, and the
// Hooks record from now on. The error of a listener that cannot be opened
// is the reason alone ("bind: address already in use"), for the caller to
// name the address and where it was configured; errors.Is finds the errno
// in it.
func Listen(opts Options) (*Server, error) {
	if opts.StatusTimeout <= 0 {
		opts.StatusTimeout = DefaultStatusTimeout
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = DefaultHeaderTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", opts.Address)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{opts: opts, ln: ln, ctx: ctx, cancel: cancel, one: &reporter{rec: &recorder{}},
		recs: map[string]*recorder{}, conns: map[net.Conn]*conn{}}, nil
}

// Addr is the bound address (with the port the kernel picked for port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Hooks are the supervisor hooks that record the counters.
func (s *Server) Hooks() supervisor.Hooks { return s.one.rec.hooks() }

// ProgramHooks are the hooks that record the counters of program name,
// one of several (StartPrograms): its samples carry program="NAME".
func (s *Server) ProgramHooks(name string) supervisor.Hooks {
	return s.programRecorder(name).hooks()
}

func (s *Server) programRecorder(name string) *recorder {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recs[name]
	if r == nil {
		r = &recorder{}
		s.recs[name] = r
	}
	return r
}

// Start serves the listener in a goroutine of its own, reporting on src.
// Call it once src answers (the supervisor runs, or is about to: a request
// before that waits for its status up to StatusTimeout), and with nothing
// left that could keep src from ever answering: Close waits for a Status
// call in flight. Start after Close does nothing.
func (s *Server) Start(src Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.one.prog.Source = src
	s.started, s.reps = true, []*reporter{s.one}
	s.wg.Add(1)
	go s.serve()
}

// StartPrograms is Start for a hupd that runs several programs, in start
// order, each with its counters from ProgramHooks(Name): /readyz answers
// for all of them (?program=NAME for one), /metrics labels every sample
// of a program with program="NAME", hupd_up once. A program's Source is
// asked only while its State is ProgramRunning, and must then answer or
// be about to (see Start).
func (s *Server) StartPrograms(progs []Program) {
	reps := make([]*reporter, len(progs))
	for i, p := range progs {
		reps[i] = &reporter{prog: p, rec: s.programRecorder(p.Name)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.started, s.multi, s.reps = true, true, reps
	s.wg.Add(1)
	go s.serve()
}

// SetPrograms replaces the programs a Server started by StartPrograms
// reports on (an edit of hupd.toml added, removed or reordered some): a
// program named again keeps its counters (ProgramHooks), a program no
// longer named loses them, and a request already answering goes on with
// the programs it had. Before StartPrograms, with Start, or after Close
// it does nothing.
func (s *Server) SetPrograms(progs []Program) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.multi || s.closed {
		return
	}
	reps := make([]*reporter, len(progs))
	keep := make(map[string]*recorder, len(progs))
	for i, p := range progs {
		r := s.recs[p.Name]
		if r == nil {
			r = &recorder{}
		}
		keep[p.Name] = r
		reps[i] = &reporter{prog: p, rec: r}
	}
	s.recs, s.reps = keep, reps
}

// Close closes the listener and every connection and returns once every
// goroutine the Server started has ended: a request waiting for the
// supervisor ends at once, a Status call in flight when the supervisor
// answers it (see Start).
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.ln.Close()
	s.wg.Wait()
	return nil
}

// serve is the accept loop (see maxConns for admission).
func (s *Server) serve() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.opts.Log.Debug(logev.HealthAcceptFailed, supervisor.KeyError, err, supervisor.KeyDelay, backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.closed { // Close has closed the connections it knew of
			s.mu.Unlock()
			c.Close()
			return
		}
		if len(s.conns) >= maxConns && !s.evictIdle() {
			s.mu.Unlock()
			c.Close() // every held connection is being answered
			continue
		}
		s.conns[c] = &conn{accepted: time.Now()}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// evictIdle closes the connection that has waited longest for its request
// head; its goroutine then ends and removes it. False if every connection
// has sent its request. Under mu.
func (s *Server) evictIdle() bool {
	var oldest net.Conn
	var at time.Time
	for c, st := range s.conns {
		if !st.answered && (oldest == nil || st.accepted.Before(at)) {
			oldest, at = c, st.accepted
		}
	}
	if oldest == nil {
		return false
	}
	s.conns[oldest].answered = true // not chosen twice
	oldest.Close()
	return true
}

// serveConn reads one request from c, answers it and closes c.
func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	buf := make([]byte, maxHead)
	c.SetReadDeadline(time.Now().Add(s.opts.HeaderTimeout))
	head, more, err := readHead(c, buf)
	s.mu.Lock()
	if st := s.conns[c]; st != nil {
		st.answered = true
	}
	s.mu.Unlock()
	var (
		req    request
		resp   response
		linger = true // unless a clean request was read to its end
	)
	reject := func(code int, why string) {
		resp = text(code, why)
		s.opts.Log.Debug(logev.HealthBadRequest, supervisor.KeyStatus, code, supervisor.KeyReason, why)
	}
	switch {
	case errors.Is(err, errHeadTooLarge):
		reject(431, "request head larger than 8 KiB")
	case errors.Is(err, errHeadCut):
		reject(400, "incomplete request head")
	case err != nil:
		// Nothing sent, a client gone, or no head within HeaderTimeout:
		// no answer.
		if !errors.Is(err, io.EOF) {
			s.opts.Log.Debug(logev.HealthNoRequest, supervisor.KeyError, err)
		}
		return
	default:
		var code int
		var why string
		if req, code, why = parseHead(head); code != 0 {
			reject(code, why)
		} else {
			resp = s.route(req)
			linger = more || req.body
		}
	}
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.Write(resp.appendTo(nil, req.method == "HEAD", time.Now())); err != nil {
		s.opts.Log.Debug(logev.HealthAnswerNotSent, supervisor.KeyError, err)
		return
	}
	if linger {
		lingerClose(c, buf)
	}
}

// route answers a request: 404 for a path other than the endpoint's,
// 405 with "Allow: GET, HEAD" for a method other than those.
func (s *Server) route(req request) response {
	var h func() response
	switch req.path {
	case "/livez":
		h = s.livez
	case "/readyz":
		h = func() response { return s.readyz(req.query) }
	case "/metrics":
		h = s.metrics
	default:
		return text(404, "404 page not found")
	}
	if req.method != "GET" && req.method != "HEAD" {
		return text(405, "method not allowed")
	}
	return h()
}

// status asks r's supervisor for its snapshot; wait waits for the answer.
// Requests that arrive while a call is in flight wait for that one. With
// usage, what each generation uses is sampled too: /livez and /readyz
// never pay for that (in the fallback it scans /proc). Nil when the
// Server is closing.
func (s *Server) status(r *reporter, usage bool) *statusCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	k, get := 0, r.prog.Source.Status
	if usage {
		k, get = 1, r.prog.Source.StatusUsage
	}
	c := r.call[k]
	if c == nil {
		c = &statusCall{done: make(chan struct{})}
		r.call[k] = c
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			st := get()
			s.mu.Lock()
			c.st, r.call[k] = st, nil
			s.mu.Unlock()
			close(c.done)
		}()
	}
	return c
}

// wait returns c's snapshot, or false when it did not come by the timer's
// end (or the Server is closing). A nil c never answers.
func (s *Server) wait(c *statusCall, t *time.Timer) (supervisor.Status, bool) {
	if c == nil {
		return supervisor.Status{}, false
	}
	select {
	case <-c.done:
		return c.st, true
	case <-t.C:
	case <-s.ctx.Done():
	}
	return supervisor.Status{}, false
}

// statuses asks every running program of reps for its snapshot at once
// and waits for the answers at most StatusTimeout in all: st[i] is
// reps[i]'s, nil if it did not answer or does not run (ran[i] false).
func (s *Server) statuses(reps []*reporter, usage bool) (st []*supervisor.Status, ran []bool) {
	calls := make([]*statusCall, len(reps))
	ran = make([]bool, len(reps))
	for i, r := range reps {
		if ran[i] = r.state() == ProgramRunning; ran[i] {
			calls[i] = s.status(r, usage)
		}
	}
	t := time.NewTimer(s.opts.StatusTimeout)
	defer t.Stop()
	st = make([]*supervisor.Status, len(reps))
	expired := false
	for i, c := range calls {
		if !ran[i] || expired {
			continue
		}
		if got, ok := s.wait(c, t); ok {
			st[i] = &got
		} else {
			expired = true // the timer fired, or the Server closes: no more waiting
		}
	}
	return st, ran
}

// reporters is what the Server reports on: set once by Start.
func (s *Server) reporters() []*reporter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reps
}

// livez: 200 while the supervisor's loop answers (every running
// program's, with several). A failed reload does not make hupd less
// alive: only a loop that does not answer does.
func (s *Server) livez() response {
	reps := s.reporters()
	st, ran := s.statuses(reps, false)
	for i, r := range reps {
		if ran[i] && st[i] == nil {
			return text(503, r.why(s.noAnswer()))
		}
	}
	return text(200, "ok")
}

// readyz: 200 while a generation is ready and serving; else 503 and why.
// With several programs, 200 while each is, the first in start order that
// is not named in the 503's line; query program=NAME asks for one (404 if
// no program has that name). A program that waits to start is not ready;
// one that ended is not, but is left out of the answer for all when hupd
// goes on without it (EndIgnored).
func (s *Server) readyz(query string) response {
	reps := s.reporters()
	all := true
	if s.multi {
		if name, ok := programQuery(query); ok {
			i := slices.IndexFunc(reps, func(r *reporter) bool { return r.prog.Name == name })
			if i < 0 {
				return text(404, fmt.Sprintf("no program %q", name))
			}
			reps, all = reps[i:i+1], false
		}
	}
	for _, r := range reps {
		if why := r.rec.notReady(s.opts.Failures); why != "" {
			return text(503, r.why(why))
		}
	}
	st, ran := s.statuses(reps, false)
	for i, r := range reps {
		var why string
		switch {
		case ran[i] && st[i] == nil:
			why = s.noAnswer()
		case ran[i]:
			why = notServing(*st[i])
		case r.state() == ProgramWaiting:
			why = "waiting for " + strings.Join(r.prog.After, ", ") + " to be ready"
		case all && r.prog.EndIgnored:
		default:
			why = "ended"
		}
		if why != "" {
			return text(503, r.why(why))
		}
	}
	return text(200, "ok")
}

// programQuery returns the value of program= in a request's query.
func programQuery(query string) (string, bool) {
	for _, kv := range strings.Split(query, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == "program" {
			if u, err := url.QueryUnescape(v); err == nil {
				return u, true
			}
			return v, true
		}
	}
	return "", false
}

// metrics: the counters, and the gauges of a status snapshot. When the
// supervisor does not answer, the counters still go out, with hupd_up 0.
// With several programs, each program's samples are labelled with its
// name; hupd_up is 0 if a running program did not answer.
func (s *Server) metrics() response {
	reps := s.reporters()
	st, ran := s.statuses(reps, true)
	up := true
	ss := make([]scrape, len(reps))
	for i, r := range reps {
		ss[i] = scrape{program: r.prog.Name, c: r.rec.snapshot(), st: st[i]}
		if ran[i] && st[i] == nil {
			up = false
		}
	}
	return response{200, contentType, writeScrapes(up, ss)}
}

func (s *Server) noAnswer() string {
	return "hupd's supervisor did not answer within " + s.opts.StatusTimeout.String()
}

// notServing says why st has no generation serving, or "".
func notServing(st supervisor.Status) string {
	if st.Stopping {
		return "stopping"
	}
	if current(st) != 0 {
		return ""
	}
	for i := len(st.Generations) - 1; i >= 0; i-- {
		if g := st.Generations[i]; g.State == supervisor.StateStarting {
			return fmt.Sprintf("generation %d starting: not ready yet", g.Gen)
		}
	}
	return "no generation ready"
}

// current is the serving generation of st: the newest ready one; 0 if none.
func current(st supervisor.Status) int {
	for i := len(st.Generations) - 1; i >= 0; i-- {
		if g := st.Generations[i]; g.State == supervisor.StateReady {
			return g.Gen
		}
	}
	return 0
}

// maxReason bounds a one-line answer, in bytes.
const maxReason = 300

// oneLine folds white space, newlines included, and bounds the length
// (cut at a character's start).
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxReason {
		return s
	}
	cut := 0
	for i := range s {
		if i > maxReason {
			break
		}
		cut = i
	}
	return s[:cut] + "…"
}
