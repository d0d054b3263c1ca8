package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
	"golang.org/x/sys/unix"
)

// The control socket's mode and listen backlog.
const (
	sockMode = 0o600
	backlog  = 64
)

// Handler is what the control server asks; hupd's wiring (internal/run)
// implements it with the supervisor. Its methods may be called
// concurrently from several connections.
type Handler interface {
	// Reload starts a reload (or joins the one in progress) and blocks until
	// it is done or ctx ends; then it returns a result with OK=false and a
	// Reason such as "timed out waiting for the reload". ctx ends when the
	// request's timeout expires, when the client hangs up, or when the
	// server is closed; a reload already started is not cancelled by it.
	Reload(ctx context.Context) supervisor.ReloadResult
	// Status returns a snapshot. It must not block for long.
	Status() supervisor.Status
	// Upgrade re-executes hupd from binary in place (see
	// supervisor.Supervisor.Upgrade); it returns only when that fails.
	Upgrade(ctx context.Context, binary string) error
}

// Planner is implemented by a Handler that answers plan requests (hupd
// plan): what applying a configuration would do, changing nothing. data is
// the configuration's content, nil for the one hupd runs with. A
// *ConfigError is about the configuration.
type Planner interface {
	Plan(ctx context.Context, data []byte) (supervisor.Plan, error)
}

// ConfigError is a Planner's error about the configuration planned (the
// reply's BadConfig); its message is Err's.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Rollbacker is implemented by a Handler that answers rollback requests
// (hupd rollback); others refuse them.
type Rollbacker interface {
	// Rollback makes the settling generation serve again and stops the
	// newer one (supervisor.Supervisor.Rollback); OK=false and a Reason
	// when it cannot, such as when no generation is settling. ctx ends
	// when the client hangs up or the server is closed.
	Rollback(ctx context.Context) supervisor.ReloadResult
}

// Scaler is implemented by a Handler that answers scale requests (hupd
// scale); others refuse them.
type Scaler interface {
	// Scale sets the number of instances of the serving generation to n
	// (supervisor.Supervisor.Scale; n is 1 to supervisor.MaxInstances)
	// and blocks until it is done or ctx ends, as Reload does.
	Scale(ctx context.Context, n int) supervisor.ScaleResult
}

// LogSource is implemented by a Handler that answers logs requests (see
// supervisor.Supervisor.Logs and FollowLogs); others refuse them.
type LogSource interface {
	// Logs returns the last n kept output lines (n 0: all) of generation
	// gen (0: of every kept generation), oldest first.
	Logs(gen, n int) []supervisor.OutputLine
	// FollowLogs is Logs, then each line kept from then on on lines, until
	// stop is called; stop returns how many lines were dropped because
	// the reader lagged.
	FollowLogs(gen, n int) (kept []supervisor.OutputLine, lines <-chan supervisor.OutputLine, stop func() (dropped int))
}

// Fleet is implemented by the Handler of a hupd that runs several programs
// ([[program]] tables): it answers reload and status requests, each about
// the programs the request names (Request.Programs; none: every one);
// scale, rollback and logs requests name one program, whose Handler
// (Program) answers them as a hupd of one program would; an upgrade
// (naming no program) goes to Handler.Upgrade, as with one program; the
// server refuses every other request but ping (ErrSeveralPrograms).
// An unknown name is an error wrapping ErrUnknownProgram, and nothing is
// done.
type Fleet interface {
	// ReloadPrograms reloads the programs names, at once, and blocks until
	// every reload is done or ctx ends, as Handler.Reload does.
	ReloadPrograms(ctx context.Context, names []string) ([]ProgramReply, error)
	// StatusPrograms returns a snapshot of the programs names.
	StatusPrograms(names []string) ([]ProgramReply, error)
	// Program returns the Handler of program name for the scale,
	// rollback and logs requests that name it (one program each): a
	// Scaler, Rollbacker and LogSource, as the Handler of a hupd of one
	// program is. An error says why not.
	Program(name string) (Handler, error)
}

