//go:build linux

// Package fdstore is a unit's file descriptor store in luod, with
// systemd's semantics: a limit (FileDescriptorStoreMax=), duplicates of an
// already stored open file suppressed, names not unique, removal by name,
// and entries watched for POLLHUP/POLLERR unless stored with FDPOLL=0.
// A LUOSession= name takes one slot of the limit, however many LUO
// sessions luod holds under it (see Store).
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
	"strings"
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
	// LUOSession marks a LUO session luod holds for the unit's
	// LUOSession=Name: one it handed out (OriginHandedOut), here or in
	// the previous kernel. While Name is one of the store's session names
	// such entries share that name's one slot (see Store).
	LUOSession bool
	// MemfdPath is, for a memfd LUO restored, its /proc link before the
	// kexec ("/memfd:NAME (deleted)"): the kernel restores memfds without
	// their names. Describe shows it.
	MemfdPath string
	// Upstream is the name under which luod mirrors the entry into its own
	// service manager's fd store ("" when it does not).
	Upstream string
}

// Describe describes e's file (see the function Describe), with the name
// a restored memfd had before the kexec.
func (e *Entry) Describe() (Info, error) {
	info, err := Describe(e.File)
	if err == nil && info.Type == "memfd" && e.MemfdPath != "" && !strings.HasPrefix(info.Path, "/memfd:") {
		info.Path = e.MemfdPath
	}
	return info, err
}

// Store is one unit's fd store. Not safe for concurrent use.
//
// The limit counts slots. Each of the unit's LUOSession= names (see
// SetLimits) takes one slot, reserved whether or not its session is
// stored yet, and every entry marked LUOSession under such a name lives in
// it: after a live update luod holds two sessions under the name (the
// incoming one and a fresh outgoing one) where systemd holds one, and the
// second must never take a slot the service sized its limit for. Every
// other entry takes a slot of its own.
type Store struct {
	max      int
	sessions map[string]bool // the LUOSession= names
	entries  []*Entry
	// byKey indexes entries by inode: only entries of the same inode can
	// share an open file description, so Add compares against those only.
	byKey map[fileKey][]*Entry
}

// New returns an empty store holding at most max entries (0 disables it)
// and no LUOSession= names.
func New(max int) *Store { return &Store{max: max, byKey: map[fileKey][]*Entry{}} }

// Max returns the limit.
func (s *Store) Max() int { return s.max }

// SetLimits changes the limit and the unit's LUOSession= names. Entries
// that no longer fit are removed, the newest first (never one sharing a
// session name's slot, which removing would not free), and returned for
// the caller to log and close.
func (s *Store) SetLimits(max int, sessions []string) []*Entry {
	s.max = max
	s.sessions = map[string]bool{}
	for _, n := range sessions {
		s.sessions[n] = true
	}
	var dropped []*Entry
	used := s.Used()
	for i := len(s.entries) - 1; i >= 0 && used > s.max; i-- {
		if e := s.entries[i]; !s.inSessionSlot(e) {
			dropped = append(dropped, e)
			used--
		}
	}
	gone := map[*Entry]bool{}
	for _, e := range dropped {
		gone[e] = true
		s.unindex(e)
	}
	s.entries = slices.DeleteFunc(s.entries, func(e *Entry) bool { return gone[e] })
	return dropped
}

// inSessionSlot reports whether e lives in the slot of a LUOSession= name.
func (s *Store) inSessionSlot(e *Entry) bool { return e.LUOSession && s.sessions[e.Name] }

// Used returns the slots in use, the number the limit bounds: one per
// LUOSession= name, one per other entry.
func (s *Store) Used() int {
	n := len(s.sessions)
	for _, e := range s.entries {
		if !s.inSessionSlot(e) {
			n++
		}
	}
	return n
}

// Len returns the number of entries.
func (s *Store) Len() int { return len(s.entries) }

// Entries returns the entries in insertion order. The slice is a copy.
func (s *Store) Entries() []*Entry { return slices.Clone(s.entries) }

// Add stores f under name and returns the new entry. It fails with ErrFull
// when the store is full and with ErrDuplicate when the same open file is
// stored already; in both cases f is not taken (the caller closes it). A
// LUO session under a LUOSession= name, whether luod handed it out
// (OriginHandedOut) or the service stored it back (keep does, after a live
// update, to leave one session under the name), is marked LUOSession: it
// goes into that name's slot, which is never full.
func (s *Store) Add(name string, f *os.File, poll bool, origin Origin) (*Entry, error) {
	luoSession := origin == OriginHandedOut || (s.sessions[name] && isSession(f))
	if !(luoSession && s.sessions[name]) && s.Used() >= s.max {
		return nil, fmt.Errorf("%w (FileDescriptorStoreMax=%d)", ErrFull, s.max)
	}
	key := keyOf(f)
	for _, e := range s.byKey[key] {
		if SameFile(e.File, f) {
			return nil, fmt.Errorf("%w as %q", ErrDuplicate, e.Name)
		}
	}
	e := s.Adopt(name, f, poll, origin)
	e.LUOSession = luoSession
	return e, nil
}

// Adopt appends an entry without the limit and duplicate checks, for
// rebuilding a store from a manifest or a re-exec where the entries were
// checked when they were first stored. The caller marks a session luod
// handed out (Entry.LUOSession).
func (s *Store) Adopt(name string, f *os.File, poll bool, origin Origin) *Entry {
	e := &Entry{ID: nextID.Add(1), key: keyOf(f), Name: name, File: f, Poll: poll, Origin: origin, Added: time.Now()}
	s.entries = append(s.entries, e)
	s.byKey[e.key] = append(s.byKey[e.key], e)
	return e
}

// isSession tells whether f is a LUO session.
func isSession(f *os.File) bool {
	info, err := Describe(f)
	return err == nil && info.Session != ""
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
