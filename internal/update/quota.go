package update

import (
	"cmp"
	"fmt"
	"slices"
)

// Quota is a limit on the bytes an update may pin in memory for the next
// kernel: the memfds preserved in luod's LUO session. The zero value is no
// limit.
type Quota struct {
	Max int64 // bytes, when Set
	Set bool
}

// QuotaOf is the quota of a setting that uses unit.NoLimit (or any
// negative number) for no limit.
func QuotaOf(n int64) Quota {
	if n < 0 {
		return Quota{}
	}
	return Quota{Max: n, Set: true}
}

// Over reports whether n bytes are over q.
func (q Quota) Over(n int64) bool { return q.Set && n > q.Max }

// preserveBytes is what u would pin in luod's session: the size of its
// entries planned FatePreserve.
func (u *Unit) preserveBytes() int64 {
	var n int64
	for _, e := range u.Entries {
		if e.Fate == FatePreserve {
			n += e.Size
		}
	}
	return n
}

// loseToQuota turns u's FatePreserve entries into lost ones, for why.
func (u *Unit) loseToQuota(why string) {
	for j := range u.Entries {
		if e := &u.Entries[j]; e.Fate == FatePreserve {
			e.Fate, e.Reason = FateLost, why
		}
	}
}

// applyQuotas enforces the limits on preserved memory on the fates Decide
// gave units (rules 9 and 10), whole units at a time: a unit that keeps
// part of its memfds would come back with a state that never existed.
func applyQuotas(units []Unit, host Quota) {
	for i := range units {
		u := &units[i]
		if n := u.preserveBytes(); u.PreserveMax.Over(n) {
			u.loseToQuota(fmt.Sprintf("the unit's memfds add up to %s (%d bytes), over its [X-LUO] PreserveMaxBytes=%d",
				HumanSize(n), n, u.PreserveMax.Max))
		}
	}
	if !host.Set {
		return
	}
	var total int64
	order := make([]int, 0, len(units))
	for i := range units {
		if n := units[i].preserveBytes(); n > 0 {
			total += n
			order = append(order, i)
		}
	}
	if !host.Over(total) {
		return
	}
	// Keep the smallest units while they fit: the fewest units lose their
	// state.
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(units[a].preserveBytes(), units[b].preserveBytes()), cmp.Compare(units[a].Name, units[b].Name))
	})
	var kept int64
	for _, i := range order {
		u := &units[i]
		n := u.preserveBytes()
		if kept+n <= host.Max {
			kept += n
			continue
		}
		u.loseToQuota(fmt.Sprintf("the host's memfds add up to %s (%d bytes), over luod's --preserve-max-bytes=%d; this unit's %s do not fit (the largest units lose theirs first)",
			HumanSize(total), total, host.Max, HumanSize(n)))
	}
}

// StoreSummary sums up one unit's store for a kexec, decided as a plan
// decides without the kernel's answers; u's entries need their facts
// (FromStore).
type StoreSummary struct {
	Bytes    int64 // the size of its files
	Survives int   // the entries a kexec would carry, limits applied
	// Usage is what the store would pin in memory were there no limits:
	// the size of the memfds rules 1 to 8 preserve in luod's session. It
	// is what PreserveMaxBytes= limits.
	Usage int64
}

// Summarize decides u's entries once and sums them up (StoreSummary); the
// host's limit, which depends on the other units, is left out.
func Summarize(u Unit) StoreSummary {
	units := decideEntries(Snapshot{Kind: Kexec, Units: []Unit{u}})
	sum := StoreSummary{Usage: units[0].preserveBytes()}
	applyQuotas(units, Quota{})
	for _, e := range units[0].Entries {
		sum.Bytes += e.Size
		if e.Fate.Carried() {
			sum.Survives++
		}
	}
	return sum
}