// FleetPlanner is implemented by a Fleet that answers plan requests (hupd
// plan): data is the content of the hupd.toml to plan, nil for hupd.toml
// as on disk. An error about the file planned is a *ConfigError.
type FleetPlanner interface {
	PlanPrograms(ctx context.Context, data []byte) (FleetPlan, error)
}

var (
	// ErrUnknownProgram is wrapped by a Fleet's error about a program
	// name that hupd does not run (the reply's BadProgram).
	ErrUnknownProgram = errors.New("control: unknown program")
	// ErrSeveralPrograms is the error of a request that a hupd running
	// several programs answers only for one program it names (scale,
	// rollback, logs) or not at all.
	ErrSeveralPrograms = errors.New("hupd runs several programs")
	// errUpgradeProgram: an upgrade names programs.
	errUpgradeProgram = errors.New("it re-executes hupd with every program at once: name none")
	// errOneProgram: a request names programs, but hupd runs one.
	errOneProgram = errors.New("this hupd runs one program")
)

// oneProgramReply refuses a request that names programs to a hupd that
// runs one, naming the command and what it takes no more of: "this hupd
// runs one program: hupd reload takes no program name".
func oneProgramReply(cmd string) Reply {
	what := "no program name"
	switch cmd {
	case CmdLogs, CmdScale, CmdRollback:
		what = "no --program"
	}
	return Reply{V: ProtocolVersion, Error: fmt.Sprintf("%v: hupd %.32s takes %s", errOneProgram, cmd, what), BadProgram: true}
}

// Server serves the control protocol on a unix socket.
type Server struct {
	path      string
	dev, ino  uint64 // of the socket file bound
	boundMode uint32 // the file's permissions as bind created them
	ln        *net.UnixListener
	h         Handler
	log       *slog.Logger

	ctx    context.Context // ends on Close: cancels every handler call
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	serving bool
	conns   map[*net.UnixConn]struct{}
	wg      sync.WaitGroup // Serve's loop and every connection goroutine

	// answering counts the requests that change what runs (reload,
	// rollback, scale) from their reading until their answer was written
	// (Answering).
	answering atomic.Int32

	// testHookEOF, when set, is called when a client's end-of-stream is
	// seen during a reload, with whether the client is gone entirely.
	testHookEOF func(gone bool)
	// testHookAnswered, when set, is called once an answer is made, before
	// it is written.
	testHookAnswered func()
	// testHookWritten, when set, is called once an answer's writing ended
	// (and its count in Answering with it), with the write's error.
	testHookWritten func(error)
	// replyTimeout bounds the writing of an answer (replyWriteTimeout;
	// tests shorten it).
	replyTimeout time.Duration
}

// replyWriteTimeout bounds the writing of one answer: a client that stops
// reading (a suspended `hupd reload`, or pipelined requests whose answers
// it never reads) is hung up on then, so that its answer, counted while
// unwritten (Answering), cannot refuse every upgrade forever.
const replyWriteTimeout = 10 * time.Second

// Answering reports whether a reload, rollback or scale request is being
// handled or its answer written: an in-place upgrade's exec meanwhile
// would cut the answer (the client sees EOF and cannot tell what
// happened), so hupd refuses to upgrade then. Any goroutine; false for a
// nil s.
func (s *Server) Answering() bool {
	return s != nil && s.answering.Load() > 0
}

// changes reports whether a request of cmd changes what runs, its answer
// saying how it went (Answering).
func changes(cmd string) bool {
	return cmd == CmdReload || cmd == CmdRollback || cmd == CmdScale
}

