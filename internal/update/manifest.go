package update

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/sdnotify"
)

// ManifestVersion is the manifest format this package writes and reads.
// Version 1 (luod 0.1) kept carried and lost entries apart and luod's
// re-exec state in a record of its own.
const ManifestVersion = 2

// ErrVersion is wrapped by Decode's error for a manifest of another
// version.
var ErrVersion = errors.New("unsupported manifest version")

// Manifest is the record one luod hands to the next: across a kexec, JSON
// in a sealed memfd at token 0 of luod's LUO session; across a re-exec,
// JSON in a memfd inherited by the new luod. The memfd of a kexec is
// allocated with spare room and NUL padding (Capacity), so the timeline can
// still be completed after the memfd is preserved: the next kernel gets the
// pages as they are at reboot().
type Manifest struct {
	Version int  `json:"version"`
	Kind    Kind `json:"kind"`
	// Count is the number of kexec live updates since the last cold boot,
	// this one included for a kexec manifest.
	Count int `json:"count"`
	// From is the kernel the update leaves, To the one it loaded.
	From Boot `json:"from"`
	To   Boot `json:"to"`
	// Timeline holds the moments of the update before the reboot or exec.
	Timeline Timeline `json:"timeline"`
	// Units are the units with what was done with each entry of their
	// stores, by unit name without duplicates.
	Units []Unit `json:"units"`
	// Manager is the state of the luod that re-executes (Soft and Reexec
	// manifests only).
	Manager *Manager `json:"manager,omitempty"`
	// Outcomes counts the updates since the last cold boot by kind and
	// result, this one not included.
	Outcomes []Outcome `json:"outcomes,omitempty"`
	// Slot is the fleet slot the host holds for this update; Health the
	// gate the next luod applies; RolledBack is set when this update is
	// a rollback (see fleet.go).
	Slot       *Slot       `json:"slot,omitempty"`
	Health     *Health     `json:"health,omitempty"`
	RolledBack *RolledBack `json:"rolled_back,omitempty"`
}

// Outcome counts the updates of one kind with one result: ok, lost (done,
// some fds lost), refused (the plan refused) or aborted (failed before the
// point of no return).
type Outcome struct {
	Kind   Kind   `json:"kind"`
	Result string `json:"result"`
	Count  int    `json:"count"`
}

// The results of Outcome.
const (
	ResultOK       = "ok"
	ResultProblems = "problems" // no fd lost, but the report lists problems
	ResultLost     = "lost"
	ResultRefused  = "refused"
	ResultAborted  = "aborted"
	// ResultRolledBack: the health gate failed in the next kernel, and
	// luod went back into the previous one with every store.
	ResultRolledBack = "rolled-back"
)

// CountOutcome adds one update of kind with result to os.
func CountOutcome(os []Outcome, kind Kind, result string) []Outcome {
	for i := range os {
		if os[i].Kind == kind && os[i].Result == result {
			os[i].Count++
			return os
		}
	}
	return append(os, Outcome{Kind: kind, Result: result, Count: 1})
}

