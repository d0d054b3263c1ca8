package socketact

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestChildEnv(t *testing.T) {
	for _, tc := range []struct {
		name               string
		base, extra, names []string
		want               []string
	}{
		{
			name: "nothing",
			want: []string{},
		},
		{
			name: "base kept in order",
			base: []string{"PATH=/bin", "HOME=/root", "EMPTY="},
			want: []string{"PATH=/bin", "HOME=/root", "EMPTY="},
		},
		{
			name:  "hupd's own activation and notify values dropped",
			base:  []string{"A=1", "LISTEN_FDS=2", "LISTEN_PID=1", "LISTEN_FDNAMES=a:b", "LISTEN_PIDFDID=9", "NOTIFY_SOCKET=/run/n", "WATCHDOG_USEC=1", "WATCHDOG_PID=1", "B=2"},
			want:  []string{"A=1", "B=2"},
			names: nil,
		},
		{
			name:  "extra overrides base in place, later extra wins",
			base:  []string{"A=1", "B=2"},
			extra: []string{"B=x", "C=3", "C=4"},
			want:  []string{"A=1", "B=x", "C=4"},
		},
		{
			name:  "sockets",
			base:  []string{"A=1", "LISTEN_FDS=9", "LISTEN_FDNAMES=old"},
			names: []string{"http", "unknown", "admin"},
			want:  []string{"A=1", "LISTEN_FDS=3", "LISTEN_FDNAMES=http:unknown:admin"},
		},
		{
			name:  "extra cannot fake the socket count",
			extra: []string{"LISTEN_FDS=7"},
			names: []string{"a"},
			want:  []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=a"},
		},
		{
			name: "entry without '=' is a key",
			base: []string{"WEIRD", "WEIRD=1"},
			want: []string{"WEIRD=1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ChildEnv(tc.base, tc.extra, tc.names)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ChildEnv = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestChildEnvDropsEveryInheritedOnly checks every variable that describes
// hupd's own process, whatever the list holds, against hupd's real
// environment.
func TestChildEnvDropsEveryInheritedOnly(t *testing.T) {
	for _, k := range inheritedOnly {
		t.Setenv(k, "stale")
	}
	t.Setenv("HUPD_TEST_KEEP", "1")
	env := ChildEnv(os.Environ(), nil, nil)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(inheritedOnly, k) {
			t.Errorf("%s passed to the child", kv)
		}
	}
	if !slices.Contains(env, "HUPD_TEST_KEEP=1") {
		t.Error("an ordinary variable was dropped")
	}
	// Sockets: the new values, once each.
	env = ChildEnv(os.Environ(), nil, []string{"a", "b"})
	var fds []string
	for _, kv := range env {
		if strings.HasPrefix(kv, EnvListenFDs+"=") || strings.HasPrefix(kv, EnvListenFDNames+"=") {
			fds = append(fds, kv)
		}
	}
	if want := []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=a:b"}; !reflect.DeepEqual(fds, want) {
		t.Errorf("socket variables %q, want %q", fds, want)
	}
}
