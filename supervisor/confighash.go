package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
)

// configHash is a short SHA-256 over the names and contents of files, in
// order: what a generation started with. A file that cannot be read counts
// as missing, which is a change of its own. "" without files.
func configHash(files []string) string {
	if len(files) == 0 {
		return ""
	}
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f))
		h.Write([]byte{0})
		if b, err := os.ReadFile(f); err == nil {
			h.Write([]byte{1})
			h.Write(b)
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
