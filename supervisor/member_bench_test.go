package supervisor

import (
	"os"
	"syscall"
	"testing"
)

// BenchmarkMember measures the membership check the notify reader runs on
// each datagram, for a member (the generation's own process).
func BenchmarkMember(b *testing.B) {
	b.Run("root", func(b *testing.B) { benchMember(b, false) })
	b.Run("group", func(b *testing.B) { benchMember(b, true) })
}

// benchMember checks this process; byGroup: as a member by its process
// group only, which also walks hupd's ancestry.
func benchMember(b *testing.B, byGroup bool) {
	s := &Supervisor{self: os.Getppid()} // this process stands in for a child
	g := &generation{pgid: 1 << 30}
	g.origin.Store(int64(os.Getpid()))
	if byGroup {
		g.origin.Store(0)
		g.pgid = syscall.Getpgrp()
	}
	for b.Loop() {
		if !s.member(g, os.Getpid()) {
			b.Fatal("not a member")
		}
	}
}
