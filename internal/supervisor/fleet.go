//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/kimage"
	"github.com/liveupdate/luo/internal/update"
)

// A live update in a fleet and its health gate, on luod's side (see
// update/fleet.go for the whole route): RunUpdate hands update.Run the
// fleet's slots and the gate; settle decides, once the new side of an
// update is finished, whether the slot goes back, luod rolls back, or the
// slot is kept; fleetWrite does that in etcd, retrying until it is done.

// errNoRollback refuses a kexec with a health gate but no kernel to go
// back to.
var errNoRollback = errors.New("a health gate needs a kernel to roll back to")

// gate completes req's health gate: the fleet's default timeout, and for a
// kexec the kernel to roll back to (the running one's image, found under
// LiveUpdate.Kernels, unless req names one). A rollback has no gate.
func (m *Manager) gate(req *update.Request) error {
	if req.RolledBack != nil {
		req.Health = nil
		return nil
	}
	if req.Health == nil && m.cfg.LiveUpdate.HealthTimeout > 0 {
		req.Health = &update.Health{Timeout: m.cfg.LiveUpdate.HealthTimeout}
	}
	h := req.Health
	if h == nil || req.Kind != update.Kexec {
		return nil
	}
	if h.Rollback == nil {
		cmdline, _ := kexec.CurrentCmdline()
		b, err := update.FindBoot(m.cfg.LiveUpdate.Kernels, release(), cmdline)
		if err != nil {
			return fmt.Errorf("%w: %v (name one with --rollback-kernel)", errNoRollback, err)
		}
		h.Rollback = b
		return nil
	}
	// Named by the operator: it must be a kernel image, as its initrd
	// must exist, before anything stops.
	img, err := kimage.Open(h.Rollback.Image)
	if err != nil {
		return fmt.Errorf("%w: rollback kernel: %v", errNoRollback, err)
	}
	if i := h.Rollback.Initrd; i != "" {
		if _, err := os.Stat(i); err != nil {
			return fmt.Errorf("%w: rollback initrd: %v", errNoRollback, err)
		}
	}
	h.Rollback.Release = img.Release
	return nil
}

// gateCheck is the plan's line about the health gate.
func gateCheck(req update.Request, err error) update.Check {
	c := update.Check{Name: "rollback", OK: err == nil}
	switch h := req.Health; {
	case err != nil:
		c.Detail = err.Error()
	case req.Kind != update.Kexec:
		c.Detail = fmt.Sprintf("health gate %s; a soft update keeps the kernel: a failed gate keeps the fleet slot", h.Timeout)
	default:
		c.Detail = fmt.Sprintf("health gate %s; on failure back into %s (%s)", h.Timeout, h.Rollback.Image, h.Rollback.Release)
	}
	return c
}

// settle runs in the loop once c, the new side of an update, finished,
// and does what c.Next decides.
func (m *Manager) settle(c *update.Completion) {
	next := c.Next()
	switch next.Action {
	case update.ActionRelease:
		m.fleetWrite(&update.SlotWrite{Slot: *c.Slot}, c.Report)
	case update.ActionKeep:
		m.fleetWrite(&update.SlotWrite{Slot: *c.Slot, State: next.State, Reason: next.Reason}, nil)
	case update.ActionRollback:
		m.log.Error("health gate failed: rolling back", "why", next.Reason, "kernel", c.Health.Rollback.Image)
		rb := &update.RolledBack{From: c.Report.From, To: c.Report.To, Reason: next.Reason}
		go m.rollback(c.Health.Rollback, c.Slot, rb)
	case update.ActionNone:
		if next.Reason != "" {
			m.log.Error("the update is complete but not healthy", "why", next.Reason)
		}
	}
}

// rollback updates into the kernel b, carrying the slot s, after a failed
// health gate. It returns only when the rollback failed.
func (m *Manager) rollback(b *update.Boot, s *update.Slot, rb *update.RolledBack) {
	req := update.Request{Kind: update.Kexec, Target: kexec.Image{Kernel: b.Image, Initrd: b.Initrd, Cmdline: b.Cmdline},
		Slot: s, RolledBack: rb}
	err := m.RunUpdate(context.Background(), req, false, nil)
	m.log.Error("rollback failed", "err", err)
	m.do(func() {
		if m.report != nil {
			m.report.Problems = append(m.report.Problems, fmt.Sprintf("health gate failed (%s); the rollback into %s failed: %v", rb.Reason, b.Image, err))
		}
		if s != nil {
			m.fleetWrite(&update.SlotWrite{Slot: *s, State: update.SlotFailed, Reason: fmt.Sprintf("%s; rollback failed: %v", rb.Reason, err)}, nil)
		}
	})
}

// fleetWrite makes w, a change of this host's slot (given back when
// w.State is "", else kept), in etcd in the background, retrying until it
// is done; a release adds slot-released to rep. Until then w is carried
// across a re-exec (update.Manager.SlotWrite). Runs in the loop.
func (m *Manager) fleetWrite(w *update.SlotWrite, rep *update.Report) {
	f := m.cfg.Fleet
	if f == nil {
		m.log.Error("this host holds a fleet slot but luod has no fleet settings; free it with luoctl fleet release",
			"group", w.Group, "host", w.Host)
		return
	}
	m.slotWrite = w
	go func() {
		for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			var err error
			if w.State == "" {
				err = f.Release(ctx, &w.Slot)
			} else {
				err = f.Keep(ctx, &w.Slot, w.State, w.Reason)
			}
			cancel()
			if err == nil {
				break
			}
			m.log.Warn("cannot write the fleet slot to etcd; retrying", "err", err, "in", delay)
			time.Sleep(delay)
		}
		now := time.Now()
		m.do(func() {
			if m.slotWrite == w {
				m.slotWrite = nil
			}
			if w.State == "" {
				if rep != nil {
					rep.Add("slot-released", "", now)
				}
				m.log.Info("fleet slot released", "group", w.Group, "host", w.Host)
			} else {
				m.log.Warn("fleet slot kept", "group", w.Group, "host", w.Host, "state", w.State, "reason", w.Reason)
			}
		})
	}()
}
