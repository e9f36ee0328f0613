// Package control is luod's control API: the methods of the io.luo.Manager
// interface, their parameter and reply types, and a client and server for
// them on a root-only unix socket speaking the Varlink wire format
// (NUL-terminated JSON objects), so `varlinkctl call` works too.
//
// Imported by luod (server side) and luoctl (client side).
package control

import "time"

// Interface is the Varlink interface name of luod's API.
const Interface = "io.luo.Manager"

// DefaultSocket is where luod listens.
const DefaultSocket = "/run/luod/io.luo.Manager"

// Method names (fully qualified with Interface when on the wire).
const (
	MethodGetManager      = "GetManager"
	MethodListUnits       = "ListUnits"
	MethodGetUnit         = "GetUnit"
	MethodStartUnit       = "StartUnit"
	MethodStopUnit        = "StopUnit"
	MethodRestartUnit     = "RestartUnit"
	MethodCleanUnit       = "CleanUnit"
	MethodResetFailed     = "ResetFailed"
	MethodDumpFDStore     = "DumpFDStore"
	MethodReload          = "Reload"
	MethodReexec          = "Reexec"
	MethodPowerOff        = "PowerOff"
	MethodReboot          = "Reboot"
	MethodListSessions    = "ListSessions"
	MethodPlanUpdate      = "PlanUpdate"
	MethodRunUpdate       = "RunUpdate" // streams Progress replies ("more")
	MethodGetUpdateReport = "GetUpdateReport"
	MethodStageUpdate     = "StageUpdate"
	MethodGetStagedUpdate = "GetStagedUpdate"
	MethodUnstageUpdate   = "UnstageUpdate"
	MethodGetLogs         = "GetLogs" // with follow, streams LogLines replies ("more")
	MethodGetFleet        = "GetFleet"
	MethodReleaseFleet    = "ReleaseFleetSlot"
)

// Error names (fully qualified with Interface when on the wire).
const (
	ErrNoSuchUnit       = "NoSuchUnit"       // parameters: {"name": ...}
	ErrUnitBusy         = "UnitBusy"         // the unit is in a state that forbids the call (e.g. clean while running)
	ErrJobFailed        = "JobFailed"        // start/stop/restart did not reach the wanted state; parameters: UnitReply
	ErrUpdateFailed     = "UpdateFailed"     // parameters: UpdateFailure
	ErrUpdateInProgress = "UpdateInProgress" // another update is running
	ErrNotSupported     = "NotSupported"     // e.g. PowerOff when not PID 1
	ErrNoReport         = "NoReport"         // no update has happened since the last cold boot
	ErrNotStaged        = "NotStaged"        // no update is staged
	ErrShuttingDown     = "ShuttingDown"     // luod is stopping to exit; no re-exec or update any more
	ErrFleetUnavailable = "FleetUnavailable" // no fleet settings, or etcd cannot be reached
)

// Manager is the reply of GetManager.
type Manager struct {
	Version      string    `json:"version"`
	PID          int       `json:"pid"`
	PID1         bool      `json:"pid1"`
	Started      time.Time `json:"started"`
	Reexecs      int       `json:"reexecs"` // times this luod re-executed itself since it started
	UnitDir      string    `json:"unit_dir"`
	NotifySocket string    `json:"notify_socket"`
	Units        int       `json:"units"`
	LiveUpdates  int       `json:"live_updates"` // kexec live updates since the last cold boot
	LUO          LUOStatus `json:"luo"`
	Updating     bool      `json:"updating"`
	// PreserveBytes is the units' PreserveBytes summed, PreserveMaxBytes
	// the host's limit on it (--preserve-max-bytes), nil when there is
	// none.
	PreserveBytes    int64  `json:"preserve_bytes"`
	PreserveMaxBytes *int64 `json:"preserve_max_bytes,omitempty"`
}

// LUOStatus describes the kernel's live update support as luod sees it.
type LUOStatus struct {
	Device  bool   `json:"device"`            // /dev/liveupdate exists
	Cmdline bool   `json:"cmdline"`           // liveupdate=on on this kernel's command line
	Release string `json:"release"`           // uname -r
	Problem string `json:"problem,omitempty"` // why live update would not work, if known
}

