package main

import (
	"strconv"
	"unicode"
	"unicode/utf8"
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
