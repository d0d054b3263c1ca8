package run

import (
	"log/slog"
	"os"
	"time"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/internal/sentinel"
	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/supervisor"
)

// sentinelWait bounds how long hupd, exiting, waits for the sentinel to
// see EOF and exit (it has nothing to end by then).
const sentinelWait = 2 * time.Second

// startSentinel adopts the sentinel an upgrade handed over, or starts one
// (fresh: this image started it). It must run before the reaper does. Nil
// when there is none: hupd is PID 1 of its PID namespace, whose death
// makes the kernel kill every other process of the namespace, or the
// sentinel could not start (logged: hupd runs without it).
func startSentinel(up *supervisor.Upgrade, r *signals.Reaper, log *slog.Logger) (sen *sentinel.Sentinel, fresh bool) {
	lost := func(e signals.Exit, err error) {
		if err != nil {
			log.Error(logev.SentinelLost, supervisor.KeyPID, e.PID,
				supervisor.KeyStatus, e.String(), supervisor.KeyError, err)
			return
		}
		log.Warn(logev.SentinelRestarted, supervisor.KeyPID, e.PID, supervisor.KeyStatus, e.String())
	}
	if up != nil && up.Sentinel != nil {
		st := up.Sentinel
		sen = sentinel.Adopt(r, st.FD, st.PID, r.Watch(st.PID), lost)
		log.Debug(logev.SentinelTakenOver, supervisor.KeyPID, st.PID)
		return sen, false
	}
	if os.Getpid() == 1 {
		log.Debug(logev.NoSentinelPID1)
		return nil, false
	}
	sen, err := sentinel.Start(r, lost)
	if err != nil {
		log.Warn(logev.NoSentinel, supervisor.KeyError, err)
		return nil, false
	}
	log.Debug(logev.SentinelStarted, supervisor.KeyPID, sen.PID())
	return sen, true
}
