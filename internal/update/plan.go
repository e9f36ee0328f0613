package update

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/unit"
)

// Snapshot is what an update starts from: every unit's store, each entry
// with the facts about its file. The supervisor takes it (its files stay
// owned by the stores).
type Snapshot struct {
	Kind  Kind
	Units []Unit
	// Incompatible, when set, says why the next kernel cannot take what
	// this one preserves (different LUO formats): every entry is lost.
	Incompatible error
	// HostQuota is luod's limit on the bytes all units together may
	// preserve (--preserve-max-bytes).
	HostQuota Quota
}

// Plan is what an update would do: the fate of every entry and the checks
// of the kernel side. Making one changes nothing.
type Plan struct {
	Kind   Kind
	Target kexec.Image
	Units  []Unit
	Checks []Check
	// incompatible is the next kernel's formats problem (see Snapshot).
	incompatible error
}

// Check is one kernel-side check of a plan.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// overridable: a failure that only loses fds, which the entries'
	// fates account for; --allow-loss proceeds despite it.
	overridable bool
}

// Decide gives every entry of s its fate and the reason for it, by the
// rules below, in this order. It is pure: s is not changed.
//
//  1. An entry whose file could not be described is lost.
//  2. A soft update or re-exec inherits every entry.
//  3. A kexec into a kernel with other LUO formats loses every entry.
//  4. Only stores with FileDescriptorStorePreserve=yes or on-success are
//     carried across a kexec; the entries of others are lost.
//  5. A LUO session fd is kept open and handed back (session), unless it
//     is incoming (lost; dropped when an outgoing session of the same fd
//     name supersedes it) or in luod's namespace without luod having
//     handed it out (lost).
//  6. A file LUO cannot preserve (not a memfd or unlinked tmpfs file) is
//     lost.
//  7. A memfd the kernel refused in a trial preservation is lost, except
//     when it refused with EBUSY and the unit holds an outgoing session:
//     the memfd is then in that session, which carries it (session).
//  8. Every other memfd is preserved in luod's session.
//
// Then the limits on preserved memory, whole units at a time:
//
//  9. A unit whose memfds to preserve add up to more than its [X-LUO]
//     PreserveMaxBytes= loses them all.
//  10. When the units' memfds to preserve add up to more than the host's
//     limit (luod's --preserve-max-bytes), the largest units lose theirs
//     until the rest fit.
//
// A memfd carried by the unit's own LUO session (rule 7's exception) is
// not luod's to drop, and a session's contents are not known to luod:
// neither counts against a limit.
func Decide(s Snapshot) []Unit {
	units := decideEntries(s)
	applyQuotas(units, s.HostQuota)
	return units
}

// decideEntries is Decide's rules 1 to 8, entry by entry.
func decideEntries(s Snapshot) []Unit {
	units := make([]Unit, len(s.Units))
	for i, u := range s.Units {
		u.Entries = slices.Clone(u.Entries)
		for j := range u.Entries {
			e := &u.Entries[j]
			e.Fate, e.Reason = fate(s, &u, e)
		}
		units[i] = u
	}
	return units
}

func fate(s Snapshot, u *Unit, e *Entry) (Fate, string) {
	switch {
	case e.Problem != "":
		return FateLost, e.Problem
	case s.Kind != Kexec:
		return FateInherit, "inherited by the re-executed luod"
	case s.Incompatible != nil:
		return FateLost, "the next kernel cannot take it: " + s.Incompatible.Error()
	case u.Preserve != unit.PreserveYes && u.Preserve != unit.PreserveOnSuccess:
		return FateLost, fmt.Sprintf("FileDescriptorStorePreserve=%s: only yes and on-success stores are carried across a kexec", u.Preserve)
	case e.Session != "":
		if e.Incoming && u.hasOutgoing(e.Name) {
			return FateDrop, "incoming LUO session, superseded by the outgoing session of the same name"
		}
		if p := sessionProblem(u.Name, e); p != "" {
			return FateLost, p
		}
		return FateSession, fmt.Sprintf("LUO session %q, kept open and handed back", e.Session)
	case e.Unpreservable != "":
		return FateLost, e.Unpreservable
	case e.Trial != nil:
		if inOwnSession(u, e.Trial) {
			return FateSession, "already preserved (EBUSY): carried by the unit's own LUO session"
		}
		return FateLost, "the kernel refused it: " + e.Trial.Error()
	case e.Type != "memfd":
		return FatePreserve, "unlinked tmpfs file, preserved in luod's LUO session (comes back as a memfd)"
	}
	return FatePreserve, "memfd, preserved in luod's LUO session"
}

