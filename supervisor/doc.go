// Package supervisor runs a child program as successive generations on
// sockets held by hupd, and decides what happens on exits, signals and
// reloads.
//
// Model: one goroutine (Run) owns all state; signals, exits and timers reach
// it on channels. Every child is started from one locked OS thread, so its
// parent-death signal fires only when hupd itself dies, and is waited for by
// the one signals.Reaper of the process. A child is the leader of its own
// process group; when its main process exits, whatever is left of that group
// is killed, so no generation leaves processes behind.
//
// Invariant (core): at most one generation runs at a time; while none runs
// (between a crash and its restart) the sockets stay open and clients wait
// in the listen backlog instead of being refused.
package supervisor
