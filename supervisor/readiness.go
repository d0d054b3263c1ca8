package supervisor

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hupd/hupd/internal/duration"
)

// ReadyKind is how hupd decides that a new generation is ready.
type ReadyKind string

// Readiness kinds.
const (
	// ReadyAuto waits for READY=1; a program that has never sent a notify
	// datagram (in any generation so far) is instead judged ready once it
	// has been alive for AutoDelay, with a warning that says so.
	ReadyAuto ReadyKind = "auto"
	// ReadyNotify waits for READY=1 on the generation's NOTIFY_SOCKET.
	ReadyNotify ReadyKind = "notify"
	// ReadyDelay judges a generation ready when it is still alive after Delay.
	ReadyDelay ReadyKind = "delay"
	// ReadyExec runs Command (argv, no shell) until it exits 0.
	ReadyExec ReadyKind = "exec"
	// ReadyListen, with bind redirection only, judges a generation ready
	// once it has called listen on every stream socket hupd holds and bind
	// on every datagram one.
	ReadyListen ReadyKind = "listen"
)

// Readiness defaults.
const (
	DefaultReadyTimeout  = 60 * time.Second
	DefaultAutoDelay     = 2 * time.Second
	DefaultProbeInterval = 250 * time.Millisecond
	// readyWarnAfter is when hupd says in the log that a generation has
	// not become ready yet, so that a wrong readiness mode is never silent.
	readyWarnAfter = 5 * time.Second
)

// Readiness configures how hupd waits for a generation to be ready.
type Readiness struct {
	Kind    ReadyKind
	Delay   time.Duration // ReadyDelay; ReadyAuto's fallback (DefaultAutoDelay)
	Command []string      // ReadyExec
	// Interval between runs of Command (DefaultProbeInterval).
	Interval time.Duration
	// Timeout: not ready by then means the generation failed
	// (DefaultReadyTimeout).
	Timeout time.Duration
}

// ParseReadiness parses "auto", "notify", "delay:DURATION" or
// "exec:COMMAND ARGS…" (split on white space; no shell).
func ParseReadiness(s string) (Readiness, error) {
	kind, arg, hasArg := strings.Cut(strings.TrimSpace(s), ":")
	r := Readiness{Kind: ReadyKind(kind)}
	switch r.Kind {
	case ReadyAuto, ReadyNotify, ReadyListen:
		if hasArg {
			return r, fmt.Errorf("readiness %q takes no argument", kind)
		}
	case ReadyDelay:
		d, err := duration.Parse(arg)
		var nu *duration.NoUnitError
		if errors.As(err, &nu) {
			nu.Prefix = string(ReadyDelay) + ":"
			return r, nu
		}
		if err != nil || d <= 0 {
			return r, fmt.Errorf("readiness %q: want delay:DURATION such as delay:2s", s)
		}
		r.Delay = d
	case ReadyExec:
		r.Command = strings.Fields(arg)
		if len(r.Command) == 0 {
			return r, fmt.Errorf("readiness %q: want exec:COMMAND such as exec:curl -fsS http://127.0.0.1:8080/health", s)
		}
	default:
		return r, fmt.Errorf("unknown readiness %q: valid forms are auto, notify, listen, delay:DURATION, exec:COMMAND", s)
	}
	return r, nil
}

// String is the inverse of ParseReadiness.
func (r Readiness) String() string {
	switch r.Kind {
	case ReadyDelay:
		return "delay:" + r.Delay.String()
	case ReadyExec:
		return "exec:" + strings.Join(r.Command, " ")
	case "":
		return string(ReadyAuto)
	}
	return string(r.Kind)
}

func (r Readiness) withDefaults() Readiness {
	if r.Kind == "" {
		r.Kind = ReadyAuto
	}
	if r.Kind == ReadyAuto && r.Delay <= 0 {
		r.Delay = DefaultAutoDelay
	}
	if r.Interval <= 0 {
		r.Interval = DefaultProbeInterval
	}
	if r.Timeout <= 0 {
		r.Timeout = DefaultReadyTimeout
	}
	return r
}
