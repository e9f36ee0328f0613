package update

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/manifest"
	"github.com/liveupdate/luo/memfd"
)

// Item is one fd-store entry offered for preservation.
type Item struct {
	Unit string
	Name string
	File *os.File
	Poll bool
	// Session is set for a LUO session fd: its kernel name and direction.
	Session    string
	Incoming   bool
	LUOSession bool // luod created it for LUOSession=
	Size       int64
	// Type is the file's kind (fdstore.Info.Type).
	Type string
	// Fate is what the update does with it (control.Fate*), Reason why.
	Fate, Reason string
}

// Prepared is luod's outgoing session holding the stores' memfds and the
// manifest, kept open until the reboot.
type Prepared struct {
	session  *luo.Session
	manifest *os.File
	capacity int
	m        *manifest.Manifest
}

// Preserve creates luod's session on dev, preserves every item whose
// fate is "preserve" in it (tokens from 1, in order), records the "session"
// items by name and the "lost" ones with their reason, and writes the
// manifest m at token 0. m.Units must list every unit of the items. A
// memfd the kernel refuses fails the whole preservation (the session is
// closed, which unpreserves everything): the plan promised it. The one
// exception is EBUSY for a memfd of a unit that keeps its own outgoing
// session (see InOwnSession). inject, when not nil, is returned in place of
// the kernel's answer for the first memfd (fault-injection tests).
func Preserve(devPath string, m *manifest.Manifest, items []Item, inject error) (*Prepared, error) {
	dev, err := luo.OpenPath(devPath)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	s, err := dev.CreateSession(SessionName)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	token := uint64(1)
	for _, it := range items {
		u := m.Units[it.Unit]
		switch it.Fate {
		case "lost":
			u.Lost = append(u.Lost, manifest.Lost{Name: it.Name, Reason: it.Reason})
		case "session":
			if it.Session != "" {
				u.Entries = append(u.Entries, manifest.Entry{Name: it.Name, Kind: manifest.KindSession, Session: it.Session, Poll: it.Poll, LUOSession: it.LUOSession})
				continue
			}
			// A memfd carried by the unit's own session: nothing to do.
		case "preserve":
			err := s.PreserveFD(it.File, token)
			if inject != nil && err == nil {
				err, inject = &luo.Error{Op: "PRESERVE_FD", Session: SessionName, Token: token, Err: inject, Detail: "injected fault"}, nil
			}
			if InOwnSession(items, it, err) {
				continue // carried by the unit's own session, which luod keeps open
			}
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", it.Unit, it.Name, err)
			}
			u.Entries = append(u.Entries, manifest.Entry{Name: it.Name, Kind: manifest.KindMemfd, Token: token, Poll: it.Poll, Size: it.Size})
			token++
		}
	}
	p := &Prepared{session: s, m: m}
	if err := p.writeManifest(); err != nil {
		return nil, err
	}
	if err := s.PreserveFD(p.manifest, 0); err != nil {
		p.manifest.Close()
		return nil, fmt.Errorf("preserve the manifest: %w", err)
	}
	ok = true
	return p, nil
}

// InOwnSession reports whether err, from preserving the memfd it, means
// that the memfd is already preserved in an outgoing LUO session of the
// same unit's store: EBUSY while the unit keeps such a session. Services
// that keep their state in their own session (package keep in session
// mode) also put the memfds in the fd store for restarts; those memfds
// cross the kexec inside the service's session, not luod's. The kernel
// cannot say which session holds a file, so this is an inference.
func InOwnSession(items []Item, it Item, err error) bool {
	if !errors.Is(err, syscall.EBUSY) {
		return false
	}
	for _, o := range items {
		if o.Unit == it.Unit && o.Session != "" && !o.Incoming {
			return true
		}
	}
	return false
}

// SessionProblem says why a session fd cannot be carried, or "".
func SessionProblem(it Item) string {
	switch {
	case it.Incoming:
		return "incoming LUO session: the kernel does not carry it again; its files must be retrieved and preserved into a new outgoing session"
	case Reserved(it.Session) && !it.LUOSession:
		return fmt.Sprintf("session name %q is in luod's reserved namespace (\"luod\", \"luod/...\")", it.Session)
	}
	return ""
}

