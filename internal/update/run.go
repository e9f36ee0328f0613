package update

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/liveupdate/luo/internal/kexec"
)

// Request is what an operator asks of an update.
type Request struct {
	Kind   Kind        // Kexec or Soft
	Target kexec.Image // the next kernel (Kexec)
	// From describes the running kernel, for the manifest.
	From Boot
	// Count is the number of kexec live updates since the last cold boot,
	// this one included (Kexec).
	Count int
	// Outcomes are the updates since the last cold boot, for the
	// manifest.
	Outcomes []Outcome
	// AllowLoss proceeds although some entries will be lost.
	AllowLoss bool
	// RestartUnits stops and starts the units in a soft update too.
	RestartUnits bool
	// StopTimeout bounds stopping the units (0: each unit's own timeout).
	StopTimeout time.Duration
	// Staged, when set, is the kexec update Stage prepared: Target is
	// its, the kernel is loaded already, and an abort leaves it loaded.
	Staged *Staged

	// Slots, when the host is in a fleet, are the fleet's update slots:
	// an update that stops units takes one first, waiting up to SlotWait.
	Slots    Slots
	SlotWait time.Duration
	// Slot is a slot the host holds already (a rollback carries the one
	// of the update it undoes): it is carried, and kept on an abort.
	Slot *Slot
	// Health is the gate the next luod applies (see fleet.go).
	Health *Health
	// RolledBack is set when this update is a rollback.
	RolledBack *RolledBack
}

// Stores are the fd stores of every unit.
type Stores interface {
	// Locked runs fn with every unit and its store's entries, described
	// (Decide's input), while the stores cannot change: the files stay
	// open until fn returns. fn must not keep the files.
	Locked(fn func(units []Unit))
	// HostQuota is the limit on the bytes all stores together may
	// preserve for the next kernel.
	HostQuota() Quota
}

// Host is the service manager's side of an update: luod's supervisor, or a
// fake in tests. Each method runs to completion before Run goes on.
type Host interface {
	Stores
	// Stop stops the named units, keeping their stores whatever their
	// FileDescriptorStorePreserve= says, and waits until they are all down
	// or ctx is done (the error then names the units still up). It returns
	// when each one's main process exited.
	Stop(ctx context.Context, units []string) (map[string]time.Time, error)
	// Resume starts the named units again after an update aborted; their
	// stores were kept.
	Resume(units []string)
	// Reexec re-executes luod carrying m (a soft update): m says which
	// units were active and when they stopped; the host adds every store's
	// entries as they are at the exec. It returns only on failure.
	Reexec(m *Manifest) error
	// Progress reports a step of the update.
	Progress(p Phase, msg string)
}

// Error is a failed update: the phase it failed in, and whether every unit
// was brought back with its store.
type Error struct {
	Phase    Phase
	Err      error
	Restored bool
}

