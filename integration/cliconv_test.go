package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCompletionHook drives the binary's completion hook as the bash and
// zsh scripts do: hupd lists its visible commands, and the flags of the
// command being typed that start with the word.
func TestCompletionHook(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--generate-bash-completion"}, []string{"run", "check", "reload", "rollback", "scale", "status", "logs", "upgrade", "plan", "version", "demo", "completion"}},
		{[]string{"run", "--lis", "--generate-bash-completion"}, []string{"--listen"}},
		{[]string{"run", "--watch", "x", "--watch-", "--generate-bash-completion"}, []string{"--watch-poll", "--watch-config"}},
		{[]string{"reload", "--t", "--generate-bash-completion"}, []string{"--timeout"}},
		{[]string{"rollback", "--j", "--generate-bash-completion"}, []string{"--json"}},
		{[]string{"run", "--ste", "--generate-bash-completion"}, []string{"--steer", "--steer-wait", "--steer-grace"}},
	} {
		r := oneShot(t, t.TempDir(), nil, tc.args...)
		if got := strings.Fields(r.stdout); r.code != 0 || !slices.Equal(got, tc.want) {
			t.Errorf("hupd %s: exit %d, %q (stderr %q); want %q", strings.Join(tc.args, " "), r.code, got, r.stderr, tc.want)
		}
	}
}

// TestCompletionBash runs the bash script of hupd completion bash the way
// bash does at a TAB (COMP_WORDS, COMP_CWORD, then the function): a command
// and a flag complete; a flag's value is left to bash's file completion,
// and so is everything after "--", where the script never calls hupd,
// which would run the program typed after it.
func TestCompletionBash(t *testing.T) {
	bash := needTool(t, "bash")
	dir, path := completionScript(t, "bash", "hupd.bash")
	touched := filepath.Join(dir, "ran")
	for _, tc := range []struct {
		words string // bash words, the last one being completed
		want  string
	}{
		{`hupd ru`, "run"},
		{`hupd st`, "status"},
		{`hupd run --lis`, "--listen"},
		{`hupd run -c x.toml --ready-t`, "--ready-timeout"},
		{`hupd run -c ''`, ""}, // a flag's value: files
		{`hupd ''`, "run check reload rollback scale status logs upgrade plan version demo completion"},
		// Were hupd called, it would run sh, which ignores the hook's flag.
		{`hupd run -- sh -c 'touch ` + touched + `' ''`, ""},
	} {
		cmd := exec.Command(bash, "-c", `source "$1" && COMP_WORDS=(`+tc.words+`) && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _hupd && echo "${COMPREPLY[*]}"`, "bash", path)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(hupdBin)+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
			t.Errorf("completing %s: %q %v; want %q", tc.words, got, err, tc.want)
		}
	}
	if _, err := os.Stat(touched); err == nil {
		t.Errorf("completing after -- ran hupd run: %s exists", touched)
	}
}

// TestCompletionZsh runs the zsh script's function with compadd and
// _files stubbed to print what they get, as TestCompletionBash does for
// bash (zsh is needed: skipped without it, except under CI).
func TestCompletionZsh(t *testing.T) {
	zsh := needTool(t, "zsh")
	dir, path := completionScript(t, "zsh", "_hupd")
	touched := filepath.Join(dir, "ran")
	for _, tc := range []struct{ words, want string }{
		{`hupd ru`, "add run check reload rollback scale status logs upgrade plan version demo completion"},
		{`hupd run --lis`, "add --listen"},
		{`hupd run -c ''`, "files"},
		{`hupd run -- sh -c 'touch ` + touched + `' ''`, "files"},
	} {
		prog := `compdef() { :; }; source "$1"; compadd() { shift; print -r -- "add $*"; }; _files() { print files; }; ` +
			`words=(` + tc.words + `); CURRENT=${#words}; _hupd`
		cmd := exec.Command(zsh, "-f", "-c", prog, "zsh", path)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(hupdBin)+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
			t.Errorf("completing %s: %q %v; want %q", tc.words, got, err, tc.want)
		}
	}
	if _, err := os.Stat(touched); err == nil {
		t.Errorf("completing after -- ran hupd run: %s exists", touched)
	}
}

// completionScript writes what hupd completion SHELL prints to a file
// named name in a new directory, and returns both.
func completionScript(t *testing.T, shell, name string) (dir, path string) {
	t.Helper()
	script := oneShot(t, t.TempDir(), nil, "completion", shell)
	if script.code != 0 {
		t.Fatalf("hupd completion %s: exit %d, %s", shell, script.code, script.stderr)
	}
	dir = t.TempDir()
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(script.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, path
}