// Superseded reports whether in, an incoming session, is superseded by an
// outgoing session stored under the same name for the same unit: the
// incoming one is then an expected leftover.
func Superseded(items []Item, in Item) bool {
	if !in.Incoming {
		return false
	}
	for _, it := range items {
		if it.Unit == in.Unit && it.Name == in.Name && it.Session != "" && !it.Incoming {
			return true
		}
	}
	return false
}

// writeManifest (re)writes the manifest memfd in place.
func (p *Prepared) writeManifest() error {
	if p.manifest == nil {
		p.capacity = manifest.Capacity(p.m)
		f, err := memfd.New("luod-manifest", int64(p.capacity))
		if err != nil {
			return err
		}
		if err := memfd.AddSeals(f, memfd.SealShrink|memfd.SealGrow|memfd.SealSeal); err != nil {
			f.Close()
			return err
		}
		p.manifest = f
	}
	b, err := manifest.Encode(p.m, p.capacity)
	if err != nil {
		return err
	}
	if _, err := p.manifest.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// Manifest returns the manifest being prepared.
func (p *Prepared) Manifest() *manifest.Manifest { return p.m }

// Finalize records the last moments of the timeline in the preserved
// manifest, right before the reboot: the next kernel gets the memfd's pages
// as they are then.
func (p *Prepared) Finalize(reboot time.Time) error {
	p.m.Timeline.Reboot = reboot
	return p.writeManifest()
}

// Abort closes luod's session, which unpreserves everything in it.
func (p *Prepared) Abort() error {
	p.manifest.Close()
	return p.session.Close()
}

// TrialPreserve tells, changing nothing, which memfds the kernel would
// accept: it preserves them into a temporary session and closes it. It
// returns the error for each item that fails (by index).
func TrialPreserve(devPath string, items []Item) (map[int]error, error) {
	dev, err := luo.OpenPath(devPath)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	name := SessionPrefix + "plan"
	s, err := dev.CreateSession(name)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	fails := map[int]error{}
	for i, it := range items {
		if it.Fate != "preserve" {
			continue
		}
		if err := s.PreserveFD(it.File, uint64(i+1)); err != nil {
			fails[i] = err
		}
	}
	return fails, nil
}

// Restored is what a live update left for luod in the new kernel.
type Restored struct {
	// Manifest is nil when it could not be read (see Err).
	Manifest *manifest.Manifest
	// Err tells why the manifest could not be used; the session is then
	// kept unfinished so that nothing more is discarded.
	Err error
	// Session is luod's incoming session, retrieved and not finished.
	Session *luo.Session
	// Units holds the retrieved entries by unit, in store order.
	Units map[string][]Entry
	// Problems are entries that could not be retrieved.
	Problems []string
}

// Entry is one retrieved fd-store entry.
type Entry struct {
	manifest.Entry
	File *os.File
}

// ErrNoUpdate is returned by Restore on a boot that is not a live update
// (no device, or no luod session).
var ErrNoUpdate = errors.New("no live update to restore")

// Restore retrieves luod's session, reads the manifest and retrieves every
// memfd and session it lists. It returns ErrNoUpdate on a cold boot. The
// device is closed before it returns; the session stays open and
// unfinished.
func Restore(devPath string) (*Restored, error) {
	dev, err := luo.OpenPath(devPath)
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
	r := &Restored{Session: s, Units: map[string][]Entry{}}
	mf, err := s.RetrieveFD(0)
	if err != nil {
		r.Err = fmt.Errorf("retrieve the manifest: %w", err)
		return r, nil
	}
	b, err := io.ReadAll(io.NewSectionReader(mf, 0, 1<<30))
	mf.Close()
	if err != nil {
		r.Err = fmt.Errorf("read the manifest: %w", err)
		return r, nil
	}
	m, err := manifest.Decode(b)
	if err != nil {
		r.Err = err
		return r, nil
	}
	r.Manifest = m
	for name, u := range m.Units {
		for _, e := range u.Entries {
			var f *os.File
			switch e.Kind {
			case manifest.KindMemfd:
				f, err = s.RetrieveFD(e.Token)
			case manifest.KindSession:
				var is *luo.Session
				if is, err = dev.RetrieveSession(e.Session); err == nil {
					f = is.File()
				}
			default:
				err = fmt.Errorf("entry kind %q cannot come through a kexec", e.Kind)
			}
			if err != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("%s %q: %v", name, e.Name, err))
				continue
			}
			r.Units[name] = append(r.Units[name], Entry{Entry: e, File: f})
		}
	}
	return r, nil
}
