package unit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// A Unit is a service unit as loaded from its file: every setting luod
// implements, with systemd's defaults filled in for the ones not set. A Unit
// is plain data: it is safe for concurrent use as long as nobody modifies it.
type Unit struct {
	// Name is the unit name, "counter.service" or "worker@1.service": the
	// file's base name.
	Name string
	// Path is the file the unit was loaded from, "" when it was parsed
	// from a reader.
	Path string

	// Description is Description= ("" when unset; systemd shows the name
	// then).
	Description string

	// Type is Type=, TypeSimple by default.
	Type Type
	// ExecStart holds the commands of ExecStart=: exactly one, or, for
	// Type=oneshot, one or more, run one after the other.
	ExecStart []Command
	// RemainAfterExit is RemainAfterExit=: the unit stays active after
	// its processes exited successfully.
	RemainAfterExit bool

	// Environment is Environment=, "KEY=VALUE" assignments in file order.
	// A key assigned again keeps its first position and takes its last
	// value (systemd's strv_env_replace()), so keys are unique.
	Environment []string
	// EnvironmentFiles is EnvironmentFile=, in file order. The files are
	// read by the supervisor at start time, not by this package.
	EnvironmentFiles []EnvironmentFile
	// WorkingDirectory is WorkingDirectory=: "" (the supervisor's
	// default), an absolute path, or "~" for the home directory of User=.
	WorkingDirectory string
	// WorkingDirectoryOptional is the "-" prefix of WorkingDirectory=: a
	// missing directory is not an error.
	WorkingDirectoryOptional bool
	// User and Group are User= and Group=: a name or a numeric id, checked
	// for syntax only (the supervisor resolves them). "" means root.
	User, Group string

	// Restart is Restart=, RestartNo by default.
	Restart RestartPolicy
	// RestartSec is RestartSec=, DefaultRestartSec by default.
	RestartSec time.Duration
	// TimeoutStartSec and TimeoutStopSec are TimeoutStartSec= and
	// TimeoutStopSec= (TimeoutSec= sets both), DefaultTimeout by default.
	// Zero means no timeout: "infinity" and "0" both give zero, as in
	// systemd.
	TimeoutStartSec, TimeoutStopSec time.Duration
	// KillSignal is KillSignal=, DefaultKillSignal (SIGTERM) by default.
	KillSignal syscall.Signal

	// StartLimitIntervalSec and StartLimitBurst are StartLimitIntervalSec=
	// and StartLimitBurst= of [Unit] (systemd.unit(5)): a unit started
	// more than StartLimitBurst times within StartLimitIntervalSec may not
	// be started again, by Restart= or otherwise, until that long has
	// passed since the first of those starts. The defaults are
	// DefaultStartLimitIntervalSec and DefaultStartLimitBurst. As in
	// systemd (ratelimit_configured()), 0 in either turns the limit off
	// (see StartLimitEnabled), and "infinity" gives Infinity, an interval
	// that never ends: the unit starts at most StartLimitBurst times until
	// the manager resets its count. The deprecated spellings
	// StartLimitInterval= (in [Unit] or [Service]) and StartLimitBurst= in
	// [Service] set them too, with a warning.
	StartLimitIntervalSec time.Duration
	StartLimitBurst       uint

	// LogRateLimitIntervalSec and LogRateLimitBurst are
	// LogRateLimitIntervalSec= and LogRateLimitBurst= (systemd.exec(5)):
	// when the service logs more than LogRateLimitBurst messages within
	// LogRateLimitIntervalSec, the other messages of that interval are
	// dropped, and a message says how many were. The defaults are
	// journald's, DefaultLogRateLimitIntervalSec and
	// DefaultLogRateLimitBurst. Unlike the start limit, a unit cannot turn
	// this one off with 0: systemd does not pass a unit's 0 on to
	// journald, which then applies its own RateLimitIntervalSec= and
	// RateLimitBurst= (journald.conf(5)). So 0 gives the default here, with
	// a warning, and neither field is ever 0 in a Unit from Parse or Load.
	// "infinity" gives Infinity, an interval that never ends: after
	// LogRateLimitBurst messages, all are dropped.
	LogRateLimitIntervalSec time.Duration
	LogRateLimitBurst       uint

	// StandardOutput and StandardError are StandardOutput= and
	// StandardError= (systemd.exec(5)): where the service's stdout and
	// stderr go. Both are OutputJournal by default: luod captures each
	// line. StandardError= unset, or "inherit", takes StandardOutput='s
	// value, as in systemd (see EffectiveStandardError).
	StandardOutput, StandardError Output

	// NotifyAccess is NotifyAccess= as written; see EffectiveNotifyAccess.
	NotifyAccess NotifyAccess
	// NotifyAccessExplicit reports whether the file set NotifyAccess=.
	NotifyAccessExplicit bool
	// FileDescriptorStoreMax is FileDescriptorStoreMax= as written, 0 (no
	// fd store) by default; see EffectiveFileDescriptorStoreMax.
	FileDescriptorStoreMax uint
	// FileDescriptorStorePreserve is FileDescriptorStorePreserve=,
	// PreserveRestart by default.
	FileDescriptorStorePreserve Preserve
	// LUOSessions is LUOSession=: the names of the LUO sessions the manager
	// creates (or, after a live update, hands back) for the service and
	// passes to it in its fd store. The names are unique and valid fd
	// names; the kernel session name is built from the unit name and this
	// name by the manager.
	LUOSessions []string

	// PreserveMaxBytes is [X-LUO] PreserveMaxBytes=: at most how many
	// bytes of the unit's store a live update may pin in memory for the
	// next kernel; NoLimit (the default) for no limit. An update plans
	// the memfds of a unit over its limit as lost.
	PreserveMaxBytes int64

	// Warnings are the non-fatal diagnostics: unknown or unsupported
	// keys and sections, duplicate session names, ignored escape
	// sequences, settings that have no effect. They are sorted by line.
	// There are at most MaxDiagnostics of them, the first found, and then
	// a last one, without a line, saying how many more were left out.
	Warnings []Warning
}

