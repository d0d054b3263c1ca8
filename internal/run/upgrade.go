package run

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
)

// takeOverSockets gives a configuration's sockets (specs, where) the sockets an upgrading hupd
// handed over (socketact.Sockets): a configured address keeps its socket
// (as an edit of hupd.toml would), a new one is opened; the handed-over
// sockets no address names any more are returned as others, for the
// generations that still use them. Without [[listen]], the sockets the
// previous image ran with are kept as they are, as they were at start
// (passed on as received). On an error the handed-over sockets are as
// they were, for the previous image to take back.
func takeOverSockets(up *supervisor.Upgrade, specs []socketact.Spec, where []string) (ls, others []*socketact.Listener, err error) {
	// A steered socket comes back as its group's anchor, every member and
	// the target as they were.
	held, err := up.RestoreSockets()
	if err != nil {
		return nil, nil, err
	}
	if len(specs) == 0 {
		for _, st := range up.Listeners {
			specs = append(specs, st.Spec)
		}
	}
	set, err := socketact.Sockets(held, nil, specs, where)
	if err != nil {
		return nil, nil, err
	}
	for _, re := range set.Reused {
		if err := re.Apply(); err != nil {
			socketact.CloseAll(set.Opened)
			return nil, nil, err
		}
	}
	return set.Listeners, set.Left, nil
}

// failTakeOver, when set at build time (-ldflags "-X
// github.com/hupd/hupd/internal/run.failTakeOver=REASON"), makes this
// binary refuse the state of every upgrade, as a binary that cannot take
// over would: the integration test of the rollback builds one. It is empty
// in every other build.
var failTakeOver string

// editSuffix, when set at build time (-ldflags "-X
// github.com/hupd/hupd/internal/run.editSuffix=SUFFIX"), makes an upgrade
// rename hupd.toml+SUFFIX, if it exists, over hupd.toml right before its
// exec, after the last check that the file is the version in force: the
// integration tests of an edit saved in that instant build one. It is
// empty in every other build.
var editSuffix string

// editBeforeExec is editSuffix's edit of hupd.toml (path; "": none).
func editBeforeExec(path string) {
	if editSuffix != "" && path != "" {
		os.Rename(path+editSuffix, path)
	}
}

// rollback hands the state back to the binary that handed it over, after
// this one failed to take over (why). It returns only if that fails too:
// then hupd exits, and its children with it. drop, if not nil, lets go of
// a sentinel this image started, which that binary does not know.
func rollback(up *supervisor.Upgrade, why error, log *slog.Logger, drop func(), thread func(func())) (int, error) {
	if up.RolledBack() {
		// The previous binary cannot take its own state back either: do
		// not go round in circles.
		return 1, fmt.Errorf("upgrade: the previous binary cannot take over again: %w", why)
	}
	log.Error(logev.UpgradeTakeOverFailed, "error", why)
	if drop != nil {
		drop()
	}
	var err error
	// From the thread the children were forked from (Setup.Thread).
	back := func() { err = up.Rollback(os.Args) }
	if thread != nil {
		thread(back)
	} else {
		back()
	}
	return 1, fmt.Errorf("upgrade: cannot take over (%v), and cannot go back: %w", why, err)
}
