package socketact

import (
	"net"
	"os"
)

// Notify sends state (e.g. "READY=1") to $NOTIFY_SOCKET, as sd_notify(3)
// does. It returns (false, nil) when NOTIFY_SOCKET is unset.
func Notify(state string) (bool, error) {
	path := os.Getenv(EnvNotifySocket)
	if path == "" {
		return false, nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}
