package supervisor

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/liveupdate/luo/activation"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/memfd"
	"github.com/liveupdate/luo/sdnotify"
)

// The mirror of the units' stores in luod's own manager's fd store.
//
// Run as a systemd service with an fd store of its own
// (FileDescriptorStoreMax=, which systemd announces in $FDSTORE), luod
// pushes every entry of its units' stores upward as it arrives
// (FDSTORE=1, FDNAME=luod-N, FDPOLL=0) and removes it when the unit's
// store drops it (FDSTOREREMOVE=1). A map, a memfd stored as
// luod-map-GEN, says which unit and entry name each luod-N is; each change
// stores a new map before removing the previous one, so that the store
// always holds a whole map. After systemctl restart luod, a crash, or a
// systemctl kexec (systemd carries its fd store's memfds with
// FileDescriptorStorePreserve=yes), luod gets everything back in its
// $LISTEN_FDS and rebuilds its units' stores from the newest map before it
// starts them (rebuildFromManager). Across luod's own re-exec each entry
// keeps its upstream name (fdstore.Entry.Upstream) and the mirror its
// counters (update.Manager.Upstream).

// mapPrefix names the map's entries in the manager's store.
const mapPrefix = "luod-map-"

// upstreamMap is the map's JSON.
type upstreamMap struct {
	Version int             `json:"version"`
	Next    uint64          `json:"next"`
	Entries []upstreamEntry `json:"entries"`
}

// upstreamEntry is one mirrored entry.
type upstreamEntry struct {
	FDName     string         `json:"fdname"`
	Unit       string         `json:"unit"`
	Name       string         `json:"name"`
	Poll       bool           `json:"poll,omitempty"`
	Origin     fdstore.Origin `json:"origin,omitempty"`
	Added      time.Time      `json:"added,omitzero"`
	LUOSession bool           `json:"luo_session,omitempty"`
}

// mirrors reports whether luod mirrors its units' stores upward: it has a
// manager that gave it an fd store.
func (up *upstream) mirrors() bool { return up != nil && up.n != nil && up.storeMax > 0 }

// add pushes e upward, unless it is there already.
func (up *upstream) add(e *fdstore.Entry) {
	if !up.mirrors() || e.Upstream != "" {
		return
	}
	name := "luod-" + strconv.FormatUint(up.next, 10)
	up.next++
	if err := up.store(name, e.File); err != nil {
		up.warnOnce("cannot mirror a stored fd to luod's own service manager", err, "fdname", e.Name)
		return
	}
	e.Upstream = name
	up.dirty = true
}

// remove removes e from upstream.
func (up *upstream) remove(e *fdstore.Entry) {
	if !up.mirrors() || e.Upstream == "" {
		return
	}
	up.drop(e.Upstream)
	e.Upstream = ""
	up.dirty = true
}

// store puts f into the manager's fd store under name, unwatched: luod
// watches the entries whose units asked for it.
func (up *upstream) store(name string, f *os.File) error {
	return up.n.StoreFiles(name, []*os.File{f}, &sdnotify.StoreOptions{NoPoll: true})
}

// drop removes name from the manager's fd store.
func (up *upstream) drop(name string) {
	up.warnOnce("cannot remove an fd from luod's own service manager's store", up.n.RemoveFiles(name), "fdname", name)
}

// flush stores the map of what is mirrored, when it changed. Called in
// the loop.
func (up *upstream) flush(m *Manager) {
	if !up.mirrors() || !up.dirty {
		return
	}
	mp := upstreamMap{Version: 1, Next: up.next, Entries: []upstreamEntry{}}
	for _, u := range m.sortedUnits() {
		for _, e := range u.store.Entries() {
			if e.Upstream != "" {
				mp.Entries = append(mp.Entries, upstreamEntry{FDName: e.Upstream, Unit: u.name, Name: e.Name, Poll: e.Poll,
					Origin: e.Origin, Added: e.Added, LUOSession: e.LUOSession})
			}
		}
	}
	b, err := json.Marshal(mp)
	if err == nil {
		err = up.storeMap(b)
	}
	if err != nil {
		up.log.Error("cannot store the map of the mirrored fd store in luod's own service manager", "err", err)
		return
	}
	up.dirty = false
}

