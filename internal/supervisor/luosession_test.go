//go:build linux

package supervisor

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/unit"
	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/internal/update/updatetest"
	"github.com/liveupdate/luo/memfd"
)

// tightUnit is the example counter in session mode with the store sized
// as keep's docs say: one region, keep.index and the LUOSession= session.
const tightUnit = "[Service]\nType=notify\nExecStart=/bin/true\nFileDescriptorStoreMax=3\n" +
	"FileDescriptorStorePreserve=yes\nLUOSession=state\n"

// sessionManager is a Manager with the unit tight.service, talking to the
// fake kernel k.
func sessionManager(t *testing.T, k *updatetest.Kernel) (*Manager, *Unit, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	p, err := fdstore.NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	m := &Manager{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		units: map[string]*Unit{}, bySID: map[int]*Unit{}, exited: map[int]exitedMain{},
		events: make(chan event, 1<<10), poller: p, kernel: k}
	d, err := unit.Parse("tight.service", strings.NewReader(tightUnit))
	if err != nil {
		t.Fatal(err)
	}
	u := newUnit(m, "tight.service")
	u.setDef(d)
	m.units[u.name] = u
	t.Cleanup(func() { u.flushStore("test") })
	return m, u, &buf
}

// storeRegions stores what keep stores in session mode: the region and
// its index, one datagram each.
func storeRegions(t *testing.T, m *Manager, u *Unit) {
	t.Helper()
	for _, name := range []string{"counter", "keep.index"} {
		f, err := memfd.New(name, 4096)
		if err != nil {
			t.Fatal(err)
		}
		m.storeFiles(u, name, []*os.File{f}, false, fdstore.OriginNotify)
	}
}

