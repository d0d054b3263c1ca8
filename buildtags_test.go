package main

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docsTag is the build tag every build of hupd passes: it leaves
// urfave/cli's docs.go out (ToMan, ToMarkdown, which hupd does not call:
// hupd man has its own renderer), and with it go-md2man and blackfriday,
// whose package initialisation and code every hupd would otherwise carry
// (README, "hupd's memory").
const docsTag = "urfave_cli_no_docs"

// TestDocsTagDropsMarkdown: built with docsTag, hupd links no Markdown
// package at all (nothing of hupd imports one by another way).
func TestDocsTagDropsMarkdown(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", docsTag, "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "blackfriday") || strings.Contains(p, "md2man") {
			t.Errorf("hupd built with -tags %s links %s", docsTag, p)
		}
	}
}

// buildCmd finds a go command that builds or runs a package: in a shell
// line, a Dockerfile or Go's exec.Command arguments.
var buildCmd = regexp.MustCompile(`go"?, "?(build|run)\b|\bgo (build|run)\b`)

// TestBuildsLeaveOutDocs: every command of the repository that builds or
// runs hupd's main package (its argument . or .., in the READMEs, the
// Dockerfiles, .ci/run, the tests and the benchmark that build hupd)
// passes -tags urfave_cli_no_docs, so that every hupd anyone builds from
// the documentation, and every hupd the tests and the benchmark measure,
// is the small one.
func TestBuildsLeaveOutDocs(t *testing.T) {
	var found int
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == ".git" || n == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		n := d.Name()
		if n == "buildtags_test.go" || !(strings.HasSuffix(n, ".go") || strings.HasSuffix(n, ".md") ||
			strings.HasPrefix(n, "Dockerfile") || path == filepath.Join(".ci", "run")) {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		for line := 1; sc.Scan(); line++ {
			for _, cmd := range buildsOfHupd(sc.Text()) {
				found++
				if !strings.Contains(cmd, "-tags "+docsTag) && !strings.Contains(cmd, `"-tags", "`+docsTag+`"`) {
					t.Errorf("%s:%d: %q builds hupd without -tags %s", path, line, cmd, docsTag)
				}
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 8 { // the README, the Dockerfiles, .ci/run, the tests, the bench
		t.Errorf("found %d builds of hupd; the scan missed them", found)
	}
}

// buildsOfHupd returns the go build and go run commands of line whose
// package is hupd's main package (an argument . or ..), each up to the
// next &&, ; or | of a shell line.
func buildsOfHupd(line string) []string {
	var cmds []string
	locs := buildCmd.FindAllStringIndex(line, -1)
	for i, loc := range locs {
		cmd := line[loc[0]:]
		if i+1 < len(locs) {
			cmd = line[loc[0]:locs[i+1][0]]
		}
		if j := strings.IndexAny(cmd, "&;|"); j >= 0 {
			cmd = cmd[:j]
		}
		args := strings.FieldsFunc(cmd, func(r rune) bool { return strings.ContainsRune(" \t\"',\\", r) })
		for _, a := range args {
			if a = strings.Trim(a, "`"); a == "." || a == ".." {
				cmds = append(cmds, cmd)
				break
			}
		}
	}
	return cmds
}