// Unit is a unit's state, as in `luoctl status` and `luoctl list`.
type Unit struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Path        string    `json:"path,omitempty"`
	LoadState   string    `json:"load_state"` // loaded, not-found (store pinned, unit file missing), error
	LoadError   string    `json:"load_error,omitempty"`
	ActiveState string    `json:"active_state"` // inactive, activating, active, deactivating, failed
	SubState    string    `json:"sub_state"`    // dead, start, running, exited, stop-sigterm, stop-sigkill, auto-restart, failed, dead-resources-pinned
	Since       time.Time `json:"since"`        // last ActiveState change
	Type        string    `json:"type,omitempty"`
	MainPID     int       `json:"main_pid,omitempty"`
	Status      string    `json:"status,omitempty"` // last STATUS=
	Errno       int       `json:"errno,omitempty"`  // last ERRNO=
	Result      string    `json:"result,omitempty"` // success, exit-code, signal, timeout, start-limit-hit, exec ...
	ExitCode    int       `json:"exit_code,omitempty"`
	ExitSignal  string    `json:"exit_signal,omitempty"`
	Restarts    int       `json:"restarts"`
	// StartLimitHits counts the starts refused by the start limit since
	// luod started (carried across its re-exec).
	StartLimitHits int    `json:"start_limit_hits,omitempty"`
	NotifyAccess   string `json:"notify_access,omitempty"`
	// FDStoreCount is the fd store's slots in use, which FDStoreMax
	// bounds: each LUOSession= name takes one, however many LUO sessions
	// luod holds under it; every other fd one.
	FDStoreCount int `json:"fdstore_count"`
	// FDStoreBytes is the size of the store's files (regular files and
	// memfds), FDStoreSurvives how many of its entries a kexec live
	// update would carry, decided without asking the kernel (luoctl
	// fdstore asks it).
	FDStoreBytes    int64  `json:"fdstore_bytes"`
	FDStoreSurvives int    `json:"fdstore_survives"`
	FDStoreMax      int    `json:"fdstore_max"`
	FDStorePreserve string `json:"fdstore_preserve,omitempty"`
	// FDStoreRefused counts the fds luod refused to store or dropped from
	// the store since it started, FDStoreLastRefused is the last one: the
	// service cannot tell.
	FDStoreRefused     int             `json:"fdstore_refused,omitempty"`
	FDStoreLastRefused *FDStoreRefusal `json:"fdstore_last_refused,omitempty"`
	// PreserveBytes is the size of the memfds a kexec would pin in memory
	// for the next kernel (preserved in luod's session), decided without
	// asking the kernel, so a memfd the unit's own LUO session carries
	// may count (an update plan asks, and does not count it); and
	// PreserveMaxBytes the unit's limit on it ([X-LUO]
	// PreserveMaxBytes=), nil when it has none.
	PreserveBytes    int64    `json:"preserve_bytes"`
	PreserveMaxBytes *int64   `json:"preserve_max_bytes,omitempty"`
	LUOSessions      []string `json:"luo_sessions,omitempty"`
	Warnings         []string `json:"warnings,omitempty"`
	// CGroup is the unit's cgroup ("" when luod has no cgroups), and
	// Processes the processes in it (GetUnit only), as in systemctl
	// status.
	CGroup    string    `json:"cgroup,omitempty"`
	Processes []Process `json:"processes,omitempty"`
	// Log is the last lines the unit's processes wrote (GetUnit only,
	// StatusLogLines of them), as in systemctl status.
	Log []LogLine `json:"log,omitempty"`
}

// StatusLogLines is how many of a unit's last lines GetUnit returns.
const StatusLogLines = 10

// LogLine is one line a unit's process wrote to its stdout or stderr
// (StandardOutput=journal).
type LogLine struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"` // stdout, stderr; luod in its note of lines a follower lost
	// Priority is the syslog priority, 0 (emerg) to 7 (debug): from a
	// "<N>" prefix of the line, else 6 (info).
	Priority int    `json:"priority"`
	Message  string `json:"message"`
}

// LogsParams are the parameters of GetLogs.
type LogsParams struct {
	Name string `json:"name"`
	// Lines is how many of the last lines to return (0: all that luod
	// keeps).
	Lines int `json:"lines,omitempty"`
	// Follow streams the lines written after those, each reply with
	// continues, until the unit is removed or the client hangs up. The
	// call must be made with more.
	Follow bool `json:"follow,omitempty"`
}

