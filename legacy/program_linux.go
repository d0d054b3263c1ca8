package legacy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/hupd/hupd/internal/safefile"
)

// CheckProgram tells, before anything starts, whether bind redirection
// can work for the program at path: the filter traps calls of hupd's own
// architecture only (on amd64 also those of x32 programs), so a 32-bit x86 program (whose bind goes through
// socketcall(2) or the i386 call numbers) or a program for another
// architecture would bind for real, and fail. A script is judged by its
// interpreter. It also checks that the kernel offers seccomp user
// notification at all.
func CheckProgram(path string) error {
	if err := checkKernel(); err != nil {
		return err
	}
	return checkELF(path, 0)
}

func checkELF(path string, depth int) error {
	// Without blocking, and only a regular file: a FIFO with an execute
	// bit would hang this read (exec would refuse it anyway).
	f, _, err := safefile.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 256)
	n, _ := f.Read(head)
	head = head[:n]
	if bytes.HasPrefix(head, []byte("#!")) && depth < 4 {
		line, _, _ := bytes.Cut(head[2:], []byte("\n"))
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			return nil
		}
		return checkELF(fields[0], depth+1)
	}
	if !bytes.HasPrefix(head, []byte("\x7fELF")) {
		return nil // not ELF: nothing to judge
	}
	class, machine, ok := elfHeader(head)
	if !ok {
		return nil // not a header that can be judged: let exec say
	}
	want := nativeMachine()
	x32 := want == emX86_64 && machine == want && class == 32 // x32 ABI: trapped too
	if want != 0 && (machine != want || class != 64) && !x32 {
		why := ""
		if machine == em386 {
			why = " (a 32-bit x86 program binds through socketcall(2) or the i386 call numbers)"
		}
		return fmt.Errorf("%s is a %d-bit %s program: bind redirection traps only %s calls%s; run a %s build, or hand it sockets another way",
			path, class, machineName(machine), runtime.GOARCH, why, runtime.GOARCH)
	}
	return nil
}

// ELF machines (e_machine) hupd names; debug/elf would cost hupd's binary
// (and so its resident memory) 90 KB of decompressors it never uses.
const (
	em386     = 3
	emARM     = 40
	emX86_64  = 62
	emAARCH64 = 183
)

// elfHeader reads an ELF header's class (32 or 64) and machine.
func elfHeader(h []byte) (class int, machine uint16, ok bool) {
	if len(h) < 20 {
		return 0, 0, false
	}
	switch h[4] { // EI_CLASS
	case 1:
		class = 32
	case 2:
		class = 64
	default:
		return 0, 0, false
	}
	switch h[5] { // EI_DATA
	case 1:
		machine = binary.LittleEndian.Uint16(h[18:])
	case 2:
		machine = binary.BigEndian.Uint16(h[18:])
	default:
		return 0, 0, false
	}
	return class, machine, true
}

func machineName(m uint16) string {
	switch m {
	case em386:
		return "386"
	case emARM:
		return "ARM"
	case emX86_64:
		return "X86_64"
	case emAARCH64:
		return "AARCH64"
	}
	return "machine " + strconv.Itoa(int(m))
}

func nativeMachine() uint16 {
	switch runtime.GOARCH {
	case "amd64":
		return emX86_64
	case "arm64":
		return emAARCH64
	}
	return 0
}

var errNoUserNotif = errors.New("bind redirection needs seccomp user notification, which this kernel does not offer (/proc/sys/kernel/seccomp/actions_avail lacks user_notif; Linux 5.19 or later is needed)")

func checkKernel() error {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		return fmt.Errorf("bind redirection is not supported on %s (amd64 and arm64 only)", runtime.GOARCH)
	}
	f, err := os.Open("/proc/sys/kernel/seccomp/actions_avail")
	if err != nil {
		return nil // no /proc: the shim says what fails, if anything does
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		if sc.Text() == "user_notif" {
			return nil
		}
	}
	return errNoUserNotif
}
