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
			_, err := io.WriteString(stdout, manPage(newApp(io.Discard, io.Discard)))
			return err
		},
	}
}

// manPage renders app as the manual page hupd(8) with the man macros:
// NAME and SYNOPSIS, the app's description, its global options (--help
// and --version, as a run adds them), then a subsection per visible
// command (and subcommand) with its arguments and visible flags. It is
// hupd's own renderer: urfave/cli's ToMan would link a Markdown parser
// whose package initialisation every hupd pays for (see README,
// "hupd's memory").
//
// The page is ASCII: every other character becomes a groff escape
// (\[u2026]), dashes are \- (a minus, which copies as "-"), backslashes
// \e, and a line that would begin with a control character gets \& in
// front, so that any roff reads the text as text.
func manPage(app *cli.App) string {
	var m manWriter
	m.line(".TH " + strings.ToUpper(app.Name) + ` 8 "" "` + app.Name + " " + app.Version + `" "System Administration"`)
	m.line(".nh") // no hyphenation: names and flags stay whole
	m.line(".SH NAME")
	m.line(m.text(app.Name + " - " + app.Usage))
	m.line(".SH SYNOPSIS")
	m.line(`\fB` + m.text(app.Name) + `\fR [\fB\-\-help\fR] [\fB\-\-version\fR] \fIcommand\fR [\fIoptions\fR] [\fIarguments\fR...]`)
	if app.Description != "" {
		m.line(".SH DESCRIPTION")
		m.prose(app.Description)
	}
	m.line(".SH OPTIONS")
	m.flags([]cli.Flag{cli.HelpFlag, cli.VersionFlag})
	m.line(".SH COMMANDS")
	m.commands(app.Name, app.Commands)
	return m.b.String()
}

// manWriter builds a page line by line.
type manWriter struct{ b strings.Builder }

func (m *manWriter) line(s string) {
	m.b.WriteString(s)
	m.b.WriteByte('\n')
}

// text escapes s for roff: text, never a request or an escape.
func (m *manWriter) text(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r >= 0x80:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if strings.HasPrefix(out, ".") || strings.HasPrefix(out, "'") {
		out = `\&` + out
	}
	return out
}

// prose writes text made of paragraphs (separated by blank lines) whose
// indented lines are examples: a run of them is a literal block, its
// common indentation removed.
func (m *manWriter) prose(text string) {
	var example []string
	flush := func() {
		if len(example) == 0 {
			return
		}
		indent := len(example[0]) - len(strings.TrimLeft(example[0], " \t"))
		for _, l := range example {
			indent = min(indent, len(l)-len(strings.TrimLeft(l, " \t")))
		}
		m.line(".PP")
		m.line(".EX")
		for _, l := range example {
			m.line(m.text(l[indent:]))
		}
		m.line(".EE")
		example = nil
	}
	para := true // the next text line begins a paragraph
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		switch {
		case strings.TrimSpace(l) == "":
			flush()
			para = true
		case l[0] == ' ' || l[0] == '\t':
			example = append(example, l)
		default:
			flush()
			if para {
				m.line(".PP")
				para = false
			}
			m.line(m.text(l))
		}
	}
	flush()
}

// commands writes a subsection per visible command, named by its whole
// command line (parent is "hupd", or "hupd CMD" for subcommands).
func (m *manWriter) commands(parent string, cmds []*cli.Command) {
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		name := parent + " " + c.Name
		synopsis := name
		if len(c.VisibleFlags()) > 0 {
			synopsis += " [options]"
		}
		if c.ArgsUsage != "" {
			synopsis += " " + c.ArgsUsage
		}
		m.line(`.SS "` + strings.ReplaceAll(m.text(synopsis), `"`, `\(dq`) + `"`)
		m.line(m.text(c.Usage))
		if c.Description != "" {
			m.prose(c.Description)
		}
		m.flags(c.VisibleFlags())
		m.commands(name, c.Subcommands)
	}
}

// flags writes a tagged paragraph per visible flag: its names, each with
// the placeholder its usage names between backquotes (as the help shows
// it), then the usage and a default the usage does not already give.
func (m *manWriter) flags(flags []cli.Flag) {
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		var usage, placeholder, def string
		if d, ok := f.(cli.DocGenerationFlag); ok {
			usage = d.GetUsage()
			if d.TakesValue() {
				placeholder = "value"
				def = d.GetDefaultText()
				if def == "" {
					def = d.GetValue()
				}
			}
		}
		if i := strings.IndexByte(usage, '`'); i >= 0 {
			if j := strings.IndexByte(usage[i+1:], '`'); j >= 0 {
				placeholder = usage[i+1 : i+1+j]
				usage = usage[:i] + placeholder + usage[i+2+j:]
			}
		}
		names := make([]string, 0, len(f.Names()))
		for _, n := range f.Names() {
			dashes := "--"
			if len(n) == 1 {
				dashes = "-"
			}
			s := `\fB` + m.text(dashes+n) + `\fR`
			if placeholder != "" {
				s += ` \fI` + m.text(placeholder) + `\fR`
			}
			names = append(names, s)
		}
		m.line(".TP")
		m.line(strings.Join(names, ", "))
		if def != "" && !strings.Contains(usage, "default") {
			usage += " (default: " + def + ")"
		}
		m.line(m.text(usage))
	}
}
