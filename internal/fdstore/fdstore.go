//go:build linux

// Package fdstore is a unit's file descriptor store in luod, with
// systemd's semantics: a limit (FileDescriptorStoreMax=), duplicates of an
// already stored open file suppressed, names not unique, removal by name,
// and entries watched for POLLHUP/POLLERR unless stored with FDPOLL=0.
// Entries keep their insertion order (systemd hands them back newest first
// and calls the order arbitrary; luod promises insertion order).
//
// It also describes stored files (type, device, inode, path, flags) the way
// `systemd-analyze fdstore` does, with the facts a live update needs (is it
// a LUO session, can LUO preserve it); what an update does with an entry is
// decided by package update, not here. Imported by luod's supervisor and
// package update. Linux only.
package fdstore

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"
)

// ErrFull is returned by Add when the store holds Max entries.
var ErrFull = errors.New("fd store is full")

// ErrDuplicate is returned by Add for a file whose open file description is
// already in the store; the existing entry keeps its name.
var ErrDuplicate = errors.New("open file is already in the fd store")

var nextID atomic.Uint64

// Origin says how an entry got into a store.
type Origin string

// The origins of entries.
const (
	// OriginNotify: the service stored it with FDSTORE=1.
	OriginNotify Origin = "notify"
	// OriginLUO: luod restored it from the previous kernel after a live
	// update.
	OriginLUO Origin = "luo"
	// OriginHandedOut: a LUO session luod created for the unit's
	// LUOSession= and put in the store for the service.
	OriginHandedOut Origin = "luo-session"
)

// Entry is one stored fd. The store owns File.
type Entry struct {
	ID     uint64 // unique in this process
	key    fileKey
	Name   string
	File   *os.File
	Poll   bool      // watched for POLLHUP/POLLERR
	Origin Origin    // how it got there
	Added  time.Time // when it was stored
}

// Store is one unit's fd store. Not safe for concurrent use.
type Store struct {
	max     int
	entries []*Entry
	// byKey indexes entries by inode: only entries of the same inode can
	// share an open file description, so Add compares against those only.
	byKey map[fileKey][]*Entry
}

// New returns an empty store holding at most max entries (0 disables it).
func New(max int) *Store { return &Store{max: max, byKey: map[fileKey][]*Entry{}} }

// Max returns the limit.
func (s *Store) Max() int { return s.max }

// SetMax changes the limit. Entries beyond it are removed, the newest
// first, and returned for the caller to log and close.
func (s *Store) SetMax(max int) []*Entry {
	s.max = max
	if len(s.entries) <= max {
		return nil
	}
	dropped := slices.Clone(s.entries[max:])
	s.entries = s.entries[:max]
	for _, e := range dropped {
		s.unindex(e)
	}
	return dropped
}

// Len returns the number of entries.
func (s *Store) Len() int { return len(s.entries) }

// Entries returns the entries in insertion order. The slice is a copy.
func (s *Store) Entries() []*Entry { return slices.Clone(s.entries) }

// Add stores f under name and returns the new entry. It fails with ErrFull
// when the store is full and with ErrDuplicate when the same open file is
// stored already; in both cases f is not taken (the caller closes it).
func (s *Store) Add(name string, f *os.File, poll bool, origin Origin) (*Entry, error) {
	if len(s.entries) >= s.max {
		return nil, fmt.Errorf("%w (FileDescriptorStoreMax=%d)", ErrFull, s.max)
	}
	key := keyOf(f)
	for _, e := range s.byKey[key] {
		if SameFile(e.File, f) {
			return nil, fmt.Errorf("%w as %q", ErrDuplicate, e.Name)
		}
	}
	return s.Adopt(name, f, poll, origin), nil
}

// Adopt appends an entry without the limit and duplicate checks, for
// rebuilding a store from a manifest or a re-exec where the entries were
// checked when they were first stored.
func (s *Store) Adopt(name string, f *os.File, poll bool, origin Origin) *Entry {
	e := &Entry{ID: nextID.Add(1), key: keyOf(f), Name: name, File: f, Poll: poll, Origin: origin, Added: time.Now()}
	s.entries = append(s.entries, e)
	s.byKey[e.key] = append(s.byKey[e.key], e)
	return e
}

func (s *Store) unindex(e *Entry) {
	es := slices.DeleteFunc(s.byKey[e.key], func(x *Entry) bool { return x == e })
	if len(es) == 0 {
		delete(s.byKey, e.key)
	} else {
		s.byKey[e.key] = es
	}
}

// RemoveName removes every entry named name and returns them for the
// caller to close.
func (s *Store) RemoveName(name string) []*Entry {
	var removed []*Entry
	s.entries = slices.DeleteFunc(s.entries, func(e *Entry) bool {
		if e.Name == name {
			removed = append(removed, e)
			s.unindex(e)
			return true
		}
		return false
	})
	return removed
}

// RemoveID removes the entry with that ID, if present.
func (s *Store) RemoveID(id uint64) *Entry {
	for i, e := range s.entries {
		if e.ID == id {
			s.entries = slices.Delete(s.entries, i, i+1)
			s.unindex(e)
			return e
		}
	}
	return nil
}

// Take empties the store and returns its entries.
func (s *Store) Take() []*Entry {
	es := s.entries
	s.entries = nil
	s.byKey = map[fileKey][]*Entry{}
	return es
}
