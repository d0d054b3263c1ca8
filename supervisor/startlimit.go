package supervisor

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/signals"
)

// StartLimit bounds failed starts, as systemd's StartLimitBurst= and
// StartLimitIntervalSec= do: once Burst of them fall within one window of
// Interval, hupd no longer restarts the program but gives up (see
// Supervisor.giveUp). The zero value (or a Burst or Interval of 0) is no
// limit; hupd's configuration defaults to DefaultStartBurst in
// DefaultStartInterval.
//
// A failed start is a generation that exits (or cannot be started, or
// whose program cannot be exec'd) before it is ready, whether it was a
// restart's or a reload's; a reload's generation that is not ready within
// the readiness timeout; and an exit of the serving generation that the
// restart policy restarts. It counts only while nothing serves: a reload
// whose new generation fails beside a ready older one never counts (nor
// ends hupd). A generation hupd asked to stop (draining) never counts.
//
// The window is systemd's: it opens at the first failure counted and lasts
// Interval; a failure after it opens a new one. The limit is checked when a
// restart is due, that is when no generation serves.
type StartLimit struct {
	Burst    int
	Interval time.Duration
}

// hupd's default start limit (systemd's default: 5 starts in 10 s).
const (
	DefaultStartBurst    = 5
	DefaultStartInterval = 10 * time.Second
)

// Off reports whether l limits nothing.
func (l StartLimit) Off() bool { return l.Burst <= 0 || l.Interval <= 0 }

// String is the BURST/INTERVAL form ParseStartLimit reads: "5/10s", or
// "off".
func (l StartLimit) String() string {
	if l.Off() {
		return "off"
	}
	return strconv.Itoa(l.Burst) + "/" + l.Interval.String()
}

// ParseStartLimit reads "BURST/INTERVAL" ("5/10s": 5 failed starts within
// 10 seconds), or "off" or "0" for no limit. BURST is a positive whole
// number and INTERVAL a positive duration with its unit.
func ParseStartLimit(s string) (StartLimit, error) {
	switch s {
	case "off", "0":
		return StartLimit{}, nil
	}
	burst, interval, ok := strings.Cut(s, "/")
	if !ok || burst == "" || interval == "" {
		return StartLimit{}, errors.New(`want BURST/INTERVAL such as "5/10s" (5 failed starts within 10 s), or "off"`)
	}
	n, err := strconv.Atoi(burst)
	if err != nil || n < 1 {
		return StartLimit{}, fmt.Errorf(`burst %q: want a positive whole number of failed starts, as in "5/10s" (or "off" for no limit)`, burst)
	}
	d, err := time.ParseDuration(interval)
	if err != nil || d <= 0 {
		return StartLimit{}, fmt.Errorf(`interval %q: want a positive duration with its unit, as in "5/10s" or "3/1m"`, interval)
	}
	return StartLimit{Burst: n, Interval: d}, nil
}

// startWindow counts failed starts in the start limit's current window.
type startWindow struct {
	opened time.Time // when the window's first failure was counted
	n      int
	code   int // the exit code of the last failure counted
}

// add counts a failure at now whose status is code (an exit code, 128+n
// for signal n, or a start error's ExitCode).
func (w *startWindow) add(l StartLimit, now time.Time, code int) {
	if w.opened.IsZero() || now.Sub(w.opened) > l.Interval {
		w.opened, w.n = now, 0
	}
	w.n++
	w.code = code
}

// count is the number of failures in the window still open at now.
func (w *startWindow) count(l StartLimit, now time.Time) int {
	if w.opened.IsZero() || now.Sub(w.opened) > l.Interval {
		return 0
	}
	return w.n
}

// failedStart counts a failed start (see StartLimit) whose status is code.
func (s *Supervisor) failedStart(code int) {
	s.startFails.add(s.opts.StartLimit, time.Now(), code)
}

