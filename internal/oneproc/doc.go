// Package oneproc runs hupd on one P (GOMAXPROCS 1) unless GOMAXPROCS is
// set in the environment: imported by package main for its init, which
// does only that.
//
// hupd waits far more than it computes, and every P costs resident memory
// that hupd keeps for good: its own caches of heap spans, a GC worker, the
// thread that runs it, and runtime structures the second P's first
// goroutines touch. Measured with hupd run serving examples/hello, idle
// (README, "hupd's memory"): peak RSS 8.6 MiB with the two Ps of a 2-core
// machine, 7.9-8.1 MiB with one.
//
// Invariant: the P count is set while packages initialise, before main and
// before any goroutine of hupd's own starts. Later is measurably worse: a
// call at the top of main still left about 0.4 MiB more in half the runs,
// what the second P had touched by then. The runtime starts with one P per
// CPU before any package initialises, so an init is the earliest a program
// can set it (only GOMAXPROCS=1 in the environment is earlier; hupd does
// not set it there, as its children inherit its environment).
package oneproc
