package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionShells are the shells "hupd completion" writes a script for.
var completionShells = []string{"bash", "zsh", "fish"}

// completionCommand is "hupd completion SHELL". The bash and zsh scripts
// ask hupd itself for the words at each press of TAB, through urfave/cli's
// --generate-bash-completion hook (the commands; the flags of the command
// being typed); the fish script is generated from the same definitions.
// Neither script asks hupd anything once "--" precedes the word: what
// follows is the program's command line, and hupd would run it.
func completionCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a completion script for bash, zsh or fish, to source (source <(hupd completion bash)) or install",
		ArgsUsage: "bash|zsh|fish",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError("completion: name one shell: %s", strings.Join(completionShells, ", "))
			}
			var script string
			switch shell := c.Args().First(); shell {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			case "fish":
				// From a fresh app: urfave/cli lists the help and
				// version flags again for an app it has set up. The
				// backquotes that mark placeholders in the help go.
				s, err := newApp(io.Discard, io.Discard).ToFishCompletion()
				if err != nil {
					return err
				}
				script = strings.ReplaceAll(s, "`", "")
			default:
				return usageError("completion: unknown shell %q: valid shells are %s", shell, strings.Join(completionShells, ", "))
			}
			_, err := fmt.Fprint(stdout, script)
			return err
		},
	}
}

const bashCompletion = `# bash completion for hupd: source <(hupd completion bash), or save it as
# /etc/bash_completion.d/hupd. hupd lists the words itself.
_hupd() {
	local cur=${COMP_WORDS[COMP_CWORD]} i IFS=$'\n'
	COMPREPLY=()
	# hupd knows the command (the first word) and flags (a word that
	# starts with -); any other word is a flag's value or an argument:
	# bash's file completion.
	[[ $COMP_CWORD -eq 1 || $cur == -* ]] || return 0
	for ((i = 1; i < COMP_CWORD; i++)); do
		# After "--" comes the program's command line: files, and never
		# a call to hupd, which would run it.
		[[ ${COMP_WORDS[i]} == -- ]] && return 0
	done
	local words=("${COMP_WORDS[@]:1:COMP_CWORD-1}")
	[[ -n $cur ]] && words+=("$cur")
	COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "${words[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o default -F _hupd hupd
`

const zshCompletion = `#compdef hupd
# zsh completion for hupd: source <(hupd completion zsh) after compinit, or
# save it as _hupd in a directory of $fpath. hupd lists the words itself.
_hupd() {
	local cur=${words[CURRENT]}
	local -a args found
	# hupd knows the command (the first word) and flags (a word that starts
	# with -); any other word is a flag's value or an argument: files. After
	# "--" comes the program's command line: files, and never a call to
	# hupd, which would run it.
	if (( CURRENT != 2 )) && [[ $cur != -* ]] ||
		(( ${words[(I)--]} > 0 && ${words[(I)--]} < CURRENT )); then
		_files
		return
	fi
	args=(${words[2,CURRENT-1]})
	[[ -n $cur ]] && args+=($cur)
	found=(${(f)"$(${words[1]} $args --generate-bash-completion 2>/dev/null)"})
	if (( ${#found} )); then
		compadd -- $found
	else
		_files
	fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
	_hupd "$@"
else
	compdef _hupd hupd
fi
`
