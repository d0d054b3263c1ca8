package run

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
)

// sent is one message to the fake service manager: its lines and the
// sockets that went with it.
type sent struct {
	lines string
	ids   []sockID
}

// fakeStore returns a store of size max whose messages go to *msgs, and
// its log.
func fakeStore(t *testing.T, max int) (*fdStore, *[]sent, *bytes.Buffer) {
	t.Helper()
	var msgs []sent
	var log bytes.Buffer
	s := &fdStore{max: max, log: slog.New(slog.NewTextHandler(&log, nil)), send: func(fds []int, lines ...string) error {
		m := sent{lines: strings.Join(lines, " ")}
		for _, fd := range fds {
			id, ok := idOfFD(fd)
			if !ok {
				t.Fatalf("fd %d sent with %q is not open", fd, lines)
			}
			m.ids = append(m.ids, id)
		}
		msgs = append(msgs, m)
		return nil
	}}
	return s, &msgs, &log
}

func openFlags(t *testing.T, flags ...string) []*socketact.Listener {
	t.Helper()
	var specs []socketact.Spec
	for _, f := range flags {
		sp, err := socketact.ParseListenFlag(f)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, sp)
	}
	ls, err := socketact.Open(specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { socketact.CloseAll(ls) })
	return ls
}

func id(t *testing.T, l *socketact.Listener) sockID {
	t.Helper()
	i, ok := idOf(l.File)
	if !ok {
		t.Fatal("not open")
	}
	return i
}

// take returns the messages so far and forgets them.
func take(msgs *[]sent) []sent {
	m := *msgs
	*msgs = nil
	return m
}

func wantMsgs(t *testing.T, what string, got []sent, want ...sent) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b sent) bool { return a.lines == b.lines && slices.Equal(a.ids, b.ids) }) {
		t.Errorf("%s: sent %+v, want %+v", what, got, want)
	}
}

