// Package duration parses the durations hupd's flags and hupd.toml take,
// and says how to write one when a bare number was given.
//
// Invariant: Parse accepts exactly what time.ParseDuration accepts; it only
// changes the error of a bare number ("30", "1.5"), which is a
// *NoUnitError.
package duration
