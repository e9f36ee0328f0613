package update

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/unit"
)

// Entries as a snapshot shows them.
var (
	memEntry = Entry{Name: "state", Type: "memfd", Size: 4096}
	tmpfs    = Entry{Name: "file", Type: "reg", Size: 10}
	socket   = Entry{Name: "sock", Type: "sock", Unpreservable: "a socket (only memfds and unlinked tmpfs files are supported)"}
	outgoing = Entry{Name: "own", Type: "luo-session", Session: "cache", Unpreservable: "a LUO session fd"}
	incoming = Entry{Name: "own", Type: "luo-session", Session: "cache", Incoming: true, Unpreservable: "a LUO session fd"}
)

func with(e Entry, f func(*Entry)) Entry { f(&e); return e }

// TestDecide has one case per rule of Decide, in its order, plus the cases
// where an earlier rule wins over a later one.
func TestDecide(t *testing.T) {
	busy := &syscallError{syscall.EBUSY}
	nospc := &syscallError{syscall.ENOSPC}
	for _, tc := range []struct {
		name    string
		kind    Kind
		incomp  error
		preserv unit.Preserve
		entries []Entry // the last one is judged
		fate    Fate
		reason  string
	}{
		{"1 problem", Kexec, nil, unit.PreserveYes, []Entry{with(memEntry, func(e *Entry) { e.Problem = "fstat: bad fd" })}, FateLost, "fstat: bad fd"},
		{"1 problem wins over soft", Soft, nil, unit.PreserveYes, []Entry{with(memEntry, func(e *Entry) { e.Problem = "gone" })}, FateLost, "gone"},
		{"2 soft inherits a socket", Soft, nil, unit.PreserveNo, []Entry{socket}, FateInherit, "inherited"},
		{"2 reexec inherits an incoming session", Reexec, nil, unit.PreserveRestart, []Entry{incoming}, FateInherit, "inherited"},
		{"3 other formats lose a memfd", Kexec, errors.New("memfd-v2 vs memfd-v3"), unit.PreserveYes, []Entry{memEntry}, FateLost, "memfd-v2 vs memfd-v3"},
		{"3 other formats lose a session", Kexec, errors.New("luo-v5 vs luo-v6"), unit.PreserveYes, []Entry{outgoing}, FateLost, "luo-v6"},
		{"4 preserve=restart", Kexec, nil, unit.PreserveRestart, []Entry{memEntry}, FateLost, "FileDescriptorStorePreserve=restart"},
		{"4 preserve=no", Kexec, nil, unit.PreserveNo, []Entry{outgoing}, FateLost, "FileDescriptorStorePreserve=no"},
		{"4 preserve=on-success", Kexec, nil, unit.PreserveOnSuccess, []Entry{memEntry}, FatePreserve, "memfd"},
		{"5 outgoing session", Kexec, nil, unit.PreserveYes, []Entry{outgoing}, FateSession, `LUO session "cache"`},
		{"5 incoming session", Kexec, nil, unit.PreserveYes, []Entry{incoming}, FateLost, "incoming LUO session"},
		{"5 incoming superseded", Kexec, nil, unit.PreserveYes, []Entry{outgoing, incoming}, FateDrop, "superseded"},
		{"5 incoming, outgoing of another name", Kexec, nil, unit.PreserveYes, []Entry{with(outgoing, func(e *Entry) { e.Name = "x" }), incoming}, FateLost, "incoming"},
		{"5 reserved name", Kexec, nil, unit.PreserveYes, []Entry{with(outgoing, func(e *Entry) { e.Session = "luod/x" })}, FateLost, "reserved namespace"},
		{"5 reserved name luod", Kexec, nil, unit.PreserveYes, []Entry{with(outgoing, func(e *Entry) { e.Session = "luod" })}, FateLost, "reserved namespace"},
		{"5 handed-out session stored back", Kexec, nil, unit.PreserveYes, []Entry{with(outgoing, func(e *Entry) { e.Name, e.Session = "state", LUOSessionName("u.service", "state") })}, FateSession, "kept open"},
		{"5 another unit's handed-out session", Kexec, nil, unit.PreserveYes, []Entry{with(outgoing, func(e *Entry) { e.Name, e.Session = "state", LUOSessionName("v.service", "state") })}, FateLost, "reserved namespace"},
		{"5 handed out by luod", Kexec, nil, unit.PreserveYes, []Entry{with(outgoing, func(e *Entry) { e.Session, e.Origin = "luod/c/state", fdstore.OriginHandedOut })}, FateSession, "kept open"},
		{"6 socket", Kexec, nil, unit.PreserveYes, []Entry{socket}, FateLost, "a socket"},
		{"7 refused", Kexec, nil, unit.PreserveYes, []Entry{with(memEntry, func(e *Entry) { e.Trial = nospc })}, FateLost, "the kernel refused it"},
		{"7 EBUSY without a session", Kexec, nil, unit.PreserveYes, []Entry{with(memEntry, func(e *Entry) { e.Trial = busy })}, FateLost, "refused"},
		{"7 EBUSY with its own session", Kexec, nil, unit.PreserveYes, []Entry{outgoing, with(memEntry, func(e *Entry) { e.Trial = busy })}, FateSession, "own LUO session"},
		{"7 EBUSY with a handed-out session", Kexec, nil, unit.PreserveYes, []Entry{with(outgoing, func(e *Entry) { e.Session, e.Origin = "luod/c/s", fdstore.OriginHandedOut }), with(memEntry, func(e *Entry) { e.Trial = busy })}, FateSession, "own LUO session"},
		{"7 EBUSY with only an incoming session", Kexec, nil, unit.PreserveYes, []Entry{incoming, with(memEntry, func(e *Entry) { e.Trial = busy })}, FateLost, "refused"},
		{"8 memfd", Kexec, nil, unit.PreserveYes, []Entry{memEntry}, FatePreserve, "memfd, preserved"},
		{"8 tmpfs file", Kexec, nil, unit.PreserveYes, []Entry{tmpfs}, FatePreserve, "comes back as a memfd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Snapshot{Kind: tc.kind, Incompatible: tc.incomp, Units: []Unit{{Name: "u.service", Preserve: tc.preserv, Entries: tc.entries}}}
			units := Decide(s)
			e := units[0].Entries[len(tc.entries)-1]
			if e.Fate != tc.fate || !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("fate %s (%s), want %s (~%q)", e.Fate, e.Reason, tc.fate, tc.reason)
			}
			for _, in := range s.Units[0].Entries {
				if in.Fate != "" || in.Reason != "" {
					t.Errorf("Decide changed its input: %+v", in)
				}
			}
		})
	}
}

