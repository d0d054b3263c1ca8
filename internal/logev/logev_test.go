package logev_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// logMethods maps the name of a log/slog method (of *slog.Logger or of
// the slog package) to the index of its message argument.
var logMethods = map[string]int{
	"Debug": 0, "Info": 0, "Warn": 0, "Error": 0,
	"DebugContext": 1, "InfoContext": 1, "WarnContext": 1, "ErrorContext": 1,
	"Log": 2, "LogAttrs": 2,
}

// moduleRoot is hupd's module root, two levels up from this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// codeFiles parses every non-test Go file of hupd's own code: the module
// without this package, integration/ (tests and the benchmark, which log
// their own lines), examples/ (programs hupd runs) and testdata.
func codeFiles(t *testing.T) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	root := moduleRoot(t)
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch n := d.Name(); {
			case rel == ".":
			case strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") || n == "testdata" || n == "vendor",
				rel == "integration", rel == "examples", rel == filepath.Join("internal", "logev"):
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files[rel] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("found %d Go files under %s: not hupd's module?", len(files), root)
	}
	return fset, files
}

// constants returns this package's constants: name → message.
func constants(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			f, err := parser.ParseFile(token.NewFileSet(), n, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, s := range g.Specs {
					vs := s.(*ast.ValueSpec)
					for i, n := range vs.Names {
						msg, ok := constString(vs.Values[i])
						if !ok {
							t.Fatalf("%s: not a string constant", n.Name)
						}
						out[n.Name] = msg
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no constants found")
	}
	return out
}

func constString(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		s, err := strconv.Unquote(e.Value)
		return s, e.Kind == token.STRING && err == nil
	case *ast.BinaryExpr:
		a, ok1 := constString(e.X)
		b, ok2 := constString(e.Y)
		return a + b, e.Op == token.ADD && ok1 && ok2
	case *ast.ParenExpr:
		return constString(e.X)
	}
	return "", false
}

// TestNoLiteralMessages fails for a log call in hupd's code whose message
// is not one of this package's constants: a literal, a sum with a
// literal, or a computed string. (A variable or parameter is accepted: it
// holds constants chosen by the code around it.)
func TestNoLiteralMessages(t *testing.T) {
	fset, files := codeFiles(t)
	calls := 0
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := c.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			i, ok := logMethods[sel.Sel.Name]
			if !ok || i >= len(c.Args) {
				return true
			}
			switch m := c.Args[i].(type) {
			case *ast.SelectorExpr:
				if x, ok := m.X.(*ast.Ident); ok && x.Name == "logev" {
					calls++
					return true
				}
			case *ast.Ident:
				return true
			}
			// Only what is a string: a literal, or built from one.
			literal := false
			ast.Inspect(c.Args[i], func(n ast.Node) bool {
				if l, ok := n.(*ast.BasicLit); ok && l.Kind == token.STRING {
					literal = true
				}
				return !literal
			})
			if _, isCall := c.Args[i].(*ast.CallExpr); literal || isCall {
				t.Errorf("%s: log message is not a logev constant: add one to internal/logev and use it", fset.Position(c.Args[i].Pos()))
			}
			return true
		})
	}
	if calls < 100 {
		t.Errorf("only %d log calls with a logev constant found: is the scan still finding the log calls?", calls)
	}
}

// TestEveryEventLogged fails for a constant no code uses: a test could
// still wait for its absence and pass forever.
func TestEveryEventLogged(t *testing.T) {
	_, files := codeFiles(t)
	used := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if s, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := s.X.(*ast.Ident); ok && x.Name == "logev" {
					used[s.Sel.Name] = true
				}
			}
			return true
		})
	}
	var unused []string
	for name := range constants(t) {
		if !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	for _, name := range unused {
		t.Errorf("logev.%s is logged by no code: remove it (and the tests' waits for it)", name)
	}
}

// TestMessages: one message per constant, constant lowercase text.
func TestMessages(t *testing.T) {
	byMsg := map[string]string{}
	for name, msg := range constants(t) {
		if other, ok := byMsg[msg]; ok {
			t.Errorf("%s and %s have the same message %q", name, other, msg)
		}
		byMsg[msg] = name
		if msg == "" || strings.TrimSpace(msg) != msg || strings.ContainsAny(msg, "\n\t%") {
			t.Errorf("%s = %q: not a one-line constant message", name, msg)
		} else if r := []rune(msg)[0]; unicode.IsUpper(r) {
			t.Errorf("%s = %q: messages start in lowercase", name, msg)
		}
	}
}
