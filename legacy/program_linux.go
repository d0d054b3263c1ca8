package legacy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
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
	f, err := os.Open(path)
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
	if !bytes.HasPrefix(head, []byte(elf.ELFMAG)) {
		return nil // not ELF: nothing to judge
	}
	e, err := elf.NewFile(f)
	if err != nil {
		return nil
	}
	want := nativeMachine()
	x32 := want == elf.EM_X86_64 && e.Machine == want && e.Class == elf.ELFCLASS32 // x32 ABI: trapped too
	if want != elf.EM_NONE && (e.Machine != want || e.Class != elf.ELFCLASS64) && !x32 {
		why := ""
		if e.Machine == elf.EM_386 {
			why = " (a 32-bit x86 program binds through socketcall(2) or the i386 call numbers)"
		}
		return fmt.Errorf("%s is a %s %s program: bind redirection traps only %s calls%s; run a %s build, or hand it sockets another way",
			path, classBits(e.Class), strings.TrimPrefix(e.Machine.String(), "EM_"), runtime.GOARCH, why, runtime.GOARCH)
	}
	return nil
}

func classBits(c elf.Class) string {
	if c == elf.ELFCLASS32 {
		return "32-bit"
	}
	return "64-bit"
}

func nativeMachine() elf.Machine {
	switch runtime.GOARCH {
	case "amd64":
		return elf.EM_X86_64
	case "arm64":
		return elf.EM_AARCH64
	}
	return elf.EM_NONE
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
