package socketact

import (
	"errors"
	"slices"
	"testing"
)

func TestHandoffEnv(t *testing.T) {
	ls := []*Listener{
		{Spec: Spec{Address: Address{Network: TCP, Port: 0}}, Bound: Address{Network: TCP, Port: 8080}},
		{Spec: Spec{Name: "v6", Address: Address{Network: TCP6, Host: "::1", Port: 9000}}, Bound: Address{Network: TCP6, Host: "::1", Port: 9000}},
		{Spec: Spec{Name: "u", Address: Address{Network: Unix, Path: "/run/a.sock"}}},
	}
	got := HandoffEnv([]string{HandoffEinhorn, HandoffServerStarter, HandoffNginx}, ls, 7)
	want := []string{
		"EINHORN_FD_COUNT=3", "EINHORN_FD_0=3", "EINHORN_FD_1=4", "EINHORN_FD_2=5",
		"SERVER_STARTER_PORT=8080=3;[::1]:9000=4;/run/a.sock=5", "SERVER_STARTER_GENERATION=7",
		"NGINX=3;4;5;",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("HandoffEnv =\n%q\nwant\n%q", got, want)
	}
	if env := HandoffEnv(nil, ls, 1); len(env) != 0 {
		t.Fatalf("no dialect: %q", env)
	}
}

func TestExpandArgs(t *testing.T) {
	ls := []*Listener{
		{Spec: Spec{Name: "http", Address: Address{Network: TCP}}, Bound: Address{Network: TCP, Port: 41000}},
		{Spec: Spec{Name: "admin", Address: Address{Network: Unix, Path: "/a"}}},
	}
	got, err := ExpandArgs([]string{"--fd", "{fd:admin}", "fd://{fd:http}:{port:http}", "{fd:}", "{json:1}"}, ls)
	if err != nil || !slices.Equal(got, []string{"--fd", "4", "fd://3:41000", "{fd:}", "{json:1}"}) {
		t.Fatalf("ExpandArgs = %q, %v", got, err)
	}
	if _, err := ExpandArgs([]string{"{fd:nope}"}, ls); !errors.Is(err, ErrArgRef) {
		t.Fatalf("unknown name: %v", err)
	}
	specs := []Spec{ls[0].Spec, ls[1].Spec}
	if err := CheckArgs([]string{"{port:admin}"}, specs); !errors.Is(err, ErrArgRef) {
		t.Fatalf("port of a unix socket: %v", err)
	}
	if err := CheckArgs([]string{"x{fd:http}y", "{port:http}"}, specs); err != nil {
		t.Fatal(err)
	}
}

func FuzzExpandArgs(f *testing.F) {
	f.Add("--fd={fd:http}{port:http}{fd:")
	ls := []*Listener{{Spec: Spec{Name: "http"}, Bound: Address{Port: 80}}}
	f.Fuzz(func(t *testing.T, arg string) {
		out, err := ExpandArgs([]string{arg}, ls)
		if err == nil && len(out) != 1 {
			t.Fatalf("ExpandArgs(%q) = %q", arg, out)
		}
	})
}
