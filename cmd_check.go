package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

// renameOnCheck, when set at build time (-ldflags "-X
// main.renameOnCheck=NAME"), makes "hupd check" rename the file NAME, in
// its own binary's directory, over its own binary: the integration test of
// an upgrade whose binary is replaced between its check and its exec
// builds one. It is empty in every other build.
var renameOnCheck string

// checkCommand is "hupd check": it resolves the flags and hupd.toml like
// "hupd run" and prints the effective settings, starting nothing. With
// [[program]] tables it checks every program and the programs together
// (config.ResolveMulti) and prints each program's table under a
// "# program NAME" line, in start order.
func checkCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "check",
		OnUsageError: onUsageError,
		Usage:        "validate a configuration and print the effective settings",
		ArgsUsage:    "[-- COMMAND [ARG...]]",
		Flags:        runFlags(),
		Action: func(c *cli.Context) error {
			if renameOnCheck != "" {
				if self, err := os.Executable(); err == nil {
					os.Rename(filepath.Join(filepath.Dir(self), renameOnCheck), self)
				}
			}
			cfg, err := mergedConfig(c, c.Args().Slice())
			if err != nil {
				return err
			}
			var b bytes.Buffer
			if cfg.Multi() {
				// Several programs: hupd's settings, then each program's
				// table in start order.
				m, err := cfg.ResolveMulti()
				if err != nil {
					return err
				}
				if err := cfg.EncodeMulti(&b, m); err != nil {
					return err
				}
			} else {
				if _, err := cfg.Resolve(); err != nil {
					return err
				}
				if err := cfg.Encode(&b); err != nil {
					return err
				}
			}
			_, err = stdout.Write(b.Bytes())
			return err
		},
	}
}
