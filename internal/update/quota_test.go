package update

import (
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/unit"
)

func sized(name string, n int64) Entry {
	return with(memEntry, func(e *Entry) { e.Name, e.Size = name, n })
}

// TestDecideQuotas has one case per rule of the limits on preserved memory
// (Decide's rules 9 and 10): which units lose their memfds, and why.
func TestDecideQuotas(t *testing.T) {
	busy := &syscallError{errno: 16} // EBUSY
	for _, tc := range []struct {
		name  string
		host  Quota
		units []Unit
		lost  map[string]string // unit -> part of the reason; others keep every memfd
	}{
		{"no limits", Quota{}, []Unit{
			{Name: "a.service", Entries: []Entry{sized("s", 1<<30)}},
		}, nil},
		{"9 under its limit", Quota{}, []Unit{
			{Name: "a.service", PreserveMax: QuotaOf(8192), Entries: []Entry{sized("s", 4096), sized("t", 4096)}},
		}, nil},
		{"9 over its limit loses every memfd", Quota{}, []Unit{
			{Name: "a.service", PreserveMax: QuotaOf(8191), Entries: []Entry{sized("s", 4096), sized("t", 4096)}},
			{Name: "b.service", Entries: []Entry{sized("s", 1<<20)}},
		}, map[string]string{"a.service": "over its [X-LUO] PreserveMaxBytes=8191"}},
		{"9 limit 0", Quota{}, []Unit{
			{Name: "a.service", PreserveMax: QuotaOf(0), Entries: []Entry{sized("s", 1)}},
		}, map[string]string{"a.service": "PreserveMaxBytes=0"}},
		{"9 a memfd in the unit's own session does not count", Quota{}, []Unit{
			{Name: "a.service", PreserveMax: QuotaOf(4096), Entries: []Entry{outgoing, with(sized("big", 1<<20), func(e *Entry) { e.Trial = busy }), sized("s", 4096)}},
		}, nil},
		{"10 under the host's limit", QuotaOf(3 << 20), []Unit{
			{Name: "a.service", Entries: []Entry{sized("s", 1<<20)}},
			{Name: "b.service", Entries: []Entry{sized("s", 2<<20)}},
		}, nil},
		{"10 over the host's limit: the largest loses", QuotaOf(3<<20 - 1), []Unit{
			{Name: "a.service", Entries: []Entry{sized("s", 1<<20)}},
			{Name: "b.service", Entries: []Entry{sized("s", 2<<20)}},
			{Name: "c.service", Entries: []Entry{sized("s", 1<<20)}},
		}, map[string]string{"b.service": "--preserve-max-bytes=3145727"}},
		{"10 a unit over its own limit does not count against the host's", QuotaOf(2 << 20), []Unit{
			{Name: "a.service", PreserveMax: QuotaOf(1), Entries: []Entry{sized("s", 4<<20)}},
			{Name: "b.service", Entries: []Entry{sized("s", 2<<20)}},
		}, map[string]string{"a.service": "PreserveMaxBytes=1"}},
		{"10 ties go by name", QuotaOf(1 << 20), []Unit{
			{Name: "b.service", Entries: []Entry{sized("s", 1<<20)}},
			{Name: "a.service", Entries: []Entry{sized("s", 1<<20)}},
		}, map[string]string{"b.service": "do not fit"}},
		{"10 host limit 0 loses all", QuotaOf(0), []Unit{
			{Name: "a.service", Entries: []Entry{sized("s", 1)}},
			{Name: "b.service", Entries: []Entry{sized("s", 2)}},
		}, map[string]string{"a.service": "--preserve-max-bytes=0", "b.service": "--preserve-max-bytes=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.units {
				tc.units[i].Preserve = unit.PreserveYes
			}
			units := Decide(Snapshot{Kind: Kexec, Units: tc.units, HostQuota: tc.host})
			for _, u := range units {
				for _, e := range u.Entries {
					if e.Type != "memfd" || e.Trial != nil {
						continue
					}
					want, lose := tc.lost[u.Name]
					switch {
					case lose && (e.Fate != FateLost || !strings.Contains(e.Reason, want)):
						t.Errorf("%s %q: %s (%s), want lost (~%q)", u.Name, e.Name, e.Fate, e.Reason, want)
					case !lose && e.Fate != FatePreserve:
						t.Errorf("%s %q: %s (%s), want preserve", u.Name, e.Name, e.Fate, e.Reason)
					}
				}
			}
			// A soft update or re-exec inherits everything, limits or not.
			for _, u := range Decide(Snapshot{Kind: Soft, Units: tc.units, HostQuota: tc.host}) {
				for _, e := range u.Entries {
					if e.Fate != FateInherit {
						t.Errorf("soft: %s %q: %s", u.Name, e.Name, e.Fate)
					}
				}
			}
		})
	}
}

func TestQuota(t *testing.T) {
	if (Quota{}).Over(1<<62) || QuotaOf(-1).Set || !QuotaOf(0).Over(1) || QuotaOf(10).Over(10) || !QuotaOf(10).Over(11) {
		t.Error("Quota.Over")
	}
}

// TestSummarize: a unit's store summed up for its metrics: every file's
// size, what a kexec would carry (none of a unit over its limit), and the
// bytes its limit applies to, limit or not.
func TestSummarize(t *testing.T) {
	u := Unit{Name: "a.service", Preserve: unit.PreserveYes, Entries: []Entry{sized("s", 100), sized("t", 50), socket, outgoing}}
	if got, want := Summarize(u), (StoreSummary{Bytes: 150, Survives: 3, Usage: 150}); got != want {
		t.Errorf("no limit: %+v, want %+v", got, want)
	}
	u.PreserveMax = QuotaOf(149)
	if got, want := Summarize(u), (StoreSummary{Bytes: 150, Survives: 1, Usage: 150}); got != want {
		t.Errorf("over its limit: %+v, want %+v (only the session survives)", got, want)
	}
	u.Preserve = unit.PreserveRestart
	if got, want := Summarize(u), (StoreSummary{Bytes: 150}); got != want {
		t.Errorf("not carried: %+v, want %+v", got, want)
	}
}
