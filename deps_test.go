package luo_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

// listedPackage is the part of one `go list -json` record that the tests of
// this file read.
type listedPackage struct {
	ImportPath string
	Name       string
	Dir        string
	Module     *struct{ Path string }
	// DepOnly is true for the packages listed only because a package that
	// ./... matched depends on them.
	DepOnly bool
	// Imports are the packages the non-test files import; Deps is every
	// package they link, directly or not.
	Imports, Deps []string

	GoFiles, CgoFiles, IgnoredGoFiles, TestGoFiles, XTestGoFiles []string
}

// modGraph is the import graph of the module for the host's GOOS and
// GOARCH and the default build tags, without the tests' own imports: what
// ships.
type modGraph struct {
	module string                    // the module path
	all    map[string]*listedPackage // by import path: ours and every dependency
	pkgs   []*listedPackage          // the module's packages, by import path
}

// listModule runs `go list -deps` once for every test of the package.
var listModule = sync.OnceValues(func() (*modGraph, error) {
	cmd := exec.Command("go", "list", "-deps",
		"-json=ImportPath,Name,Dir,Module,DepOnly,Imports,Deps,GoFiles,CgoFiles,IgnoredGoFiles,TestGoFiles,XTestGoFiles",
		"./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w\n%s", err, stderr.Bytes())
	}
	g := &modGraph{all: map[string]*listedPackage{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(listedPackage)
		err := dec.Decode(p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decode the output of go list: %w", err)
		}
		g.all[p.ImportPath] = p
		if !p.DepOnly && p.Module != nil {
			g.module = p.Module.Path
		}
	}
	if g.module == "" {
		return nil, errors.New("go list matched no package of a module with ./...")
	}
	for _, p := range g.all {
		if p.Module != nil && p.Module.Path == g.module {
			g.pkgs = append(g.pkgs, p)
		}
	}
	slices.SortFunc(g.pkgs, func(a, b *listedPackage) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	return g, nil
})

// moduleGraph returns the module's import graph, or skips the test when
// there is no go command (a test binary run in a VM).
func moduleGraph(t *testing.T) *modGraph {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("needs the go command: %v", err)
	}
	g, err := listModule()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// ours reports whether path is a package of the module.
func (g *modGraph) ours(path string) bool {
	return path == g.module || strings.HasPrefix(path, g.module+"/")
}

// elems returns the elements of the path of one of our packages below the
// module path: none for the root package.
func (g *modGraph) elems(path string) []string {
	if path == g.module {
		return nil
	}
	return strings.Split(strings.TrimPrefix(path, g.module+"/"), "/")
}

// internal reports whether path is one of our packages under internal/.
func (g *modGraph) internal(path string) bool {
	return g.ours(path) && slices.Contains(g.elems(path), "internal")
}

// testHelper reports whether path is one of our packages that exists for
// tests: one whose path has an element ending in "test" (internal/vmtest and
// the packages under it, internal/luodtest, internal/control/controltest,
// internal/sdnotifytest, ...).
func (g *modGraph) testHelper(path string) bool {
	return g.ours(path) && slices.ContainsFunc(g.elems(path), func(e string) bool { return strings.HasSuffix(e, "test") })
}

// short names a package in messages: ours relative to the module ("luo" for
// the root package), others by their import path.
func (g *modGraph) short(path string) string {
	if !g.ours(path) {
		return path
	}
	if path == g.module {
		return "luo"
	}
	return strings.TrimPrefix(path, g.module+"/")
}

// importChain returns a shortest chain of imports from the package from to
// the package to, both included, or nil when from does not depend on to.
func (g *modGraph) importChain(from, to string) []string {
	prev := map[string]string{from: ""}
	for queue := []string{from}; len(queue) > 0; queue = queue[1:] {
		p := queue[0]
		if p == to {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		if pkg := g.all[p]; pkg != nil {
			for _, imp := range pkg.Imports {
				if _, seen := prev[imp]; !seen {
					prev[imp] = p
					queue = append(queue, imp)
				}
			}
		}
	}
	return nil
}

// A layerRule is one rule of the module's layering (see TestLayering): the
// packages it selects must not import, or with linked not link at all, the
// packages it forbids.
type layerRule struct {
	name string
	// applies selects the packages the rule is about.
	applies func(p *listedPackage) bool
	// forbidden reports whether those packages must not import path.
	forbidden func(path string) bool
	// linked makes the rule about every package linked (Deps), not only
	// the direct imports. Rules about direct imports suffice where every
	// package on the way is held to the same rule.
	linked bool
	// why is the rule, in the failure message.
	why string
}

// layerRules returns the layering rules for the module g.
func layerRules(g *modGraph) []layerRule {
	leaves := []string{g.module, g.module + "/memfd", g.module + "/sdnotify", g.module + "/activation"}
	kit := g.module + "/luotest"
	is := func(paths ...string) func(p *listedPackage) bool {
		return func(p *listedPackage) bool { return slices.Contains(paths, p.ImportPath) }
	}
	return []layerRule{
		{
			name:      "leaves",
			applies:   is(leaves...),
			forbidden: g.ours,
			why:       "the leaves (luo, memfd, sdnotify, activation) import no package of this module",
		},
		{
			name:      "keep",
			applies:   is(g.module + "/keep"),
			forbidden: func(path string) bool { return g.ours(path) && !slices.Contains(leaves, path) },
			why:       "keep imports only the leaves (luo, memfd, sdnotify, activation) of this module",
		},
		{
			name: "public",
			applies: func(p *listedPackage) bool {
				return !g.internal(p.ImportPath) && p.Name != "main" && p.ImportPath != kit
			},
			forbidden: g.internal,
			why:       "a public package imports nothing under internal/: its users could not build it",
		},
		{
			// The test kit is the public face of the VM harness, so
			// it imports internal/vm and internal/vmtest (which Go
			// allows a package of this module); in exchange, only
			// tests may import it.
			name:      "kit",
			applies:   func(p *listedPackage) bool { return p.ImportPath != kit },
			forbidden: func(path string) bool { return path == kit },
			linked:    true,
			why:       "only tests (_test.go files) import the test kit luotest",
		},
		{
			name: "binaries",
			applies: func(p *listedPackage) bool {
				e := g.elems(p.ImportPath)
				return p.Name == "main" && len(e) > 0 && (e[0] == "cmd" || e[0] == "examples")
			},
			forbidden: func(path string) bool {
				return path == "testing" || strings.HasPrefix(path, "testing/") || g.testHelper(path)
			},
			linked: true,
			why:    "a production binary (cmd/, examples/) links neither testing nor a test helper package (…test)",
		},
		{
			name:    "update",
			applies: is(g.module + "/internal/update"),
			forbidden: func(path string) bool {
				return path == g.module+"/internal/control" || path == g.module+"/internal/supervisor"
			},
			linked: true,
			why:    "internal/update depends on neither internal/control nor internal/supervisor: the supervisor converts to wire types at its edge",
		},
	}
}

// TestLayering holds the module to its layering, floor by floor:
//
//   - leaves: the root package luo, memfd, sdnotify and activation import no
//     package of this module;
//   - keep: keep imports only the leaves;
//   - public: no public package (neither under internal/ nor a main)
//     imports anything under internal/, but the test kit luotest;
//   - kit: no package links luotest (tests may import it);
//   - binaries: no production binary (a main under cmd/ or examples/) links
//     testing or a test helper of this module (internal/vmtest, any
//     ...test package and the packages under it);
//   - update: internal/update links neither internal/control nor
//     internal/supervisor.
//
// The graph comes from one `go list -deps` for the host's GOOS and the
// default build tags, and covers the non-test files only: tests may import
// fakes and harnesses. Each forbidden import is reported once per rule it
// breaks, naming the importing package and the import; for the rules about
// what a package links, with the chain of imports that brings it in.
func TestLayering(t *testing.T) {
	t.Parallel()
	g := moduleGraph(t)
	for _, r := range layerRules(g) {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			applied := false
			for _, p := range g.pkgs {
				if !r.applies(p) {
					continue
				}
				applied = true
				if !r.linked {
					for _, imp := range p.Imports {
						if r.forbidden(imp) {
							t.Errorf("%s imports %s: %s", g.short(p.ImportPath), g.short(imp), r.why)
						}
					}
					continue
				}
				for _, dep := range p.Deps {
					if !r.forbidden(dep) {
						continue
					}
					chain := g.importChain(p.ImportPath, dep)
					names := make([]string, len(chain))
					for i, c := range chain {
						names[i] = g.short(c)
					}
					switch len(chain) {
					case 2:
						t.Errorf("%s imports %s: %s", g.short(p.ImportPath), g.short(dep), r.why)
					case 0: // not found through Imports; go list still says it is linked
						t.Errorf("%s links %s: %s", g.short(p.ImportPath), g.short(dep), r.why)
					default:
						t.Errorf("%s links %s, which %s imports (%s): %s", g.short(p.ImportPath), g.short(dep),
							names[len(names)-2], strings.Join(names, " → "), r.why)
					}
				}
			}
			if !applied {
				t.Errorf("the rule applies to no package of %s: the layout changed, update the rule", g.module)
			}
		})
	}
}
