package socketact

import (
	"os"

	"github.com/hupd/hupd/sdnotify"
)

// Notify sends state (e.g. "READY=1") to $NOTIFY_SOCKET, as sd_notify(3)
// does. It returns (false, nil) when NOTIFY_SOCKET is unset.
func Notify(state string) (bool, error) {
	path := os.Getenv(EnvNotifySocket)
	if path == "" {
		return false, nil
	}
	if err := sdnotify.SendTo(path, []byte(state)); err != nil {
		return false, err
	}
	return true, nil
}
