package integration

import (
	"fmt"
	"syscall"
	"testing"
)

// TestOutputLastWordsAtStop: what the child writes as it stops reaches
// hupd's stdout in full before hupd exits (hupd copies it through a pipe
// and must not exit with the copy unfinished).
func TestOutputLastWordsAtStop(t *testing.T) {
	const n = 12000 // about 400 KB: it all fits in the child's 1 MiB pipe, unread as it exits
	h := StartHupd(t, append([]string{"run", "--"}, childCmd("last-words", fmt.Sprint(n))...)...)
	procReady(t, h)
	h.Signal(syscall.SIGTERM)
	for i := range n {
		procExpectLine(t, h, fmt.Sprintf("line %d of the child's last words", i))
	}
	procExpectLine(t, h, "end")
	procWait(t, h, 0)
}