// TestFDStoreSync: each socket goes in once under its StoreName with its
// own fd; an unchanged configuration sends nothing; a dropped socket's
// name is removed; a renamed one is removed and stored again; two sockets
// of one name go out together and the one kept is stored again.
func TestFDStoreSync(t *testing.T) {
	s, msgs, _ := fakeStore(t, 0)
	ls := openFlags(t, "web=tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "dup=tcp://127.0.0.1:0", "dup=tcp://127.0.0.1:0")
	web, anon, dup1, dup2 := ls[0], ls[1], ls[2], ls[3]
	s.sync(ls)
	wantMsgs(t, "start", take(msgs),
		sent{"FDSTORE=1 FDNAME=web", []sockID{id(t, web)}},
		sent{"FDSTORE=1 FDNAME=tcp_//127.0.0.1_0", []sockID{id(t, anon)}},
		sent{"FDSTORE=1 FDNAME=dup", []sockID{id(t, dup1)}},
		sent{"FDSTORE=1 FDNAME=dup", []sockID{id(t, dup2)}})
	s.sync(ls)
	wantMsgs(t, "unchanged", take(msgs))

	// dup2 dropped: "dup" goes, dup1 comes back.
	s.sync([]*socketact.Listener{web, anon, dup1})
	wantMsgs(t, "one of two dropped", take(msgs),
		sent{"FDSTOREREMOVE=1 FDNAME=dup", nil},
		sent{"FDSTORE=1 FDNAME=dup", []sockID{id(t, dup1)}})

	// The same socket under a new name.
	renamed := *web
	renamed.Spec.Name = "www"
	s.sync([]*socketact.Listener{&renamed, anon, dup1})
	wantMsgs(t, "renamed", take(msgs),
		sent{"FDSTOREREMOVE=1 FDNAME=web", nil},
		sent{"FDSTORE=1 FDNAME=www", []sockID{id(t, web)}})

	// A new one added, one dropped.
	added := openFlags(t, "api=tcp://127.0.0.1:0")[0]
	s.sync([]*socketact.Listener{&renamed, dup1, added})
	wantMsgs(t, "edit", take(msgs),
		sent{"FDSTOREREMOVE=1 FDNAME=tcp_//127.0.0.1_0", nil},
		sent{"FDSTORE=1 FDNAME=api", []sockID{id(t, added)}})

	// A steered socket is never stored (a restarted hupd opens a group of
	// its own and takes none from LISTEN_FDS).
	steered := *added
	steered.Spec.Steer = true
	s.sync([]*socketact.Listener{&renamed, dup1, &steered})
	wantMsgs(t, "steered", take(msgs), sent{"FDSTOREREMOVE=1 FDNAME=api", nil})
}

// TestFDStoreLimit: with $FDSTORE=1, the first socket is stored and one
// warning names the other; it is stored once room is made.
func TestFDStoreLimit(t *testing.T) {
	s, msgs, log := fakeStore(t, 1)
	ls := openFlags(t, "a=tcp://127.0.0.1:0", "b=tcp://127.0.0.1:0")
	s.sync(ls)
	wantMsgs(t, "start", take(msgs), sent{"FDSTORE=1 FDNAME=a", []sockID{id(t, ls[0])}})
	if n := strings.Count(log.String(), "level=WARN"); n != 1 || !strings.Contains(log.String(), "not_stored=[b]") || !strings.Contains(log.String(), "fdstore=1") {
		t.Errorf("want one warning naming b:\n%s", log)
	}
	s.sync(ls)
	wantMsgs(t, "unchanged", take(msgs))
	if n := strings.Count(log.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want 1 in all:\n%s", n, log)
	}
	s.sync(ls[1:])
	wantMsgs(t, "a dropped", take(msgs),
		sent{"FDSTOREREMOVE=1 FDNAME=a", nil},
		sent{"FDSTORE=1 FDNAME=b", []sockID{id(t, ls[1])}})
}

// TestFDStoreInherited: sockets hupd was started with are not sent again,
// and count against the store's size; one the configuration did not take
// is removed, and a kept socket of that name is stored again.
func TestFDStoreInherited(t *testing.T) {
	s, msgs, _ := fakeStore(t, 3)
	ls := openFlags(t, "web=tcp://127.0.0.1:0", "api=tcp://127.0.0.1:0", "new=tcp://127.0.0.1:0", "more=tcp://127.0.0.1:0")
	stale := openFlags(t, "tcp://127.0.0.1:0")[0]
	twin := openFlags(t, "tcp://127.0.0.1:0")[0]
	s.inherit([]socketact.Activated{{Name: "web", File: ls[0].File}, {Name: "api", File: ls[1].File},
		{Name: "old", File: stale.File}, {Name: "web", File: twin.File}})
	s.sync(ls)
	// "old" and the second "web" were not taken: both names go, and the
	// kept "web" is stored again, then "new" while there is room.
	wantMsgs(t, "start", take(msgs),
		sent{"FDSTOREREMOVE=1 FDNAME=old", nil},
		sent{"FDSTOREREMOVE=1 FDNAME=web", nil},
		sent{"FDSTORE=1 FDNAME=web", []sockID{id(t, ls[0])}},
		sent{"FDSTORE=1 FDNAME=new", []sockID{id(t, ls[2])}})

	// An upgraded image assumes what the previous one stored.
	u, umsgs, _ := fakeStore(t, 3)
	u.resumed(states(ls))
	u.sync(ls)
	wantMsgs(t, "after an upgrade", take(umsgs))
	u.sync(ls[1:])
	wantMsgs(t, "web dropped after an upgrade", take(umsgs),
		sent{"FDSTOREREMOVE=1 FDNAME=web", nil},
		sent{"FDSTORE=1 FDNAME=more", []sockID{id(t, ls[3])}})
}

// TestFDStoreResumedEdited: an upgraded image of one program takes for
// stored what the previous image stored (the sockets it handed over), not
// what its own configuration, read from a hupd.toml edited since that
// image's last check, names: the sync after the take-over removes the
// dropped socket's name, stores the added one and sends nothing of the
// kept one.
func TestFDStoreResumedEdited(t *testing.T) {
	s, msgs, _ := fakeStore(t, 0)
	ls := openFlags(t, "web=tcp://127.0.0.1:0", "old=tcp://127.0.0.1:0", "admin=tcp://127.0.0.1:0")
	web, old, admin := ls[0], ls[1], ls[2]
	s.resumed(states([]*socketact.Listener{web, old}))
	s.sync([]*socketact.Listener{web, admin})
	wantMsgs(t, "after an upgrade with hupd.toml edited", take(msgs),
		sent{"FDSTOREREMOVE=1 FDNAME=old", nil},
		sent{"FDSTORE=1 FDNAME=admin", []sockID{id(t, admin)}})
}

// TestNewFDStore: auto stores when $FDSTORE says there is a store, yes
// whenever there is a notify socket, no never.
func TestNewFDStore(t *testing.T) {
	var log bytes.Buffer
	l := slog.New(slog.NewTextHandler(&log, nil))
	for _, tc := range []struct {
		mode, notify, fdstore string
		on                    bool
		max                   int
	}{
		{config.FDStoreAuto, "/run/systemd/notify", "4", true, 4},
		{config.FDStoreAuto, "/run/systemd/notify", "", false, 0},
		{config.FDStoreAuto, "", "4", false, 0},
		{config.FDStoreYes, "/run/systemd/notify", "", true, 0},
		{config.FDStoreYes, "", "", false, 0},
		{config.FDStoreNo, "/run/systemd/notify", "4", false, 0},
	} {
		t.Setenv("NOTIFY_SOCKET", tc.notify)
		t.Setenv("FDSTORE", tc.fdstore)
		s := newFDStore(tc.mode, l)
		if (s != nil) != tc.on || s != nil && s.max != tc.max {
			t.Errorf("%+v: %+v", tc, s)
		}
	}
	if n := strings.Count(log.String(), logev.FDStoreNoManager); n != 1 {
		t.Errorf("%d lines for yes without a notify socket, want 1:\n%s", n, log.String())
	}
}
