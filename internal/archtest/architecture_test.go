// Package archtest holds the architecture test: the import rules that keep
// HTTP in the edge, Redis in its adapter, SQL in storage, and the domain
// free of drivers (docs/architecture.md draws them).
package archtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/liveanalytics/analyticsd"

// pkg is what `go list -deps -json` says of one package.
type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
	Standard   bool
}

// rule forbids packages (Of, by import path below the module; a trailing
// "/..." takes the subtree) to import (directly) or depend on (at any
// depth) what matches Forbid, except the packages in Allow.
type rule struct {
	Why        string
	Of         []string
	Except     []string
	Forbid     []string
	Transitive bool
}

var (
	domain = []string{"summary", "stream", "storage", "internal/ingest"}
	rules  = []rule{
		{Why: "HTTP lives in the edge (internal/api); auth and ratelimit sit beside it; cmd runs the server and its load generator",
			Of: []string{"..."}, Except: []string{"internal/api", "internal/auth", "internal/ratelimit", "cmd/...", "internal/testenv"},
			Forbid: []string{"net/http", "net/http/..."}},
		{Why: "the domain and storage know no Redis, even through another package",
			Of: domain, Forbid: []string{"github.com/redis/go-redis/..."}, Transitive: true},
		{Why: "Redis lives in its adapter (internal/redis)",
			Of: []string{"..."}, Except: []string{"internal/redis", "internal/testenv"},
			Forbid: []string{"github.com/redis/go-redis/..."}},
		{Why: "the domain knows no SQL driver, even through another package",
			Of:     []string{"summary", "stream", "internal/ingest", "internal/api", "internal/redis"},
			Forbid: []string{"github.com/jackc/..."}, Transitive: true},
		{Why: "SQL lives in storage",
			Of: []string{"..."}, Except: []string{"storage", "internal/testenv"},
			Forbid: []string{"github.com/jackc/..."}},
		{Why: "routes live in the edge",
			Of: []string{"..."}, Except: []string{"internal/api"},
			Forbid: []string{"github.com/gorilla/mux"}},
		{Why: "nothing below the edge imports the edge; only cmd wires it",
			Of: []string{"..."}, Except: []string{"internal/api", "cmd/analyticsd"},
			Forbid: []string{module + "/internal/api"}, Transitive: true},
		{Why: "the domain does not reach up to its adapters",
			Of:     []string{"summary", "stream", "internal/ingest"},
			Forbid: []string{module + "/storage", module + "/internal/redis", module + "/internal/api"}, Transitive: true},
	}
)

// matches reports whether path matches pattern ("a/b", or "a/..." for a and
// below, or "..." for everything).
func matches(pattern, path string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func matchesAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(p, path) })
}

// violations applies rules to the module's own packages.
func violations(pkgs []pkg, rules []rule) []string {
	var out []string
	for _, p := range pkgs {
		rel, ok := strings.CutPrefix(p.ImportPath, module+"/")
		if !ok || p.Standard {
			continue
		}
		for _, r := range rules {
			if !matchesAny(r.Of, rel) || matchesAny(r.Except, rel) {
				continue
			}
			deps := p.Imports
			if r.Transitive {
				deps = p.Deps
			}
			for _, d := range deps {
				if matchesAny(r.Forbid, d) {
					how := "imports"
					if r.Transitive && !slices.Contains(p.Imports, d) {
						how = "depends on"
					}
					out = append(out, fmt.Sprintf("%s %s %s: %s", rel, how, d, r.Why))
				}
			}
		}
	}
	return out
}

func goList(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	pkgs := goList(t)
	for _, v := range violations(pkgs, rules) {
		t.Error(v)
	}
	// The rules must see the packages they are about.
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[strings.TrimPrefix(p.ImportPath, module+"/")] = true
	}
	for _, want := range append([]string{"internal/api", "internal/redis", "cmd/analyticsd"}, domain...) {
		if !seen[want] {
			t.Errorf("go list did not report %s", want)
		}
	}
}

