package run

import (
	"log/slog"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/sdnotify"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
)

// Log keys of the fd store.
const (
	keyStored    = "stored"
	keyRemoved   = "removed"
	keyFDStore   = "fdstore"
	keySockets   = "sockets"
	keyNotStored = "not_stored"
)

// fdStore keeps hupd's sockets in the service manager's fd store
// (systemd.io/FILE_DESCRIPTOR_STORE), so that they outlive hupd: after a
// kill -9 under Restart=, systemd holds them (clients wait in the backlog)
// and hands them to the next hupd in LISTEN_FDS, which adopts them by name
// and port (socketact.Sockets). Each socket goes under its StoreName with
// FDSTORE=1 once it is open (a program's of several under "PROGRAM/" and
// its StoreName: storeSet, which RunMulti's fleet gives each program's
// sockets back by); FDSTOREREMOVE=1 of its name takes it out once
// the configuration no longer has it, or names it otherwise. Sockets hupd
// was started with are not sent again: the manager holds them already (in
// the store, or as a .socket unit's), and systemd checks the store's limit
// before it looks for a duplicate, so a full store would log an error for
// each. Sockets of a legacy adopt-mode [[listen]], which the program binds,
// are not stored. It runs on one goroutine at a time: Run's until the
// supervisor runs, then reconf's (with several programs: RunMulti's, then
// the fleet's loop).
//
// Invariant: held is what hupd takes the store to hold, at most max
// entries (when max is known), each a socket of the configuration in force
// under that socket's store name (storeName).
type fdStore struct {
	send func(fds []int, lines ...string) error
	log  *slog.Logger
	max  int // the store's size ($FDSTORE); 0 when the manager does not say
	held []storeEntry
	// warned is set once hupd said that the store is too small.
	warned bool
}

type storeEntry struct {
	name string
	id   sockID
}

// sockID names a socket whatever fd refers to it: every fd of one socket
// (dup, SCM_RIGHTS, fork) is of the same inode, and no two sockets are.
type sockID struct{ dev, ino uint64 }

func idOf(f *os.File) (sockID, bool) { return idOfFD(int(f.Fd())) }

func idOfFD(fd int) (sockID, bool) {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return sockID{}, false
	}
	return sockID{st.Dev, st.Ino}, true
}

// newFDStore returns the store for [systemd] fdstore = mode, or nil when
// hupd stores nothing: mode no; auto without $FDSTORE; no $NOTIFY_SOCKET
// (with yes, one line says so).
func newFDStore(mode string, log *slog.Logger) *fdStore {
	if mode == config.FDStoreNo {
		return nil
	}
	n, err := sdnotify.FromEnv()
	if err != nil || n == nil {
		if mode == config.FDStoreYes {
			log.Info(logev.FDStoreNoManager)
		}
		return nil
	}
	if mode == config.FDStoreAuto && n.FDStore() == 0 {
		return nil
	}
	log.Debug(logev.FDStoreKeeping, keyFDStore, n.FDStore())
	return &fdStore{send: n.SendFDs, log: log, max: n.FDStore()}
}

// inherit records the sockets hupd was started with as held by the
// manager under the names they came with. Call it before the first sync:
// those the configuration does not take are then removed from the store.
func (s *fdStore) inherit(act []socketact.Activated) {
	for _, a := range act {
		if id, ok := idOf(a.File); ok {
			s.held = append(s.held, storeEntry{a.Name, id})
		}
	}
}

// resumed records as stored what a previous image of this hupd (an
// in-place upgrade, which keeps the store as it was) stored of its one
// program's sockets, handed over as sts: in order, up to the store's
// size. Call it while their fds are open; a sync once the state is taken
// over then stores what this image's configuration added and removes what
// it dropped (hupd.toml edited since that image's last check), and sends
// nothing else.
func (s *fdStore) resumed(sts []socketact.ListenerState) {
	s.assumeEntries(handedStored("", sts))
}

// handedStored is what a previous image of this hupd stored of the
// sockets it handed over as sts (supervisor.Upgrade.Listeners: its
// configured sockets), under prefix: as wantedEntry, by the names its
// configuration gave them. The fds of sts must be open.
func handedStored(prefix string, sts []socketact.ListenerState) []storeEntry {
	var out []storeEntry
	for _, st := range sts {
		if st.Spec.Adopt || st.Spec.Steer {
			continue
		}
		if id, ok := idOfFD(st.FD); ok {
			out = append(out, storeEntry{storeName(prefix, st.Spec), id})
		}
	}
	return out
}

