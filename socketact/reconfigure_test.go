package socketact

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReconfigure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	sp, err := ParseListenFlag("a=unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	sp.Mode = 0o600
	ls, err := Open([]Spec{sp})
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAll(ls)
	next := sp
	next.Name, next.Mode, next.Backlog = "b", 0o660, 7
	l, err := ls[0].Reconfigure(next)
	if err != nil {
		t.Fatal(err)
	}
	if l.File != ls[0].File || l.Spec.Name != "b" || ls[0].Spec.Name != "a" {
		t.Fatalf("Reconfigure must keep the socket and return a new Listener: %+v", l.Spec)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("mode after Reconfigure: %v, %v", fi.Mode(), err)
	}
	v6 := true
	for _, bad := range []func(*Spec){
		func(s *Spec) { s.ReusePort = true },
		func(s *Spec) { s.V6Only = &v6 },
	} {
		n := sp
		bad(&n)
		if _, err := ls[0].Reconfigure(n); !errors.Is(err, ErrNeedsNewSocket) {
			t.Errorf("err = %v, want ErrNeedsNewSocket", err)
		}
	}
	other, _ := ParseListenFlag("unix://" + path + "x")
	if _, err := ls[0].Reconfigure(other); err == nil {
		t.Error("Reconfigure to another address accepted")
	}
}
