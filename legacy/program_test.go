//go:build linux && (amd64 || arm64)

package legacy

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hupd/hupd/internal/safefile"
)

// elf32 writes a minimal, valid ELF32 executable header (the 52 bytes of
// Elf32_Ehdr, nothing else) for machine m to dir/name.
func elf32(t *testing.T, dir, name string, m elf.Machine) string {
	t.Helper()
	var h elf.Header32
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	h.Ident[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	h.Type = uint16(elf.ET_EXEC)
	h.Machine = uint16(m)
	h.Version = uint32(elf.EV_CURRENT)
	h.Entry = 0x08048000
	h.Ehsize = 52
	h.Phentsize = 32
	h.Shentsize = 40
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, &h); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 52 {
		t.Fatalf("ELF32 header is %d bytes, want 52", b.Len())
	}
	return writeExec(t, dir, name, b.Bytes())
}

// elf64 writes a minimal ELF64 header (64 bytes) for machine m.
func elf64(t *testing.T, dir, name string, m elf.Machine) string {
	t.Helper()
	var h elf.Header64
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	h.Type = uint16(elf.ET_EXEC)
	h.Machine = uint16(m)
	h.Version = uint32(elf.EV_CURRENT)
	h.Ehsize = 64
	h.Phentsize = 56
	h.Shentsize = 64
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, &h); err != nil {
		t.Fatal(err)
	}
	return writeExec(t, dir, name, b.Bytes())
}

func writeExec(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckProgramAccepts proves native 64-bit programs, scripts run by
// one and files CheckProgram cannot judge are let through.
func TestCheckProgramAccepts(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	native := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	cases := map[string]string{
		"/bin/sh":              "/bin/sh",
		"test binary (64-bit)": self,
		"crafted native ELF64": elf64(t, dir, "native64", native),
		"crafted x32 (amd64)":  elf32(t, dir, "x32", elf.EM_X86_64), // on arm64: refused below
		"#!/bin/sh script":     writeExec(t, dir, "script", []byte("#!/bin/sh\necho hi\n")),
		"#! with arguments":    writeExec(t, dir, "script-args", []byte("#! /bin/sh -e\necho hi\n")),
		"#! without a path":    writeExec(t, dir, "script-empty", []byte("#!\n")),
		"not ELF, not script":  writeExec(t, dir, "data", []byte("just some text\n")),
		"empty file":           writeExec(t, dir, "empty", nil),
		"ELF magic, truncated": writeExec(t, dir, "truncated", []byte(elf.ELFMAG+"\x02\x01")),
	}
	if runtime.GOARCH != "amd64" {
		delete(cases, "crafted x32 (amd64)")
	}
	for name, path := range cases {
		if err := CheckProgram(path); err != nil {
			t.Errorf("%s: CheckProgram(%s) = %v, want nil", name, path, err)
		}
	}
}

// TestCheckProgramRefuses32Bit proves a 32-bit x86 program is refused,
// directly and as a script's interpreter (also through a chain of
// scripts), with an error naming it and saying "32-bit".
func TestCheckProgramRefuses32Bit(t *testing.T) {
	dir := t.TempDir()
	i386 := elf32(t, dir, "i386-prog", elf.EM_386)
	script := writeExec(t, dir, "script", []byte("#!"+i386+" -x\necho hi\n"))
	chain := writeExec(t, dir, "chain", []byte("#!"+script+"\n"))
	for _, path := range []string{i386, script, chain} {
		err := CheckProgram(path)
		if err == nil {
			t.Errorf("CheckProgram(%s) = nil, want an error", path)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, i386) || !strings.Contains(msg, "32-bit") || !strings.Contains(msg, "386") || !strings.Contains(msg, "socketcall") {
			t.Errorf("CheckProgram(%s) = %q, want it to name %s, \"32-bit\", \"386\" and socketcall", path, msg, i386)
		}
	}
}

// TestCheckProgramRefusesForeign proves programs of another 64-bit
// architecture, and 32-bit programs of the native machine other than x32
// on amd64, are refused, without blaming socketcall.
func TestCheckProgramRefusesForeign(t *testing.T) {
	dir := t.TempDir()
	foreign := map[string]elf.Machine{"amd64": elf.EM_AARCH64, "arm64": elf.EM_X86_64}[runtime.GOARCH]
	native := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	cases := []struct{ path, want string }{
		{elf64(t, dir, "foreign64", foreign), "64-bit " + strings.TrimPrefix(foreign.String(), "EM_")},
		{elf32(t, dir, "arm32", elf.EM_ARM), "32-bit ARM"},
	}
	if runtime.GOARCH != "amd64" { // amd64 traps x32 calls too
		cases = append(cases, struct{ path, want string }{elf32(t, dir, "native32", native), "32-bit " + strings.TrimPrefix(native.String(), "EM_")})
	}
	for _, tt := range cases {
		err := CheckProgram(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.path) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "socketcall") {
			t.Errorf("CheckProgram(%s) = %v, want an error naming it and %q", tt.path, err, tt.want)
		}
	}
}

// TestCheckProgramMissing proves a program that does not exist is an
// error, and so is a script whose interpreter does not.
func TestCheckProgramMissing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	if err := CheckProgram(missing); !os.IsNotExist(err) {
		t.Errorf("CheckProgram(missing) = %v, want not-exist", err)
	}
	script := writeExec(t, dir, "script", []byte("#!"+missing+"\n"))
	if err := CheckProgram(script); !os.IsNotExist(err) {
		t.Errorf("CheckProgram(script with missing interpreter) = %v, want not-exist", err)
	}
}

// TestCheckProgramFIFO: a FIFO with an execute bit, as the program or as
// a script's interpreter, is refused at once: reading it would block.
func TestCheckProgramFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	script := writeExec(t, dir, "script", []byte("#!"+fifo+"\n"))
	for _, p := range []string{fifo, script} {
		done := make(chan error, 1)
		go func() { done <- CheckProgram(p) }()
		select {
		case err := <-done:
			if !errors.Is(err, safefile.ErrNotRegular) {
				t.Errorf("CheckProgram(%s) = %v, want not a regular file", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("CheckProgram(%s) blocked", p)
		}
	}
}