// Listen listens on the unix socket path and returns a server that
// answers with h once Serve runs. log may be nil.
//
// The socket's directory is created (0700, 0711 as root) if missing; an
// existing one must be a directory owned by hupd's user or root and not
// writable by group or others unless sticky (supervisor.MakeControlDir).
// hupd run has checked it more strictly before (supervisor.OpenRuntime).
// A stale socket at path (nobody listening) is removed. Errors:
//   - a live socket at path: "another hupd is running on PATH", wrapping
//     syscall.EADDRINUSE; the socket is left alone;
//   - anything that is not a socket at path: an error, the file is untouched.
//
// The socket file has mode 0600 from the moment bind creates it.
func Listen(path string, h Handler, log *slog.Logger) (*Server, error) {
	if h == nil {
		return nil, errors.New("control: Listen: nil handler")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("control socket: empty path")
	}
	if max := len(unix.RawSockaddrUnix{}.Path) - 1; len(path) > max {
		return nil, fmt.Errorf("control socket path %s is too long (%d bytes, at most %d)", path, len(path), max)
	}
	if err := supervisor.MakeControlDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := socketact.RemoveStaleSocket(path); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, errInUse(path)
		}
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &Server{path: path, h: h, log: log, conns: make(map[*net.UnixConn]struct{}), replyTimeout: replyWriteTimeout}
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func errInUse(path string) error {
	return fmt.Errorf("another hupd is running on %s: %w", path, syscall.EADDRINUSE)
}

// listen binds s.path with mode 0600 and fills in s.ln, s.dev and s.ino.
func (s *Server) listen() (err error) {
	fail := func(op string, err error) error {
		return fmt.Errorf("control socket %s: %w", s.path, os.NewSyscallError(op, err))
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail("socket", err)
	}
	f := os.NewFile(uintptr(fd), s.path)
	defer f.Close() // net.FileListener works on a duplicate
	// bind creates the file with the socket inode's mode less the umask:
	// never more open than 0600, not even for an instant.
	if err := unix.Fchmod(fd, sockMode); err != nil {
		return fail("fchmod", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: s.path}); err != nil {
		if errors.Is(err, unix.EADDRINUSE) { // lost a race with another hupd
			return errInUse(s.path)
		}
		return fail("bind", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.path, &st); err != nil {
		return fail("lstat", err)
	}
	s.dev, s.ino, s.boundMode = st.Dev, st.Ino, st.Mode&0o7777
	defer func() {
		if err != nil {
			s.removeSocket()
		}
	}()
	// A umask that strips owner bits leaves a socket nobody can use.
	if s.boundMode != sockMode {
		if err := unix.Chmod(s.path, sockMode); err != nil {
			return fail("chmod", err)
		}
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", s.path, err)
	}
	s.ln = ln.(*net.UnixListener)
	s.ln.SetUnlinkOnClose(false) // Close removes the file, if it is still ours
	return nil
}

// removeSocket removes the socket file if it is still the one s bound.
func (s *Server) removeSocket() {
	var st unix.Stat_t
	if unix.Lstat(s.path, &st) == nil && st.Dev == s.dev && st.Ino == s.ino && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
		if err := os.Remove(s.path); err != nil {
			s.log.Warn(logev.ControlRemoveFailed, supervisor.KeyPath, s.path, supervisor.KeyError, err)
		}
	}
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until Close and then returns nil; it returns an
// error if accepting fails for good, or if Serve is already running. Every
// connection is served by its own goroutine: its requests are answered in
// order, one JSON line for each request line.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	if s.serving {
		s.mu.Unlock()
		return errors.New("control: server is already serving")
	}
	s.serving = true
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	var delay time.Duration
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if !temporaryAcceptError(err) {
				return fmt.Errorf("control socket %s: %w", s.path, err)
			}
			// Out of fds or memory: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn(logev.ControlAcceptFailed, supervisor.KeyPath, s.path, supervisor.KeyError, err, supervisor.KeyDelay, delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
			}
			continue
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			return nil
		}
		go s.serveConn(c)
	}
}

