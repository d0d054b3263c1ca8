package logev

// Events of package legacy: bind redirection and adoption for programs
// that bind their own sockets.
const (
	// The seccomp notify fd of a generation is unusable.
	BindNotifyFDUnusable = "bind redirection: notify fd unusable"
	// A trapped call could not be answered.
	BindAnswerFailed = "bind redirection: cannot answer a call"
	// A trapped call could not be let through.
	BindContinueFailed = "bind redirection: cannot let a call continue"
	// A bind's address could not be read: the bind goes ahead.
	BindAddressUnreadable = "bind redirection: cannot read the address of a bind: it goes ahead unredirected"
	// Redirecting a bind failed: the program's own bind goes ahead.
	BindRedirectFailed = "bind redirection failed: the program's own bind goes ahead (and will likely fail with EADDRINUSE)"
	// The program's IPv6 socket was replaced by hupd's IPv4 one.
	BindIPv6GetsIPv4 = "bind redirection: the program made an IPv6 socket and gets hupd's IPv4 one: it gets IPv4 clients only; listen on tcp:// or udp:// (dual stack) to give it an IPv6 socket"
	// The program's IPv4 socket was replaced by hupd's IPv6 one.
	BindIPv4GetsIPv6 = "bind redirection: the program made an IPv4 socket and gets hupd's IPv6 one: it sees IPv4 peers as ::ffff:a.b.c.d; listen on a tcp4:// or udp4:// address to give it an IPv4 socket"
	// The program's socket is of another family than hupd's (neither IPv4 nor IPv6).
	BindOtherFamily = "bind redirection: the program's socket is of another family than hupd's"
	// The program removed a held unix socket's file after using it.
	BindSocketFileRemoved = "bind redirection: the program removed the socket file (as Go's UnixListener.Close does): clients cannot connect to it until hupd restarts; " +
		"keep the program from deleting it (Go: SetUnlinkOnClose(false)), or use an abstract socket"
	// The program removed a held unix socket's file before its bind.
	BindSocketFileRemovedBefore = "bind redirection: the program removed the socket file before binding: clients cannot connect to it until hupd restarts; " +
		"keep the program from deleting it, or use an abstract socket"
	// An adopted socket could not be described.
	AdoptDescribeFailed = "adopt: cannot describe an adopted socket: later binds to it are not redirected"
	// The program's socket could not be taken for adoption.
	AdoptTakeFailed = "adopt: cannot take the program's socket: it serves, but the next generation binds its own"
	// The program's socket is not the configured one: not adopted.
	AdoptMismatch = "adopt: the program's socket is not the configured one (another family or IPV6_V6ONLY, or a wider address): not adopted; " +
		"configure the address it binds exactly, one [[listen]] per socket it makes"
)
