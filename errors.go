package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/hupd/hupd/config"
	"github.com/hupd/hupd/control"
	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"github.com/hupd/hupd/supervisor"
	"github.com/urfave/cli/v2"
)

// exitError carries an exit code out of a command action.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// exitCode is the one place that maps errors to exit codes: 2 for bad
// configuration or usage, exitNotRunning when no hupd answers a client
// command, 126/127 for a command that cannot run, the child's
// status when it exited, 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	var ee exitError
	if err == nil {
		return 0
	} else if errors.As(err, &ee) {
		return ee.code
	}
	var jf *jsonFatal
	if errors.As(err, &jf) {
		var attrs []slog.Attr
		if jf.name != "" {
			attrs = append(attrs, slog.String(supervisor.KeyName, jf.name))
		}
		attrs = append(attrs, slog.String(supervisor.KeyError, jf.err.Error()))
		slog.New(slog.NewJSONHandler(stderr, nil)).LogAttrs(context.Background(), slog.LevelError, logev.Fatal, attrs...)
	} else {
		fmt.Fprintf(stderr, "hupd: %v\n", err)
	}
	var ce *config.Error
	var nf *supervisor.NotFoundError
	var xe *socketact.ExecError
	switch { // a config error wins: a missing check command is a bad setting
	case errors.As(err, &ce), errors.Is(err, errUsage):
		return 2
	case errors.Is(err, control.ErrNotRunning):
		return exitNotRunning
	case errors.As(err, &nf):
		return nf.Code
	case errors.As(err, &xe):
		return xe.Code
	}
	return 1
}

// jsonFatal is an error hupd run (or demo) ends with when its log is
// JSON: exitCode writes it as one JSON record, level ERROR, with the
// service's name when known, instead of "hupd: ERROR". The exit status is
// the same.
type jsonFatal struct {
	err  error
	name string
}

func (e *jsonFatal) Error() string { return e.err.Error() }
func (e *jsonFatal) Unwrap() error { return e.err }

// fatalIn marks err, hupd run's error, to be written as a JSON record when
// json is true; an exit status (exitError) or nil is returned as it is.
func fatalIn(err error, json bool, name string) error {
	var ee exitError
	if !json || err == nil || errors.As(err, &ee) {
		return err
	}
	return &jsonFatal{err: err, name: name}
}

var errUsage = errors.New("usage")

// onUsageError makes a bad flag a one-line usage error (exit 2) instead of
// urfave/cli's message followed by the help text; an unknown flag gets the
// closest flag of the command as a suggestion.
func onUsageError(c *cli.Context, err error, _ bool) error {
	var flags []cli.Flag
	if c != nil && c.Command != nil {
		flags = c.Command.Flags
	}
	return usageError("%v%s", err, flagSuggestion(err, flags))
}

// badProgramError is a client command's error about the program names it
// was given (hupd does not run one of them): exit 2, as a usage error, and
// its message as hupd says it.
type badProgramError struct{ msg string }

func (e *badProgramError) Error() string { return e.msg }
func (e *badProgramError) Unwrap() error { return errUsage }

func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}
