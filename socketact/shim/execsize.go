package shim

import "strconv"

// ExecSize is what argv and env cost an execve(2) against its limit: each
// string with its terminating NUL, and a pointer per string.
func ExecSize(argv, env []string) int {
	n := (len(argv) + len(env)) * ptrSize
	for _, s := range argv {
		n += len(s) + 1
	}
	for _, s := range env {
		n += len(s) + 1
	}
	return n
}

const ptrSize = 32 << (^uintptr(0) >> 63) / 8

// tooLarge says in words why an exec failed with E2BIG.
func tooLarge(argv, env []string) string {
	return "arguments and environment too large for exec: " + strconv.Itoa(ExecSize(argv, env)) + " bytes"
}
