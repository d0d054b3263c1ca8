package run

import (
	"time"

	"github.com/hupd/hupd/supervisor"
)

// hooks joins the supervisor hooks of several observers (systemd, health
// and metrics): each event goes to every one that set a hook for it.
func hooks(hs ...supervisor.Hooks) supervisor.Hooks {
	return supervisor.Hooks{
		Started: func(gen, pid int) {
			for _, h := range hs {
				if h.Started != nil {
					h.Started(gen, pid)
				}
			}
		},
		Ready: func(gen, pid int, after time.Duration) {
			for _, h := range hs {
				if h.Ready != nil {
					h.Ready(gen, pid, after)
				}
			}
		},
		Reloading: func(st supervisor.Strategy, cause string) {
			for _, h := range hs {
				if h.Reloading != nil {
					h.Reloading(st, cause)
				}
			}
		},
		Reloaded: func(r supervisor.ReloadResult) {
			for _, h := range hs {
				if h.Reloaded != nil {
					h.Reloaded(r)
				}
			}
		},
		Stopping: func() {
			for _, h := range hs {
				if h.Stopping != nil {
					h.Stopping()
				}
			}
		},
	}
}
