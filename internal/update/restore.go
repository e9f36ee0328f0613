package update

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNoUpdate is returned by Restore on a boot that is not a live update
// (no LUO device, or no luod session).
var ErrNoUpdate = errors.New("no live update to restore")

// maxManifest bounds what Restore reads of the manifest memfd.
const maxManifest = 1 << 30

// Restored is what a live update left for luod in the new kernel.
type Restored struct {
	// Manifest is nil when it could not be used; Err says why. The session
	// is then to be kept unfinished, so that nothing more is discarded and
	// a luod that understands the manifest can take over.
	Manifest *Manifest
	Err      error
	// Session is luod's incoming session, retrieved and not finished.
	Session Session
	// Units are the manifest's units. Every carried entry that came back
	// has its File set (owned by the caller); the others have none.
	Units []Unit
	// Problems are the carried entries that could not be retrieved.
	Problems []string
}

// Restore retrieves luod's session, reads the manifest and retrieves every
// memfd and session it lists: Open, then Retrieve for each unit. It returns
// an error wrapping ErrNoUpdate on a cold boot. The device is closed before
// it returns; the session stays open and unfinished. (luod itself calls
// Open and Retrieve, starting each unit as soon as its own entries are
// back, with its memory charged to the unit's cgroup.)
func Restore(k Kernel) (*Restored, error) {
	r, err := Open(k)
	if err != nil || r.Manifest == nil {
		return r, err
	}
	for i := range r.Units {
		r.Retrieve(i)
	}
	return r, nil
}

// Open is the first half of Restore: it retrieves luod's session, reads the
// manifest and retrieves the LUO sessions it lists (which need the device),
// and closes the device. The memfds are left for Retrieve, unit by unit, so
// that each unit can start as soon as its own are back.
func Open(k Kernel) (*Restored, error) {
	dev, err := k.Open()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNoUpdate, err)
		}
		return nil, err
	}
	defer dev.Close()
	s, err := dev.RetrieveSession(SessionName)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNoUpdate, err)
		}
		return nil, err
	}
	r := &Restored{Session: s}
	m, err := readManifest(s)
	if err != nil {
		r.Err = err
		return r, nil
	}
	if m.Kind != Kexec {
		r.Err = fmt.Errorf("manifest: kind %q in luod's LUO session", m.Kind)
		return r, nil
	}
	r.Manifest = m
	r.Units = m.Units
	for i := range r.Units {
		u := &r.Units[i]
		for j := range u.Entries {
			e := &u.Entries[j]
			if e.Fate != FateSession || e.Session == "" {
				continue
			}
			is, err := dev.RetrieveSession(e.Session)
			if err != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("%s %q: %v", u.Name, e.Name, err))
				continue
			}
			e.File = is.File()
		}
	}
	return r, nil
}

// Retrieve retrieves the memfds of r.Units[i] from luod's session, setting
// their File, and adds what failed to r.Problems. The kernel charges their
// pages to the caller's memory cgroup (see Restore).
func (r *Restored) Retrieve(i int) {
	u := &r.Units[i]
	for j := range u.Entries {
		e := &u.Entries[j]
		if e.Fate != FatePreserve {
			continue
		}
		var err error
		if e.File, err = r.Session.RetrieveFD(e.Token); err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%s %q: %v", u.Name, e.Name, err))
		}
	}
}

// readManifest retrieves and decodes the manifest at token 0 of s.
func readManifest(s Session) (*Manifest, error) {
	f, err := s.RetrieveFD(0)
	if err != nil {
		return nil, fmt.Errorf("retrieve the manifest: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, maxManifest))
	if err != nil {
		return nil, fmt.Errorf("read the manifest: %w", err)
	}
	return Decode(b)
}