// Defaults of systemd that luod uses too.
const (
	DefaultRestartSec = 100 * time.Millisecond
	DefaultTimeout    = 90 * time.Second
	DefaultKillSignal = syscall.SIGTERM

	// DefaultStartLimitIntervalSec and DefaultStartLimitBurst are the
	// defaults of systemd's DefaultStartLimitIntervalSec= and
	// DefaultStartLimitBurst= (systemd-system.conf(5)).
	DefaultStartLimitIntervalSec = 10 * time.Second
	DefaultStartLimitBurst       = 5

	// DefaultLogRateLimitIntervalSec and DefaultLogRateLimitBurst are the
	// defaults of journald's RateLimitIntervalSec= and RateLimitBurst=
	// (journald.conf(5)), which systemd applies to a unit that does not
	// set LogRateLimitIntervalSec= and LogRateLimitBurst=.
	DefaultLogRateLimitIntervalSec = 30 * time.Second
	DefaultLogRateLimitBurst       = 10000
)

// NoLimit is a size limit that is not set, such as PreserveMaxBytes=
// infinity.
const NoLimit int64 = -1

// Infinity is the time span "infinity" in the settings where it is not the
// same as 0, StartLimitIntervalSec= and LogRateLimitIntervalSec=: the
// largest time.Duration, about 292 years, longer than any finite time span
// a unit file can give. (In timeouts, "infinity" gives 0, no timeout, as in
// systemd.)
const Infinity time.Duration = math.MaxInt64

// EffectiveNotifyAccess returns who may send notifications: NotifyAccess=
// when it is set; otherwise NotifyAccessMain when the service uses the
// notification socket (Type=notify, or an fd store: an
// EffectiveFileDescriptorStoreMax above zero), as systemd does; otherwise
// NotifyAccessNone.
func (u *Unit) EffectiveNotifyAccess() NotifyAccess {
	switch {
	case u.NotifyAccessExplicit:
		return u.NotifyAccess
	case u.Type == TypeNotify || u.EffectiveFileDescriptorStoreMax() > 0:
		return NotifyAccessMain
	}
	return NotifyAccessNone
}

// StartLimitEnabled reports whether the start rate limit applies: both
// StartLimitIntervalSec and StartLimitBurst are above zero (systemd's
// ratelimit_configured()).
func (u *Unit) StartLimitEnabled() bool {
	return u.StartLimitIntervalSec > 0 && u.StartLimitBurst > 0
}

// EffectiveFileDescriptorStoreMax returns the size of the service's fd
// store: FileDescriptorStoreMax=, raised to the number of LUOSession=
// names if that is larger, since each session is kept in the store
// (systemd.service(5): LUOSession= implies FileDescriptorStoreMax= of at
// least the number of sessions).
func (u *Unit) EffectiveFileDescriptorStoreMax() uint {
	return max(u.FileDescriptorStoreMax, uint(len(u.LUOSessions)))
}

