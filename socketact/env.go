package socketact

import (
	"strconv"
	"strings"

	"github.com/hupd/hupd/socketact/shim"
)

// Environment variables of the socket-activation and notify protocols.
const (
	EnvListenFDs     = "LISTEN_FDS"
	EnvListenPID     = "LISTEN_PID"
	EnvListenFDNames = "LISTEN_FDNAMES"
	EnvListenPIDFDID = "LISTEN_PIDFDID"
	EnvNotifySocket  = "NOTIFY_SOCKET"
	EnvWatchdogUSec  = "WATCHDOG_USEC"
	EnvWatchdogPID   = "WATCHDOG_PID"
	// EnvFDStore is the size of hupd's own fd store in its service
	// manager: a child's notify socket is hupd's, which keeps no fds.
	EnvFDStore    = "FDSTORE"
	firstListenFD = 3
)

// inheritedOnly lists variables that describe hupd's own process and must
// never pass to a child unchanged.
var inheritedOnly = []string{
	EnvListenFDs, EnvListenPID, EnvListenFDNames, EnvListenPIDFDID,
	EnvNotifySocket, EnvWatchdogUSec, EnvWatchdogPID, EnvFDStore, shim.EnvMarker,
}

// ChildEnv returns base without hupd's own LISTEN_*, NOTIFY_SOCKET and
// WATCHDOG_* values, with the entries of extra (KEY=VALUE, later ones win)
// applied, and with LISTEN_FDS and LISTEN_FDNAMES for names when there are
// sockets. LISTEN_PID is added by the shim, which knows the child's PID.
func ChildEnv(base, extra, names []string) []string {
	env := make([]string, 0, len(base)+len(extra)+2)
	seen := make(map[string]int, len(base)+len(extra))
	add := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := seen[k]; ok {
			env[i] = kv
			return
		}
		seen[k] = len(env)
		env = append(env, kv)
	}
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !isInheritedOnly(k) {
			add(kv)
		}
	}
	for _, kv := range extra {
		add(kv)
	}
	if len(names) > 0 {
		add(EnvListenFDs + "=" + strconv.Itoa(len(names)))
		add(EnvListenFDNames + "=" + strings.Join(names, ":"))
	}
	return env
}

func isInheritedOnly(k string) bool {
	for _, v := range inheritedOnly {
		if k == v {
			return true
		}
	}
	return false
}
