package update

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/liveupdate/luo/internal/kimage"
)

// An update in a fleet, and its health gate:
//
//	old luod  Run takes the host's slot (Slots.Take) before any unit stops;
//	          an abort before the point of no return gives it back; the
//	          manifest carries the Slot and the Health gate across
//	new luod  the Completion waits for the units, at most Health.Timeout;
//	          healthy (every unit READY, none failed, session finished):
//	          the slot is given back (Slots.Release);
//	          unhealthy after a kexec with Health.Rollback: luod updates
//	          again into that kernel, carrying the slot and RolledBack;
//	          otherwise, and after a rollback: the slot is kept (Slots.Keep),
//	          so the rollout stops at this host.

// Slots are a fleet's update slots: at most so many hosts inside an update
// at once. Package fleet keeps them in etcd; a host that fails after the
// point of no return keeps its slot, which stops the rollout there.
type Slots interface {
	// Take takes this host's slot for the update described, waiting up
	// to wait for one to be free (a *BusyError when none is). A slot the
	// host holds already is taken again while it is updating (luod died
	// in an update), never once it is kept after a failed one (a
	// *KeptError): that waits for an operator's release.
	Take(ctx context.Context, use SlotUse, wait time.Duration) (*Slot, error)
	// Release gives the slot back.
	Release(ctx context.Context, s *Slot) error
	// Keep records in the fleet why the host keeps its slot.
	Keep(ctx context.Context, s *Slot, state, reason string) error
}

// SlotUse is what a slot is taken for.
type SlotUse struct {
	Kind Kind
	From string // the running kernel's release
	To   string // the next kernel (its image) for a kexec
}

// Slot is a slot a host holds, carried in the manifest across the update.
type Slot struct {
	Group string    `json:"group"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// Slot states a host records when it keeps its slot.
const (
	SlotUpdating   = "updating"
	SlotFailed     = "failed"      // unhealthy after the point of no return
	SlotRolledBack = "rolled-back" // back in the previous kernel after a failed health gate
)

// Health is an update's health gate: within Timeout of the next luod's
// start every unit that was active must be READY, and none may fail. When
// the gate fails after a kexec, luod goes back into Rollback (the kernel it
// left), carrying every store again.
type Health struct {
	Timeout  time.Duration `json:"timeout"`
	Rollback *Boot         `json:"rollback,omitempty"`
}

// RolledBack is the reason a rollback was made, in its manifest and
// report: the update it undoes (releases) and why.
type RolledBack struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

func (r *RolledBack) String() string {
	return fmt.Sprintf("rolled back from %s to %s: %s", r.To, r.From, r.Reason)
}

// BusyError is Take's error when every slot is held.
type BusyError struct {
	Group   string
	Max     int
	Holders []string // "host (state since ...: reason)"
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("all %d update slots of fleet group %q are held: %s", e.Max, e.Group, strings.Join(e.Holders, "; "))
}

// Next is what follows a finished update: what becomes of its fleet slot,
// and whether luod rolls back.
type Next struct {
	Action Action
	// State and Reason are recorded in the fleet with a kept slot (and
	// Reason is why luod rolls back).
	State, Reason string
}

// Action is what luod does once an update finished.
type Action string

const (
	ActionNone     Action = "none"     // no slot, nothing to do
	ActionRelease  Action = "release"  // healthy: give the slot back
	ActionKeep     Action = "keep"     // unhealthy, or rolled back: keep the slot
	ActionRollback Action = "rollback" // the health gate failed after a kexec: go back
)

// Next decides what follows the update c completed, once c is finished: a
// rollback when its health gate failed after a kexec with a kernel to go
// back to; else the slot (if any) is given back when every unit is up,
// and kept otherwise, and always after a rollback.
func (c *Completion) Next() Next {
	why := c.Unhealthy()
	switch {
	case c.RolledBack != nil:
		if why != "" {
			why = "; after the rollback: " + why
		}
		return c.keep(SlotRolledBack, c.RolledBack.String()+why)
	case why == "" && c.Slot == nil:
		return Next{Action: ActionNone}
	case why == "":
		return Next{Action: ActionRelease}
	case c.Kind == Kexec && c.Health != nil && c.Health.Rollback != nil:
		return Next{Action: ActionRollback, Reason: why}
	}
	return c.keep(SlotFailed, why)
}

func (c *Completion) keep(state, reason string) Next {
	if c.Slot == nil {
		return Next{Action: ActionNone, State: state, Reason: reason}
	}
	return Next{Action: ActionKeep, State: state, Reason: reason}
}

// KeptError is Take's error when this host keeps its slot after a failed
// update: it does not update again until an operator released the slot,
// so a bad kernel is not tried again and again.
type KeptError struct {
	Host   string
	Holder string // "host (state since ...: reason)"
}

func (e *KeptError) Error() string {
	return fmt.Sprintf("this host keeps its fleet slot after a failed update: %s; free it with 'luoctl fleet release %s' once the host is dealt with",
		e.Holder, e.Host)
}

// Unhealthy is why the units of the update c completes are not healthy:
// "" when every unit it waited for is up and none failed. Call it once c is
// finished.
func (c *Completion) Unhealthy() string {
	var why []string
	why = append(why, c.failed...)
	if len(c.pending) > 0 {
		what := "not up"
		if c.Health != nil && c.Health.Timeout > 0 {
			what = fmt.Sprintf("not READY within %s", c.Health.Timeout)
		}
		why = append(why, fmt.Sprintf("%s: %s", strings.Join(c.Pending(), ", "), what))
	}
	return strings.Join(why, "; ")
}

// DefaultKernels is where kernel images are looked for: the rollback
// target of a health gate, and `luoctl update needed`.
var DefaultKernels = []string{"/boot/vmlinuz-*"}

// FindBoot finds how to boot the kernel release again: the image matched
// by globs whose boot header names release, the initrd beside it
// (initrd.img-<release> or initramfs-<release>.img, if one exists), and
// cmdline.
func FindBoot(globs []string, release, cmdline string) (*Boot, error) {
	for _, g := range globs {
		paths, err := filepath.Glob(g)
		if err != nil {
			return nil, fmt.Errorf("kernel path %q: %w", g, err)
		}
		for _, p := range paths {
			img, err := kimage.Open(p)
			if err != nil || img.Release != release {
				continue
			}
			b := &Boot{Release: release, Image: p, Cmdline: cmdline}
			dir := filepath.Dir(p)
			for _, name := range []string{"initrd.img-" + release, "initramfs-" + release + ".img"} {
				if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
					b.Initrd = filepath.Join(dir, name)
					break
				}
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("no image of the running kernel %s under %s", release, strings.Join(globs, " "))
}

// SlotWrite is a change of a host's slot not made in the fleet yet: given
// back (State "") or kept with State and Reason. luod carries it across a
// re-exec.
type SlotWrite struct {
	Slot
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
}
