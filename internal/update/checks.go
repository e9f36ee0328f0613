package update

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/liveupdate/luo/internal/kexec"
)

// The names of the checks of a plan.
const (
	CheckDevice   = "LUO device present and free"
	CheckCmdline  = "liveupdate=on in the next command line"
	CheckKHO      = "KHO enabled"
	CheckScratch  = "kernel and initrd fit the KHO scratch area"
	CheckFormats  = "next kernel speaks this kernel's LUO formats"
	CheckLoadable = "next kernel loads"
)

// Checks judges the facts of an update into t. It is pure.
func Checks(f Facts, t kexec.Image) []Check {
	var cs []Check
	add := func(name string, err error, detail string) {
		c := Check{Name: name, OK: err == nil, Detail: detail}
		if err != nil {
			c.Detail = err.Error()
		}
		cs = append(cs, c)
	}

	add(CheckDevice, f.Device, "")

	switch {
	case !kexec.CmdlineHas(t.Cmdline, "liveupdate"):
		add(CheckCmdline, errors.New("missing: the next kernel would not restore anything"), "")
	case !kexec.CmdlineHas(f.Cmdline, "liveupdate"):
		add(CheckCmdline, nil, "present (but not on this kernel's command line)")
	default:
		add(CheckCmdline, nil, "present")
	}

	kho := f.KHO
	if _, set := kexec.CmdlineValue(t.Cmdline, "kho"); set && !kexec.CmdlineHas(t.Cmdline, "kho") {
		kho = errors.New("kho=off in the next command line disables LUO there")
	}
	add(CheckKHO, kho, "")

	detail, err := scratchFits(f.Scratch, f.Segments)
	if f.Images != nil {
		err = f.Images
	}
	add(CheckScratch, err, detail)

	switch {
	case f.Panics != nil:
		add(CheckFormats, f.Panics, "")
	case f.Formats != nil:
		add(CheckFormats, fmt.Errorf("%w (--allow-loss proceeds, and every fd is lost)", f.Formats), "")
		cs[len(cs)-1].overridable = true
	default:
		add(CheckFormats, nil, f.FormatsDetail)
	}

	if t.Kernel == "" {
		add(CheckLoadable, errors.New("no kernel given (--kernel)"), "")
	}
	return cs
}

// scratchFits compares the segments with the KHO scratch regions: the
// largest segment must fit the largest region and all of them the total.
// It is an estimate; loading the kernel is the real test.
func scratchFits(scratch, segments []int64) (string, error) {
	if scratch == nil {
		return "scratch size unknown (no debugfs): loading the kernel decides", nil
	}
	var total, largest int64
	for _, n := range scratch {
		total += n
		largest = max(largest, n)
	}
	var need, biggest int64
	for _, s := range segments {
		need += s
		biggest = max(biggest, s)
	}
	detail := fmt.Sprintf("need about %s, scratch %s (largest region %s)", HumanSize(need), HumanSize(total), HumanSize(largest))
	if biggest > largest || need > total {
		return "", fmt.Errorf("%s: kexec_file_load would fail with EADDRNOTAVAIL; cold-boot with a larger kho_scratch=", detail)
	}
	return detail, nil
}

// trialLoad tries to load t and unloads it again, but only when it can be
// sure that no other image is loaded: a plan never replaces or unloads an
// image it did not load.
func trialLoad(k Kernel, t kexec.Image) Check {
	c := Check{Name: CheckLoadable, OK: true}
	loaded, err := k.Loaded()
	switch {
	case err != nil:
		c.Detail = "not tried: cannot tell whether another kexec image is loaded (" + err.Error() + ")"
		return c
	case loaded:
		c.Detail = "not tried: another kexec image is loaded and would be replaced"
		return c
	}
	if err := k.Load(t); err != nil {
		c.OK, c.Detail = false, err.Error()
		return c
	}
	if err := k.Unload(); err != nil {
		c.OK, c.Detail = false, "trial kexec_file_load succeeded, but unloading it failed: "+err.Error()
		return c
	}
	c.Detail = "trial kexec_file_load succeeded (and was unloaded)"
	return c
}

