package vmtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/vm"
)

// maySkipMarker follows "vmtest: stage N/M " in the line MaySkip prints.
const maySkipMarker = "may skip "

// MaySkip declares that the guest test t may skip in every stage, and why:
// a test that only makes sense on a kernel the run does not boot, say. On
// the host with $CI set, a guest test or subtest skipped in every stage
// fails its host subtest unless it called MaySkip, in at least one stage;
// the host's skip message then gives reason. A declaration covers t only,
// not its subtests. MaySkip prints a marker line ("vmtest: stage N/M may
// skip NAME: REASON") on the results channel and does nothing else: t still
// has to skip. An empty reason fails t.
func MaySkip(t testing.TB, reason string) {
	t.Helper()
	reason = strings.Join(strings.Fields(reason), " ")
	if reason == "" {
		t.Fatal("vmtest.MaySkip: the reason is empty")
	}
	fmt.Printf("vmtest: stage %d/%d %s%s: %s\n", vm.Stage(), vm.Stages(), maySkipMarker, t.Name(), reason)
}
