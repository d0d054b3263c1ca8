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

// TestHandoffEnvPerSocket: a dialect named only in some sockets'
// Spec.Handoff lists just those under their real fd numbers, one in the
// global list every socket; the output follows Handoffs' order whatever
// the order of the lists.
func TestHandoffEnvPerSocket(t *testing.T) {
	tcp := func(port int, handoff ...string) *Listener {
		a := Address{Network: TCP, Host: "127.0.0.1", Port: port}
		return &Listener{Spec: Spec{Address: a, Handoff: handoff}, Bound: a}
	}
	unixL := func(path string, handoff ...string) *Listener {
		return &Listener{Spec: Spec{Address: Address{Network: Unix, Path: path}, Handoff: handoff}}
	}
	for _, tc := range []struct {
		name   string
		global []string
		ls     []*Listener
		want   []string
	}{
		{
			name: "one socket of two",
			ls:   []*Listener{tcp(8080, HandoffNginx), unixL("/run/a.sock")},
			want: []string{"NGINX=3;"},
		},
		{
			name: "the second socket keeps its fd",
			ls:   []*Listener{unixL("/run/a.sock"), tcp(8080, HandoffNginx, HandoffEinhorn, HandoffServerStarter)},
			want: []string{"EINHORN_FD_COUNT=1", "EINHORN_FD_0=4", "SERVER_STARTER_PORT=127.0.0.1:8080=4", "SERVER_STARTER_GENERATION=2", "NGINX=4;"},
		},
		{
			name: "different dialects per socket",
			ls: []*Listener{tcp(80, HandoffEinhorn), unixL("/run/a.sock"), tcp(81, HandoffServerStarter, HandoffEinhorn),
				unixL("/run/b.sock", HandoffServerStarter)},
			want: []string{"EINHORN_FD_COUNT=2", "EINHORN_FD_0=3", "EINHORN_FD_1=5",
				"SERVER_STARTER_PORT=127.0.0.1:81=5;/run/b.sock=6", "SERVER_STARTER_GENERATION=2"},
		},
		{
			name:   "global and per socket",
			global: []string{HandoffNginx, HandoffEinhorn},
			ls:     []*Listener{tcp(80), unixL("/run/a.sock", HandoffServerStarter), tcp(81, HandoffNginx)},
			want: []string{"EINHORN_FD_COUNT=3", "EINHORN_FD_0=3", "EINHORN_FD_1=4", "EINHORN_FD_2=5",
				"SERVER_STARTER_PORT=/run/a.sock=4", "SERVER_STARTER_GENERATION=2", "NGINX=3;4;5;"},
		},
		{
			name:   "global without sockets",
			global: []string{HandoffNginx, HandoffEinhorn},
			want:   []string{"EINHORN_FD_COUNT=0", "NGINX="},
		},
		{
			name:   "a dialect twice",
			global: []string{HandoffNginx, HandoffNginx},
			ls:     []*Listener{tcp(80, HandoffNginx, HandoffNginx)},
			want:   []string{"NGINX=3;"},
		},
		{
			name: "none",
			ls:   []*Listener{tcp(80), unixL("/run/a.sock", []string{}...)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HandoffEnv(tc.global, tc.ls, 2); !slices.Equal(got, tc.want) {
				t.Fatalf("HandoffEnv =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestHandoffNotASocketProperty: a new Handoff names the same socket
// (SameSocket), which CanReconfigure and Reconfigure keep: the Listener
// they return holds the same file under the new Spec.
func TestHandoffNotASocketProperty(t *testing.T) {
	sp, err := ParseListenFlag("http=tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls, err := Open([]Spec{sp})
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAll(ls)
	next := sp
	next.Handoff = []string{HandoffNginx, HandoffEinhorn}
	if !sp.SameSocket(next) || !next.SameSocket(sp) {
		t.Fatal("a new Handoff makes another socket")
	}
	if err := ls[0].CanReconfigure(next); err != nil {
		t.Fatalf("CanReconfigure: %v", err)
	}
	l, err := ls[0].Reconfigure(next)
	if err != nil {
		t.Fatal(err)
	}
	if l.File != ls[0].File || !slices.Equal(l.Spec.Handoff, next.Handoff) || ls[0].Spec.Handoff != nil {
		t.Fatalf("Reconfigure must keep the socket under the new Handoff: %+v", l.Spec)
	}
	back, err := l.Reconfigure(sp)
	if err != nil || back.File != ls[0].File || back.Spec.Handoff != nil {
		t.Fatalf("Reconfigure back: %+v, %v", back, err)
	}
}

func TestDescribes(t *testing.T) {
	none := Spec{}
	own := Spec{Handoff: []string{HandoffNginx, HandoffEinhorn}}
	for _, tc := range []struct {
		d      string
		global []string
		sp     Spec
		want   bool
	}{
		{HandoffNginx, nil, none, false},
		{HandoffNginx, nil, own, true},
		{HandoffNginx, []string{HandoffNginx}, none, true},
		{HandoffServerStarter, []string{HandoffNginx}, own, false},
		{HandoffEinhorn, []string{HandoffServerStarter}, own, true},
	} {
		if got := Describes(tc.d, tc.global, tc.sp); got != tc.want {
			t.Errorf("Describes(%q, %q, %q) = %v, want %v", tc.d, tc.global, tc.sp.Handoff, got, tc.want)
		}
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
