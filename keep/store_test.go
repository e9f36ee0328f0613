//go:build linux && !vmguest

package keep_test

import (
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/liveupdate/luo/keep"
)

// TestRestartKeepsRegionsAndFiles: regions and a pipe kept next to them
// come back at the next start, once each, and the pipe still works.
func TestRestartKeepsRegionsAndFiles(t *testing.T) {
	m := newManager(t, 4)
	st := m.mustOpen(keep.Config{})
	if st.Mode() != keep.ModeFDStore {
		t.Errorf("mode %v, want fd-store", st.Mode())
	}
	_, b := region(t, st, "cache", 4096)
	copy(b, "kept")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	if err := st.Keep("pipe", pr, nil); err != nil {
		t.Fatal(err)
	}
	for restart := 1; restart <= 2; restart++ {
		st = m.mustOpen(keep.Config{})
		r, b := region(t, st, "cache", 4096)
		if r.Origin != keep.FDStore || string(b[:4]) != "kept" {
			t.Errorf("restart %d: region origin %v, contents %q", restart, r.Origin, b[:4])
		}
		p := st.File("pipe")
		if p == nil {
			t.Fatalf("restart %d: the pipe is not back; kept files %v", restart, st.Files())
		}
		if _, err := pw.Write([]byte{byte(restart)}); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 1)
		if _, err := p.Read(got); err != nil || got[0] != byte(restart) {
			t.Errorf("restart %d: read %v, %v from the restored pipe", restart, got, err)
		}
		// Keeping it again (the usual code path of a service) changes nothing.
		if err := st.Keep("pipe", p, nil); err != nil {
			t.Fatal(err)
		}
		if got, want := sorted(m.names()), []string{"cache", keep.IndexName, "pipe"}; !slices.Equal(got, want) {
			t.Errorf("restart %d: store %v, want %v", restart, got, want)
		}
	}
	if len(m.dropped) > 0 {
		t.Errorf("the manager dropped %v", m.dropped)
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

// TestStoreFull: keep refuses what the manager would drop, at Region, Keep
// and Open, with ErrStoreFull, and the manager drops nothing.
func TestStoreFull(t *testing.T) {
	m := newManager(t, 3)
	st := m.mustOpen(keep.Config{})
	region(t, st, "a", 4096)
	region(t, st, "b", 4096)
	if _, err := st.Region("c", 4096); !errors.Is(err, keep.ErrStoreFull) {
		t.Errorf("third region: %v, want ErrStoreFull", err)
	} else {
		t.Log(err)
	}
	pr, pw, _ := os.Pipe()
	defer pw.Close()
	if err := st.Keep("pipe", pr, nil); !errors.Is(err, keep.ErrStoreFull) {
		t.Errorf("Keep into a full store: %v, want ErrStoreFull", err)
	}
	pr.Close()
	if st.StoreUsed() != 3 || st.StoreMax() != 3 {
		t.Errorf("store used %d of %d, want 3 of 3", st.StoreUsed(), st.StoreMax())
	}
	// The limit was lowered (daemon-reload): Open says so before it
	// stores anything.
	if _, err := m.open(keep.Config{StoreMax: 2}); !errors.Is(err, keep.ErrStoreFull) {
		t.Errorf("Open with 3 entries and StoreMax=2: %v, want ErrStoreFull", err)
	}
	if len(m.dropped) > 0 {
		t.Errorf("the manager dropped %v", m.dropped)
	}
	if got := sorted(m.names()); !slices.Equal(got, []string{"a", "b", keep.IndexName}) {
		t.Errorf("store %v", got)
	}
}

// TestLostIndex: when keep.index is gone from the store (dropped by a full
// store, or an older keep), a region asked for by name and size is adopted
// with its contents, not created a second time.
func TestLostIndex(t *testing.T) {
	m := newManager(t, 4)
	st := m.mustOpen(keep.Config{})
	_, b := region(t, st, "cache", 8192)
	copy(b, "survives")
	m.apply([]byte("FDSTOREREMOVE=1\nFDNAME="+keep.IndexName), nil)

	st = m.mustOpen(keep.Config{})
	if _, err := st.Region("cache", 4096); !errors.Is(err, keep.ErrSizeChanged) {
		t.Errorf("another size: %v, want ErrSizeChanged", err)
	}
	r, b := region(t, st, "cache", 8192)
	if r.Origin != keep.FDStore || string(b[:8]) != "survives" {
		t.Errorf("adopted region: origin %v, contents %q", r.Origin, b[:8])
	}
	if got := sorted(m.names()); !slices.Equal(got, []string{"cache", keep.IndexName}) {
		t.Errorf("store %v, want the region once and a new index", got)
	}
	st = m.mustOpen(keep.Config{})
	if r, _ := region(t, st, "cache", 8192); r.Origin != keep.FDStore {
		t.Errorf("after adoption the index knows the region: origin %v", r.Origin)
	}
}

// TestForget removes one kept file, closes it, and leaves the rest.
func TestForget(t *testing.T) {
	m := newManager(t, 8)
	st := m.mustOpen(keep.Config{})
	region(t, st, "r", 4096)
	for _, name := range []string{"x", "y"} {
		f, err := os.CreateTemp(t.TempDir(), name)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Keep(name, f, nil); err != nil {
			t.Fatal(err)
		}
	}
	x := st.File("x")
	if err := st.Forget("x"); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("the forgotten file is still open: %v", err)
	}
	if err := st.Forget("x"); !errors.Is(err, keep.ErrNotFound) {
		t.Errorf("second Forget: %v, want ErrNotFound", err)
	}
	if err := st.Forget("r"); !errors.Is(err, keep.ErrNotFound) {
		t.Errorf("Forget of a region: %v, want ErrNotFound (regions go with Remove)", err)
	}
	if got := sorted(m.names()); !slices.Equal(got, []string{keep.IndexName, "r", "y"}) {
		t.Errorf("store %v", got)
	}
	if got := m.mustOpen(keep.Config{}).Files(); !slices.Equal(got, []string{"y"}) {
		t.Errorf("next start: kept files %v, want [y]", got)
	}
}

// TestNames: what cannot be a region or a kept file.
func TestNames(t *testing.T) {
	m := newManager(t, 8)
	st := m.mustOpen(keep.Config{Session: "state"})
	for _, bad := range []string{"", "a:b", "bad\x01", keep.IndexName, "state"} {
		if _, err := st.Region(bad, 10); !errors.Is(err, keep.ErrBadName) {
			t.Errorf("Region(%q): %v, want ErrBadName", bad, err)
		}
		if err := st.Keep(bad, os.Stdin, nil); !errors.Is(err, keep.ErrBadName) {
			t.Errorf("Keep(%q): %v, want ErrBadName", bad, err)
		}
	}
	region(t, st, "r", 4096)
	if err := st.Keep("r", os.Stdin, nil); !errors.Is(err, keep.ErrBadName) {
		t.Errorf("Keep under a region's name: %v, want ErrBadName", err)
	}
	if _, err := st.Region("z", 0); !errors.Is(err, keep.ErrBadName) {
		t.Errorf("zero size: %v", err)
	}
	// Session mode without LUO (no /dev/liveupdate here, or no right to
	// it): the fd store carries the regions.
	if st.Mode() != keep.ModeFDStore && st.Mode() != keep.ModeOwnSession {
		t.Errorf("mode %v", st.Mode())
	}
}
