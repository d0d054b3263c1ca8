package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/supervisor"
)

// TestJSONLogDurations: JSON logs write durations as Go duration strings,
// as status --json and hupd.toml do (slog's default is nanoseconds).
func TestJSONLogDurations(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(newLogHandler(&config.Resolved{LogFormat: config.FormatJSON}, &b, slog.LevelInfo))
	log.Info("x", "after", 1500*time.Millisecond, slog.Group("g", "took", 2*time.Second))
	var m struct {
		After string `json:"after"`
		G     struct {
			Took string `json:"took"`
		} `json:"g"`
	}
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m.After != "1.5s" || m.G.Took != "2s" {
		t.Fatalf("logged %s (%v), want after 1.5s and g.took 2s", b.String(), err)
	}
}

// TestConfigDataOfUpgrade: the new image of an upgrade resolves the
// hupd.toml in force that the state carries, not the file on disk (saved
// after the previous image's last check: applied as an edit once taken
// over); without an upgrade, or from a state without it (an older
// binary), the file's.
func TestConfigDataOfUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hupd.toml")
	if err := os.WriteFile(path, []byte("on disk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := func(st supervisor.Upgrade) string {
		t.Helper()
		data, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.MemfdCreate("hupd-upgrade-test", unix.MFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if _, err := unix.Write(fd, data); err != nil {
			t.Fatal(err)
		}
		return strconv.Itoa(fd)
	}
	for _, tc := range []struct {
		name, env, want string
	}{
		{"no upgrade", "", "on disk\n"},
		{"the state's", state(supervisor.Upgrade{Version: 1, Config: []byte("in force\n")}), "in force\n"},
		{"an older binary's state", state(supervisor.Upgrade{Version: 1}), "on disk\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(supervisor.EnvUpgrade, tc.env)
			if tc.env == "" {
				os.Unsetenv(supervisor.EnvUpgrade)
			}
			if data, err := configData(path); err != nil || string(data) != tc.want {
				t.Fatalf("configData: %q, %v; want %q", data, err, tc.want)
			}
		})
	}
}
