package control

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Both ends check who is at the other one: the server answers only hupd's
// own user and root, the client believes only a server of its own user or
// root. SO_PEERCRED gives the credentials the peer had when it connected
// (client) or listened (server).

func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		cred *unix.Ucred
		cerr error
	)
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, os.NewSyscallError("getsockopt SO_PEERCRED", cerr)
	}
	return cred, nil
}

// allowedUID reports whether uid may use the control socket: hupd's own
// user and root.
func allowedUID(uid uint32) bool {
	return uid == 0 || int64(uid) == int64(os.Geteuid())
}
