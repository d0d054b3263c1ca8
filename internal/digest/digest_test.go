package digest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// TestKnown: the FIPS 180-4 examples.
func TestKnown(t *testing.T) {
	for in, want := range map[string]string{
		"":    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq": "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
	} {
		h := New()
		h.Write([]byte(in))
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			t.Errorf("SHA-256(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestSameAsCrypto: every length up to a few blocks, written in random
// pieces, sums as crypto/sha256 does; Sum leaves the state as it was, and
// Reset starts again.
func TestSameAsCrypto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 4*BlockSize+17)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	h := New()
	for n := range len(data) + 1 {
		h.Reset()
		want := sha256.New()
		for p := data[:n]; len(p) > 0; {
			k := min(len(p), r.IntN(2*BlockSize+1))
			h.Write(p[:k])
			want.Write(p[:k])
			if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
				t.Fatalf("length %d: the sum of a prefix differs", n)
			}
			p = p[k:]
		}
		if got, w := h.Sum([]byte("x")), want.Sum([]byte("x")); !bytes.Equal(got, w) {
			t.Fatalf("length %d: %x, want %x", n, got, w)
		}
	}
	if h.Size() != sha256.Size || h.BlockSize() != sha256.BlockSize {
		t.Fatalf("Size %d, BlockSize %d", h.Size(), h.BlockSize())
	}
	big := bytes.Repeat(data, 300)
	h.Reset()
	h.Write(big)
	if want := sha256.Sum256(big); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("%d bytes in one write: the sums differ", len(big))
	}
}

func BenchmarkWrite(b *testing.B) {
	buf := make([]byte, 32<<10)
	for _, c := range []struct {
		name string
		h    func() interface{ Write([]byte) (int, error) }
	}{{"digest", func() interface{ Write([]byte) (int, error) } { return New() }}, {"crypto", func() interface{ Write([]byte) (int, error) } { return sha256.New() }}} {
		b.Run(c.name, func(b *testing.B) {
			h := c.h()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				h.Write(buf)
			}
		})
	}
}
