// Package socketact opens listening sockets and hands them to child processes
// the way systemd does (sd_listen_fds(3)).
//
// The parent binds every socket once and never closes one while a child may
// need it. Each child receives the sockets as fds 3, 4, … in configured order
// together with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID. Go cannot run code
// between fork and exec, so the child starts as a shim (this same binary, see
// package socketact/shim) that sets LISTEN_PID to its own PID, restores default signal
// dispositions (a helper, Command.Helper, starts with the signals meant for
// the whole service ignored instead) and an empty signal mask, marks every
// other fd close-on-exec,
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
// A steered socket (Spec.Steer; TCP and UDP only) is the first member of a
// SO_REUSEPORT group of hupd's own (Group): hupd opens one more socket on
// the address for each generation that needs one (Group.Add), and a classic
// BPF program on the group, attached again at every Steer, sends every new
// connection or datagram to one member by its index in the kernel's array
// of the group's sockets. The Group's order is the kernel's: a socket joins
// at the end, and the kernel fills the slot of one that leaves with the
// last socket, so members are kept for the life of the group (no Remove;
// the anchor, the socket Open made, closes them all), and Check mirrors a
// member that a program took out by shutdown(2). Every member is opened by
// hupd, never received through LISTEN_FDS or bound by a program, and the
// address must be free when the anchor binds it: a reuseport group needs
// one owner uid, so a child running under another uid cannot add a socket
// to it. Steering is not a security boundary, though: a child holding a
// member's fd can shut it down (taking it out of the group, which moves
// another socket to its index until hupd notices) or attach a program of
// its own to the whole group.
//
// Invariants: the fds a child sees are exactly its sockets (3 … 3+n-1) plus
// stdin, stdout and stderr; stale LISTEN_*, NOTIFY_SOCKET and WATCHDOG_*
// values from hupd's own environment never reach a child.
package socketact