// TestLUOSessionTakesOneSlot: a LUOSession= name takes one slot of
// FileDescriptorStoreMax=, however many sessions luod holds under it. After
// a live update luod holds the incoming session next to the outgoing one
// it hands out; keep's regions and index must still fit the store its docs
// size (luod used to close keep.index, and the service crash-looped at its
// next start).
func TestLUOSessionTakesOneSlot(t *testing.T) {
	k := updatetest.New()
	m, u, log := sessionManager(t, k)

	// Cold boot: luod hands out the session, keep stores its two files.
	m.handOutLUOSessions(u)
	storeRegions(t, m, u)
	if u.refused != 0 || u.store.Len() != 3 || u.store.Used() != 3 {
		t.Fatalf("cold boot: %d entries in %d slots, %d refused (%+v)\n%s", u.store.Len(), u.store.Used(), u.refused, u.lastRefused, log)
	}
	// What the kexec carries: the session luod handed out, marked, also
	// through a re-exec.
	snap := u.snapshot(false)
	if e := snap.Entries[0]; e.Name != "state" || !e.LUOSession || e.Origin != fdstore.OriginHandedOut {
		t.Fatalf("snapshot of the handed-out session: %+v", e)
	}

	// Next kernel: luod restores the incoming session, hands out a fresh
	// outgoing one next to it, and keep stores its files again.
	next := updatetest.New()
	kname := update.LUOSessionName("tight.service", "state")
	if err := next.Incoming(kname, nil); err != nil {
		t.Fatal(err)
	}
	dev, err := next.Open()
	if err != nil {
		t.Fatal(err)
	}
	is, err := dev.RetrieveSession(kname)
	dev.Close()
	if err != nil {
		t.Fatal(err)
	}
	in := is.File()
	m2, u2, log2 := sessionManager(t, next)
	mu := update.Unit{Name: u2.name, Active: true, Entries: []update.Entry{
		{Name: "state", Origin: fdstore.OriginHandedOut, LUOSession: true, Fate: update.FateSession, File: in},
	}}
	m2.restoreUnit(mu, &update.Report{})
	m2.handOutLUOSessions(u2)
	storeRegions(t, m2, u2)
	if u2.refused != 0 || u2.store.Len() != 4 || u2.store.Used() != 3 {
		t.Fatalf("after the update: %d entries in %d slots, %d refused (%+v); want 4 in 3, none refused\n%s",
			u2.store.Len(), u2.store.Used(), u2.refused, u2.lastRefused, log2)
	}
	if info := u2.info(); info.FDStoreCount != 3 || info.FDStoreMax != 3 || info.FDStoreRefused != 0 {
		t.Errorf("status: %d/%d, %d refused", info.FDStoreCount, info.FDStoreMax, info.FDStoreRefused)
	}

	// One more fd does not fit, and status says so.
	f, err := memfd.New("more", 0)
	if err != nil {
		t.Fatal(err)
	}
	m2.storeFiles(u2, "more", []*os.File{f}, false, fdstore.OriginNotify)
	info := u2.info()
	if r := info.FDStoreLastRefused; info.FDStoreRefused != 1 || r == nil || r.FDName != "more" || r.Reason != "full (FileDescriptorStoreMax=3)" {
		t.Errorf("refused %d, last %+v; want 1, more: full (FileDescriptorStoreMax=3)", info.FDStoreRefused, r)
	}

	// A reload lowering the limit drops the newest fd, never a session in
	// its slot, and counts it.
	d, err := unit.Parse("tight.service", strings.NewReader(strings.Replace(tightUnit, "Max=3", "Max=2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	u2.setDef(d)
	var names []string
	for _, e := range u2.store.Entries() {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, ","); got != "state,state,counter" || u2.refused != 2 || u2.lastRefused.fdname != "keep.index" {
		t.Errorf("after lowering the limit to 2: %s, %d refused (%+v); want state,state,counter, 2", got, u2.refused, u2.lastRefused)
	}
}

// storesNow are a Manager's stores for update.MakePlan in a test where no
// loop runs.
type storesNow struct{ m *Manager }

func (s storesNow) Locked(fn func([]update.Unit)) { fn(s.m.snapshot(true)) }

func (s storesNow) HostQuota() update.Quota { return s.m.cfg.LiveUpdate.PreserveMax }

// TestFDStoreDumpSaysWhatThePlanSays: luoctl fdstore and update plan give
// every entry the same fate for the same reason: both ask the kernel. A
// memfd the kernel would refuse (here: already preserved in another
// session) is not "preserved in luod's LUO session" in one view and lost
// in the other.
func TestFDStoreDumpSaysWhatThePlanSays(t *testing.T) {
	k := updatetest.New()
	m, u, _ := sessionManager(t, k)
	storeRegions(t, m, u)
	dev, err := k.Open()
	if err != nil {
		t.Fatal(err)
	}
	other, err := dev.CreateSession("other")
	dev.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.PreserveFD(u.store.Entries()[0].File, 1); err != nil {
		t.Fatal(err)
	}
	plan := update.MakePlan(k, storesNow{m}, update.Kexec, kexec.Image{}, false)
	dump := m.fdStoreDump(u)
	var pe []update.Entry
	for _, pu := range plan.Units {
		if pu.Name == u.name {
			pe = pu.Entries
		}
	}
	if len(pe) != 2 || len(dump.Entries) != 2 {
		t.Fatalf("plan %+v, dump %+v", pe, dump.Entries)
	}
	for i, de := range dump.Entries {
		survives := map[bool]string{true: "yes", false: "no"}[pe[i].Fate.Carried()]
		if de.Why != pe[i].Reason || de.Survives != survives {
			t.Errorf("%s: fdstore says %s (%s), the plan %s (%s)", de.Name, de.Survives, de.Why, pe[i].Fate, pe[i].Reason)
		}
	}
	if pe[0].Fate != update.FateLost || !strings.Contains(pe[0].Reason, "refused") {
		t.Errorf("the memfd in another session: %s (%s), want lost, refused", pe[0].Fate, pe[0].Reason)
	}
}