func temporaryAcceptError(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM, unix.ECONNABORTED, unix.EINTR, unix.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers c and its goroutine; false once the server is closed.
func (s *Server) track(c *net.UnixConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *net.UnixConn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Close stops accepting, ends every handler call's context, closes every
// connection, waits for the server's goroutines (so for handler calls to
// return) and removes the socket file if it is still the one it bound. A
// client waiting for a reload gets the handler's (cancelled) result if it
// is written before its connection closes, else just the closed connection.
// Calling Close again does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*net.UnixConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	s.cancel()
	err := s.ln.Close()
	s.removeSocket()
	for _, c := range conns {
		c.Close()
	}
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("control socket %s: %w", s.path, err)
	}
	return nil
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer s.untrack(c)
	cred, err := peerCred(c)
	if err != nil {
		s.log.Warn(logev.ControlNoCredentials, supervisor.KeyError, err)
		return
	}
	if !allowedUID(cred.Uid) {
		s.log.Warn(logev.ControlRefused, supervisor.KeyUID, cred.Uid, supervisor.KeyPID, cred.Pid)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeReply(c, Reply{Error: fmt.Sprintf("permission denied: uid %d is not hupd's user", cred.Uid)})
		return
	}
	br := bufio.NewReaderSize(c, readBuf)
	for {
		line, long, err := readLine(br)
		if long {
			if s.writeAnswer(c, errReply(fmt.Errorf("request line longer than %d bytes", MaxLine))) != nil {
				return
			}
			switch {
			case errors.Is(err, bufio.ErrBufferFull):
				if !skipLine(br) {
					return
				}
			case err != nil:
				return // the stream ended within the line
			}
			continue
		}
		if len(line) == 0 {
			return // end of stream, or the connection broke
		}
		req, _, perr := parseRequest(line)
		if perr == nil && req.Cmd == CmdLogs && req.Follow {
			s.followLogs(c, br, req)
			return // the client hung up, or hupd closes
		}
		if !s.answer(c, br, line, perr == nil && changes(req.Cmd)) || err != nil {
			return
		}
	}
}

// answer handles one request line and writes its answer; false if that
// could not be written (within replyTimeout). A request that changes what
// runs (changes) is counted (Answering) until then.
func (s *Server) answer(c *net.UnixConn, br *bufio.Reader, line []byte, counted bool) bool {
	err := s.countedAnswer(c, br, line, counted)
	if s.testHookWritten != nil {
		s.testHookWritten(err)
	}
	return err == nil
}

func (s *Server) countedAnswer(c *net.UnixConn, br *bufio.Reader, line []byte, counted bool) error {
	if counted {
		s.answering.Add(1)
		defer s.answering.Add(-1)
	}
	rep := s.handle(c, br, line)
	if s.testHookAnswered != nil {
		s.testHookAnswered()
	}
	return s.writeAnswer(c, rep)
}

// writeAnswer writes rep within replyTimeout, then lifts the deadline for
// the connection's next request.
func (s *Server) writeAnswer(c net.Conn, rep Reply) error {
	c.SetWriteDeadline(time.Now().Add(s.replyTimeout))
	err := writeReply(c, rep)
	c.SetWriteDeadline(time.Time{})
	return err
}

// readBuf is the size of a control connection's read buffer. A
// request line is a few hundred bytes: readLine gathers a longer one, up
// to MaxLine, in a slice of its own, so that a connection (one per
// `hupd reload`) costs 4 KiB instead of MaxLine.
const readBuf = 4 << 10

