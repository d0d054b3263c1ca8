package shim

// The trap filter's view of amd64: x86-64 calls and x32 calls (the same
// numbers with bit 30 set) share AUDIT_ARCH_X86_64.
const (
	auditArch  = 0xc000003e // AUDIT_ARCH_X86_64
	sysSeccomp = 317
	x32Bit     = 0x40000000
)

var trapNrs = []uint32{49, 50, x32Bit | 49, x32Bit | 50} // bind, listen
