// Command hupd adds zero-downtime reloads to any server: it holds the
// listening sockets, hands them to the child the systemd way and supervises
// it. See README.md.
package main

import (
	"io"
	"os"

	"github.com/hupd/hupd/internal/mainthread"
	// Imported for its init: hupd runs on one P (see package oneproc).
	_ "github.com/hupd/hupd/internal/oneproc"
	// Imported for its init: in the process hupd starts as its sentinel it
	// runs the sentinel before any other package is initialised.
	_ "github.com/hupd/hupd/internal/sentinel/guard"
	// Imported first for its init: in a child started as hupd-shim it execs
	// the target before any other package is initialised.
	_ "github.com/hupd/hupd/socketact/shim"
	"github.com/urfave/cli/v2"
)

func main() {
	// Children are started from the main thread (see package mainthread).
	os.Exit(mainthread.Serve(func() int {
		return exitCode(newApp(os.Stdout, os.Stderr).Run(os.Args), os.Stderr)
	}))
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "hupd",
		Usage: "hot reload for any server: hupd holds the sockets, the child comes and goes",
		Description: `Examples:
   hupd run --listen tcp://:8080 -- ./myserver --flag
   hupd run --listen http=tcp://127.0.0.1:0 --listen admin=unix:///run/app.sock -- ./myserver
   hupd run -c hupd.toml
   hupd check -c hupd.toml
   hupd reload                 # swap to a new generation; waits and says how it went
   hupd scale 4                # run 4 instances of the program, without a reload
   hupd status --json
   hupd demo

The child gets the sockets as fds 3, 4, … with LISTEN_FDS, LISTEN_FDNAMES and
LISTEN_PID set to its own PID, as systemd passes them. Signals: TERM, INT and
QUIT stop gracefully (the child gets --stop-signal, then SIGKILL after
--stop-timeout); HUP reloads like "hupd reload" without waiting; USR2
upgrades hupd in place like "hupd upgrade"; every other signal is forwarded
unchanged.`,
		Version:         buildVersion(),
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		// hupd completion's bash and zsh scripts ask through
		// --generate-bash-completion.
		EnableBashCompletion: true,
		ExitErrHandler:       func(*cli.Context, error) {}, // main maps errors to codes
		OnUsageError:         onUsageError,
		// Without subcommand: help; with an unknown one: a usage error
		// (urfave/cli would exit 3 with "No help topic").
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return unknownCommand(c.Args().First(), c.App.Commands)
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			runCommand(stderr),
			checkCommand(stdout),
			reloadCommand(stdout, stderr),
			rollbackCommand(stdout, stderr),
			scaleCommand(stdout, stderr),
			statusCommand(stdout),
			logsCommand(stdout, stderr),
			upgradeCommand(stdout, stderr),
			planCommand(stdout, stderr),
			upgradeProtocolCommand(stdout),
			versionCommand(stdout),
			demoCommand(stdout, stderr),
			completionCommand(stdout),
			manCommand(stdout),
			demoServerCommand(stderr),
		},
	}
	for _, c := range app.Commands { // every command's bad flag is one line
		if c.OnUsageError == nil {
			c.OnUsageError = onUsageError
		}
	}
	return app
}
