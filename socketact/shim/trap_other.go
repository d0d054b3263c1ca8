//go:build linux && !amd64 && !arm64

package shim

import "runtime"

// installTrap is not written for this architecture.
func installTrap(int) string {
	return "not supported on " + runtime.GOARCH + " (amd64 and arm64 only)"
}