func (e *Error) Error() string {
	s := fmt.Sprintf("update failed during %s: %v", e.Phase, e.Err)
	switch {
	case e.Phase == PhasePlan || e.Phase == PhaseSlot:
		s += "; nothing was changed"
	case e.Restored:
		s += "; every unit was started again with its fd store intact"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Run performs an update, reading top to bottom:
//
//	plan     decide every fate, trial-preserve, check the kernel; refuse a loss
//	         (staged: decide again with the staging's answers)
//	slot     in a fleet, take the host's update slot (see fleet.go)
//	load     kexec_file_load the next kernel (kexec; staged: loaded already)
//	stop     stop the active units, holding their stores
//	exec     a soft update re-executes luod here, carrying the stores
//	preserve decide again (stores may have changed while stopping), preserve
//	manifest write the manifest at token 0, finalized right before the reboot
//	reboot   kexec into the next kernel
//
// Any failure after the plan aborts: luod's session is closed (which
// unpreserves everything), the kernel is unloaded, the stopped units
// start again with their stores, and a slot taken is given back. A successful kexec does not return; a
// successful soft update returns when the re-executed luod took over only
// in the sense that this process no longer runs.
func Run(ctx context.Context, k Kernel, h Host, req Request) error {
	m := &Manifest{Version: ManifestVersion, Kind: req.Kind, Count: req.Count, From: req.From, Outcomes: req.Outcomes,
		Health: req.Health, RolledBack: req.RolledBack}
	m.Timeline.Requested = time.Now()
	plan, err := makePlan(k, h, &req)
	if err != nil {
		return err
	}
	if err := plan.Refusal(req.AllowLoss); err != nil {
		return &Error{Phase: PhasePlan, Err: err, Restored: true}
	}
	h.Progress(PhasePlan, plan.Summary())
	r := &run{k: k, h: h, req: req, m: m}
	if err := r.takeSlot(ctx); err != nil {
		return r.abort(PhaseSlot, err)
	}

	if req.Kind == Kexec {
		m.To = Boot{Image: req.Target.Kernel, Initrd: req.Target.Initrd, Cmdline: req.Target.Cmdline}
		if req.Staged == nil {
			if err := k.Load(req.Target); err != nil {
				return r.abort(PhaseLoad, err)
			}
			r.loaded = true
		}
		m.Timeline.Loaded = time.Now()
		if req.Staged != nil {
			h.Progress(PhaseLoad, "staged at "+req.Staged.At.Format(time.RFC3339)+": "+req.Target.Kernel)
		} else {
			h.Progress(PhaseLoad, "loaded "+req.Target.Kernel)
		}
	}

	active := map[string]bool{}
	for _, u := range plan.Units {
		active[u.Name] = u.Active
	}
	if req.Kind == Kexec || req.RestartUnits {
		if err := r.stop(ctx, active); err != nil {
			return r.abort(PhaseStop, err)
		}
	}

	if req.Kind == Soft {
		for _, u := range plan.Units {
			m.Units = append(m.Units, Unit{Name: u.Name, Active: u.Active, Stopped: r.stopped[u.Name], Entries: []Entry{}})
		}
		m.Timeline.Exec = time.Now()
		h.Progress(PhaseExec, "re-executing luod")
		return r.abort(PhaseExec, h.Reexec(m))
	}

	var final *Plan
	var p *Prepared
	h.Locked(func(units []Unit) {
		final = plan.Redecide(units, h.HostQuota())
		if err = final.Refusal(req.AllowLoss); err != nil {
			err = fmt.Errorf("the stores changed while the units stopped: %w", err)
			return
		}
		for i := range final.Units {
			u := &final.Units[i]
			u.Active, u.Stopped = active[u.Name], r.stopped[u.Name]
		}
		p, err = Preserve(k, m, final.Units)
	})
	if err != nil {
		return r.abort(PhasePreserve, err)
	}
	m.Timeline.Preserved = time.Now()
	c := final.Counts()
	h.Progress(PhasePreserve, fmt.Sprintf("%d memfds preserved and %d sessions kept in LUO session %q, manifest at token 0", c.Preserved, c.Sessions, SessionName))

	h.Progress(PhaseReboot, "rebooting into "+req.Target.Kernel)
	if err := p.Finalize(time.Now()); err != nil {
		p.Abort()
		return r.abort(PhaseManifest, err)
	}
	err = k.Exec()
	// Still here: the reboot failed. The sessions are still preserved;
	// close luod's to unpreserve its memfds and bring everything back.
	p.Abort()
	return r.abort(PhaseReboot, err)
}

// makePlan is the plan Run starts from. A staged update's kernel must
// still be loaded; its plan is decided again with the answers the staging
// got from the kernel (no trial preservation, no load), or made again
// without loading after a re-exec lost them.
func makePlan(k Kernel, h Host, req *Request) (*Plan, error) {
	s := req.Staged
	if s == nil {
		return MakePlan(k, h, req.Kind, req.Target, false), nil
	}
	if req.Kind != Kexec {
		return nil, &Error{Phase: PhasePlan, Err: errors.New("a staged update is a kexec"), Restored: true}
	}
	loaded, err := k.Loaded()
	if err == nil && !loaded {
		err = ErrNotStaged
	}
	if err != nil {
		return nil, &Error{Phase: PhaseLoad, Err: err, Restored: true}
	}
	req.Target = s.Target
	return s.Decide(k, h), nil
}

// run is the state of Run that its abort undoes.
type run struct {
	k       Kernel
	h       Host
	req     Request
	m       *Manifest
	loaded  bool
	taken   bool // the slot in m.Slot was taken by this run
	stopped map[string]time.Time
	// stopping lists the units Stop was asked to stop.
	stopping []string
}

// takeSlot takes the host's fleet slot before any unit stops (a soft
// update that restarts none needs none), or carries the one it holds.
func (r *run) takeSlot(ctx context.Context) error {
	req := r.req
	if req.Slot != nil {
		r.m.Slot = req.Slot
		return nil
	}
	if req.Slots == nil || req.Kind == Soft && !req.RestartUnits {
		return nil
	}
	use := SlotUse{Kind: req.Kind, From: req.From.Release}
	if req.Kind == Kexec {
		use.To = req.Target.Kernel
	}
	r.h.Progress(PhaseSlot, "taking a fleet update slot")
	s, err := req.Slots.Take(ctx, use, req.SlotWait)
	if err != nil {
		return err
	}
	r.m.Slot, r.taken = s, true
	r.m.Timeline.SlotTaken = time.Now()
	r.h.Progress(PhaseSlot, fmt.Sprintf("holding a slot of fleet group %q as %s", s.Group, s.Host))
	return nil
}

// stop stops the active units and records when.
func (r *run) stop(ctx context.Context, active map[string]bool) error {
	for name, a := range active {
		if a {
			r.stopping = append(r.stopping, name)
		}
	}
	slices.Sort(r.stopping)
	r.m.Timeline.StopBegin = time.Now()
	r.h.Progress(PhaseStop, "stopping units")
	if r.req.StopTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.req.StopTimeout)
		defer cancel()
	}
	stopped, err := r.h.Stop(ctx, r.stopping)
	r.stopped = stopped
	if err != nil {
		return err
	}
	r.m.Timeline.LastStopped = time.Now()
	r.h.Progress(PhaseStop, "all units stopped")
	return nil
}

// abort undoes what the update did so far: unload the kernel it loaded and
// start the units it stopped. err is why.
func (r *run) abort(phase Phase, err error) error {
	if err == nil {
		err = errors.New("failed without an error")
	}
	if phase == PhaseSlot {
		r.h.Progress(PhaseAbort, fmt.Sprintf("%s failed: %v; nothing was changed", phase, err))
	} else {
		r.h.Progress(PhaseAbort, fmt.Sprintf("%s failed: %v; restoring", phase, err))
	}
	if r.loaded {
		if uerr := r.k.Unload(); uerr != nil {
			err = fmt.Errorf("%w (and unloading the kernel failed: %v)", err, uerr)
		}
	}
	r.h.Resume(r.stopping)
	if r.taken {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if rerr := r.req.Slots.Release(ctx, r.m.Slot); rerr != nil {
			err = fmt.Errorf("%w (and giving the fleet slot back failed: %v)", err, rerr)
		}
	}
	return &Error{Phase: phase, Err: err, Restored: true}
}