// readLine reads the next request line, its newline included (the last
// line of a stream may lack one); it is valid until br is read again. err
// is what reading the line's last part returned: nil or the end of the
// stream. long reports a line longer than MaxLine, of which at most
// a buffer's worth past the limit was read: then err is
// bufio.ErrBufferFull while the rest of it, up to its newline, is still
// unread (see skipLine), nil if its newline was read.
func readLine(br *bufio.Reader) (line []byte, long bool, err error) {
	line, err = br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, false, err
	}
	b := append([]byte(nil), line...)
	for len(b) <= MaxLine && errors.Is(err, bufio.ErrBufferFull) {
		line, err = br.ReadSlice('\n')
		b = append(b, line...)
	}
	if n := len(b); n > MaxLine+1 || n == MaxLine+1 && b[n-1] != '\n' {
		return nil, true, err
	}
	return b, false, err
}

// skipLine reads up to and including the next newline; false if the stream
// ended first.
func skipLine(br *bufio.Reader) bool {
	for {
		_, err := br.ReadSlice('\n')
		if err == nil {
			return true
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return false
		}
	}
}

// handle answers one request line. line is only valid until br is read.
func (s *Server) handle(c *net.UnixConn, br *bufio.Reader, line []byte) Reply {
	req, timeout, err := parseRequest(line)
	if err != nil {
		// Warn: a client that speaks another version, or a script with a
		// typo, is the operator's to see (only clients hupd trusts get
		// this far).
		s.log.Warn(logev.ControlBadRequest, supervisor.KeyError, err)
		return errReply(err)
	}
	if fl, ok := s.h.(Fleet); ok {
		return s.handleFleet(c, br, fl, req, timeout)
	} else if len(req.Programs) > 0 {
		return oneProgramReply(req.Cmd)
	}
	switch req.Cmd {
	case CmdPing:
		return Reply{V: ProtocolVersion, OK: true}
	case CmdStatus:
		st := s.h.Status()
		return Reply{V: ProtocolVersion, OK: true, Status: &st}
	case CmdLogs:
		return logs(s.h, req)
	case CmdUpgrade:
		// On success the exec closes this connection: the client sees
		// EOF and asks the new image for its status.
		return errReply(fmt.Errorf("upgrade failed, hupd goes on as it was: %w", s.h.Upgrade(s.ctx, req.Binary)))
	case CmdPlan:
		return s.plan(req)
	case CmdRollback:
		return s.rollback(s.h, c, br)
	case CmdScale:
		return s.scale(s.h, c, br, req, timeout)
	}
	// CmdReload
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	if timeout > 0 {
		// A limit on the wait for the outcome, once the reload is asked
		// for: handing it over is not cut short (a reload asked for with
		// a short timeout happens).
		ctx = supervisor.WithWaitLimit(ctx, timeout)
	}
	stop := s.watchHangup(c, br, cancel)
	var res supervisor.ReloadResult
	if req.Progress {
		res = s.reloadWithProgress(ctx, c)
	} else {
		res = s.h.Reload(ctx)
	}
	stop()
	rep := Reply{V: ProtocolVersion, OK: res.OK, Reload: &res}
	if !res.OK {
		rep.Error = "reload failed"
		if res.Reason != "" {
			rep.Error += ": " + res.Reason
		}
	}
	return rep
}