func (up *upstream) storeMap(b []byte) error {
	f, err := memfd.New("luod-map", 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return err
	}
	name := mapPrefix + strconv.FormatUint(up.mapGen+1, 10)
	if err := up.store(name, f); err != nil {
		return err
	}
	if up.mapGen > 0 {
		up.drop(mapPrefix + strconv.FormatUint(up.mapGen, 10))
	}
	up.mapGen++
	return nil
}

// rebuildFromManager takes the fds luod's manager passed it ($LISTEN_FDS)
// and puts the mirrored entries back into their units' stores, as the
// newest map says; a unit whose file is gone keeps them pinned. What no
// map names (stored by a luod that stopped before its map), and the older
// maps, are removed from the manager's store. Called by New, after the
// units are loaded and before any starts.
func (m *Manager) rebuildFromManager() {
	up := m.up
	files, err := activation.Receive(&activation.Config{UnsetEnv: true})
	if err != nil {
		m.log.Warn("cannot take the fds luod's service manager passed", "err", err)
		return
	}
	if !up.mirrors() || files.Len() == 0 {
		files.Close()
		return
	}
	byName := map[string]*os.File{}
	names := files.Names()
	for i, f := range files.All() {
		name := names[i]
		if old := byName[name]; old != nil {
			old.Close() // the manager stores names once; keep the last
		}
		byName[name] = f
	}
	var mp upstreamMap
	for name, f := range byName {
		gen, err := strconv.ParseUint(strings.TrimPrefix(name, mapPrefix), 10, 64)
		if !strings.HasPrefix(name, mapPrefix) || err != nil || gen < up.mapGen {
			continue
		}
		var cand upstreamMap
		b, rerr := readAllAt(f)
		if rerr == nil && json.Unmarshal(b, &cand) == nil && cand.Version == 1 {
			mp, up.mapGen = cand, gen
		} else {
			m.log.Warn("unreadable map in luod's service manager's fd store; ignoring it", "fdname", name, "err", rerr)
		}
	}
	up.next = max(up.next, mp.Next)
	restored := 0
	for _, ue := range mp.Entries {
		f := byName[ue.FDName]
		if f == nil {
			m.log.Warn("a mirrored fd did not come back from luod's service manager", "unit", ue.Unit, "fdname", ue.Name)
			continue
		}
		delete(byName, ue.FDName)
		u := m.units[ue.Unit]
		if u == nil {
			u = newUnit(m, ue.Unit)
			u.loadErr = "unit file not found"
			m.units[ue.Unit] = u
			m.log.Warn("unit file of a mirrored store is missing; keeping its entries pinned until it appears", "unit", ue.Unit)
		}
		e := m.adopt(u, ue.Name, f, ue.Poll, ue.Origin)
		e.Added, e.LUOSession, e.Upstream = ue.Added, ue.LUOSession, ue.FDName
		restored++
		if u.state == StateDead {
			u.setState(StatePinned)
		}
	}
	for name, f := range byName {
		if name != mapPrefix+strconv.FormatUint(up.mapGen, 10) {
			up.drop(name)
		}
		f.Close()
	}
	m.log.Info("fd stores rebuilt from luod's service manager", "entries", restored, "map", up.mapGen)
}

// readAllAt reads a whole memfd from its start.
func readAllAt(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > 64<<20 {
		return nil, fmt.Errorf("%d bytes: too large for a map", fi.Size())
	}
	b := make([]byte, fi.Size())
	_, err = f.ReadAt(b, 0)
	return b, err
}
