// Package legacy gives hupd's held sockets to programs that bind(2) their
// own ports and know nothing of LISTEN_FDS: bind redirection.
//
// The shim traps the target's bind and listen calls with a seccomp
// user-notification filter (socketact.Command.Trap) and hands the filter's
// notify fd to hupd, where a Server answers every trapped call:
//
//   - bind of a socket to an address a held socket covers (see Match): the
//     held socket is installed on the program's fd number in place of the
//     program's own (SECCOMP_IOCTL_NOTIF_ADDFD with SETFD, the fd flag
//     close-on-exec kept), O_NONBLOCK of the held socket is set as the
//     program's socket had it, and bind returns 0;
//   - listen on a held socket returns 0 without calling listen, so the
//     program's backlog never shrinks the shared accept queue;
//   - everything else continues untouched (Go's runtime and getaddrinfo
//     make probe binds).
//
// Adopt mode: a held socket may start as a pending placeholder (see
// Socket.Pending). The first program socket of its type bound to an
// address it covers is adopted: a stream socket at its listen, which hupd
// runs with the program's backlog; a datagram socket at its bind, which
// hupd runs for the program. Adopting puts the program's socket on the
// placeholder's fd number (dup3), so hupd holds it from then on, with
// every option the program set. Servers of concurrent generations adopt
// each placeholder once.
//
// Every trapped call is answered, also when something fails on the way
// (the call then continues as the program made it, and the failure is
// logged): a program never hangs in bind.
package legacy