type syscallError struct{ errno syscall.Errno }

func (e *syscallError) Error() string { return "PRESERVE_FD: " + e.errno.Error() }
func (e *syscallError) Unwrap() error { return e.errno }

func TestPlanCountsAndRefusal(t *testing.T) {
	p := &Plan{Kind: Kexec, Units: Decide(Snapshot{Kind: Kexec, Units: []Unit{
		{Name: "a.service", Preserve: unit.PreserveYes, Entries: []Entry{memEntry, with(memEntry, func(e *Entry) { e.Size = 1 << 20 }), outgoing, socket}},
		{Name: "b.service", Preserve: unit.PreserveYes, Entries: []Entry{outgoing, incoming}},
		{Name: "c.service"},
	}})}
	want := Counts{Memfds: 2, Preserved: 2, Bytes: 4096 + 1<<20, Sessions: 2, Lost: 1}
	if got := p.Counts(); got != want {
		t.Errorf("Counts = %+v, want %+v", got, want)
	}
	if s := p.Summary(); !strings.Contains(s, "2 memfds (1.0 MiB)") || !strings.Contains(s, "1 lost") {
		t.Errorf("Summary = %q", s)
	}
	err := p.Refusal(false)
	if err == nil || !strings.Contains(err.Error(), `a.service "sock"`) || !strings.Contains(err.Error(), "--allow-loss") {
		t.Errorf("Refusal(false) = %v", err)
	}
	if err := p.Refusal(true); err != nil {
		t.Errorf("Refusal(true) = %v", err)
	}
	p.Checks = []Check{{Name: CheckDevice, OK: false, Detail: "EBUSY"}, {Name: CheckKHO, OK: true}}
	if err := p.Refusal(true); err == nil || !strings.Contains(err.Error(), CheckDevice+": EBUSY") || strings.Contains(err.Error(), CheckKHO) {
		t.Errorf("Refusal with a failed check = %v", err)
	}

	// A soft update inherits every fd: only the memfds are memfds, and
	// their sizes count.
	soft := &Plan{Kind: Soft, Units: Decide(Snapshot{Kind: Soft, Units: []Unit{{Name: "a", Entries: []Entry{memEntry, socket, outgoing,
		{Name: "pipe", Type: "fifo"}}}}})}
	if c, want := soft.Counts(), (Counts{Memfds: 1, Bytes: 4096, Sessions: 1, Others: 2}); c != want {
		t.Errorf("soft Counts = %+v, want %+v", c, want)
	}
	if s := soft.Summary(); s != "4 fds inherited by the re-executed luod (1 memfds (4.0 KiB), 1 sessions, 2 others), 0 lost" {
		t.Errorf("soft Summary = %q", s)
	}
	// A memfd in the unit's own session is a memfd carried, not a session.
	own := &Plan{Kind: Kexec, Units: Decide(Snapshot{Kind: Kexec, Units: []Unit{{Name: "a", Preserve: unit.PreserveYes,
		Entries: []Entry{outgoing, with(memEntry, func(e *Entry) { e.Trial = &syscallError{syscall.EBUSY} })}}}})}
	if c, want := own.Counts(), (Counts{Memfds: 1, Bytes: 4096, Sessions: 1}); c != want {
		t.Errorf("Counts with a memfd in the unit's session = %+v, want %+v", c, want)
	}
}

func TestFateCarried(t *testing.T) {
	for f, want := range map[Fate]bool{FatePreserve: true, FateSession: true, FateInherit: true, FateDrop: false, FateLost: false} {
		if f.Carried() != want {
			t.Errorf("%s.Carried() = %v", f, !want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 16<<20 + 100<<10: "16.1 MiB", 3 << 30: "3.0 GiB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