// MakePlan makes the plan of an update of kind of the stores into t,
// changing nothing: it decides every fate, asks the kernel which memfds it
// would take (a trial preservation in a session it closes again), and
// checks the kernel side. With tryLoad it also tries to load t (see
// trialLoad); an update loads it for real instead. Only a kexec update
// talks to the kernel, and only the trial preservation runs with the
// stores locked.
func MakePlan(k Kernel, stores Stores, kind Kind, t kexec.Image, tryLoad bool) *Plan {
	p := &Plan{Kind: kind, Target: t}
	var facts Facts
	if kind == Kexec {
		facts = k.Inspect(t)
		p.incompatible = cmp.Or(facts.Panics, facts.Formats)
	}
	stores.Locked(func(units []Unit) {
		p.Units = DecideTried(k, Snapshot{Kind: kind, Units: units, Incompatible: p.incompatible, HostQuota: stores.HostQuota()})
	})
	if kind != Kexec {
		return p
	}
	p.Checks = Checks(facts, t)
	if tryLoad && t.Kernel != "" {
		p.Checks = append(p.Checks, trialLoad(k, t))
	}
	return p
}

// Redecide decides the fates of units, a later snapshot of the same stores,
// under host, the host's limit now, with what p learnt: the formats of the
// next kernel and the kernel's answers to the trial preservation, for the
// files that were tried. An update decides again after stopping the units,
// whose last messages may have changed their stores.
func (p *Plan) Redecide(units []Unit, host Quota) *Plan {
	s := Snapshot{Kind: p.Kind, Units: units}
	trials := map[*os.File]error{}
	for _, u := range p.Units {
		for _, e := range u.Entries {
			if e.Trial != nil {
				trials[e.File] = e.Trial
			}
		}
	}
	for i := range s.Units {
		s.Units[i].Entries = slices.Clone(s.Units[i].Entries)
		for j := range s.Units[i].Entries {
			e := &s.Units[i].Entries[j]
			e.Trial = trials[e.File]
		}
	}
	s.Incompatible, s.HostQuota = p.incompatible, host
	return &Plan{Kind: s.Kind, Target: p.Target, Units: Decide(s), incompatible: p.incompatible}
}

// DecideTried is Decide with the kernel's answers, what a plan says of the
// stores: for a kexec it asks the kernel which memfds it would take
// (TrialPreserve) and decides again with what it learnt, which settles
// rule 7. Without an answer (no device, or the device busy) the first
// decision stands, and a plan's device check says why. Every view of an
// entry's fate (the plan, luoctl fdstore) comes from here.
func DecideTried(k Kernel, s Snapshot) []Unit {
	// The limits apply once the kernel said which memfds the units' own
	// sessions carry (rule 7), which do not count against them.
	units := decideEntries(s)
	if s.Kind == Kexec && TrialPreserve(k, units) == nil {
		s.Units = units
		units = decideEntries(s)
	}
	applyQuotas(units, s.HostQuota)
	return units
}

// TrialPreserve asks the kernel, changing nothing, which of the memfds the
// units would preserve it takes: it preserves them into a temporary session
// and closes it, and records each refusal in the entry's Trial.
func TrialPreserve(k Kernel, units []Unit) error {
	dev, err := k.Open()
	if err != nil {
		return err
	}
	s, err := dev.CreateSession(trialSessionName)
	dev.Close()
	if err != nil {
		return err
	}
	defer s.Close()
	token := uint64(1)
	for i := range units {
		for j := range units[i].Entries {
			e := &units[i].Entries[j]
			if e.Fate != FatePreserve {
				continue
			}
			e.Trial = s.PreserveFD(e.File, token)
			token++
		}
	}
	return nil
}
