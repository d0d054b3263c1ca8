package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// manCommand is the hidden "hupd man": the manual page hupd(8), in roff,
// generated from the same definitions as the help, for packages
// (hupd man > hupd.8).
func manCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:   "man",
		Hidden: true,
		Usage:  "print the manual page hupd(8) in roff (hupd man > hupd.8; man -l hupd.8)",
		Action: func(*cli.Context) error {
			page, err := manPage()
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(stdout, page)
			return err
		},
	}
}

// manPage renders hupd(8) from a fresh app, set up as for a run (with
// its --help and --version). The description's example command lines
// become a literal block, and every character beyond ASCII a groff escape
// (\[u2026]), so that any roff reads the page.
func manPage() (string, error) {
	app := newApp(io.Discard, io.Discard)
	app.Setup()
	// Markdown's literal block: after a blank line, lines indented by
	// four spaces.
	app.Description = strings.Replace(app.Description, "Examples:\n", "Examples:\n\n", 1)
	app.Description = strings.ReplaceAll(app.Description, "\n   hupd ", "\n    hupd ")
	page, err := app.ToMan()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, r := range page {
		if r < 0x80 {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, `\[u%04X]`, r)
		}
	}
	return b.String(), nil
}
