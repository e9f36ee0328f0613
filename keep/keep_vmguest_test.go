//go:build linux && vmguest

package keep_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
	"github.com/liveupdate/luo/keep"
)

func TestMain(m *testing.M) { vmtest.GuestMain(m) }

// sessionName is the kernel name of the session the manager hands out,
// as luod does for LUOSession=state.
const sessionName = "keeptest/state"

var regionNames = []string{"a", "b", "c"}

// handOut creates a session as a manager does for LUOSession=state and
// puts it in the store.
func handOut(t *testing.T, m *manager) {
	t.Helper()
	dev, err := luo.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	s, err := dev.CreateSession(sessionName)
	if err != nil {
		t.Fatal(err)
	}
	m.add("state", s.File())
	s.Close()
}

// checkRegions opens every region and checks its contents (its name and
// the generation written by the previous instance), then writes the next.
func checkRegions(t *testing.T, st *keep.Store, origin keep.Origin, gen int) {
	t.Helper()
	for _, name := range regionNames {
		r, b := region(t, st, name, 1<<20)
		want := ""
		if gen > 0 {
			want = fmt.Sprintf("%s/%d", name, gen)
		}
		if got := string(b[:len(want)]); r.Origin != origin || got != want {
			t.Errorf("region %s: origin %v, contents %q; want %v, %q", name, r.Origin, got, origin, want)
		}
		copy(b, fmt.Sprintf("%s/%d", name, gen+1))
	}
}

// storeOf checks what the manager's store holds: the regions, the index
// and sessions, nothing dropped.
func storeOf(t *testing.T, m *manager, sessions int) {
	t.Helper()
	want := append(slices.Clone(regionNames), keep.IndexName)
	for range sessions {
		want = append(want, "state")
	}
	slices.Sort(want)
	got := m.names()
	slices.Sort(got)
	if !slices.Equal(got, want) || len(m.dropped) > 0 {
		t.Errorf("store %v (dropped %v), want %v", got, m.dropped, want)
	}
}

// TestSessionRecovery: stage 1, the index lost from the store while the
// handed-out session holds it at token 0 (an earlier instance filled it):
// the next start recovers (adopts the regions, drops the session), and the
// start after gets a fresh session. Stage 2, after the kexec, with the
// store sized as keep's docs say (regions, index, session): the first
// start restores from the incoming session and a restart works, with
// nothing dropped.
func TestSessionRecovery(t *testing.T) {
	m := newManager(t, len(regionNames)+2)
	cfg := keep.Config{Session: "state"}
	switch vm.Stage() {
	case 1:
		handOut(t, m)
		st := m.mustOpen(cfg)
		if st.Mode() != keep.ModeSession || st.SessionName() != sessionName {
			t.Fatalf("mode %v session %q", st.Mode(), st.SessionName())
		}
		checkRegions(t, st, keep.Fresh, 0)
		storeOf(t, m, 1)

		m.apply([]byte("FDSTOREREMOVE=1\nFDNAME="+keep.IndexName), nil)
		st, err := m.open(cfg)
		if err != nil {
			t.Fatalf("Open with the index lost and token 0 taken: %v", err)
		}
		if st.Mode() != keep.ModeFDStore {
			t.Errorf("after the lost index: mode %v, want fd-store", st.Mode())
		}
		checkRegions(t, st, keep.FDStore, 1)
		storeOf(t, m, 0)

		handOut(t, m) // the manager's next start, with no session stored
		st = m.mustOpen(cfg)
		if st.Mode() != keep.ModeSession {
			t.Errorf("with a fresh session: mode %v", st.Mode())
		}
		checkRegions(t, st, keep.FDStore, 2)
		storeOf(t, m, 1)
		m.exit()
		m.drain()
		vm.Hold(m.take("state")[0])
	case 2:
		dev, err := luo.Open()
		if err != nil {
			t.Fatal(err)
		}
		in, err := dev.RetrieveSession(sessionName)
		if err != nil {
			t.Fatal(err)
		}
		m.add("state", in.File())
		in.Close()
		dev.Close()
		handOut(t, m) // the outgoing one next to it, as luod does
		st := m.mustOpen(cfg)
		if st.Mode() != keep.ModeSession || st.LiveUpdates() != 1 {
			t.Errorf("after the kexec: mode %v, live updates %d", st.Mode(), st.LiveUpdates())
		}
		checkRegions(t, st, keep.LUO, 3)
		storeOf(t, m, 1)
		for gen := 4; gen <= 5; gen++ {
			st = m.mustOpen(cfg)
			if st.Mode() != keep.ModeSession {
				t.Errorf("restart: mode %v", st.Mode())
			}
			checkRegions(t, st, keep.FDStore, gen)
			storeOf(t, m, 1)
		}
	default:
		t.Fatalf("stage %d", vm.Stage())
	}
}
