package supervisor

import (
	"os"
	"path/filepath"
	"testing"
)

func TestConfigHash(t *testing.T) {
	if h := configHash(nil); h != "" {
		t.Fatalf("no files: %q", h)
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "x = 1\n")
	h1 := configHash([]string{a, b}) // b missing
	if len(h1) != 16 || h1 != configHash([]string{a, b}) {
		t.Fatalf("not stable: %q", h1)
	}
	write(b, "")
	h2 := configHash([]string{a, b})
	if h2 == h1 {
		t.Fatal("an empty file hashes like a missing one")
	}
	write(a, "x = 2\n")
	if h3 := configHash([]string{a, b}); h3 == h2 {
		t.Fatal("changed content, same hash")
	}
	write(a, "x = 1\n")
	if h4 := configHash([]string{a, b}); h4 != h2 {
		t.Fatal("same content, different hash")
	}
	// Content moved from one file to the next is a change.
	write(a, "x = 1\n\x00")
	write(b, "")
	if configHash([]string{a, b}) == h2 {
		t.Fatal("boundary between files not hashed")
	}
}
