// Package manifest is the record luod hands to the next kernel (or to its
// re-executed self): for every unit, the fd-store entries that were carried
// and how to get each back, what was lost and why, the update's timeline
// and the live-update counter.
//
// In a kexec live update the manifest is JSON in a sealed memfd preserved at
// token 0 of luod's own LUO session. The memfd is allocated with spare room
// and NUL padding, so the timeline can still be written after the memfd is
// preserved: the next kernel gets the pages as they are at reboot().
//
// Decoding refuses versions it does not know (ErrVersion) before reading
// anything else, so a newer manifest is never half-understood. Imported by
// internal/update and luoctl.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the manifest format this package writes and reads.
const Version = 1

// ErrVersion is wrapped by Decode's error for a manifest of another version.
var ErrVersion = errors.New("unsupported manifest version")

// Manifest is one update's record.
type Manifest struct {
	Version int `json:"version"`
	// Kind is "kexec" (a kernel live update) or "soft" (luod re-executed
	// itself through the same path, no kernel change).
	Kind string `json:"kind"`
	// Count is the number of this update: 1 for the first live update since
	// a cold boot. The next kernel's luod carries it forward.
	Count int `json:"count"`
	// From describes the kernel the update left: its release and command
	// line; To the kernel it loaded.
	From Kernel `json:"from"`
	To   Kernel `json:"to"`
	// Timeline holds the moments of the update before the reboot.
	Timeline Timeline `json:"timeline"`
	// Units maps unit names to what was carried for them.
	Units map[string]*Unit `json:"units"`
}

// Kernel names a kernel.
type Kernel struct {
	Release string `json:"release,omitempty"`
	Image   string `json:"image,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
}

// Timeline is the old kernel's half of the update's timeline. Zero times
// were not reached.
type Timeline struct {
	Requested   time.Time `json:"requested"`
	Loaded      time.Time `json:"loaded,omitzero"`
	StopBegin   time.Time `json:"stop_begin,omitzero"`
	LastStopped time.Time `json:"last_stopped,omitzero"`
	Preserved   time.Time `json:"preserved,omitzero"`
	Reboot      time.Time `json:"reboot,omitzero"`
}

// Unit is what was carried for one unit.
type Unit struct {
	// Active tells whether the unit was running when the update began; the
	// next luod starts it again.
	Active bool `json:"active"`
	// Stopped is when its main process exited during the update.
	Stopped time.Time `json:"stopped,omitzero"`
	// Entries are the carried fd-store entries in store order.
	Entries []Entry `json:"entries"`
	// Lost are the entries that could not be carried.
	Lost []Lost `json:"lost,omitempty"`
}

// Entry kinds.
const (
	KindMemfd   = "memfd"   // preserved in luod's session under Token
	KindSession = "session" // a LUO session fd, carried by keeping it open; retrieved by Session name
	KindFD      = "fd"      // a plain fd inherited across a soft update (FD is its number)
)

// Entry is one carried fd-store entry.
type Entry struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Token is the entry's token in luod's session (KindMemfd; never 0).
	Token uint64 `json:"token,omitempty"`
	// Session is the kernel name of the session (KindSession).
	Session string `json:"session,omitempty"`
	// FD is the inherited fd number (KindFD, soft updates only).
	FD int `json:"fd,omitempty"`
	// Poll is the entry's FDPOLL= setting.
	Poll bool `json:"poll"`
	// Size is the memfd's size in bytes, for the report.
	Size int64 `json:"size,omitempty"`
	// LUOSession marks a session luod created for LUOSession=.
	LUOSession bool `json:"luo_session,omitempty"`
}

// Lost is an entry that could not be carried, and why.
type Lost struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Encode returns m as JSON padded with NUL bytes to at least size bytes
// (the memfd's fixed capacity; 0 for no padding). It fails if m does not
// fit in size.
func Encode(m *Manifest, size int) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode: %w", err)
	}
	if size > 0 {
		if len(b) > size {
			return nil, fmt.Errorf("manifest: %d bytes do not fit in %d", len(b), size)
		}
		b = append(b, make([]byte, size-len(b))...)
	}
	return b, nil
}

// Capacity returns a memfd size that holds m with room for the timeline to
// be completed later: twice its current size, rounded up to 64 KiB.
func Capacity(m *Manifest) int {
	b, _ := json.Marshal(m)
	n := 2*len(b) + 4096
	const unit = 64 << 10
	return (n + unit - 1) / unit * unit
}

// Decode parses a manifest read from a memfd (trailing NUL padding
// allowed). The version is checked first: a manifest of another version
// fails with an error wrapping ErrVersion and nothing else is interpreted.
// Then the manifest is validated (Validate).
func Decode(b []byte) (*Manifest, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		if len(bytes.Trim(b[i:], "\x00")) != 0 {
			return nil, errors.New("manifest: data after the NUL padding")
		}
		b = b[:i]
	}
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("manifest: not valid JSON: %w", err)
	}
	if head.Version == nil {
		return nil, errors.New("manifest: no version field")
	}
	if *head.Version != Version {
		return nil, fmt.Errorf("manifest: version %d, this luod reads version %d: %w", *head.Version, Version, ErrVersion)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the invariants the restore relies on: known kinds, tokens
// non-zero and unique, session names 1..63 bytes, entry names valid fd
// names.
func (m *Manifest) Validate() error {
	if m.Kind != "kexec" && m.Kind != "soft" {
		return fmt.Errorf("manifest: unknown kind %q", m.Kind)
	}
	if m.Count < 0 {
		return fmt.Errorf("manifest: negative count %d", m.Count)
	}
	tokens := map[uint64]string{}
	sessions := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(m.Units)) {
		u := m.Units[name]
		if name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, "/\x00\n") {
			return fmt.Errorf("manifest: invalid unit name %q", name)
		}
		if u == nil {
			return fmt.Errorf("manifest: unit %q: null", name)
		}
		for i, e := range u.Entries {
			where := fmt.Sprintf("manifest: unit %q entry %d (%q)", name, i, e.Name)
			if !validFDName(e.Name) {
				return fmt.Errorf("%s: invalid fd name", where)
			}
			switch e.Kind {
			case KindMemfd:
				if e.Token == 0 {
					return fmt.Errorf("%s: token 0 is the manifest's", where)
				}
				if prev, dup := tokens[e.Token]; dup {
					return fmt.Errorf("%s: token %d already used by %s", where, e.Token, prev)
				}
				tokens[e.Token] = name
			case KindSession:
				if len(e.Session) == 0 || len(e.Session) > 63 || strings.IndexByte(e.Session, 0) >= 0 {
					return fmt.Errorf("%s: invalid session name %q", where, e.Session)
				}
				if prev, dup := sessions[e.Session]; dup {
					return fmt.Errorf("%s: session %q already listed for %s", where, e.Session, prev)
				}
				sessions[e.Session] = name
			case KindFD:
				if e.FD < 3 {
					return fmt.Errorf("%s: invalid fd number %d", where, e.FD)
				}
			default:
				return fmt.Errorf("%s: unknown kind %q", where, e.Kind)
			}
		}
	}
	return nil
}

// validFDName is systemd's fdname_is_valid: printable ASCII without ':',
// at most 255 bytes.
func validFDName(s string) bool {
	if len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == ':' {
			return false
		}
	}
	return true
}
