package update

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/liveupdate/luo/memfd"
)

// Prepared is luod's outgoing session, holding the stores' memfds and the
// manifest, kept open until the reboot.
type Prepared struct {
	session  Session
	manifest *os.File
	capacity int
	m        *Manifest
}

// Preserve creates luod's session, preserves in it the memfds of units
// whose fate is preserve (tokens from 1, in order), records every entry in
// m.Units with its fate and token, and writes m at token 0. A memfd the
// kernel refuses fails the whole preservation (the session is closed,
// which unpreserves everything): the plan promised it. The one exception
// is EBUSY for a memfd of a unit that holds an outgoing session: the memfd
// is in that session (see Decide), and its fate becomes session.
func Preserve(k Kernel, m *Manifest, units []Unit) (*Prepared, error) {
	dev, err := k.Open()
	if err != nil {
		return nil, err
	}
	s, err := dev.CreateSession(SessionName)
	dev.Close()
	if err != nil {
		return nil, err
	}
	m.Units = make([]Unit, len(units))
	token := uint64(1)
	for i, u := range units {
		u.Entries = slices.Clone(u.Entries)
		for j := range u.Entries {
			e := &u.Entries[j]
			if e.Fate != FatePreserve {
				continue
			}
			err := s.PreserveFD(e.File, token)
			if inOwnSession(&u, err) {
				e.Fate, e.Reason = FateSession, "already preserved (EBUSY): carried by the unit's own LUO session"
				continue
			}
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("%s %q: %w", u.Name, e.Name, err)
			}
			e.Token = token
			token++
		}
		m.Units[i] = u
	}
	p := &Prepared{session: s, m: m}
	if err := p.writeManifest(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.PreserveFD(p.manifest, 0); err != nil {
		p.Abort()
		return nil, fmt.Errorf("preserve the manifest: %w", err)
	}
	return p, nil
}

// writeManifest (re)writes the manifest memfd in place.
func (p *Prepared) writeManifest() error {
	if p.manifest == nil {
		p.capacity = Capacity(p.m)
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
	b, err := Encode(p.m, p.capacity)
	if err != nil {
		return err
	}
	if _, err := p.manifest.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// Finalize records the moment of the reboot in the preserved manifest,
// right before it: the next kernel gets the memfd's pages as they are then.
func (p *Prepared) Finalize(reboot time.Time) error {
	p.m.Timeline.Reboot = reboot
	return p.writeManifest()
}

// Abort closes luod's session, which unpreserves everything in it.
func (p *Prepared) Abort() error {
	if p.manifest != nil {
		p.manifest.Close()
	}
	return p.session.Close()
}
