//go:build linux && (amd64 || arm64)

package shim

import (
	"syscall"
	"unsafe"
)

// sockFilter and sockFprog are struct sock_filter and struct sock_fprog.
type sockFilter struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

type sockFprog struct {
	len    uint16
	filter *sockFilter
}

const (
	bpfLdWAbs = 0x20 // BPF_LD|BPF_W|BPF_ABS
	bpfJeqK   = 0x15 // BPF_JMP|BPF_JEQ|BPF_K
	bpfRetK   = 0x06 // BPF_RET|BPF_K
	retAllow  = 0x7fff0000
	retNotify = 0x7fc00000 // SECCOMP_RET_USER_NOTIF
	prSetNNP  = 38         // PR_SET_NO_NEW_PRIVS
	setFilter = 1          // SECCOMP_SET_MODE_FILTER
	newListen = 0x8        // SECCOMP_FILTER_FLAG_NEW_LISTENER
	waitKill  = 0x20       // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
	offNr     = 0          // offsetof(struct seccomp_data, nr)
	offArch   = 4          // offsetof(struct seccomp_data, arch)
)

// trapFilter is: calls of another architecture pass (hupd refuses such
// programs before it starts them); bind and listen notify; the rest pass.
func trapFilter() []sockFilter {
	n := len(trapNrs)
	f := []sockFilter{
		{code: bpfLdWAbs, k: offArch},
		{code: bpfJeqK, k: auditArch, jf: uint8(n + 3)}, // to the last allow
		{code: bpfLdWAbs, k: offNr},
	}
	for i, nr := range trapNrs {
		f = append(f, sockFilter{code: bpfJeqK, k: nr, jt: uint8(n - i)}) // to notify
	}
	return append(f,
		sockFilter{code: bpfRetK, k: retAllow},
		sockFilter{code: bpfRetK, k: retNotify},
		sockFilter{code: bpfRetK, k: retAllow},
	)
}

// installTrap installs the filter on this thread (the one that execs) and
// sends its notify fd to hupd over the status socket, with one marker
// byte. WAIT_KILLABLE_RECV keeps a trapped call from being restarted by
// every signal (Go's preemption sends many) once hupd has received it.
func installTrap(statusFD int) string {
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetNNP, 1, 0, 0, 0, 0); e != 0 {
		return "prctl PR_SET_NO_NEW_PRIVS: " + e.Error()
	}
	f := trapFilter()
	prog := sockFprog{len: uint16(len(f)), filter: &f[0]}
	fd, _, e := syscall.RawSyscall(sysSeccomp, setFilter, newListen|waitKill, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return "seccomp: " + e.Error() + trapHint(e)
	}
	err := syscall.Sendmsg(statusFD, []byte{TrapMarker}, syscall.UnixRights(int(fd)), nil, 0)
	syscall.Close(int(fd))
	if err != nil {
		return "sending the seccomp notify fd to hupd: " + err.Error()
	}
	return ""
}

func trapHint(e syscall.Errno) string {
	switch e {
	case syscall.EINVAL:
		return " (this kernel lacks seccomp user notification with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: Linux 5.19 or later is needed)"
	case syscall.EACCES, syscall.EPERM:
		return " (seccomp filters are not allowed here: a container's seccomp profile or security policy forbids them)"
	case syscall.ENOSYS:
		return " (this kernel has no seccomp)"
	case syscall.EBUSY:
		return " (another seccomp notify listener is already installed: one process can have only one)"
	}
	return ""
}
