//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/update"
)

// storeFiles adds files to u's store under name; what cannot be stored is
// closed with the reason logged.
func (m *Manager) storeFiles(u *Unit, name string, files []*os.File, poll bool, origin fdstore.Origin) {
	for i, f := range files {
		e, err := u.store.Add(name, f, poll, origin)
		if err != nil {
			if errors.Is(err, fdstore.ErrFull) {
				u.say(slog.LevelWarn, fmt.Sprintf("cannot store more fds than FileDescriptorStoreMax=%d, closing remaining", u.store.Max()),
					"fdname", name, "closed", len(files)-i)
				u.refuse(name, fmt.Sprintf("full (FileDescriptorStoreMax=%d)", u.store.Max()), len(files)-i)
				for _, g := range files[i:] {
					m.closer.close(g)
				}
				return
			}
			u.say(slog.LevelDebug, "suppressing duplicate fd in fd store", "fdname", name, "err", err)
			u.refuse(name, "duplicate of an fd already stored", 1)
			m.closer.close(f)
			continue
		}
		m.watch(u, e)
		m.up.add(e)
		u.say(slog.LevelDebug, "added fd to fd store", "fdname", name, "origin", string(origin))
	}
}

// adopt puts a file that was stored before (across a re-exec or a live
// update) back into u's store, without the limit and duplicate checks.
func (m *Manager) adopt(u *Unit, name string, f *os.File, poll bool, origin fdstore.Origin) *fdstore.Entry {
	e := u.store.Adopt(name, f, poll, origin)
	m.watch(u, e)
	return e
}

// watch watches an entry stored with FDPOLL=1 for POLLHUP and POLLERR.
func (m *Manager) watch(u *Unit, e *fdstore.Entry) {
	if !e.Poll {
		return
	}
	if _, err := m.poller.Watch(e); err != nil {
		m.log.Warn("cannot watch stored fd", "unit", u.name, "fdname", e.Name, "err", err)
	}
}

// handlePoll drops entries whose fd reported POLLHUP or POLLERR.
func (m *Manager) handlePoll(evs []fdstore.Event) {
	for _, ev := range evs {
		for _, u := range m.units {
			e := u.store.RemoveID(ev.ID)
			if e == nil {
				continue
			}
			what := "EPOLLHUP"
			if ev.Err {
				what = "EPOLLERR"
			}
			u.say(slog.LevelInfo, fmt.Sprintf("received %s on stored fd, closing", what), "fdname", e.Name)
			u.refuse(e.Name, "dropped on "+what, 1)
			u.closeEntry(e)
			u.unpinIfEmpty()
			if u.def == nil && u.store.Len() == 0 && u.dead() {
				m.forget(u)
			}
			break
		}
	}
}

// flushStore closes every entry of the store.
func (u *Unit) flushStore(why string) {
	es := u.store.Take()
	if len(es) == 0 {
		return
	}
	u.m.log.Info("releasing fd store", "unit", u.name, "fds", len(es), "why", why)
	for _, e := range es {
		u.closeEntry(e)
	}
}

func (u *Unit) closeEntry(e *fdstore.Entry) {
	u.m.up.remove(e)
	u.m.poller.Unwatch(e)
	u.m.closer.close(e.File)
}

// clean empties the store of a unit that does not run (clean
// --what=fdstore). It returns nil for an unknown unit.
func (m *Manager) clean(name string) (*Unit, error) {
	u := m.units[name]
	if u == nil {
		return nil, nil
	}
	if a := u.state.Active(); u.mainPID != 0 || a == Active || a == Activating || a == Deactivating {
		return u, errors.New("the unit must be stopped to clean its fd store")
	}
	u.flushStore("clean --what=fdstore")
	u.unpinIfEmpty()
	if u.def == nil {
		m.forget(u)
	}
	return u, nil
}

// unpinIfEmpty moves a pinned unit whose store became empty to dead.
func (u *Unit) unpinIfEmpty() {
	if u.store.Len() == 0 && u.state == StatePinned {
		u.setState(StateDead)
	}
}

// listenFiles returns the store's files and names in order, for
// LISTEN_FDS.
func (u *Unit) listenFiles() ([]*os.File, []string) {
	var fs []*os.File
	var names []string
	for _, e := range u.store.Entries() {
		fs = append(fs, e.File)
		names = append(names, e.Name)
	}
	return fs, names
}

// snapshot returns every unit with its store, for an update. With facts,
// each entry is described (what a kexec needs to decide); without, only
// named (a re-exec inherits every fd as it is). Called in the loop.
func (m *Manager) snapshot(facts bool) []update.Unit {
	var units []update.Unit
	for _, u := range m.sortedUnits() {
		units = append(units, u.snapshot(facts))
	}
	return units
}

// snapshot is the unit's part of Manager.snapshot.
func (u *Unit) snapshot(facts bool) update.Unit {
	a := u.state.Active()
	uu := update.Unit{Name: u.name, Preserve: u.preserve(), PreserveMax: u.preserveMax(), Active: u.mainPID != 0 || a == Active || a == Activating}
	for _, se := range u.store.Entries() {
		e := update.Entry{Name: se.Name, Poll: se.Poll, Origin: se.Origin, Added: se.Added, LUOSession: se.LUOSession, Path: se.MemfdPath, Upstream: se.Upstream, File: se.File}
		if facts {
			e = update.FromStore(se)
		}
		uu.Entries = append(uu.Entries, e)
	}
	return uu
}

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
	var dev update.Device
	defer func() {
		if dev != nil {
			dev.Close()
		}
	}()
	for _, name := range u.def.LUOSessions {
		if hasOutgoingSession(u, name) {
			continue
		}
		if dev == nil {
			var err error
			if dev, err = m.kernel.Open(); err != nil {
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
		e, err := u.store.Add(name, s.File(), false, fdstore.OriginHandedOut)
		if err != nil {
			m.log.Warn("failed to hand out LUO session", "unit", u.name, "session", name, "err", err)
			s.Close()
			continue
		}
		m.up.add(e)
		m.log.Info("handed out LUO session", "unit", u.name, "session", name, "kernel_name", kname)
	}
}

func hasOutgoingSession(u *Unit, name string) bool {
	for _, e := range u.store.Entries() {
		if e.Name != name {
			continue
		}
		if info, err := fdstore.Describe(e.File); err == nil && info.Session != "" && !info.Incoming {
			return true
		}
	}
	return false
}