// sqlText is SQL as it would appear in a Go string: statements in this
// code base spell their keywords in capitals; a lower-case SELECT … FROM
// is caught too.
var sqlText = regexp.MustCompile(`\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|TRUNCATE|ALTER TABLE|(CREATE|DROP) (TABLE|INDEX|SCHEMA|DATABASE|TRIGGER))\b|(?i)\bselect\s.+\sfrom\b`)

// cmdFindings lists SQL strings and HTTP handlers in the non-test files of
// the packages under cmd/: cmd is flags, configuration and wiring.
func cmdFindings(t *testing.T, pkgs []pkg) []string {
	t.Helper()
	var out []string
	for _, p := range pkgs {
		if !strings.HasPrefix(p.ImportPath, module+"/cmd/") {
			continue
		}
		for _, name := range p.GoFiles {
			path := filepath.Join(p.Dir, name)
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fileFindings(strings.TrimPrefix(p.ImportPath, module+"/")+"/"+name, f)...)
		}
	}
	return out
}

func fileFindings(name string, f *ast.File) []string {
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				if s, err := strconv.Unquote(n.Value); err == nil && sqlText.MatchString(s) {
					out = append(out, fmt.Sprintf("%s holds SQL %q: SQL lives in storage", name, s))
				}
			}
		case *ast.FuncDecl:
			if n.Recv != nil && n.Name.Name == "ServeHTTP" {
				out = append(out, fmt.Sprintf("%s declares a ServeHTTP method: handlers live in internal/api", name))
			}
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok && x.Name == "http" && (n.Sel.Name == "HandlerFunc" || n.Sel.Name == "ResponseWriter") {
				out = append(out, fmt.Sprintf("%s uses http.%s: handlers live in internal/api", name, n.Sel.Name))
			}
		}
		return true
	})
	return out
}

func TestCmdHoldsNoSQLAndNoHandlers(t *testing.T) {
	for _, f := range cmdFindings(t, goList(t)) {
		t.Error(f)
	}
}

// TestRulesCatchViolations makes sure the checks above can fail.
func TestRulesCatchViolations(t *testing.T) {
	fake := []pkg{
		{ImportPath: module + "/summary", Imports: []string{"net/http", "context"}, Deps: []string{"net/http", "context"}},
		{ImportPath: module + "/stream", Imports: []string{module + "/internal/redis"}, Deps: []string{module + "/internal/redis", "github.com/redis/go-redis/v9"}},
		{ImportPath: module + "/storage", Imports: []string{module + "/internal/api"}, Deps: []string{module + "/internal/api"}},
		{ImportPath: module + "/internal/ingest", Imports: []string{"github.com/jackc/pgx/v5"}, Deps: []string{"github.com/jackc/pgx/v5"}},
		{ImportPath: module + "/internal/api", Imports: []string{"net/http", "github.com/gorilla/mux"}, Deps: []string{"net/http"}},
	}
	got := strings.Join(violations(fake, rules), "\n")
	for _, want := range []string{
		"summary imports net/http",
		"stream depends on github.com/redis/go-redis/v9",
		"stream imports " + module + "/internal/redis",
		"storage imports " + module + "/internal/api",
		"internal/ingest imports github.com/jackc/pgx/v5",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no violation %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "internal/api imports") {
		t.Errorf("the edge may import net/http and mux:\n%s", got)
	}
	src := "package main\nimport \"net/http\"\nconst q = `SELECT count(*) FROM events`\nfunc h(w http.ResponseWriter, r *http.Request) {}\ntype x struct{}\nfunc (x) ServeHTTP() {}\n"
	f, err := parser.ParseFile(token.NewFileSet(), "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fileFindings("x.go", f)); n != 3 {
		t.Errorf("%d findings in a file with SQL, a handler func and ServeHTTP, want 3: %v", n, fileFindings("x.go", f))
	}
}
