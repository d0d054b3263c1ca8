package watch

import (
	"testing"
	"time"
)

func TestDebouncer(t *testing.T) {
	const delay, maxWait = 100 * time.Millisecond, time.Second
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name    string
		touches []int // ms after t0
		want    int   // deadline, ms after t0
	}{
		{"one event", []int{0}, 100},
		{"last event decides", []int{0, 50, 120}, 220},
		{"events at the same time", []int{30, 30, 30}, 130},
		{"maxWait after the first event caps it", []int{0, 90, 180, 270, 360, 450, 540, 630, 720, 810, 900, 990}, 1000},
		{"cap and delay equal", []int{0, 900}, 1000},
		{"just under the cap", []int{0, 899}, 999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := debouncer{delay: delay, maxWait: maxWait}
			if d.pending() || !d.deadline().IsZero() || d.due(t0.Add(time.Hour)) {
				t.Fatal("a new debouncer has something pending")
			}
			for _, ms := range tt.touches {
				d.touch(at(ms))
			}
			if !d.pending() {
				t.Fatal("not pending after a touch")
			}
			if got := d.deadline(); !got.Equal(at(tt.want)) {
				t.Fatalf("deadline t0+%v, want t0+%dms", got.Sub(t0), tt.want)
			}
			if d.due(at(tt.want).Add(-time.Nanosecond)) {
				t.Fatal("due before the deadline")
			}
			if !d.pending() {
				t.Fatal("due before the deadline cleared the events")
			}
			if !d.due(at(tt.want)) {
				t.Fatal("not due at the deadline")
			}
			if d.pending() || !d.deadline().IsZero() || d.due(at(tt.want+1000)) {
				t.Fatal("still pending after due")
			}
			// A new burst starts a new maxWait.
			d.touch(at(5000))
			if got := d.deadline(); !got.Equal(at(5100)) {
				t.Fatalf("next burst: deadline t0+%v, want t0+5.1s", got.Sub(t0))
			}
		})
	}
}

func TestDebouncerLateDue(t *testing.T) {
	d := debouncer{delay: time.Second, maxWait: 10 * time.Second}
	t0 := time.Now()
	d.touch(t0)
	if !d.due(t0.Add(time.Hour)) {
		t.Fatal("not due long after the deadline")
	}
}

// TestDebouncerResume checks that a burst put back after a rescan saw new
// events keeps its MaxWait bound from its first event.
func TestDebouncerResume(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := debouncer{delay: 100 * time.Millisecond, maxWait: time.Second}
	d.touch(t0)
	first, ok := d.take(t0.Add(100 * time.Millisecond))
	if !ok || !first.Equal(t0) {
		t.Fatalf("take = %v, %v", first, ok)
	}
	d.touch(t0.Add(150 * time.Millisecond)) // arrived during the rescan
	d.resume(first)
	if got := d.deadline(); !got.Equal(t0.Add(250 * time.Millisecond)) {
		t.Fatalf("deadline after resume = %v, want quiet time after the new event", got.Sub(t0))
	}
	for i := 2; i < 20; i++ { // a constant stream
		d.touch(t0.Add(time.Duration(i) * 90 * time.Millisecond))
	}
	if got := d.deadline(); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("deadline = %v, want MaxWait from the first event of the resumed burst", got.Sub(t0))
	}
}