// Boot names a kernel and how it was booted.
type Boot struct {
	Release string `json:"release,omitempty"`
	Image   string `json:"image,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
}

// Timeline is the old side's half of an update's timeline. Zero times were
// not reached.
type Timeline struct {
	Requested   time.Time `json:"requested"`
	SlotTaken   time.Time `json:"slot_taken,omitzero"`
	Loaded      time.Time `json:"loaded,omitzero"`
	StopBegin   time.Time `json:"stop_begin,omitzero"`
	LastStopped time.Time `json:"last_stopped,omitzero"`
	Preserved   time.Time `json:"preserved,omitzero"`
	Reboot      time.Time `json:"reboot,omitzero"`
	// Exec is when luod re-executed itself, in a soft update (which
	// preserves nothing and does not reboot).
	Exec time.Time `json:"exec,omitzero"`
}

// Manager is the state of a luod that re-executes itself, beyond its units:
// what the next luod needs to go on where this one stopped.
type Manager struct {
	Started time.Time `json:"started"`
	Reexecs int       `json:"reexecs"`
	// NotifyFD and ControlFD are the inherited sockets.
	NotifyFD  int `json:"notify_fd"`
	ControlFD int `json:"control_fd"`
	// Report is the report of the last update, if any; KexecReport the
	// one of the last kexec live update when Report is a soft update's.
	Report      *Report `json:"report,omitempty"`
	KexecReport *Report `json:"kexec_report,omitempty"`
	// SoftUpdates counts the soft updates since luod started, this one
	// included in a soft update's manifest.
	SoftUpdates int `json:"soft_updates,omitempty"`
	// Completion is a live update restored but not finished yet.
	Completion *CompletionState `json:"completion,omitempty"`
	// Held is an incoming session of luod's kept unfinished for good.
	Held *HeldState `json:"held,omitempty"`
	// Staged is the kexec update staged ahead, whose kernel stays loaded
	// across the re-exec (its plan is made again at the run).
	Staged *StagedState `json:"staged,omitempty"`
	// Upstream is the state of the mirror of the units' stores in luod's
	// own service manager's fd store.
	Upstream *UpstreamState `json:"upstream,omitempty"`
	// LastAbort is the last update that ended before the point of no
	// return.
	LastAbort *Abort `json:"last_abort,omitempty"`
	// SlotWrite is a change of the host's fleet slot not made yet.
	SlotWrite *SlotWrite `json:"slot_write,omitempty"`
}

// Abort is an update that ended before the point of no return: its kind,
// the phase it ended in, and its result (ResultRefused or ResultAborted).
type Abort struct {
	Kind   Kind      `json:"kind"`
	Phase  Phase     `json:"phase"`
	Result string    `json:"result"`
	Time   time.Time `json:"time"`
}

// UpstreamState is the mirror's counters carried across a re-exec: the
// number of the next entry name and the generation of the stored map.
type UpstreamState struct {
	Next   uint64 `json:"next"`
	MapGen uint64 `json:"map_gen"`
}

// StagedState is a Staged update carried across luod's re-exec.
type StagedState struct {
	Target kexec.Image `json:"target"`
	At     time.Time   `json:"at"`
	Checks []Check     `json:"checks,omitempty"`
	Counts Counts      `json:"counts"`
}

// Process is the supervisor's runtime state of a unit, carried across a
// re-exec. This package only carries it; the supervisor interprets it.
type Process struct {
	State         string    `json:"state"` // the supervisor's sub-state name
	Since         time.Time `json:"since"`
	MainPID       int       `json:"main_pid,omitempty"`
	SID           int       `json:"sid,omitempty"`
	ExecIndex     int       `json:"exec_index,omitempty"`
	Status        string    `json:"status,omitempty"`
	Errno         int       `json:"errno,omitempty"`
	Result        string    `json:"result,omitempty"`
	ExitCode      int       `json:"exit_code,omitempty"`
	ExitSignal    int       `json:"exit_signal,omitempty"`
	Restarts      int       `json:"restarts,omitempty"`
	Consecutive   int       `json:"consecutive,omitempty"`
	Stopping      bool      `json:"stopping,omitempty"`
	NotifyAccess  string    `json:"notify_access,omitempty"` // NOTIFYACCESS= override
	StartedAt     time.Time `json:"started_at,omitzero"`
	ReadyAt       time.Time `json:"ready_at,omitzero"`
	PendingStart  bool      `json:"pending_start,omitempty"`
	StopReason    string    `json:"stop_reason,omitempty"`
	HoldStore     bool      `json:"hold_store,omitempty"`
	Timer         string    `json:"timer,omitempty"`
	TimerDeadline time.Time `json:"timer_deadline,omitzero"`
	// StartWindow and Starts are the start limit's count.
	StartWindow time.Time `json:"start_window,omitzero"`
	Starts      int       `json:"starts,omitempty"`
	// StartLimitHits counts the starts the start limit refused.
	StartLimitHits int `json:"start_limit_hits,omitempty"`
	// StoreMax is the store's limit; Missing tells that the unit file was
	// not found (the store is pinned).
	StoreMax int  `json:"store_max"`
	Missing  bool `json:"missing,omitempty"`
	// Refused counts the fds refused or dropped from the store, and the
	// last one's name, reason and time.
	Refused     int       `json:"refused,omitempty"`
	RefusedName string    `json:"refused_name,omitempty"`
	RefusedWhy  string    `json:"refused_why,omitempty"`
	RefusedAt   time.Time `json:"refused_at,omitzero"`
	// Output are the read ends of the pipes of the unit's stdout and
	// stderr that luod reads, inherited fds: the processes writing to
	// them never see them break.
	Output []OutputPipe `json:"output,omitempty"`
}

// OutputPipe is the read end of a pipe a unit writes its output to.
type OutputPipe struct {
	FD     int    `json:"fd"`
	Stream string `json:"stream"` // stdout or stderr
}

// Encode returns m as JSON padded with NUL bytes to size bytes (the
// memfd's fixed capacity; 0 for no padding). It fails if m does not fit.
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

// Decode parses a manifest (trailing NUL padding allowed). The version is
// checked first: a manifest of another version fails with an error
// wrapping ErrVersion and nothing else is interpreted. Then the manifest is
// validated (Validate).
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
	if *head.Version != ManifestVersion {
		return nil, fmt.Errorf("manifest: version %d, this luod reads version %d: %w", *head.Version, ManifestVersion, ErrVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks what the next luod relies on: a known kind, unique unit
// names, valid fd names, and that every carried entry says how to get it
// back: a kexec carries memfds by unique non-zero token and sessions by
// unique valid name; a re-exec carries every entry as an inherited fd
// number (3 or above, unique, none of the manager's sockets).
func (m *Manifest) Validate() error {
	switch m.Kind {
	case Kexec:
		if m.Manager != nil {
			return errors.New("manifest: a kexec manifest carries no manager state")
		}
	case Soft, Reexec:
		if m.Manager == nil {
			return fmt.Errorf("manifest: a %s manifest needs the manager state", m.Kind)
		}
	default:
		return fmt.Errorf("manifest: unknown kind %q", m.Kind)
	}
	if m.Count < 0 {
		return fmt.Errorf("manifest: negative count %d", m.Count)
	}
	fds := map[int]string{}
	if mg := m.Manager; mg != nil {
		for what, fd := range map[string]int{"notify socket": mg.NotifyFD, "control socket": mg.ControlFD} {
			if fd < 3 {
				return fmt.Errorf("manifest: invalid %s fd %d", what, fd)
			}
		}
		if mg.NotifyFD == mg.ControlFD {
			return fmt.Errorf("manifest: notify and control sockets share fd %d", mg.NotifyFD)
		}
		fds[mg.NotifyFD], fds[mg.ControlFD] = "the notify socket", "the control socket"
		var sessionFDs []int
		if c := mg.Completion; c != nil && c.SessionFD != 0 {
			sessionFDs = append(sessionFDs, c.SessionFD)
		}
		if h := mg.Held; h != nil {
			sessionFDs = append(sessionFDs, h.SessionFD)
		}
		for _, fd := range sessionFDs {
			if fd < 3 || fds[fd] != "" {
				return fmt.Errorf("manifest: invalid session fd %d", fd)
			}
			fds[fd] = "luod's session"
		}
	}
	tokens := map[uint64]string{}
	sessions := map[string]string{}
	units := map[string]bool{}
	for _, u := range m.Units {
		if !validUnitName(u.Name) {
			return fmt.Errorf("manifest: invalid unit name %q", u.Name)
		}
		if units[u.Name] {
			return fmt.Errorf("manifest: unit %q listed twice", u.Name)
		}
		units[u.Name] = true
		if (u.Process != nil) != (m.Kind != Kexec) {
			return fmt.Errorf("manifest: unit %q: process state belongs in re-exec manifests only", u.Name)
		}
		if u.Process != nil {
			for _, p := range u.Process.Output {
				if p.FD < 3 || fds[p.FD] != "" {
					return fmt.Errorf("manifest: unit %q: invalid output fd %d", u.Name, p.FD)
				}
				if p.Stream != "stdout" && p.Stream != "stderr" {
					return fmt.Errorf("manifest: unit %q: invalid output stream %q", u.Name, p.Stream)
				}
				fds[p.FD] = u.Name
			}
		}
		for i, e := range u.Entries {
			where := fmt.Sprintf("manifest: unit %q entry %d (%q)", u.Name, i, e.Name)
			if err := sdnotify.ValidFDName(e.Name); err != nil {
				return fmt.Errorf("%s: invalid fd name", where)
			}
			if err := m.validCarrier(&e, tokens, sessions, fds, u.Name); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
	}
	return nil
}

// validCarrier checks how e is carried, recording its token, session or fd
// in the maps shared by every entry.
func (m *Manifest) validCarrier(e *Entry, tokens map[uint64]string, sessions map[string]string, fds map[int]string, unit string) error {
	if m.Kind != Kexec {
		if e.Fate != FateInherit {
			return fmt.Errorf("fate %q in a %s manifest", e.Fate, m.Kind)
		}
		if e.FD < 3 {
			return fmt.Errorf("invalid fd number %d", e.FD)
		}
		if prev := fds[e.FD]; prev != "" {
			return fmt.Errorf("fd %d already used by %s", e.FD, prev)
		}
		fds[e.FD] = unit
		return nil
	}
	switch e.Fate {
	case FatePreserve:
		if e.Token == 0 {
			return errors.New("token 0 is the manifest's")
		}
		if prev := tokens[e.Token]; prev != "" {
			return fmt.Errorf("token %d already used by %s", e.Token, prev)
		}
		tokens[e.Token] = unit
	case FateSession:
		if e.Session == "" {
			return nil // a memfd carried by the unit's own session
		}
		if err := luo.ValidateName(e.Session); err != nil {
			return err
		}
		if prev := sessions[e.Session]; prev != "" {
			return fmt.Errorf("session %q already listed for %s", e.Session, prev)
		}
		sessions[e.Session] = unit
	case FateLost, FateDrop:
	default:
		return fmt.Errorf("fate %q in a kexec manifest", e.Fate)
	}
	return nil
}

// validUnitName accepts what a unit file's name can be: non-empty UTF-8
// without '/', NUL or newline.
func validUnitName(name string) bool {
	return name != "" && utf8.ValidString(name) && !strings.ContainsAny(name, "/\x00\n")
}
