// Package signals is hupd's contact with the kernel's process machinery:
// signal names, the set of signals hupd takes in and forwards, and the one
// reaper that owns every wait.
//
// Invariant: in a process that uses a Reaper, nothing else waits for
// children. Processes are started through Reaper.Start, which registers the
// PID under the same lock the reaper holds while it reaps, so an exit is
// never reaped before its owner is known; exits of unknown PIDs (orphans
// handed to a PID 1 or a subreaper) are reaped and reported to Orphan.
package signals
