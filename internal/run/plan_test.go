package run

import (
	"errors"
	"testing"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/control"
)

// TestPlanDataRefusals: without hupd.toml there is nothing to plan; a
// configuration that does not resolve is a control.ConfigError (hupd plan
// exits 2), whether it is the file on disk or content sent by the client.
func TestPlanDataRefusals(t *testing.T) {
	if _, err := (&reconf{}).planData(t.Context(), nil); !errors.Is(err, ErrNoConfigFile) {
		t.Fatalf("without hupd.toml: %v", err)
	}
	bad := &config.Error{Where: "hupd.toml:3", Err: errors.New("invalid strategy")}
	var sent []byte
	rc := &reconf{
		load:  func() (*config.Resolved, error) { return nil, bad },
		parse: func(data []byte) (*config.Resolved, error) { sent = data; return nil, bad },
	}
	for _, data := range [][]byte{nil, []byte("x = 1\n")} {
		_, err := rc.planData(t.Context(), data)
		var ce *control.ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, bad) || err.Error() != bad.Error() {
			t.Fatalf("plan of %q: %v", data, err)
		}
	}
	if string(sent) != "x = 1\n" {
		t.Fatalf("parse got %q", sent)
	}
}
