package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/hupd/hupd/supervisor"
)

// Call connects to the control socket at path, sends req and returns the
// reply; ctx bounds the whole exchange. req.V is filled in when zero.
//
// Outcomes:
//   - (reply, nil): the server answered; reply.OK says whether the command
//     succeeded, reply.Error why not (for a reload, reply.Reload has the
//     details either way);
//   - an error that wraps ErrNotRunning and syscall.ENOENT or
//     syscall.ECONNREFUSED: no hupd listens at path ("hupd not running? no control socket at PATH");
//   - an error that wraps ErrUntrusted: the socket is served by another
//     user than the caller's or root (SO_PEERCRED); nothing was sent;
//   - an error that wraps ctx's error: ctx ended first;
//   - any other error: the exchange failed; it names path.
func Call(ctx context.Context, path string, req Request) (Reply, error) {
	req.Progress = false
	return exchange(ctx, path, req, nil)
}

// CallProgress is Call for a reload request that asks for progress: on is
// called with each Progress line that comes before the reply.
func CallProgress(ctx context.Context, path string, req Request, on func(Progress)) (Reply, error) {
	req.Progress = true
	return exchange(ctx, path, req, on)
}

func exchange(ctx context.Context, path string, req Request, on func(Progress)) (Reply, error) {
	if req.V == 0 {
		req.V = ProtocolVersion
	}
	line, err := json.Marshal(req)
	if err != nil {
		return Reply{}, fmt.Errorf("control socket %s: %w", path, err)
	}
	c, err := dial(ctx, path)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	_, werr := c.Write(append(line, '\n'))
	// Read even if the write failed: a server that refuses us answers and
	// hangs up without reading.
	rep, rerr := readReply(c, on)
	if errors.Is(werr, os.ErrDeadlineExceeded) || errors.Is(rerr, os.ErrDeadlineExceeded) {
		<-ctx.Done() // the connection's deadlines come from ctx: it ends now
	}
	switch {
	case rerr == nil:
	case ctx.Err() != nil:
		return Reply{}, fmt.Errorf("control socket %s: %w", path, context.Cause(ctx))
	case werr != nil:
		return Reply{}, fmt.Errorf("control socket %s: %w", path, werr)
	default:
		return Reply{}, fmt.Errorf("control socket %s: %w", path, rerr)
	}
	if rep.V != ProtocolVersion {
		return rep, fmt.Errorf("control socket %s speaks protocol version %d, this hupd speaks %d", path, rep.V, ProtocolVersion)
	}
	return rep, nil
}

// ErrNotRunning is wrapped by Call's error when nobody listens at the
// control socket's path (no file, or a stale socket).
var ErrNotRunning = errors.New("control: hupd not running")

// notRunningError is "hupd not running? no control socket at PATH: …"; it
// is ErrNotRunning and wraps the dial's error.
type notRunningError struct {
	path string
	err  error
}

func (e *notRunningError) Error() string {
	// The dial's error names the path again: only its errno says more
	// (no such file, or a stale socket's connection refused).
	var errno syscall.Errno
	if errors.As(e.err, &errno) {
		return fmt.Sprintf("hupd not running? no control socket at %s (%v)", e.path, errno)
	}
	return fmt.Sprintf("hupd not running? no control socket at %s: %v", e.path, e.err)
}
func (e *notRunningError) Unwrap() []error { return []error{ErrNotRunning, e.err} }

// dial connects to the control socket at path and checks who serves it;
// the connection's deadline is ctx's. Its errors are Call's.
func dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &notRunningError{path: path, err: err}
		}
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// Believe only a server of our own user or root: anyone who could
	// put a socket at path (a directory of theirs) could answer.
	cred, err := peerCred(c.(*net.UnixConn))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if !allowedUID(cred.Uid) {
		c.Close()
		return nil, &untrustedError{fmt.Sprintf("control socket %s is served by uid %d (pid %d), not by root or uid %d: not a hupd of yours",
			path, cred.Uid, cred.Pid, os.Geteuid())}
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return c, nil
}

// Follow sends req (a logs request with Follow) to the control socket at
// path and calls fn with each reply, the first one and then one per line,
// until fn returns an error (returned), ctx ends (nil) or the server hangs
// up (an error: "connection closed"). A first reply that is not OK (a
// refusal) goes to fn too: its error is returned, else one with the
// reply's Error. Errors are otherwise Call's.
func Follow(ctx context.Context, path string, req Request, fn func(Reply) error) error {
	if req.V == 0 {
		req.V = ProtocolVersion
	}
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	c, err := dial(ctx, path)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(append(line, '\n')); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	lr := &io.LimitedReader{R: c}
	br := bufio.NewReader(lr)
	for first := true; ; first = false {
		lr.N = maxReplyLine // each line is bounded, not the stream
		b, err := br.ReadBytes('\n')
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if err == io.EOF {
				return fmt.Errorf("control socket %s: connection closed", path)
			}
			return fmt.Errorf("control socket %s: %w", path, err)
		}
		var rep Reply
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("control socket %s: malformed reply: %w", path, err)
		}
		if first && !rep.OK {
			if err := fn(rep); err != nil {
				return err
			}
			return errors.New(rep.Error)
		}
		if err := fn(rep); err != nil {
			return err
		}
	}
}

// ErrUntrusted is wrapped by Call's error when the control socket is served
// by another user than the caller's or root; such an error is also
// supervisor.ErrUntrusted, which refuses the directories hupd or its client
// will not use: one errors.Is catches every refusal of trust.
var ErrUntrusted = errors.New("control: control socket served by a stranger")

// untrustedError is a one-line refusal of a server; it is ErrUntrusted
// (and supervisor.ErrUntrusted).
type untrustedError struct{ msg string }

func (e *untrustedError) Error() string { return e.msg }
func (e *untrustedError) Is(target error) bool {
	// supervisor.ErrUntrusted too: before the control plane had a package
	// of its own, every refusal was that one.
	return target == ErrUntrusted || target == supervisor.ErrUntrusted
}

// readReply reads the reply line, passing the Progress lines before it to
// on. Each line is bounded by maxReplyLine.
func readReply(r io.Reader, on func(Progress)) (Reply, error) {
	lr := &io.LimitedReader{R: r}
	br := bufio.NewReader(lr)
	for {
		lr.N = maxReplyLine
		b, err := br.ReadBytes('\n')
		if len(b) == 0 {
			if err == io.EOF {
				return Reply{}, errors.New("connection closed without a reply")
			}
			return Reply{}, err
		}
		if err != nil && err != io.EOF {
			return Reply{}, err
		}
		var rep Reply
		if err := json.Unmarshal(b, &rep); err != nil {
			return Reply{}, fmt.Errorf("malformed reply: %w", err)
		}
		if rep.Progress != nil && rep.Reload == nil && rep.Status == nil && !rep.OK && rep.Error == "" && err == nil {
			if on != nil {
				on(*rep.Progress)
			}
			continue
		}
		return rep, nil
	}
}