// LogLines is the reply of GetLogs. A follower that reads too slowly
// loses lines; the next reply then starts with a line from luod saying
// how many.
type LogLines struct {
	Lines []LogLine `json:"lines"`
}

// FDStoreRefusal is an fd luod refused to store or dropped from a store.
type FDStoreRefusal struct {
	FDName string `json:"fdname"`
	// Reason is such as "full (FileDescriptorStoreMax=5)", "duplicate of
	// an fd already stored", "dropped on EPOLLHUP", "dropped to honor
	// FileDescriptorStoreMax=2".
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Process is one process of a unit.
type Process struct {
	PID     int    `json:"pid"`
	PPID    int    `json:"ppid"`
	Command string `json:"command"`
}

// UnitName is the parameter of the per-unit methods.
type UnitName struct {
	Name string `json:"name"`
	// NoBlock returns as soon as the job is queued instead of waiting for
	// the unit to reach the wanted state (start/stop/restart).
	NoBlock bool `json:"no_block,omitempty"`
}

// UnitReply is the reply of GetUnit, StartUnit, StopUnit, RestartUnit and
// CleanUnit.
type UnitReply struct {
	Unit Unit `json:"unit"`
}

// Units is the reply of ListUnits.
type Units struct {
	Units []Unit `json:"units"`
}

// ResetFailedParams are the parameters of ResetFailed.
type ResetFailedParams struct {
	Name string `json:"name,omitempty"` // "" for every unit
}

// CleanParams are the parameters of CleanUnit.
type CleanParams struct {
	Name string   `json:"name"`
	What []string `json:"what"` // only "fdstore" is supported
}

// FDStoreEntry is one fd-store entry, with the columns of
// `systemd-analyze fdstore` and whether it survives a kexec.
type FDStoreEntry struct {
	Name     string     `json:"fdname"`
	Type     string     `json:"type"`  // reg, dir, chr, blk, fifo, sock, lnk, or "memfd", "luo-session", "anon"
	DevNo    [2]uint32  `json:"devno"` // major, minor of st_dev
	Inode    uint64     `json:"inode"`
	RDevNo   *[2]uint32 `json:"rdevno"`         // for device nodes, else null
	Path     string     `json:"path"`           // readlink of the fd
	Flags    string     `json:"flags"`          // ro, wo, rw (+ ",nonblock", ",append")
	Size     int64      `json:"size,omitempty"` // bytes, for regular files and memfds
	Poll     bool       `json:"poll"`           // watched for POLLHUP/POLLERR
	Survives string     `json:"survives_kexec"` // "yes" or "no"
	Why      string     `json:"why,omitempty"`  // how it survives (e.g. "memfd, preserved in luod's session") or why not
}

// FDStore is the reply of DumpFDStore.
type FDStore struct {
	Unit     string         `json:"unit"`
	Max      int            `json:"max"`
	Preserve string         `json:"preserve"`
	Entries  []FDStoreEntry `json:"entries"`
}

// ReloadReply is the reply of Reload.
type ReloadReply struct {
	Loaded   []string `json:"loaded"`
	Errors   []string `json:"errors,omitempty"` // units that failed to load
	Warnings []string `json:"warnings,omitempty"`
}

// Session is a LUO session luod knows of: its own, or one in a store.
type Session struct {
	Name      string `json:"name"`           // the kernel's session name
	Unit      string `json:"unit,omitempty"` // store holding it
	FDName    string `json:"fdname,omitempty"`
	Direction string `json:"direction"` // outgoing, incoming
	Owner     string `json:"owner"`     // luod (manifest session, ...), luod, handed out for LUOSession=NAME; service
}

// Sessions is the reply of ListSessions.
type Sessions struct {
	Sessions []Session `json:"sessions"`
}

// UpdateParams are the parameters of PlanUpdate and RunUpdate.
type UpdateParams struct {
	Kernel       string `json:"kernel,omitempty"`
	Initrd       string `json:"initrd,omitempty"`
	Cmdline      string `json:"cmdline,omitempty"`
	ReuseCmdline bool   `json:"reuse_cmdline,omitempty"` // use this kernel's command line (plus Cmdline appended)
	AllowLoss    bool   `json:"allow_loss,omitempty"`    // proceed although some fds will be lost
	NoKexec      bool   `json:"no_kexec,omitempty"`      // soft update: re-exec luod through the same path, no kernel change
	RestartUnits bool   `json:"restart_units,omitempty"` // soft update: also stop and start the units
	StopTimeout  string `json:"stop_timeout,omitempty"`  // Go duration; default: each unit's TimeoutStopSec
	// HealthTimeout (a Go duration) is the health gate: in the next
	// kernel every unit that was active must be READY within it, or a
	// kexec rolls back into RollbackKernel (default: the running
	// kernel's image). Default: luod's --health-timeout.
	HealthTimeout   string `json:"health_timeout,omitempty"`
	RollbackKernel  string `json:"rollback_kernel,omitempty"`
	RollbackInitrd  string `json:"rollback_initrd,omitempty"`
	RollbackCmdline string `json:"rollback_cmdline,omitempty"`
	// SlotWait (a Go duration) is how long to wait for a fleet update
	// slot; default: fail at once when all are held.
	SlotWait string `json:"slot_wait,omitempty"`
	// Staged runs the update StageUpdate prepared (RunUpdate only): its
	// kernel, initrd and command line; kernel, initrd, cmdline and
	// reuse_cmdline must not be given.
	Staged bool `json:"staged,omitempty"`
}

// StageParams are the parameters of StageUpdate.
type StageParams struct {
	Kernel       string `json:"kernel,omitempty"`
	Initrd       string `json:"initrd,omitempty"`
	Cmdline      string `json:"cmdline,omitempty"`
	ReuseCmdline bool   `json:"reuse_cmdline,omitempty"`
	AllowLoss    bool   `json:"allow_loss,omitempty"` // stage although some fds will be lost
}

// Staged is the reply of StageUpdate and GetStagedUpdate: a kexec update
// whose plan was made and whose kernel is loaded, waiting for
// RunUpdate(staged).
type Staged struct {
	Kernel   string    `json:"kernel"`
	Initrd   string    `json:"initrd,omitempty"`
	Cmdline  string    `json:"cmdline,omitempty"`
	StagedAt time.Time `json:"staged_at"`
	// Loaded is false when the kernel was unloaded or replaced outside
	// luod since: RunUpdate(staged) would fail.
	Loaded bool    `json:"loaded"`
	Checks []Check `json:"checks"`
	// The staged plan's carried fds and losses (see Plan), when staged.
	TotalBytes int64 `json:"total_bytes"`
	Memfds     int   `json:"memfds"`
	Preserved  int   `json:"preserved"`
	Sessions   int   `json:"sessions"`
	Lost       int   `json:"lost"`
	// Changes lists what differs between the staged plan and the fd
	// stores now (entries new, gone, or with another fate); empty when the
	// plan still holds. Unknown after luod re-executed (Replanned).
	Changes []string `json:"changes"`
	// Replanned: luod re-executed since the staging, so RunUpdate(staged)
	// plans again (without loading).
	Replanned bool `json:"replanned,omitempty"`
}

// Check is one kernel-side check of a plan.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// PlanEntry is one fd-store entry's fate.
type PlanEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Fate is preserve (a memfd, preserved in luod's session), session (a
	// LUO session kept open and handed back by name, or a memfd in the
	// unit's own session), inherit (a soft update: the new luod inherits
	// the fd), drop (not needed: an incoming session superseded by an
	// outgoing one) or lost (the unit will not get it back).
	Fate   string `json:"fate"`
	Reason string `json:"reason,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"` // a memfd's size
}

// PlanUnit is one unit's part of a plan.
type PlanUnit struct {
	Name     string      `json:"name"`
	Active   bool        `json:"active"`
	Preserve string      `json:"preserve"`
	Entries  []PlanEntry `json:"entries"`
}

// Plan is the reply of PlanUpdate: what an update would do, changing nothing.
type Plan struct {
	Kind    string     `json:"kind"` // kexec or soft
	Kernel  string     `json:"kernel,omitempty"`
	Initrd  string     `json:"initrd,omitempty"`
	Cmdline string     `json:"cmdline,omitempty"`
	Checks  []Check    `json:"checks"`
	Units   []PlanUnit `json:"units"`
	// The carried fds by kind: Memfds memfds of TotalBytes bytes (in
	// luod's session, the unit's own, or inherited), Preserved of them in
	// luod's session; Sessions LUO session fds; Others other fds, which
	// only a soft update inherits. Lost fds are not carried.
	TotalBytes int64 `json:"total_bytes"`
	Memfds     int   `json:"memfds"`
	Preserved  int   `json:"preserved"`
	Sessions   int   `json:"sessions"`
	Others     int   `json:"others"`
	Lost       int   `json:"lost"`
	// OK is true when every check passed and nothing would be lost (or the
	// loss was allowed).
	OK bool `json:"ok"`
}

// Progress is one streamed reply of RunUpdate. The last one has Done set.
type Progress struct {
	Phase   string    `json:"phase"` // load, stop, preserve, manifest, reboot, exec, abort, restore, done
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
	Done    bool      `json:"done,omitempty"`
}

// UpdateFailure is the parameter of the UpdateFailed error.
type UpdateFailure struct {
	Phase   string `json:"phase"`
	Message string `json:"message"`
	// Restored says the abort brought every unit back with its store.
	Restored bool `json:"restored"`
}

// Event is one moment of an update's timeline.
type Event struct {
	Name string    `json:"name"`           // requested, loaded, stop-begin, last-stopped, preserved, reboot, kernel-up (soft: exec), luod-up, restored, ready, finished
	Unit string    `json:"unit,omitempty"` // for per-unit events
	Time time.Time `json:"time"`
}

// ReportUnit is one unit's part of a report.
type ReportUnit struct {
	Name      string        `json:"name"`
	Stopped   time.Time     `json:"stopped,omitzero"`
	Ready     time.Time     `json:"ready,omitzero"`
	Blackout  time.Duration `json:"blackout_ns,omitempty"` // Ready - Stopped
	Delivered []string      `json:"delivered"`             // fd names handed back
	Lost      []PlanEntry   `json:"lost,omitempty"`
}

// ReportParams are the parameters of GetUpdateReport.
type ReportParams struct {
	// Kind asks for the last update of that kind, kexec or soft; "" for
	// the last update.
	Kind string `json:"kind,omitempty"`
}

// Report is the reply of GetUpdateReport: an update across the kexec or
// re-exec.
type Report struct {
	// Count numbers the update among those of its kind: kexec live updates
	// since the last cold boot, soft updates since luod started.
	Count int    `json:"count"`
	Kind  string `json:"kind"` // kexec or soft
	// Result is ok, lost (some unit lost fds) or problems (see Problems).
	Result   string       `json:"result"`
	From     string       `json:"from"` // kernel release before
	To       string       `json:"to"`   // kernel release after
	Timeline []Event      `json:"timeline"`
	Units    []ReportUnit `json:"units"`
	Problems []string     `json:"problems,omitempty"`
	// Also are the kinds of the other reports luod holds (the last kexec's,
	// after a soft update), for GetUpdateReport's Kind.
	Also []string `json:"also,omitempty"`
	// RolledBack is set when this update went back from the kernel of an
	// update whose health gate failed (Result rolled-back).
	RolledBack *RolledBack `json:"rolled_back,omitempty"`
}

// RolledBack is an update undone by a rollback.
type RolledBack struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

// Fleet is the reply of GetFleet.
type Fleet struct {
	Group     string        `json:"group"`
	Host      string        `json:"host"`
	Endpoints []string      `json:"endpoints"`
	Key       string        `json:"key"`
	Max       int           `json:"max"`
	Revision  int64         `json:"revision"`
	Holders   []FleetHolder `json:"holders,omitempty"`
}

// FleetHolder is a host holding a fleet update slot.
type FleetHolder struct {
	Host    string    `json:"host"`
	Since   time.Time `json:"since"`
	Kind    string    `json:"kind"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Changed time.Time `json:"changed"`
}

// FleetHost are the parameters of ReleaseFleetSlot.
type FleetHost struct {
	Host string `json:"host"`
}

// FleetReleased is the reply of ReleaseFleetSlot.
type FleetReleased struct {
	Released bool `json:"released"`
}
