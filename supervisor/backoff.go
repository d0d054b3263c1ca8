package supervisor

import "time"

// Backoff spaces out restarts of a crashing child: Min after the first
// crash, doubling up to Max; a child that ran at least ResetAfter before it
// exited starts the series again.
type Backoff struct {
	Min, Max, ResetAfter time.Duration
}

// Default backoff bounds.
const (
	DefaultBackoffMin   = 100 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultBackoffReset = 10 * time.Second
)

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = DefaultBackoffMin
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Max < b.Min {
		b.Max = b.Min
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = DefaultBackoffReset
	}
	return b
}

// Next returns the delay before restart number n+1 given that n restarts
// happened in a row (n = 0 for the first crash), and the count to carry on
// with, after a child that ran for ran.
func (b Backoff) Next(n int, ran time.Duration) (time.Duration, int) {
	b = b.withDefaults()
	if ran >= b.ResetAfter {
		n = 0
	}
	d := b.Min
	for i := 0; i < n && d < b.Max; i++ {
		if d > b.Max/2 {
			d = b.Max // doubling would pass Max, or overflow
			break
		}
		d *= 2
	}
	return min(d, b.Max), n + 1
}
