package luo_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPackageDocs checks that every package of the module has exactly one
// package doc comment, as tailscale's pkgdoc_test.go does. Every package
// counts: commands ("Command luod ..."), internal packages and the packages
// that exist for their tests. So does every file, whatever its build
// constraints: a doc comment in a _others.go file is a second one. A doc
// comment in a _test.go file is reported too, since go doc never shows it.
// A file of another package in the same directory (a //go:build ignore
// program) is skipped.
func TestPackageDocs(t *testing.T) {
	t.Parallel()
	g := moduleGraph(t)
	fset := token.NewFileSet()
	for _, p := range g.pkgs {
		var docs []string
		for _, name := range slices.Concat(p.GoFiles, p.CgoFiles, p.IgnoredGoFiles, p.TestGoFiles, p.XTestGoFiles) {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Error(err)
				continue
			}
			switch {
			case f.Doc == nil:
			case strings.HasSuffix(name, "_test.go"):
				t.Errorf("%s: %s has a package doc comment, which go doc never shows; move it to the package's doc.go", g.short(p.ImportPath), name)
			case f.Name.Name == p.Name:
				docs = append(docs, name)
			}
		}
		switch len(docs) {
		case 0:
			t.Errorf("%s has no package doc comment: write one, in doc.go or the main file", g.short(p.ImportPath))
		case 1:
		default:
			t.Errorf("%s has %d package doc comments, in %s: keep one", g.short(p.ImportPath), len(docs), strings.Join(docs, ", "))
		}
	}
}
