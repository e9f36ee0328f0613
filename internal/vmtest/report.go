package vmtest

import (
	"fmt"
	"strings"
	"testing"
)

// A testNode is one guest test across all stages, with its subtests.
type testNode struct {
	name     string // full name
	short    string // name relative to the parent
	runs     []*TestResult
	children []*testNode
}

// testTree groups the results of every stage by test name and nests subtests
// under their parents, in the order the tests first ran. A name's parent is
// the longest name seen before it that prefixes it followed by "/", so
// subtest names that contain "/" themselves nest correctly.
func testTree(tests []*TestResult) []*testNode {
	var roots []*testNode
	byName := map[string]*testNode{}
	for _, t := range tests {
		if n := byName[t.Name]; n != nil {
			n.runs = append(n.runs, t)
			continue
		}
		n := &testNode{name: t.Name, short: t.Name, runs: []*TestResult{t}}
		byName[t.Name] = n
		var parent *testNode
		for i := strings.LastIndex(t.Name, "/"); i > 0; i = strings.LastIndex(t.Name[:i], "/") {
			if parent = byName[t.Name[:i]]; parent != nil {
				n.short = t.Name[i+1:]
				break
			}
		}
		if parent != nil {
			parent.children = append(parent.children, n)
		} else {
			roots = append(roots, n)
		}
	}
	return roots
}

// status folds the outcomes of all stages: a failure (or an unfinished run)
// in any stage fails the test, a skip in every stage skips it, and anything
// else passes.
func (n *testNode) status() Status {
	skipped := true
	for _, r := range n.runs {
		switch r.Status {
		case Fail, Unfinished:
			return Fail
		case Skip:
		default:
			skipped = false
		}
	}
	if skipped {
		return Skip
	}
	return Pass
}

// report reproduces the guest tests as subtests of t. describe names a stage
// in the log, e.g. "stage 2/3 (7.3.4)".
func report(t *testing.T, roots []*testNode, describe func(stage int) string) {
	for _, n := range roots {
		t.Run(n.short, func(t *testing.T) { reportNode(t, n, describe) })
	}
}

func reportNode(t *testing.T, n *testNode, describe func(int) string) {
	var failed []string
	for _, r := range n.runs {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %s (%.2fs)", describe(r.Stage), r.Status, r.Elapsed.Seconds())
		for _, line := range r.Output {
			b.WriteString("\n    ")
			b.WriteString(line)
		}
		b.WriteString("\n")
		t.Output().Write([]byte(b.String()))
		if r.Status == Fail || r.Status == Unfinished {
			failed = append(failed, describe(r.Stage))
		}
	}
	report(t, n.children, describe)
	switch n.status() {
	case Fail:
		if len(failed) > 0 {
			t.Errorf("failed in the guest in %s", strings.Join(failed, ", "))
		} else {
			t.Fail() // only a subtest failed
		}
	case Skip:
		t.Skip("skipped in the guest in every stage")
	}
}
