//go:build linux

package supervisor

import (
	"errors"
	"os"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/update"
)

// handOutLUOSessions makes sure that, for each LUOSession= name, the store
// holds an outgoing LUO session to hand to the service: an existing one is
// reused; otherwise luod creates one named update.LUOSessionName. After a
// live update the store also holds the incoming session of that name
// (restored by luod): the service retrieves its files from the incoming one
// and preserves them again in the outgoing one, so its state survives every
// further update, not just one.
func (m *Manager) handOutLUOSessions(u *Unit) {
	if u.def == nil || len(u.def.LUOSessions) == 0 {
		return
	}
	var dev *luo.Device
	defer func() {
		if dev != nil {
			dev.Close()
		}
	}()
	for _, name := range u.def.LUOSessions {
		if m.hasOutgoingSession(u, name) {
			continue
		}
		if dev == nil {
			var err error
			if dev, err = luo.OpenPath(m.cfg.LiveUpdate.Device); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					m.log.Debug("no LUO device, not handing out LUO sessions", "unit", u.name)
				} else {
					m.log.Warn("cannot hand out LUO sessions", "unit", u.name, "err", err)
				}
				return
			}
		}
		kname := update.LUOSessionName(u.name, name)
		s, err := dev.CreateSession(kname)
		if err != nil {
			m.log.Warn("failed to create LUO session, ignoring", "unit", u.name, "session", name, "err", err)
			continue
		}
		if _, err := u.store.Add(name, s.File(), false, "luo-session"); err != nil {
			m.log.Warn("failed to hand out LUO session", "unit", u.name, "session", name, "err", err)
			s.Close()
			continue
		}
		m.log.Info("handed out LUO session", "unit", u.name, "session", name, "kernel_name", kname)
	}
}

func (m *Manager) hasOutgoingSession(u *Unit, name string) bool {
	for _, e := range u.store.Entries() {
		if e.Name != name {
			continue
		}
		if info, err := fdstore.Describe(e.File); err == nil && info.Type == "luo-session" && !info.Incoming {
			return true
		}
	}
	return false
}
