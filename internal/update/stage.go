package update

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/liveupdate/luo/internal/kexec"
)

// A staged update does the slow half of a kexec update ahead of time, while
// every unit keeps running: the plan with its trial preservation and the
// kernel's checks, and kexec_file_load of the next kernel. Run with
// Request.Staged then only stops, preserves and reboots.
//
//	Stage    plan (checks, trial preservation), refuse a loss, load
//	Changes  what differs between the staged plan and the stores now
//	Run      (Request.Staged) decide again with the staged answers, stop, preserve, reboot
//	Unstage  unload the kernel

// Staged is a kexec update prepared by Stage.
type Staged struct {
	Target kexec.Image
	At     time.Time
	// Plan is the plan made when staging. It is nil for a staging carried
	// across luod's re-exec, whose trial answers are gone: Run then plans
	// again (without loading).
	Plan *Plan
	// Checks are the plan's checks, and Counts its totals, at staging
	// time.
	Checks []Check
	Counts Counts
}

// ErrNotStaged is returned by Run with a staged update whose kernel is no
// longer loaded (someone else unloaded or replaced it).
var ErrNotStaged = errors.New("the staged kernel is no longer loaded (unloaded or replaced outside luod); stage it again")

// Stage plans a kexec update of the stores into t, and, when the plan can
// be carried out (allowLoss as for Run), loads t. It returns the plan, and
// the Staged update when it loaded t. Nothing else changes: the units keep
// running and their stores stay as they are.
func Stage(k Kernel, stores Stores, t kexec.Image, allowLoss bool) (*Staged, *Plan, error) {
	at := time.Now()
	p := MakePlan(k, stores, Kexec, t, false)
	if err := p.Refusal(allowLoss); err != nil {
		return nil, p, &Error{Phase: PhasePlan, Err: err, Restored: true}
	}
	if err := k.Load(t); err != nil {
		return nil, p, &Error{Phase: PhaseLoad, Err: err, Restored: true}
	}
	p.Checks = append(p.Checks, Check{Name: CheckLoadable, OK: true, Detail: "loaded: staged"})
	return &Staged{Target: t, At: at, Plan: p, Checks: p.Checks, Counts: p.Counts()}, p, nil
}

// Save is what of s crosses luod's re-exec.
func (s *Staged) Save() *StagedState {
	return &StagedState{Target: s.Target, At: s.At, Checks: s.Checks, Counts: s.Counts}
}

// ResumeStaged is the Staged update st after a re-exec: without its plan.
func ResumeStaged(st *StagedState) *Staged {
	return &Staged{Target: st.Target, At: st.At, Checks: st.Checks, Counts: st.Counts}
}

// Decide is the plan of the stores now, as a staged run starts from it:
// the staged plan decided again with the answers the staging got from the
// kernel (no trial preservation, no load), or, after a re-exec lost them,
// a plan made again without loading.
func (s *Staged) Decide(k Kernel, stores Stores) *Plan {
	if s.Plan == nil {
		return MakePlan(k, stores, Kexec, s.Target, false)
	}
	var p *Plan
	stores.Locked(func(units []Unit) { p = s.Plan.Redecide(units, stores.HostQuota()) })
	return p
}

// Unstage unloads the staged kernel.
func Unstage(k Kernel) error { return k.Unload() }

// Changes lists what differs between the staged plan and units, a later
// snapshot of the stores under host, the host's limit: entries added,
// gone, or whose fate changed
// (decided with the staged trial answers; a new memfd was not tried, the
// real preservation is its test). Empty when the plan still holds, or when
// there is no staged plan to compare with.
func (s *Staged) Changes(units []Unit, host Quota) []string {
	if s.Plan == nil {
		return nil
	}
	type key struct{ unit, name string }
	then := map[key]Entry{}
	for _, u := range s.Plan.Units {
		for _, e := range u.Entries {
			then[key{u.Name, e.Name}] = e
		}
	}
	var out []string
	now := s.Plan.Redecide(units, host)
	for _, u := range now.Units {
		for _, e := range u.Entries {
			k := key{u.Name, e.Name}
			old, ok := then[k]
			delete(then, k)
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("%s %q: new, %s", u.Name, e.Name, e.Fate))
			case old.Fate != e.Fate:
				out = append(out, fmt.Sprintf("%s %q: %s, was %s", u.Name, e.Name, e.Fate, old.Fate))
			case old.File != e.File:
				out = append(out, fmt.Sprintf("%s %q: replaced by another file, %s", u.Name, e.Name, e.Fate))
			}
		}
	}
	for k, e := range then {
		out = append(out, fmt.Sprintf("%s %q: gone, was %s", k.unit, k.name, e.Fate))
	}
	slices.Sort(out)
	return out
}
