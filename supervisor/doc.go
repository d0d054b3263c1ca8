// Package supervisor runs a child program as successive generations on
// sockets held by hupd, and decides what happens on exits, signals and
// reloads.
//
// Model: one goroutine (Run) owns all state; signals, exits, notify
// datagrams, timers and control requests reach it on channels. Every child
// is started from one locked OS thread, so that its parent-death signal
// fires only when hupd itself dies, and is waited for by the one
// signals.Reaper of the process. A child leads its own process group and
// starts in its generation's cgroup where hupd has cgroups (package
// contain, set with Contain); when its main process exits, whatever is
// left of the group and of the cgroup is killed, and every forced stop of a
// generation kills both. With Options.Sentinel, every generation is
// registered from the moment its process exists (before its program is
// exec'd) until it is gone, so that the sentinel ends it if hupd dies.
//
// Invariant: at most one generation is not yet ready, and at most
// MaxDraining old generations drain at once (a reload waits for a slot).
// A reload is a transaction: the old generation is asked to stop only
// after the new one is ready; if the new one fails, it is the one that
// goes. While no generation runs, the sockets stay open and clients wait
// in the listen backlog instead of being refused.
//
// On disk, a running hupd owns its control socket and one runtime
// directory beside it (NAME.d, see OpenRuntime), which it holds locked for
// its whole life: a start that takes the lock knows the previous owner is
// dead and removes what it left; a start that cannot is refused. Neither
// hupd nor its client trusts a directory or a socket another user controls.
package supervisor
