package digest

import (
	"encoding/binary"
	"hash"
	"math/bits"
)

const (
	// Size is the length of a sum in bytes.
	Size = 32
	// BlockSize is the block the compression function works on, in bytes.
	BlockSize = 64
)

// iv is the initial state: the first 32 bits of the fractional parts of
// the square roots of the first 8 primes.
var iv = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

// rc are the round constants: the first 32 bits of the fractional parts
// of the cube roots of the first 64 primes.
var rc = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// sha is a running SHA-256.
type sha struct {
	h    [8]uint32
	buf  [BlockSize]byte // the start of a block not yet compressed
	nbuf int             // bytes in buf
	n    uint64          // bytes written since Reset
}

// New returns a SHA-256 hash.
func New() hash.Hash {
	d := new(sha)
	d.Reset()
	return d
}

func (d *sha) Reset() {
	d.h, d.nbuf, d.n = iv, 0, 0
}

func (d *sha) Size() int { return Size }

func (d *sha) BlockSize() int { return BlockSize }

// Write adds p to the hash; it never fails.
func (d *sha) Write(p []byte) (int, error) {
	n := len(p)
	d.n += uint64(n)
	if d.nbuf > 0 {
		c := copy(d.buf[d.nbuf:], p)
		d.nbuf += c
		p = p[c:]
		if d.nbuf < BlockSize {
			return n, nil
		}
		d.compress(d.buf[:])
		d.nbuf = 0
	}
	if whole := len(p) &^ (BlockSize - 1); whole > 0 {
		d.compress(p[:whole])
		p = p[whole:]
	}
	d.nbuf = copy(d.buf[:], p)
	return n, nil
}

// Sum appends the hash of what was written to b; d is unchanged.
func (d *sha) Sum(b []byte) []byte {
	c := *d
	// A 1 bit, zeros up to 8 bytes short of a block's end, then the
	// message's length in bits.
	var pad [BlockSize + 8]byte
	pad[0] = 0x80
	k := 56 - int(c.n%BlockSize)
	if k < 1 {
		k += BlockSize
	}
	binary.BigEndian.PutUint64(pad[k:], c.n<<3)
	c.Write(pad[:k+8])
	for _, v := range c.h {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// compress runs the compression function over p, whole blocks.
func (d *sha) compress(p []byte) {
	var w [64]uint32
	h0, h1, h2, h3, h4, h5, h6, h7 := d.h[0], d.h[1], d.h[2], d.h[3], d.h[4], d.h[5], d.h[6], d.h[7]
	for ; len(p) >= BlockSize; p = p[BlockSize:] {
		for i := range 16 {
			w[i] = binary.BigEndian.Uint32(p[4*i:])
		}
		for i := 16; i < 64; i++ {
			s0 := bits.RotateLeft32(w[i-15], -7) ^ bits.RotateLeft32(w[i-15], -18) ^ w[i-15]>>3
			s1 := bits.RotateLeft32(w[i-2], -17) ^ bits.RotateLeft32(w[i-2], -19) ^ w[i-2]>>10
			w[i] = w[i-16] + s0 + w[i-7] + s1
		}
		a, b, c, e, f, g, h := h0, h1, h2, h4, h5, h6, h7
		dd := h3
		for i := range 64 {
			t1 := h + (bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)) + (e&f ^ ^e&g) + rc[i] + w[i]
			t2 := (bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)) + (a&b ^ a&c ^ b&c)
			h, g, f, e, dd, c, b, a = g, f, e, dd+t1, c, b, a, t1+t2
		}
		h0 += a
		h1 += b
		h2 += c
		h3 += dd
		h4 += e
		h5 += f
		h6 += g
		h7 += h
	}
	d.h = [8]uint32{h0, h1, h2, h3, h4, h5, h6, h7}
}
