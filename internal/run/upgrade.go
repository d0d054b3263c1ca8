package run

import (
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/internal/mainthread"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
)

// takeOverSockets gives the configuration r the sockets an upgrading hupd
// handed over: a configured address keeps its socket (as an edit of
// hupd.toml would), a new one is opened; the handed-over sockets no
// address names any more are returned as others, for the generations
// that still use them.
func takeOverSockets(up *supervisor.Upgrade, r *config.Resolved) (ls, others []*socketact.Listener, err error) {
	var held []*socketact.Listener
	for _, st := range up.Sockets() {
		l, err := socketact.RestoreListener(st)
		if err != nil {
			return nil, nil, err
		}
		held = append(held, l)
	}
	if len(r.Listen) == 0 {
		// No [[listen]]: the sockets a service manager passed are passed
		// on as received, as at start (see listeners).
		n := len(up.Listeners)
		return held[:n], held[n:], nil
	}
	ls, opened, err := reuseSockets(held, r.Listen, r.ListenWhere)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range ls {
		i := slices.IndexFunc(held, func(h *socketact.Listener) bool { return h.File == l.File })
		if i < 0 {
			continue // opened
		}
		if err := l.Apply(held[i].Spec); err != nil {
			socketact.CloseAll(opened)
			return nil, nil, err
		}
	}
	for _, h := range held {
		if !slices.ContainsFunc(ls, func(l *socketact.Listener) bool { return l.File == h.File }) {
			others = append(others, h)
		}
	}
	return ls, others, nil
}

// failTakeOver, when set at build time (-ldflags "-X
// github.com/hupd/hupd/internal/run.failTakeOver=REASON"), makes this
// binary refuse the state of every upgrade, as a binary that cannot take
// over would: the integration test of the rollback builds one. It is empty
// in every other build.
var failTakeOver string

// rollback hands the state back to the binary that handed it over, after
// this one failed to take over (why). It returns only if that fails too:
// then hupd exits, and its children with it. drop, if not nil, lets go of
// a sentinel this image started, which that binary does not know.
func rollback(up *supervisor.Upgrade, why error, log *slog.Logger, drop func()) (int, error) {
	if up.RolledBack() {
		// The previous binary cannot take its own state back either: do
		// not go round in circles.
		return 1, fmt.Errorf("upgrade: the previous binary cannot take over again: %w", why)
	}
	log.Error("upgrade: cannot take over; going back to the previous binary", "error", why)
	if drop != nil {
		drop()
	}
	var err error
	// From the thread the children were forked from (see mainthread).
	mainthread.Do(func() { err = up.Rollback(os.Args) })
	return 1, fmt.Errorf("upgrade: cannot take over (%v), and cannot go back: %w", why, err)
}