// handleFleet answers a request to a hupd that runs several programs.
func (s *Server) handleFleet(c *net.UnixConn, br *bufio.Reader, fl Fleet, req Request, timeout time.Duration) Reply {
	var (
		progs []ProgramReply
		err   error
	)
	switch req.Cmd {
	case CmdPing:
		return Reply{V: ProtocolVersion, OK: true}
	case CmdStatus:
		progs, err = fl.StatusPrograms(req.Programs)
	case CmdReload:
		ctx, cancel := context.WithCancel(s.ctx)
		defer cancel()
		if timeout > 0 {
			ctx = supervisor.WithWaitLimit(ctx, timeout)
		}
		stop := s.watchHangup(c, br, cancel)
		progs, err = fl.ReloadPrograms(ctx, req.Programs)
		stop()
	case CmdPlan:
		fp, ok := fl.(FleetPlanner)
		if !ok {
			return errReply(fmt.Errorf("%s: %w", req.Cmd, ErrSeveralPrograms))
		}
		var data []byte
		if req.Config != nil {
			data = []byte(*req.Config)
		}
		plan, err := fp.PlanPrograms(s.ctx, data)
		if err != nil {
			rep := errReply(err)
			var ce *ConfigError
			rep.BadConfig = errors.As(err, &ce)
			return rep
		}
		return Reply{V: ProtocolVersion, OK: true, FleetPlan: &plan}
	case CmdUpgrade:
		// hupd with every program, as with one (see handle).
		if len(req.Programs) > 0 {
			return errReply(fmt.Errorf("upgrade: %w", errUpgradeProgram))
		}
		return errReply(fmt.Errorf("upgrade failed, hupd goes on as it was: %w", s.h.Upgrade(s.ctx, req.Binary)))
	case CmdScale, CmdRollback, CmdLogs:
		ph, rep := programHandler(fl, req)
		switch {
		case ph == nil:
			return rep
		case req.Cmd == CmdScale:
			return s.scale(ph, c, br, req, timeout)
		case req.Cmd == CmdRollback:
			return s.rollback(ph, c, br)
		}
		return logs(ph, req)
	default:
		return errReply(fmt.Errorf("%s: %w", req.Cmd, ErrSeveralPrograms))
	}
	if err != nil {
		return Reply{V: ProtocolVersion, Error: err.Error(), BadProgram: errors.Is(err, ErrUnknownProgram)}
	}
	rep := Reply{V: ProtocolVersion, OK: true, Programs: progs}
	var failed []string
	for _, p := range progs {
		if p.Reload != nil && !p.Reload.OK {
			rep.OK = false
			failed = append(failed, p.Name+": "+p.Reload.Reason)
		}
	}
	if len(failed) > 0 {
		rep.Error = "reload failed: " + strings.Join(failed, "; ")
	}
	return rep
}

// programHandler is the Handler of the one program a scale, rollback or
// logs request to a Fleet names, or nil and the error reply.
func programHandler(fl Fleet, req Request) (Handler, Reply) {
	if len(req.Programs) != 1 {
		return nil, Reply{V: ProtocolVersion, Error: fmt.Sprintf("%s: %v: name one program (--program NAME)", req.Cmd, ErrSeveralPrograms), BadProgram: true}
	}
	h, err := fl.Program(req.Programs[0])
	if err != nil {
		return nil, Reply{V: ProtocolVersion, Error: err.Error(), BadProgram: errors.Is(err, ErrUnknownProgram)}
	}
	return h, Reply{}
}

// reloadWithProgress reloads and writes a Progress line to c every
// ProgressEvery until the reload's result is known. A write that fails
// ends the lines, not the reload (a client that is gone cancels ctx).
func (s *Server) reloadWithProgress(ctx context.Context, c net.Conn) supervisor.ReloadResult {
	done := make(chan supervisor.ReloadResult, 1)
	go func() { done <- s.h.Reload(ctx) }()
	start := time.Now()
	t := time.NewTicker(ProgressEvery)
	defer t.Stop()
	for {
		select {
		case res := <-done:
			return res
		case <-t.C:
			p := progressOf(s.h.Status(), time.Since(start))
			b, _ := json.Marshal(progressLine{V: ProtocolVersion, Progress: &p})
			c.SetWriteDeadline(time.Now().Add(ProgressEvery))
			_, err := c.Write(append(b, '\n'))
			c.SetWriteDeadline(time.Time{})
			if err != nil {
				return <-done
			}
		}
	}
}

var errNoLogs = errors.New("control: this hupd keeps no output lines")

// logs answers a logs request without Follow.
func logs(h Handler, req Request) Reply {
	src, ok := h.(LogSource)
	if !ok {
		return errReply(errNoLogs)
	}
	return Reply{V: ProtocolVersion, OK: true, Logs: src.Logs(req.Gen, req.Lines)}
}