// Type is a service type, Type=.
type Type int

// The service types luod implements. Other values of Type= (exec, forking,
// dbus, notify-reload, idle) make Parse fail.
const (
	// TypeSimple: the service is started as soon as its process is.
	TypeSimple Type = iota
	// TypeNotify: the service is started when it sends READY=1.
	TypeNotify
	// TypeOneshot: the service is started when its commands have run to
	// completion, one after the other.
	TypeOneshot
)

var typeNames = []string{"simple", "notify", "oneshot"}

// String returns the systemd spelling: "simple", "notify", "oneshot".
func (t Type) String() string { return enumString(typeNames, int(t), "Type") }

// RestartPolicy is Restart=.
type RestartPolicy int

// The restart policies luod implements. Other values of Restart=
// (on-success, on-abnormal, on-watchdog, on-abort) make Parse fail.
const (
	// RestartNo: never restart.
	RestartNo RestartPolicy = iota
	// RestartOnFailure: restart after an unclean exit code, a signal, or
	// a timeout.
	RestartOnFailure
	// RestartAlways: restart whenever the service stops on its own.
	RestartAlways
)

var restartNames = []string{"no", "on-failure", "always"}

// String returns the systemd spelling: "no", "on-failure", "always".
func (r RestartPolicy) String() string { return enumString(restartNames, int(r), "RestartPolicy") }

// NotifyAccess is NotifyAccess=: which processes of the service may send
// sd_notify(3) messages.
type NotifyAccess int

// The values of NotifyAccess=.
const (
	// NotifyAccessNone: no process; messages are dropped.
	NotifyAccessNone NotifyAccess = iota
	// NotifyAccessMain: only the main process.
	NotifyAccessMain
	// NotifyAccessExec: the main process or the process running one of the
	// unit's commands (the control process).
	NotifyAccessExec
	// NotifyAccessAll: any process of the service.
	NotifyAccessAll
)

var notifyAccessNames = []string{"none", "main", "exec", "all"}

// Output is StandardOutput= or StandardError=: where one of the service's
// output streams goes. Its zero value is the default, OutputJournal.
type Output int

// Outputs.
const (
	// OutputJournal captures the stream: each line goes to luod's log
	// (the journal, when there is one) with the unit's name, and to the
	// unit's recent lines (luoctl status, luoctl logs).
	OutputJournal Output = iota
	// OutputInherit gives the service luod's own stream: its stdout for
	// StandardOutput=, its stderr for StandardError=.
	OutputInherit
	// OutputNull connects the stream to /dev/null.
	OutputNull
	// outputUnset is StandardError= not set, or set to "inherit": the
	// value of StandardOutput=. Never returned by EffectiveStandardError.
	outputUnset
)

var outputNames = []string{"journal", "inherit", "null"}

// String returns the systemd spelling: "journal", "inherit", "null".
func (o Output) String() string {
	if o == outputUnset {
		return "inherit"
	}
	return enumString(outputNames, int(o), "Output")
}

// EffectiveStandardError returns where stderr goes: StandardError= when it
// names a target of its own, otherwise the target of StandardOutput= (for
// OutputInherit, luod's stderr).
func (u *Unit) EffectiveStandardError() Output {
	if u.StandardError == outputUnset {
		return u.StandardOutput
	}
	return u.StandardError
}

// String returns the systemd spelling: "none", "main", "exec", "all".
func (n NotifyAccess) String() string { return enumString(notifyAccessNames, int(n), "NotifyAccess") }

// Preserve is FileDescriptorStorePreserve=: how long the fd store outlives
// the service's processes. Its zero value is the default, PreserveRestart.
type Preserve int

// The values of FileDescriptorStorePreserve= (docs/systemd-luo.md §C).
const (
	// PreserveRestart: kept across restarts (and while a job is queued),
	// released when the unit is stopped for good.
	PreserveRestart Preserve = iota
	// PreserveNo: released whenever the service stops.
	PreserveNo
	// PreserveYes: kept after the unit stops, until it is cleaned or
	// removed; preserved across a live update (kexec).
	PreserveYes
	// PreserveOnSuccess: like PreserveYes, but released when the unit
	// fails for good (after Restart= gave up).
	PreserveOnSuccess
)

