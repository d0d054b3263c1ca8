package supervisor

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestTailBuffer: a check's output is kept only up to a bound, its end.
func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 100}
	src := strings.Repeat("x", 10000) + "\nlast line"
	if _, err := io.Copy(tb, strings.NewReader(src)); err != nil {
		t.Fatal(err)
	}
	if len(tb.b) > 200 || !bytes.HasSuffix(tb.b, []byte("\nlast line")) {
		t.Errorf("kept %d bytes ending %q", len(tb.b), tb.b[max(0, len(tb.b)-20):])
	}
}
