package watch

import "time"

// debouncer decides when a burst of events has settled: at the debounce
// after the last event, but no later than maxWait after the first one, so
// that a file written without pause is still picked up.
type debouncer struct {
	delay, maxWait time.Duration
	first, last    time.Time // zero: nothing pending
}

// touch records an event at now.
func (d *debouncer) touch(now time.Time) {
	if d.first.IsZero() {
		d.first = now
	}
	d.last = now
}

// pending reports whether an event awaits its rescan.
func (d *debouncer) pending() bool { return !d.first.IsZero() }

// deadline is when the pending events are due; zero when none are.
func (d *debouncer) deadline() time.Time {
	if !d.pending() {
		return time.Time{}
	}
	at := d.last.Add(d.delay)
	if limit := d.first.Add(d.maxWait); limit.Before(at) {
		at = limit
	}
	return at
}

// due reports whether the pending events are due at now, and clears them
// if so.
func (d *debouncer) due(now time.Time) bool {
	_, ok := d.take(now)
	return ok
}

// take is due, also returning when the burst began.
func (d *debouncer) take(now time.Time) (first time.Time, ok bool) {
	if !d.pending() || now.Before(d.deadline()) {
		return time.Time{}, false
	}
	first = d.first
	d.first, d.last = time.Time{}, time.Time{}
	return first, true
}

// resume puts back a burst that began at first and goes on: its
// deadline is bounded by maxWait from first, not from the latest events.
func (d *debouncer) resume(first time.Time) {
	if !d.pending() || first.Before(d.first) {
		d.first = first
	}
	if d.last.IsZero() {
		d.last = first
	}
}