var preserveNames = []string{"restart", "no", "yes", "on-success"}

// String returns the systemd spelling: "restart", "no", "yes", "on-success".
func (p Preserve) String() string { return enumString(preserveNames, int(p), "Preserve") }

func enumString(names []string, v int, typ string) string {
	if v >= 0 && v < len(names) {
		return names[v]
	}
	return typ + "(" + strconv.Itoa(v) + ")"
}

// An EnvironmentFile is one EnvironmentFile= setting.
type EnvironmentFile struct {
	// Path is the file, an absolute simplified path.
	Path string
	// Optional is the "-" prefix: a missing file is not an error.
	Optional bool
}

// A Warning is a non-fatal diagnostic about a unit file.
type Warning struct {
	// File is the unit's path, or its name when it was parsed from a
	// reader.
	File string
	// Line is the 1-based line of the key or section header the warning
	// is about, 0 when it is about the unit as a whole.
	Line int
	// Section is the section, without brackets; Key is the key, "" when
	// the warning is about a whole section or unit.
	Section, Key string
	// Message says what is wrong and what luod does about it.
	Message string
}

// String formats w as "file:line: [Section] Key: message", leaving out the
// parts w does not have.
func (w Warning) String() string {
	return location(w.File, w.Line, w.Section, shown(w.Key)) + w.Message
}

// location formats "file:line: [Section] Key: ", where key is as shown.
func location(file string, line int, section, key string) string {
	var b strings.Builder
	if !printable(file) {
		file = strconv.Quote(file)
	}
	b.WriteString(file)
	if line > 0 {
		fmt.Fprintf(&b, ":%d", line)
	}
	b.WriteString(": ")
	if section != "" {
		fmt.Fprintf(&b, "[%s]", shown(section))
		if key != "" {
			b.WriteString(" " + key)
		}
		b.WriteString(": ")
	} else if key != "" {
		b.WriteString(key + ": ")
	}
	return b.String()
}

// maxShown is how much of a value, key or word messages show.
const maxShown = 200

// shown returns s as messages show it: quoted if it has characters that
// are not printable (control characters, C1 controls, bidirectional
// overrides, …) or is not valid UTF-8, so that a unit file cannot write to
// a terminal or log through them; cut after maxShown bytes, saying how long
// it is, if it is longer.
func shown(s string) string {
	cut := ""
	if len(s) > maxShown {
		cut = fmt.Sprintf("… (%d bytes)", len(s))
		s = truncate(s, maxShown)
	}
	if !printable(s) {
		s = strconv.Quote(s)
	}
	return s + cut
}

// printable reports whether s is valid UTF-8 made of printable characters
// and spaces (unicode.IsPrint), which strconv.Quote leaves as they are.
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

// quote is strconv.Quote(s) for messages: cut after maxShown bytes, saying
// how long s is, if it is longer.
func quote(s string) string {
	if len(s) <= maxShown {
		return strconv.Quote(s)
	}
	return strconv.Quote(truncate(s, maxShown)) + fmt.Sprintf("… (%d bytes)", len(s))
}

// truncate cuts s to at most n bytes, not in the middle of a character.
func truncate(s string, n int) string {
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n]
}

// A ParseError reports why a unit file cannot be loaded. Parse and Load
// return the errors of a file joined (errors.Join), one per problem, each
// a *ParseError; use errors.As to get the first. After MaxDiagnostics of
// them, a last one says how many more there were.
type ParseError struct {
	// File is the unit's path, or its name when it was parsed from a
	// reader.
	File string
	// Line is the 1-based line of the offending key, 0 when the error is
	// not about one line (a missing ExecStart=, an invalid unit name).
	Line int
	// Section and Key locate the setting, when there is one.
	Section, Key string
	// Value is the value as written (continuation lines joined).
	Value string
	// Err says what is wrong. It wraps errors.ErrUnsupported when the
	// value is valid for systemd but not implemented by luod.
	Err error
}

// Error formats e as "file:line: [Section] Key=Value: reason". The key and
// value are quoted if they have control characters or are not valid UTF-8,
// and cut if they are long.
func (e *ParseError) Error() string {
	key := shown(e.Key)
	if e.Line > 0 && e.Key != "" {
		key += "=" + shown(e.Value)
	}
	return location(e.File, e.Line, e.Section, key) + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *ParseError) Unwrap() error { return e.Err }