// assumeEntries records the entries want as stored, in order, up to the
// store's size.
func (s *fdStore) assumeEntries(want []storeEntry) {
	for _, w := range want {
		if s.max > 0 && len(s.held) >= s.max {
			break
		}
		s.held = append(s.held, w)
	}
}

// storeSet is sockets kept in the store under one prefix of their
// StoreName: "" for hupd's single program, "NAME/" for program NAME of
// several ([[program]]: storePrefix), whose sockets may have the names of
// another program's.
type storeSet struct {
	prefix string
	ls     []*socketact.Listener
}

// storeName is the name socket spec of a set with prefix is stored under:
// prefix and its StoreName, at most 255 bytes (systemd's limit).
func storeName(prefix string, spec socketact.Spec) string {
	n := prefix + spec.StoreName()
	return n[:min(len(n), 255)]
}

// wanted is what the store should hold for sets, in order, and the
// sockets.
func wanted(sets []storeSet) ([]storeEntry, []*os.File) {
	var out []storeEntry
	var files []*os.File
	for _, set := range sets {
		for _, l := range set.ls {
			if e, ok := wantedEntry(set.prefix, l); ok {
				out = append(out, e)
				files = append(files, l.File)
			}
		}
	}
	return out, files
}

// wantedEntry is the store's entry for l, or false when l is not stored.
func wantedEntry(prefix string, l *socketact.Listener) (storeEntry, bool) {
	if l.Spec.Adopt {
		return storeEntry{}, false // the program binds it: a restarted hupd binds nothing for it
	}
	if l.Spec.Steer {
		// A steered socket is one of a group of hupd's own: a restarted
		// hupd opens a new group (it takes none from LISTEN_FDS), and a
		// stored one would hold the port.
		return storeEntry{}, false
	}
	id, ok := idOf(l.File)
	return storeEntry{storeName(prefix, l.Spec), id}, ok
}

// sync makes the store hold the sockets of ls: it removes every name under
// which the store holds a socket ls does not have under that name (which
// removes all the sockets of that name), then stores each socket of ls it
// does not hold, while the store has room.
func (s *fdStore) sync(ls []*socketact.Listener) { s.syncSets([]storeSet{{ls: ls}}) }

// syncSets is sync for the sockets of several sets, each under its
// prefix.
func (s *fdStore) syncSets(sets []storeSet) {
	want, files := wanted(sets)
	var removed, stored, left []string
	for _, e := range s.held {
		if !slices.Contains(want, e) && !slices.Contains(removed, e.name) {
			removed = append(removed, e.name)
		}
	}
	for _, name := range removed {
		lines, err := sdnotify.FDStoreRemove(name)
		if err == nil {
			err = s.send(nil, lines...)
		}
		if err != nil {
			// The manager may keep it: a restarted hupd closes and
			// removes what it does not take.
			s.log.Warn(logev.FDStoreRemoveFailed, supervisor.KeySocket, name, supervisor.KeyError, err)
		}
		s.held = slices.DeleteFunc(s.held, func(e storeEntry) bool { return e.name == name })
	}
	for i, w := range want {
		if slices.Contains(s.held, w) {
			continue
		}
		if s.max > 0 && len(s.held) >= s.max {
			left = append(left, w.name)
			continue
		}
		lines, err := sdnotify.FDStore(w.name)
		if err == nil {
			err = s.send([]int{int(files[i].Fd())}, lines...)
		}
		if err != nil {
			s.log.Warn(logev.FDStoreStoreFailed, supervisor.KeySocket, w.name, supervisor.KeyError, err)
			continue
		}
		s.held = append(s.held, w)
		stored = append(stored, w.name)
	}
	if len(stored) > 0 || len(removed) > 0 {
		s.log.Info(logev.FDStoreUpdated, keyStored, stored, keyRemoved, removed)
	}
	if len(left) > 0 && !s.warned {
		s.warned = true
		s.log.Warn(logev.FDStoreFull,
			keyFDStore, s.max, keySockets, len(want), keyNotStored, left)
	}
}
