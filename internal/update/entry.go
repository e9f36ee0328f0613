package update

import (
	"os"
	"strings"
	"time"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/unit"
)

// Kind is the kind of an update.
type Kind string

// The kinds of updates.
const (
	// Kexec is a live update into the next kernel.
	Kexec Kind = "kexec"
	// Soft is an update without a kernel change: luod re-executes itself
	// along the same path, optionally restarting the units.
	Soft Kind = "soft"
	// Reexec is luod re-executing itself outside an update
	// (daemon-reexec); only its manifest uses this kind.
	Reexec Kind = "reexec"
)

// Fate is what an update does with one fd-store entry.
type Fate string

// The fates of an entry. Decide assigns them; the names are also those of
// the control API.
const (
	// FatePreserve: a memfd, preserved in luod's LUO session and handed
	// back from it in the next kernel.
	FatePreserve Fate = "preserve"
	// FateSession: a LUO session fd, kept open through the kexec and
	// handed back by name; or a memfd already preserved in the unit's own
	// outgoing session, which the service retrieves itself.
	FateSession Fate = "session"
	// FateInherit: a soft update or re-exec; the next luod inherits the fd.
	FateInherit Fate = "inherit"
	// FateDrop: not carried and not needed, such as an incoming session
	// superseded by an outgoing one of the same name.
	FateDrop Fate = "drop"
	// FateLost: not carried; the unit will not get it back.
	FateLost Fate = "lost"
)

// Carried reports whether the entry reaches the next luod's store through
// luod: preserved, a session kept open, or inherited.
func (f Fate) Carried() bool { return f == FatePreserve || f == FateSession || f == FateInherit }

// Entry is one fd-store entry on its way through an update: the facts
// about its file taken from the store, the fate Decide gave it, how it is
// carried (Token, FD), and the file. The same type is written into the
// manifest (File and the probes are not) and comes back from Restore.
type Entry struct {
	// Name is the entry's FDNAME=.
	Name string `json:"name"`
	// Poll is its FDPOLL= setting: watched for POLLHUP/POLLERR.
	Poll bool `json:"poll"`
	// Origin tells how it got into the store. Across a re-exec it is
	// kept; after a kexec the next luod stores it as fdstore.OriginLUO.
	Origin fdstore.Origin `json:"origin,omitempty"`
	// Added is when it was first stored; it is kept across both.
	Added time.Time `json:"added,omitzero"`
	// LUOSession marks a session luod handed out for the unit's
	// LUOSession= (fdstore.Entry.LUOSession); it is kept across both.
	LUOSession bool `json:"luo_session,omitempty"`
	// Upstream is fdstore.Entry.Upstream, kept across a re-exec.
	Upstream string `json:"upstream,omitempty"`

	// Type is the file's type as `luoctl fdstore` shows it: memfd,
	// luo-session, sock, fifo, reg, ... (fdstore.Info.Type).
	Type string `json:"type,omitempty"`
	// Size is the file's size in bytes.
	Size int64 `json:"size,omitempty"`
	// Path is a memfd's /proc link, "/memfd:NAME (deleted)": the next
	// kernel restores it without its name, and luod shows this one
	// (fdstore.Entry.MemfdPath).
	Path string `json:"path,omitempty"`
	// Session is the kernel's name of a LUO session fd, and Incoming its
	// direction.
	Session  string `json:"session,omitempty"`
	Incoming bool   `json:"incoming,omitempty"`
	// Problem says why the file could not be described; Decide loses it.
	Problem string `json:"-"`
	// Unpreservable says why LUO cannot preserve the file ("" when it
	// can: a memfd or an unlinked tmpfs file).
	Unpreservable string `json:"-"`
	// Trial is the kernel's answer to a trial preservation of the file
	// (TrialPreserve); nil when it was accepted or not tried.
	Trial error `json:"-"`

	// Fate is what the update does with the entry, Reason why.
	Fate   Fate   `json:"fate"`
	Reason string `json:"reason,omitempty"`
	// Token is the entry's token in luod's session (FatePreserve after
	// Preserve; never 0, the manifest's).
	Token uint64 `json:"token,omitempty"`
	// FD is the fd number the next luod inherits (FateInherit, in a
	// re-exec manifest).
	FD int `json:"fd,omitempty"`

	// File is the stored file. It belongs to the store that holds the
	// entry; Restore hands out new ones, owned by the caller.
	File *os.File `json:"-"`
}

// FromStore returns the Entry of a store entry, with the facts about its
// file (fdstore.Describe). The file stays the store's.
func FromStore(se *fdstore.Entry) Entry {
	e := Entry{Name: se.Name, Poll: se.Poll, Origin: se.Origin, Added: se.Added, LUOSession: se.LUOSession, File: se.File}
	info, err := se.Describe()
	if err != nil {
		e.Problem = err.Error()
		return e
	}
	e.Type, e.Size, e.Session, e.Incoming = info.Type, info.Size, info.Session, info.Incoming
	if info.Type == "memfd" {
		e.Path = info.Path
	}
	if info.Unpreservable != nil {
		e.Unpreservable = strings.TrimSuffix(info.Unpreservable.Error(), ": "+luo.ErrNotPreservable.Error())
	}
	return e
}

// Unit is one unit's part of an update: its store's entries and what the
// update did with the unit.
type Unit struct {
	// Name is the unit's name, such as "counter.service".
	Name string `json:"name"`
	// Preserve is its FileDescriptorStorePreserve= (snapshot only).
	Preserve unit.Preserve `json:"-"`
	// PreserveMax is its [X-LUO] PreserveMaxBytes= (snapshot only).
	PreserveMax Quota `json:"-"`
	// Active tells whether the unit was running when the update began; the
	// next luod starts it again.
	Active bool `json:"active"`
	// Stopped is when its main process exited during the update.
	Stopped time.Time `json:"stopped,omitzero"`
	// Entries are its store's entries in store order, each with its fate.
	Entries []Entry `json:"entries"`
	// Process is the supervisor's runtime state of the unit, carried across
	// a re-exec (nil in a kexec manifest).
	Process *Process `json:"process,omitempty"`
}

// holdsOutgoingSession reports whether the unit's store holds an outgoing
// LUO session: its own, or one luod handed out for LUOSession=.
func (u *Unit) holdsOutgoingSession() bool {
	for _, e := range u.Entries {
		if e.Session != "" && !e.Incoming {
			return true
		}
	}
	return false
}

// hasOutgoing reports whether the unit's store holds an outgoing session
// under the fd name name.
func (u *Unit) hasOutgoing(name string) bool {
	for _, e := range u.Entries {
		if e.Name == name && e.Session != "" && !e.Incoming {
			return true
		}
	}
	return false
}

// Phase is a step of an update, as progress and errors name it.
type Phase string

// The phases of an update, in order.
const (
	PhasePlan     Phase = "plan"     // deciding every fate and checking the kernel; nothing changes
	PhaseSlot     Phase = "slot"     // taking the host's fleet slot; nothing changed yet
	PhaseLoad     Phase = "load"     // kexec_file_load of the next kernel
	PhaseStop     Phase = "stop"     // stopping the units
	PhasePreserve Phase = "preserve" // preserving the memfds in luod's session
	PhaseManifest Phase = "manifest" // writing the manifest at token 0
	PhaseReboot   Phase = "reboot"   // reboot(LINUX_REBOOT_CMD_KEXEC)
	PhaseExec     Phase = "exec"     // a soft update: luod re-executes itself
	PhaseAbort    Phase = "abort"    // progress only: undoing a failed update
)
