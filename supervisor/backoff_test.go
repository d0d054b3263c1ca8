package supervisor

import (
	"testing"
	"time"
)

func TestBackoffNext(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second, ResetAfter: 10 * time.Second}
	// A child that keeps crashing at once: 100ms, 200ms, 400ms, 800ms, then
	// capped at 1s for good, and the count keeps going.
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	n := 0
	for i, w := range want {
		d, next := b.Next(n, 0)
		if d != w*time.Millisecond || next != n+1 {
			t.Fatalf("crash %d: Next(%d, 0) = %v, %d; want %v, %d", i, n, d, next, w*time.Millisecond, n+1)
		}
		n = next
	}
	// A child that ran ResetAfter or longer starts the series again.
	for _, ran := range []time.Duration{10 * time.Second, time.Hour} {
		if d, next := b.Next(n, ran); d != b.Min || next != 1 {
			t.Errorf("after running %v: Next = %v, %d; want %v, 1", ran, d, next, b.Min)
		}
	}
	// Just short of it does not.
	if d, _ := b.Next(n, 10*time.Second-time.Nanosecond); d != b.Max {
		t.Errorf("after running just under ResetAfter: %v, want %v", d, b.Max)
	}
}

func TestBackoffLargeCount(t *testing.T) {
	b := Backoff{Min: time.Nanosecond, Max: time.Duration(1<<62 + 1), ResetAfter: time.Hour}
	// Doubling stops at Max: no overflow into a negative delay.
	for _, n := range []int{62, 63, 64, 1000, 1 << 30} {
		if d, _ := b.Next(n, 0); d <= 0 || d > b.Max {
			t.Errorf("Next(%d) = %v, want within (0, %v]", n, d, b.Max)
		}
	}
}

func TestBackoffDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Backoff
		want Backoff
	}{
		{"zero", Backoff{}, Backoff{DefaultBackoffMin, DefaultBackoffMax, DefaultBackoffReset}},
		{"negative", Backoff{-1, -1, -1}, Backoff{DefaultBackoffMin, DefaultBackoffMax, DefaultBackoffReset}},
		{"max below min", Backoff{Min: time.Minute, Max: time.Second}, Backoff{time.Minute, time.Minute, DefaultBackoffReset}},
		{"kept", Backoff{1, 2, 3}, Backoff{1, 2, 3}},
	} {
		if got := tc.b.withDefaults(); got != tc.want {
			t.Errorf("%s: withDefaults() = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if d, n := (Backoff{}).Next(0, 0); d != DefaultBackoffMin || n != 1 {
		t.Errorf("zero Backoff: Next(0, 0) = %v, %d", d, n)
	}
	if d, _ := (Backoff{}).Next(100, 0); d != DefaultBackoffMax {
		t.Errorf("zero Backoff: Next(100, 0) = %v, want the default max", d)
	}
}
