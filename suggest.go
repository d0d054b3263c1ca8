package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// didYouMean returns the candidate closest to typed, or "" when none is
// close: typed has at least three letters and is at most one edit
// (insertion, deletion, substitution or swap of two neighbours) away for
// every three of them, or typed has two or more and starts exactly one
// candidate. The first of equally close candidates wins.
func didYouMean(typed string, candidates []string) string {
	best, bestDist := "", 0 // bestDist: exclusive bound
	if len(typed) >= 3 {
		bestDist = len(typed)/3 + 1
	}
	var prefixed []string
	for _, c := range candidates {
		if d := editDistance(typed, c); d < bestDist {
			best, bestDist = c, d
		}
		if len(typed) >= 2 && strings.HasPrefix(c, typed) {
			prefixed = append(prefixed, c)
		}
	}
	if best == "" && len(prefixed) == 1 {
		best = prefixed[0]
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// the Levenshtein distance where swapping two neighbours counts as one
// edit ("rnu" is one edit from "run").
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// visibleCommands are the names of cmds that the help lists, in order.
func visibleCommands(cmds []*cli.Command) []string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	return names
}

// unknownCommand is the usage error for "hupd NAME" with no command NAME.
func unknownCommand(name string, cmds []*cli.Command) error {
	valid := visibleCommands(cmds)
	if s := didYouMean(name, valid); s != "" {
		return usageError("unknown command %q: did you mean %q?", name, s)
	}
	return usageError("unknown command %q: valid commands are %s", name, strings.Join(valid, ", "))
}

// flagSuggestion says which flag of flags an unknown flag in err probably
// meant: ": did you mean --listen?", or "". The flag package reports an
// unknown flag only in its message ("flag provided but not defined:
// -lisen"), so that is what it reads, as urfave/cli's own suggestions do.
func flagSuggestion(err error, flags []cli.Flag) string {
	typed, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return ""
	}
	var names []string
	for _, f := range flags {
		names = append(names, f.Names()...)
	}
	s := didYouMean(strings.TrimPrefix(typed, "-"), names)
	switch {
	case s == "":
		return ""
	case len(s) == 1:
		return ": did you mean -" + s + "?"
	}
	return ": did you mean --" + s + "?"
}
