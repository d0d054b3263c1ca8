// Package health serves hupd's own HTTP endpoint for Kubernetes probes and
// Prometheus: /livez, /readyz and /metrics, on a TCP listener hupd opens
// for itself. It is never one of the [[listen]] sockets and never reaches
// a child: Go opens it close-on-exec (and the shim marks every fd beyond
// the sockets it hands over close-on-exec besides).
//
// Counters are recorded by supervisor Hooks, which run on the supervisor's
// goroutine: each takes a mutex for a few assignments and never blocks.
// Gauges come from one Status snapshot per request. At most one Status
// call is outstanding however many requests wait for it, and each request
// waits for it at most StatusTimeout, so that probes against a stuck
// supervisor neither hang nor pile up goroutines. No goroutine outlives
// Close.
//
// With several programs (StartPrograms) each program has its own counters
// (ProgramHooks), its own Status calls in flight, asked at once and waited
// for StatusTimeout in all, and only while it runs: a program that waits to
// start or has ended is never asked (its supervisor would not answer).
// SetPrograms replaces the programs (an edit of hupd.toml): one named
// again keeps its counters.
// Every sample of a program carries program="NAME"; hupd_up comes once. A
// hupd running one program writes exactly what it wrote before: no program
// label, no family without samples.
//
// The HTTP server is hupd's own, on package net (http1.go): net/http
// would link crypto/tls into every hupd, at about 2 MiB of memory each,
// endpoint on or off. It serves one request per connection and closes it;
// at most 64 connections at once, each bounded in head size (8 KiB) and
// time (HeaderTimeout to send the head, 10s to take the answer); at the
// bound, the one that has waited longest for its head makes room, so that
// idle clients cannot keep a probe out.
package health
