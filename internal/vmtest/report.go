package vmtest

import (
	"fmt"
	"slices"
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

// verdict folds the outcomes of all stages of n into the outcome of its host
// subtest, and says why when it is not a pass:
//
//   - a failure (or an unfinished run) in any stage fails it;
//   - a skip in every stage skips it, but with ci ($CI set) fails it, unless
//     the test declared with [MaySkip] why it may skip: then it is a skip
//     that gives the reason;
//   - anything else passes.
//
// describe names a stage, e.g. "stage 2/3 (7.3.4)".
func verdict(n *testNode, ci bool, describe func(stage int) string) (Status, string) {
	var failed, reasons []string
	skipped := true
	for _, r := range n.runs {
		switch r.Status {
		case Fail, Unfinished:
			failed = append(failed, describe(r.Stage))
		case Skip:
		default:
			skipped = false
		}
		if r.MaySkip != "" && !slices.Contains(reasons, r.MaySkip) {
			reasons = append(reasons, r.MaySkip)
		}
	}
	switch {
	case len(failed) > 0:
		return Fail, "failed in the guest in " + strings.Join(failed, ", ")
	case !skipped:
		return Pass, ""
	case len(reasons) > 0:
		return Skip, "skipped in the guest in every stage, as declared: " + strings.Join(reasons, "; ")
	case ci:
		return Fail, "skipped in the guest in every stage, and $CI is set: fix the test, " +
			"or declare why it may skip with vmtest.MaySkip(t, reason)"
	default:
		return Skip, "skipped in the guest in every stage (with $CI set, that fails unless the test calls vmtest.MaySkip)"
	}
}

// A reporter reproduces guest tests as host subtests.
type reporter struct {
	// ci is set when $CI is: a test skipped in every stage fails unless it
	// declared why it may skip.
	ci bool
	// describe names a stage in the log, e.g. "stage 2/3 (7.3.4)".
	describe func(stage int) string
}

// report runs a subtest of t for each of roots, with their subtests.
func (rp reporter) report(t *testing.T, roots []*testNode) {
	for _, n := range roots {
		t.Run(n.short, func(t *testing.T) { rp.reportNode(t, n) })
	}
}

func (rp reporter) reportNode(t *testing.T, n *testNode) {
	for _, r := range n.runs {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %s (%.2fs)", rp.describe(r.Stage), r.Status, r.Elapsed.Seconds())
		for _, line := range r.Output {
			b.WriteString("\n    ")
			b.WriteString(line)
		}
		b.WriteString("\n")
		t.Output().Write([]byte(b.String()))
	}
	rp.report(t, n.children)
	switch status, why := verdict(n, rp.ci, rp.describe); status {
	case Fail:
		t.Error(why)
	case Skip:
		t.Skip(why)
	}
}
