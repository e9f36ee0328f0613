//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/unit"
)

// loadUnits reads the unit directories at start.
func (m *Manager) loadUnits() {
	defs, errs := m.readUnitDirs()
	for _, err := range errs {
		m.log.Error("unit failed to load", "err", err)
	}
	for _, d := range defs {
		m.addUnit(d)
	}
	m.log.Info("units loaded", "dirs", strings.Join(m.cfg.UnitDirs, ":"), "units", len(defs), "errors", len(errs))
}

// readUnitDirs loads every unit directory; the first directory that has a
// unit of a name wins, also when that unit fails to load.
func (m *Manager) readUnitDirs() ([]*unit.Unit, []error) {
	var defs []*unit.Unit
	var errs []error
	seen := map[string]bool{}
	for _, dir := range m.cfg.UnitDirs {
		names, err := listDir(dir)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("unit directory: %w", err))
			}
			continue
		}
		ds, es := unit.LoadDir(dir)
		for _, d := range ds {
			if !seen[d.Name] {
				defs = append(defs, d)
			}
		}
		errs = append(errs, es...)
		for _, n := range names {
			seen[n] = true
		}
	}
	return defs, errs
}

// listDir lists the names in a directory, failing at once (ENOTDIR) when
// dir is something else, such as a FIFO that an open would block on.
func listDir(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	return f.Readdirnames(-1)
}

func (m *Manager) addUnit(d *unit.Unit) *Unit {
	u := newUnit(m, d.Name)
	u.setDef(d)
	m.units[d.Name] = u
	for _, w := range d.Warnings {
		m.log.Warn("unit file: "+w.String(), "unit", d.Name)
	}
	return u
}

// startAll starts every loaded unit at boot: those a live update carried
// first, each once its fds are back (see startUpdated), then the others.
func (m *Manager) startAll() {
	started := m.startUpdated()
	for _, u := range m.sortedUnits() {
		if u.def != nil && !started[u.name] {
			u.start("boot")
		}
	}
}

// reloaded is what a daemon-reload did.
type reloaded struct {
	loaded   []string
	errors   []error
	warnings []string
}

// reload re-reads the unit directories (daemon-reload). It reads and
// parses them outside the loop (a unit file may take a second to parse),
// then applies them in the loop; reloads run one at a time. Not called
// from the loop.
func (m *Manager) reload() reloaded {
	m.reloading.Lock()
	defer m.reloading.Unlock()
	m.up.reloading()
	defs, errs := m.readUnitDirs()
	var rep reloaded
	var status string
	m.do(func() { rep = m.applyReload(defs, errs); status = m.statusLine() })
	m.up.ready(status)
	return rep
}

// applyReload installs what a reload read. Called in the loop.
func (m *Manager) applyReload(defs []*unit.Unit, errs []error) reloaded {
	var rep reloaded
	for _, err := range errs {
		m.log.Error("unit failed to load", "err", err)
	}
	rep.errors = errs
	seen := map[string]bool{}
	for _, d := range defs {
		seen[d.Name] = true
		rep.loaded = append(rep.loaded, d.Name)
		for _, w := range d.Warnings {
			rep.warnings = append(rep.warnings, w.String())
		}
		if u := m.units[d.Name]; u != nil {
			if u.def == nil {
				m.log.Info("unit file appeared; its pinned store is kept", "unit", d.Name, "fds", u.store.Len())
			}
			u.setDef(d)
			continue
		}
		m.addUnit(d)
	}
	for name, u := range m.units {
		if seen[name] || u.def == nil {
			continue
		}
		if u.dead() && u.store.Len() == 0 {
			m.forget(u)
			continue
		}
		m.log.Warn("unit file removed; keeping the unit until it stops", "unit", name)
		u.def = nil
		u.loadErr = "unit file not found"
	}
	m.log.Info("reloaded", "units", len(defs), "errors", len(errs))
	return rep
}

// forget drops a unit whose file is gone and which holds nothing.
func (m *Manager) forget(u *Unit) {
	if m.units[u.name] == u {
		delete(m.units, u.name)
		u.out.remove()
		if u.group != nil && !u.group.Populated() {
			u.group.Remove()
		}
		m.log.Info("unit removed", "unit", u.name)
	}
}
