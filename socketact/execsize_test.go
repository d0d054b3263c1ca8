package socketact

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestExecSize(t *testing.T) {
	if got := ExecSize([]string{"ab"}, []string{"c=d"}); got != 2*8+3+4 {
		t.Errorf("ExecSize = %d, want %d", got, 2*8+3+4)
	}
	if MaxArgStrlen() < 128<<10 {
		t.Errorf("MaxArgStrlen = %d", MaxArgStrlen())
	}
	limit, why := ExecLimit()
	if limit < 128<<10 || limit > 6<<20 || why == "" {
		t.Errorf("ExecLimit = %d, %q", limit, why)
	}
	if err := CheckExecSize([]string{"x"}, []string{strings.Repeat("y", limit)}); !errors.Is(err, ErrExecTooLarge) {
		t.Errorf("CheckExecSize of %d bytes: %v", limit, err)
	}
	if err := CheckExecSize([]string{"x"}, []string{"a=b"}); err != nil {
		t.Errorf("CheckExecSize of a few bytes: %v", err)
	}
	err := tooLarge("/bin/x", []string{"x"}, []string{"a=b"}, syscall.E2BIG)
	if !errors.Is(err, ErrExecTooLarge) || !errors.Is(err, syscall.E2BIG) || !strings.Contains(err.Error(), "arguments and environment too large for exec: 22 bytes") {
		t.Errorf("tooLarge: %v", err)
	}
	if err := tooLarge("/bin/x", nil, nil, syscall.ENOENT); err != syscall.ENOENT {
		t.Errorf("tooLarge(ENOENT) = %v", err)
	}
}
