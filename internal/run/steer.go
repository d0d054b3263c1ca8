package run

import (
	"fmt"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/socketact"
)

// steerFixed refuses a configuration that turns steering on or off for a
// socket it keeps, as a changed reuseport is refused
// (socketact.ErrNeedsNewSocket): a steered address is a group of
// SO_REUSEPORT sockets, one per generation, and a shared socket cannot
// become one, nor a group that one socket. The sockets kept are paired
// with those in force as socketact.Match pairs them: the same configured
// address (Spec.SameSocket) and name first, then the same address, each
// socket in force at most once. The error is prefixed with where the
// address is configured, as the supervisor's are; hupd plan reports it as
// a configuration error, and an edit of hupd.toml is not applied.
func steerFixed(cur, next *config.Resolved) error {
	kept := make([]int, len(next.Listen)) // 1 + the index in cur.Listen; 0: none
	taken := make([]bool, len(cur.Listen))
	for _, sameName := range []bool{true, false} {
		for i, sp := range next.Listen {
			if kept[i] != 0 {
				continue
			}
			for j, was := range cur.Listen {
				if !taken[j] && was.SameSocket(sp) && (!sameName || was.FDName() == sp.FDName()) {
					kept[i], taken[j] = j+1, true
					break
				}
			}
		}
	}
	for i, sp := range next.Listen {
		if kept[i] == 0 || cur.Listen[kept[i]-1].Steer == sp.Steer {
			continue
		}
		err := fmt.Errorf("listen %s: steer: %w: keep it, or give the socket a new address", sp.Address, socketact.ErrNeedsNewSocket)
		if i < len(next.ListenWhere) && next.ListenWhere[i] != "" {
			err = fmt.Errorf("%s: %w", next.ListenWhere[i], err)
		}
		return err
	}
	return nil
}
