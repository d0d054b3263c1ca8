package legacy

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's seccomp user-notification structures (linux/seccomp.h).
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

type notif struct {
	ID    uint64
	PID   uint32
	Flags uint32
	Data  seccompData
}

type notifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

type notifAddfd struct {
	ID         uint64
	Flags      uint32
	SrcFD      uint32
	NewFD      uint32
	NewFDFlags uint32
}

const (
	ioctlRecv    = unix.SECCOMP_IOCTL_NOTIF_RECV
	ioctlSend    = unix.SECCOMP_IOCTL_NOTIF_SEND
	ioctlIDValid = 0x40082102 // _IOW('!', 2, __u64)
	ioctlAddfd   = 0x40182103 // _IOW('!', 3, struct seccomp_notif_addfd)
)

func ioctl(fd uintptr, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// respond answers notification id: val/errno, or continue the call.
func respond(fd uintptr, id uint64, val int64, errno unix.Errno, cont bool) error {
	r := notifResp{ID: id, Val: val, Error: -int32(errno)}
	if cont {
		r = notifResp{ID: id, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
	}
	return ioctl(fd, ioctlSend, unsafe.Pointer(&r))
}

func idValid(fd uintptr, id uint64) bool {
	return ioctl(fd, ioctlIDValid, unsafe.Pointer(&id)) == nil
}
