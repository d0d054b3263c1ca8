package supervisor

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hupd/hupd/signals"
	"github.com/hupd/hupd/socketact"
)

// A generation's exit reaches Run after every datagram it sent before it
// died: a MAINPID= or STOPPING=1 sent just before exiting is never lost.
func TestExitAfterItsDatagrams(t *testing.T) {
	for i := range 50 {
		s, err := New(Options{Path: "/bin/true", Args: []string{"true"}}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ns, err := socketact.ListenNotify(filepath.Join(t.TempDir(), "g.sock"), -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		g := &generation{num: 1, pid: 1 << 30, notify: ns, exitParked: make(chan signals.Exit, 1)}
		s.self = 0 // the test stands in for the child: its datagrams must count
		g.origin.Store(int64(os.Getpid()))
		g.ref = &procRef{}
		g.ref.gen.Store(g)
		go s.readNotify(g)
		t.Setenv(socketact.EnvNotifySocket, ns.Path)
		if _, err := socketact.Notify("STATUS=last words"); err != nil {
			t.Fatal(err)
		}
		s.forwardExit(g.ref, signals.Exit{PID: g.pid}) // the process is gone right after
		var kinds []evKind
		for len(kinds) < 2 {
			select {
			case ev := <-s.events:
				kinds = append(kinds, ev.kind)
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: events %v, want a notify and an exit", i, kinds)
			}
		}
		if kinds[0] != evNotify || kinds[1] != evExit {
			t.Fatalf("round %d: events in order %v, want the datagram (%d) before the exit (%d)", i, kinds, evNotify, evExit)
		}
		ns.Close()
		close(s.quit)
	}
}
