package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's layout table names every package of the tree.
func TestReadmeLayoutMatchesTree(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); path != "../.." && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
			return filepath.SkipDir
		}
		files, _ := filepath.Glob(filepath.Join(path, "*.go"))
		for _, f := range files {
			if !strings.HasSuffix(f, "_test.go") {
				pkg := filepath.ToSlash(strings.TrimPrefix(path, "../../"))
				if !strings.Contains(string(readme), "| `"+pkg+"` |") {
					t.Errorf("package %s is not in the README's layout table", pkg)
				}
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// No source file outgrows a reading: past 600 lines, split it by what its
// parts do.
func TestNoLongFiles(t *testing.T) {
	eachSource(t, func(path, _ string, b []byte) {
		if n := strings.Count(string(b), "\n"); n > 600 {
			t.Errorf("%s has %d lines", path, n)
		}
	})
}

// eachSource calls fn with every non-test Go file of the tree, its package
// path and its text.
func eachSource(t *testing.T, fn func(path, pkg string, b []byte)) {
	t.Helper()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "../.." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fn(path, filepath.ToSlash(strings.TrimPrefix(filepath.Dir(path), "../../")), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The layers: the domain speaks no HTTP (net/http only where it is an HTTP
// client), and no package of handlers imports another's.
func TestLayering(t *testing.T) {
	const mod = "github.com/redoubt-systems/redoubt/"
	handlers := map[string]bool{"clientapi": true, "adminapi": true, "mediaapi": true, "syncapi": true, "e2ekeys": true,
		"directory": true, "pushapi": true}
	domain := []string{"rooms", "auth", "push", "streams", "storage", "delayed", "retention", "threads", "devicelists",
		"notifier", "media", "matrixerr", "caller", "filter", "backup", "objectstore", "export", "config"}
	httpClients := map[string]bool{"push": true} // delivers to push gateways
	imports := func(pkg string) map[string]bool {
		files, _ := filepath.Glob(filepath.Join("../..", pkg, "*.go"))
		out := map[string]bool{}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range parsed.Imports {
				out[strings.Trim(imp.Path.Value, `"`)] = true
			}
		}
		return out
	}
	for _, pkg := range domain {
		imps := imports(pkg)
		if imps[mod+"httpapi"] || (imps["net/http"] && !httpClients[pkg]) {
			t.Errorf("domain package %s speaks HTTP", pkg)
		}
		for h := range handlers {
			if imps[mod+h] {
				t.Errorf("domain package %s imports the handlers of %s", pkg, h)
			}
		}
	}
	for pkg := range handlers {
		for other := range handlers {
			if imports(pkg)[mod+other] {
				t.Errorf("%s's handlers import %s's", pkg, other)
			}
		}
	}
}

// Capabilities reach the database through a storage.View of their own
// interface, naming the queries they use; the whole *storage.DB is for the
// wiring, the event path (rooms) and the tools that copy the whole file.
func TestNarrowStorage(t *testing.T) {
	whole := map[string]bool{"storage": true, "server": true, "rooms": true, "backup": true, "export": true,
		"cmd/redoubt": true, "cmd/redoubt-bench": true, "internal/testserver": true}
	eachSource(t, func(path, pkg string, b []byte) {
		if !whole[pkg] && strings.Contains(string(b), "*storage.DB") {
			t.Errorf("%s takes the whole *storage.DB: declare the queries it uses (storage.View)", path)
		}
	})
}
