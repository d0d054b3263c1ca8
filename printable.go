package main

import (
	"io"
	"os"
	"strconv"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// printable is s for a terminal: text that a child wrote (its STATUS=, its
// last output lines, a reason quoting them) reaches the operator's
// terminal through hupd status and hupd reload, and must not carry escape
// sequences or other control characters there. A string with any is shown
// quoted, with them escaped (\x1b, \r, …); others as they are.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsGraphic(r) || r == utf8.RuneError {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}

// isTerminal reports whether w is a terminal (what hupd reload's progress
// line and hupd logs' escaping depend on).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
