package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path"
	"sort"
	"strings"
	"testing"
	"time"
)

const module = "github.com/agentgate/agentgate"

// allowedImports is the dependency star of DESIGN.md, as the internal packages each top-level
// package may import ("" is package main). A package below a top-level one (server/x) follows
// its top-level's rule; a test-helper package (its name ends in "test": db/dbtest,
// stream/streamtest, agent/llmtest, …) may import only its parent.
var allowedImports = map[string][]string{
	"":       {"server", "db"},
	"server": {"agent", "tools", "stream", "db", "web"},
	"agent":  {"stream"},
	"tools":  {},
	"db":     {},
	"stream": {},
	"web":    {},
}

// goPackage is what go list tells about one package.
type goPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// rel returns the module-relative path of an internal import path, and false for others.
func rel(importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	if r, ok := strings.CutPrefix(importPath, module+"/"); ok {
		return r, true
	}
	return "", false
}

func top(r string) string {
	first, _, _ := strings.Cut(r, "/")
	return first
}

func isHelper(r string) bool { return r != "" && strings.HasSuffix(path.Base(r), "test") }

// allowedEdge reports whether package from may import package to (both module-relative).
func allowedEdge(from, to string, test bool) bool {
	if from == to {
		return true // an external test package importing the one it tests
	}
	if to == "server" || strings.HasPrefix(to, "server/") {
		// Nothing imports server except main (and server's own sub-packages' tests, none yet).
		return from == "" || top(from) == "server"
	}
	if top(from) == "bench" {
		// Benchmark programs stand outside the product: they may use any package but
		// the server (they run the gateway as a separate process), test helpers included.
		return true
	}
	if isHelper(from) {
		return to == path.Dir(from)
	}
	if isHelper(to) {
		if !test {
			return false // test helpers are for tests, never for production code
		}
		// Tests may use the helper of any package they may import, and their own.
		parent := path.Dir(to)
		return parent == from || allowedEdge(from, parent, false)
	}
	if top(from) == top(to) && from != "" {
		return true // within one package tree (server/x → server)
	}
	rule, known := allowedImports[top(from)]
	if !known {
		return false
	}
	for _, a := range rule {
		if top(to) == a {
			return true
		}
	}
	return false
}

// TestDependencyDirection fails on any import edge (production or test) that breaks the
// dependency star of DESIGN.md.
func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list packages: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	seen := map[string]bool{}
	var bad []string
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		seen[from] = true
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				to, ok := rel(imp)
				if !ok {
					continue
				}
				if !allowedEdge(from, to, test) {
					kind := "imports"
					if test {
						kind = "test imports"
					}
					bad = append(bad, "/"+from+" "+kind+" /"+to)
				}
			}
		}
		check(p.Imports, false)
		check(p.TestImports, true)
		check(p.XTestImports, true)
	}
	// The listing must have seen the star, or this test checks nothing.
	for _, must := range []string{"", "server", "agent", "tools", "db", "stream", "web"} {
		if !seen[must] {
			t.Errorf("go list did not report package /%s", must)
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("forbidden dependency: %s (see DESIGN.md, dependency direction)", b)
	}
}

// TestAllowedEdge pins the rule table itself, so a change to it is deliberate.
func TestAllowedEdge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		from, to string
		test     bool
		want     bool
	}{
		{"", "server", false, true},
		{"", "db", false, true},
		{"server", "agent", false, true},
		{"server", "tools", false, true},
		{"server", "web", false, true},
		{"server", "db/dbtest", true, true},
		{"server", "agent/llmtest", true, true},
		{"server", "db/dbtest", false, false},
		{"agent", "stream", false, true},
		{"agent", "tools", false, false},
		{"agent", "db", false, false},
		{"agent", "server", false, false},
		{"agent", "agent/llmtest", true, true},
		{"agent", "db/dbtest", true, false},
		{"tools", "stream", false, false},
		{"tools", "agent", false, false},
		{"db", "stream", false, false},
		{"db", "db/dbtest", true, true},
		{"stream", "agent", false, false},
		{"stream", "stream/streamtest", true, true},
		{"web", "server", false, false},
		{"db/dbtest", "db", false, true},
		{"db/dbtest", "stream", false, false},
		{"stream/streamtest", "stream", false, true},
		{"stream/streamtest", "db", false, false},
		{"agent/llmtest", "agent", false, true},
		{"agent/llmtest", "server", false, false},
		{"tools", "server", true, false},
		{"db", "server", true, false},
		{"bench", "server", false, false},
		{"newpkg", "db", false, false},
	} {
		if got := allowedEdge(tc.from, tc.to, tc.test); got != tc.want {
			t.Errorf("allowedEdge(/%s → /%s, test=%v) = %v, want %v", tc.from, tc.to, tc.test, got, tc.want)
		}
	}
}