// failedReloadStart counts the failed start of a reload's new generation
// (see failedStart), unless an older generation serves beside it: the
// limit is about a program that cannot serve, and a reload that fails
// while the old one serves is reported to whoever asked, and ends there.
func (s *Supervisor) failedReloadStart(code int) {
	if slices.ContainsFunc(s.serving(), func(g *generation) bool { return g.state == StateReady }) {
		return
	}
	s.failedStart(code)
}

// startLimitHit reports whether a restart that is due now would pass the
// start limit.
func (s *Supervisor) startLimitHit() bool {
	l := s.opts.StartLimit
	return !l.Off() && s.startFails.count(l, time.Now()) >= l.Burst
}

// giveUp ends hupd when the start limit is reached: no generation serves
// and the next restart would most likely fail as the last ones did. hupd
// exits with the last failure's status (1 if that was 0), so that a
// container ends and its orchestrator, or a service manager, sees it.
func (s *Supervisor) giveUp(why string) {
	l := s.opts.StartLimit
	code := s.startFails.code
	if code == 0 {
		code = 1 // a clean exit restarted by "always": giving up is a failure
	}
	s.log.Error(logev.StartLimitReached, KeyLimit, l.String(), KeyFailures, s.startFails.count(l, time.Now()),
		KeyExitCode, code, KeyReason, why,
		"hint", "the program fails to start: see its output and the exits above; --start-limit ([restart] start_limit) sets the limit, off removes it")
	s.exitWith(code)
}

// exitWith stops every generation, after which Run returns code: the
// restart policy does not start the program again, or gave up.
func (s *Supervisor) exitWith(code int) {
	s.stopCode = &code
	s.stopping = true
	if h := s.hooks.Stopping; h != nil {
		h()
	}
	s.closeSockets()
	if s.standby != nil {
		s.discardStandby()
	}
	s.failTx("hupd is stopping")
	for _, o := range s.gens {
		s.drain(o)
	}
}

// SuccessStatus lists exit statuses that count as a success besides exit
// 0 (systemd's SuccessExitStatus=, tini's -e): the restart policy
// on-failure does not restart them, and hupd exits 0 when it would have
// exited with one of them (a stop, or a child not restarted). A Code
// matches a status whose exit code (signals.Exit.Code, 128+n for signal
// n) is Code, as tini's -e does; a Signal matches only a death by that
// signal.
type SuccessStatus struct {
	Codes   []int
	Signals []syscall.Signal
}

// Has reports whether e is one of the statuses of ss.
func (ss SuccessStatus) Has(e signals.Exit) bool {
	if slices.Contains(ss.Codes, e.Code()) {
		return true
	}
	return e.Status.Signaled() && slices.Contains(ss.Signals, e.Status.Signal())
}

// ParseExitStatus reads one entry of a success exit status list: an exit
// code from 0 to 255, or a signal name (TERM, SIGTERM, RTMIN+1).
func ParseExitStatus(s string) (code int, sig syscall.Signal, err error) {
	t := strings.TrimSpace(s)
	if n, err := strconv.Atoi(t); err == nil {
		if n < 0 || n > 255 {
			return 0, 0, fmt.Errorf("exit code %d: exit codes go from 0 to 255", n)
		}
		return n, 0, nil
	}
	if t == "" {
		return 0, 0, errors.New("empty: want an exit code (0 to 255) or a signal name such as TERM")
	}
	sig, err = signals.Parse(t)
	if err != nil {
		return 0, 0, fmt.Errorf("want an exit code (0 to 255) or a signal name: %w", err)
	}
	return 0, sig, nil
}

// success reports whether e counts as a success (exit 0, or one of
// Options.SuccessExitStatus).
func (s *Supervisor) success(e signals.Exit) bool {
	return e.Success() || s.opts.SuccessExitStatus.Has(e)
}

// exitCode is the code hupd exits with for the child's status e: its
// code, or 0 when e is one of Options.SuccessExitStatus (as tini -e).
func (s *Supervisor) exitCode(e signals.Exit) int {
	if s.success(e) {
		return 0
	}
	return e.Code()
}