// inOwnSession reports whether err, from preserving a memfd of u, means
// that the memfd is already preserved in an outgoing session of u's store:
// EBUSY while the store holds one. Services that keep their state in their
// own session (package keep in session mode) also put those memfds in the
// store for restarts; they cross the kexec in that session, not luod's. The
// kernel cannot say which session holds a file, so this is an inference.
func inOwnSession(u *Unit, err error) bool {
	return errors.Is(err, syscall.EBUSY) && u.holdsOutgoingSession()
}

// Counts sums up a plan by what the carried fds are, whatever carries
// them, and the lost ones.
type Counts struct {
	Memfds int   `json:"memfds"` // memfds carried: in luod's session, the unit's own, or inherited
	Bytes  int64 `json:"bytes"`  // their size
	// Preserved are the memfds (and unlinked tmpfs files) preserved in
	// luod's session, of Memfds.
	Preserved int `json:"preserved"`
	Sessions  int `json:"sessions"` // LUO session fds kept open, or inherited
	Others    int `json:"others"`   // other fds inherited by the next luod (pipes, sockets, ...: soft update)
	Lost      int `json:"lost"`
}

// IsMemfd reports whether e is, or comes back as, a memfd: a memfd, or an
// unlinked tmpfs file preserved in luod's session.
func (e *Entry) IsMemfd() bool { return e.Type == "memfd" || e.Fate == FatePreserve }

// Counts sums up p's entries: the carried ones by kind, and the lost.
func (p *Plan) Counts() Counts {
	var c Counts
	for _, u := range p.Units {
		for _, e := range u.Entries {
			switch {
			case e.Fate == FateLost:
				c.Lost++
			case !e.Fate.Carried():
			case e.Session != "":
				c.Sessions++
			case e.IsMemfd():
				c.Memfds++
				c.Bytes += e.Size
				if e.Fate == FatePreserve {
					c.Preserved++
				}
			default:
				c.Others++
			}
		}
	}
	return c
}

// Summary is a one-line account of p for progress messages.
func (p *Plan) Summary() string {
	c := p.Counts()
	if p.Kind != Kexec {
		return fmt.Sprintf("%d fds inherited by the re-executed luod (%d memfds (%s), %d sessions, %d others), %d lost",
			c.Memfds+c.Sessions+c.Others, c.Memfds, HumanSize(c.Bytes), c.Sessions, c.Others, c.Lost)
	}
	return fmt.Sprintf("%d memfds (%s) carried, %d of them to preserve in luod's session; %d sessions to keep open; %d lost",
		c.Memfds, HumanSize(c.Bytes), c.Preserved, c.Sessions, c.Lost)
}

// Refusal says why p must not be carried out, or returns nil: a failed
// check, or an entry that would be lost unless allowLoss.
func (p *Plan) Refusal(allowLoss bool) error {
	var probs []string
	for _, c := range p.Checks {
		if !c.OK && !(c.overridable && allowLoss) {
			probs = append(probs, c.Name+": "+c.Detail)
		}
	}
	if !allowLoss {
		var lost []string
		for _, u := range p.Units {
			for _, e := range u.Entries {
				if e.Fate == FateLost {
					lost = append(lost, fmt.Sprintf("%s %q (%s)", u.Name, e.Name, e.Reason))
				}
			}
		}
		if len(lost) > 0 {
			probs = append(probs, fmt.Sprintf("%d fds would be lost (use --allow-loss to proceed): %s", len(lost), strings.Join(lost, "; ")))
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return errors.New(strings.Join(probs, "; "))
}

// HumanSize formats a byte count for people: "16.1 MiB".
func HumanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