// followWriteTimeout bounds each write to a client following the logs: one
// that stops reading is hung up on (lines it misses meanwhile are dropped
// by the supervisor, not queued, and the next line sent says how many:
// Reply.Dropped).
const followWriteTimeout = 10 * time.Second

// followLogs answers a logs request with Follow: the kept lines, then one
// reply per line until the client hangs up or the server closes.
func (s *Server) followLogs(c *net.UnixConn, br *bufio.Reader, req Request) {
	h := s.h
	if fl, ok := h.(Fleet); ok {
		ph, rep := programHandler(fl, req)
		if ph == nil {
			s.writeAnswer(c, rep)
			return
		}
		h = ph
	} else if len(req.Programs) > 0 {
		s.writeAnswer(c, oneProgramReply(req.Cmd))
		return
	}
	src, ok := h.(LogSource)
	if !ok {
		s.writeAnswer(c, errReply(errNoLogs))
		return
	}
	kept, lines, stop := src.FollowLogs(req.Gen, req.Lines)
	defer stop()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stopWatch := s.watchHangup(c, br, cancel)
	defer stopWatch()
	write := func(rep Reply) bool {
		c.SetWriteDeadline(time.Now().Add(followWriteTimeout))
		return writeReply(c, rep) == nil
	}
	if !write(Reply{V: ProtocolVersion, OK: true, Logs: kept}) {
		return
	}
	for {
		select {
		case l := <-lines:
			if !write(Reply{V: ProtocolVersion, OK: true, Line: &l, Dropped: l.Dropped}) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// progressOf is what a reload waiting for waited since the request tells
// from st: the newest generation, while it is starting.
func progressOf(st supervisor.Status, waited time.Duration) Progress {
	p := Progress{Ready: st.Ready, Elapsed: supervisor.Duration(waited), Timeout: st.ReadyTimeout}
	if n := len(st.Generations); n > 0 {
		if g := st.Generations[n-1]; g.State == supervisor.StateStarting {
			p.Gen, p.PID, p.Elapsed = g.Gen, g.PID, g.Uptime
		}
	}
	return p
}

// parseRequest checks one request line; timeout is a reload's, 0 if none.
func parseRequest(line []byte) (req Request, timeout time.Duration, err error) {
	if err := json.Unmarshal(line, &req); err != nil {
		return req, 0, fmt.Errorf("malformed request: %v", err)
	}
	switch {
	case req.V == 0:
		return req, 0, fmt.Errorf(`missing protocol version "v": this hupd speaks version %d`, ProtocolVersion)
	case req.V != ProtocolVersion:
		return req, 0, fmt.Errorf("unsupported protocol version %d: this hupd speaks version %d", req.V, ProtocolVersion)
	}
	valid := strings.Join([]string{CmdReload, CmdStatus, CmdPing, CmdUpgrade, CmdPlan, CmdLogs, CmdRollback, CmdScale}, ", ")
	switch req.Cmd {
	case CmdPing, CmdStatus, CmdUpgrade, CmdPlan, CmdRollback:
	case CmdLogs:
		if req.Gen < 0 || req.Lines < 0 {
			return req, 0, fmt.Errorf("invalid logs request: gen %d, lines %d: both must be 0 or more", req.Gen, req.Lines)
		}
	case CmdScale:
		if err := supervisor.ValidInstances(req.Instances); err != nil {
			return req, 0, fmt.Errorf("invalid scale request: %w", err)
		}
		fallthrough
	case CmdReload:
		if req.Timeout != "" {
			timeout, err = time.ParseDuration(req.Timeout)
			if err != nil {
				return req, 0, fmt.Errorf("invalid %s timeout %.64q: %v", req.Cmd, req.Timeout, err)
			}
			if timeout <= 0 {
				return req, 0, fmt.Errorf("invalid %s timeout %.64q: must be positive", req.Cmd, req.Timeout)
			}
		}
	case "":
		return req, 0, fmt.Errorf(`missing command "cmd": valid commands are %s`, valid)
	default:
		return req, 0, fmt.Errorf("unknown command %.64q: valid commands are %s", req.Cmd, valid)
	}
	return req, timeout, nil
}

func errReply(err error) Reply { return Reply{V: ProtocolVersion, Error: err.Error()} }

func writeReply(c net.Conn, rep Reply) error {
	rep.V = ProtocolVersion
	b, err := json.Marshal(rep)
	if err != nil {
		b, _ = json.Marshal(errReply(fmt.Errorf("cannot encode reply: %v", err)))
	}
	_, err = c.Write(append(b, '\n'))
	return err
}

// watchHangup calls hangup if the client closes its connection while a
// reload runs. A client that only shuts down its writing side (as socat and
// nc do after their input) still gets its reply. stop ends the watch; br is
// free for its caller again once stop returns.
func (s *Server) watchHangup(c *net.UnixConn, br *bufio.Reader, hangup func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Peek reads without consuming: a pipelined request stays in br.
		if _, err := br.Peek(1); !errors.Is(err, io.EOF) {
			return // data (the next request), the stop deadline, or a broken connection
		}
		gone := peerGone(c)
		if s.testHookEOF != nil {
			s.testHookEOF(gone)
		}
		if gone {
			hangup()
		}
	}()
	return func() {
		c.SetReadDeadline(time.Unix(1, 0)) // wake Peek
		<-done
		c.SetReadDeadline(time.Time{})
	}
}

// peerGone reports whether the client closed its end entirely (POLLHUP), not
// just its writing side (POLLRDHUP alone).
func peerGone(c *net.UnixConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	rc.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		if n, err := unix.Poll(p, 0); err == nil && n > 0 {
			gone = p[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return gone
}

// rollback answers a rollback request: as a reload's reply, with the
// result in Reload.
func (s *Server) rollback(h Handler, c *net.UnixConn, br *bufio.Reader) Reply {
	rb, ok := h.(Rollbacker)
	if !ok {
		return errReply(errors.New("this hupd cannot roll back"))
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := s.watchHangup(c, br, cancel)
	res := rb.Rollback(ctx)
	stop()
	rep := Reply{V: ProtocolVersion, OK: res.OK, Reload: &res}
	if !res.OK {
		rep.Error = "rollback failed"
		if res.Reason != "" {
			rep.Error += ": " + res.Reason
		}
	}
	return rep
}

// scale answers a scale request: its result in Scale, a failure's reason
// in Error as for a reload. A client that hangs up ends the wait, and so
// does the request's timeout; neither undoes the scale.
func (s *Server) scale(h Handler, c *net.UnixConn, br *bufio.Reader, req Request, timeout time.Duration) Reply {
	sc, ok := h.(Scaler)
	if !ok {
		return errReply(errors.New("this hupd cannot scale"))
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	if timeout > 0 {
		ctx = supervisor.WithWaitLimit(ctx, timeout)
	}
	stop := s.watchHangup(c, br, cancel)
	res := sc.Scale(ctx, req.Instances)
	stop()
	rep := Reply{V: ProtocolVersion, OK: res.OK, Scale: &res}
	if !res.OK {
		rep.Error = "scale failed"
		if res.Reason != "" {
			rep.Error += ": " + res.Reason
		}
	}
	return rep
}

// plan answers a plan request.
func (s *Server) plan(req Request) Reply {
	p, ok := s.h.(Planner)
	if !ok {
		return errReply(errors.New("this hupd cannot plan"))
	}
	var data []byte
	if req.Config != nil {
		data = []byte(*req.Config)
	}
	plan, err := p.Plan(s.ctx, data)
	if err != nil {
		rep := errReply(err)
		var ce *ConfigError
		rep.BadConfig = errors.As(err, &ce)
		return rep
	}
	return Reply{V: ProtocolVersion, OK: true, Plan: &plan}
}
