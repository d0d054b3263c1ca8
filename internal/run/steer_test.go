package run

import (
	"errors"
	"testing"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/socketact"
)

// TestSteerFixed: a configuration that turns steering on or off for an
// address in force is refused as a changed reuseport is (wrapping
// socketact.ErrNeedsNewSocket, prefixed with where the address is
// configured); the same steering, or a toggle on a new address, is not.
func TestSteerFixed(t *testing.T) {
	addr := func(s string) socketact.Address {
		a, err := socketact.ParseAddress(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	http, admin := addr("tcp://127.0.0.1:0"), addr("tcp://127.0.0.1:9")
	resolved := func(specs ...socketact.Spec) *config.Resolved {
		r := &config.Resolved{Listen: specs}
		for range specs {
			r.ListenWhere = append(r.ListenWhere, "hupd.toml:7")
		}
		return r
	}
	plain := resolved(socketact.Spec{Address: http}, socketact.Spec{Address: admin})
	steered := resolved(socketact.Spec{Address: http, Steer: true}, socketact.Spec{Address: admin})
	for _, tc := range []struct {
		name      string
		cur, next *config.Resolved
		want      string
	}{
		{"on", plain, steered, "hupd.toml:7: listen tcp://127.0.0.1:0: steer: socketact: option fixed once the socket is bound: keep it, or give the socket a new address"},
		{"off", steered, plain, "hupd.toml:7: listen tcp://127.0.0.1:0: steer: socketact: option fixed once the socket is bound: keep it, or give the socket a new address"},
		{"kept steered", steered, steered, ""},
		{"kept plain", plain, plain, ""},
		{"a new address", resolved(socketact.Spec{Address: admin}), resolved(socketact.Spec{Address: http, Steer: true}, socketact.Spec{Address: admin}), ""},
		// Two "tcp://127.0.0.1:0" are two sockets: the new one may be
		// steered, whichever comes first.
		{"a second port 0", resolved(socketact.Spec{Name: "http", Address: http}),
			resolved(socketact.Spec{Name: "api", Address: http, Steer: true}, socketact.Spec{Name: "http", Address: http}), ""},
		{"a second port 0, the kept one steered", resolved(socketact.Spec{Name: "http", Address: http}),
			resolved(socketact.Spec{Name: "api", Address: http}, socketact.Spec{Name: "http", Address: http, Steer: true}),
			"hupd.toml:7: listen tcp://127.0.0.1:0: steer: socketact: option fixed once the socket is bound: keep it, or give the socket a new address"},
	} {
		err := steerFixed(tc.cur, tc.next)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want none", tc.name, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want || !errors.Is(err, socketact.ErrNeedsNewSocket)):
			t.Errorf("%s:\n got %v\nwant %s (wrapping ErrNeedsNewSocket)", tc.name, err, tc.want)
		}
	}
}
