package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/hupd/hupd/config"
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
