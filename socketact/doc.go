// Package socketact opens listening sockets and hands them to child processes
// the way systemd does (sd_listen_fds(3)).
//
// The parent binds every socket once and never closes one while a child may
// need it. Each child receives the sockets as fds 3, 4, … in configured order
// together with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID. Go cannot run code
// between fork and exec, so the child starts as a shim (this same binary, see
// package socketact/shim) that sets LISTEN_PID to its own PID, restores default signal
// dispositions and an empty signal mask, marks every other fd close-on-exec,
// optionally drops privileges, and then execs the target: the target keeps the
// PID the shim had, so LISTEN_PID is exactly the target's PID.
//
// Sockets is the one place where the sockets a process holds or inherited
// (LISTEN_FDS) are matched to the specs of a configuration and the rest are
// opened: at start, at an in-place upgrade and at every configuration
// edit. A socket is never bound twice: an address listed again keeps its
// socket. Choosing changes nothing on a socket (Reuse.Apply does, once the
// caller goes on), and a failure closes only what it opened.
//
// Invariants: the fds a child sees are exactly its sockets (3 … 3+n-1) plus
// stdin, stdout and stderr; stale LISTEN_*, NOTIFY_SOCKET and WATCHDOG_*
// values from hupd's own environment never reach a child.
package socketact
