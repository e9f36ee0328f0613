package notify

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultFDName is the name systemd gives to fds stored with FDSTORE=1 when
// FDNAME= is missing or invalid.
const DefaultFDName = "stored"

// A Field is one KEY=VALUE line of a notification, split at the first '='.
type Field struct {
	Key, Value string
}

// A Message is one notification. [Socket.Receive] fills in everything;
// [Parse] fills in only what comes from the payload.
//
// The fields after Files are a typed view of Fields that follows systemd's
// rules: for a key given more than once the first occurrence counts, and a
// flag such as READY=1 counts when any line is exactly "READY=1". A value
// that systemd would reject with a warning leaves its field at the zero value
// and adds an entry to Problems.
//
// A Message owns Files and PIDFD until they are taken with TakeFiles and
// TakePIDFD; Close closes what is left. A Message is not safe for concurrent
// use.
type Message struct {
	// PID, UID and GID are the sender's credentials (SCM_CREDENTIALS), as
	// seen from luod's PID and user namespaces. PID is always > 0 in a
	// Message from Receive.
	PID      int
	UID, GID uint32

	// PIDFD is a pidfd for the sender (SCM_PIDFD), which identifies it even
	// if its PID is reused, or nil when the socket has no SO_PASSPIDFD.
	PIDFD *os.File

	// Fields are the KEY=VALUE lines in the order they were sent.
	Fields []Field
	// Ignored are the lines without '=', in order. systemd ignores them,
	// but they count as content for BARRIER=1 (see BarrierValid).
	Ignored []string

	// Files are the received file descriptors (SCM_RIGHTS) in the order they
	// were sent, close-on-exec. What the supervisor does not consume
	// (FDSTORE=1, MAINPIDFD=1, BARRIER=1) systemd closes with "Got extra
	// auxiliary fds with notification message, closing them".
	Files []*os.File

	// Ready, Reloading and Stopping are READY=1, RELOADING=1 and
	// STOPPING=1. systemd lets STOPPING=1 win over the other two and READY=1
	// over RELOADING=1 (READY=1 together with RELOADING=1 means "reloaded");
	// once a service has sent STOPPING=1, later READY=1 and RELOADING=1 are
	// ignored.
	Ready, Reloading, Stopping bool

	// MonotonicUsec is MONOTONIC_USEC= (CLOCK_MONOTONIC, µs), which systemd
	// requires with RELOADING=1 to match it to a reload it asked for.
	MonotonicUsec uint64
	HasMonotonic  bool

	// Status is STATUS=: nil when absent, "" to clear the status text.
	// systemd 262 also clears the status text when the value is not valid
	// UTF-8 (it warns "not UTF-8 clean, ignoring" but then stores nothing),
	// so such a value gives "" and a Problem.
	Status *string

	// NotifyAccess is NOTIFYACCESS= when it is one of "none", "main",
	// "exec" or "all" (it overrides the unit's NotifyAccess= until the
	// service is dead), or "" when absent or invalid.
	NotifyAccess string

	// Errno is ERRNO=, a number (0 clears it) or an errno name such as
	// "EIO", as parsed by systemd's parse_errno().
	Errno    int
	HasErrno bool

	// BusError and VarlinkError are BUSERROR= and VARLINKERROR=: nil when
	// absent or invalid (not safe ASCII), "" to clear.
	BusError, VarlinkError *string

	// MainPID is MAINPID=, or 0 when absent or invalid. Whether that
	// process exists and belongs to the unit is for the caller to check; a
	// PID outside the unit is accepted only from UID 0. MAINPIDFD=1 takes
	// precedence. An invalid MAINPIDFDID= makes systemd refuse the change,
	// so MainPID is 0 then too.
	MainPID int
	// MainPIDFDID is MAINPIDFDID=, the pidfd inode ID that the process
	// named by MAINPID= must have; it is parsed only with a valid MAINPID=.
	MainPIDFDID    uint64
	HasMainPIDFDID bool
	// MainPIDFD is MAINPIDFD=1: the new main process is given as a pidfd,
	// which must be the only fd in the message ("Got MAINPIDFD=1 with %s
	// fd, ignoring." otherwise).
	MainPIDFD bool

	// ExtendTimeoutUsec is EXTEND_TIMEOUT_USEC= (µs): push the running
	// start/stop/runtime timeout and the watchdog to now plus this value.
	ExtendTimeoutUsec uint64
	HasExtendTimeout  bool

	// Watchdog is WATCHDOG=1 (the service is alive) and WatchdogTrigger is
	// WATCHDOG=trigger (act as if the watchdog had fired). Only the first
	// WATCHDOG= line counts; any other value is a Problem.
	Watchdog, WatchdogTrigger bool
	// WatchdogUsec is WATCHDOG_USEC= (µs), a new watchdog timeout.
	WatchdogUsec    uint64
	HasWatchdogUsec bool

	// RestartReset is RESTART_RESET=1: reset the restart counter (honoured
	// only while the service is running or stopping).
	RestartReset bool

	// Barrier is BARRIER=1. systemd then processes nothing else in the
	// message and closes its fds; see BarrierValid.
	Barrier bool

	// FDStore is FDSTORE=1 and FDStoreRemove is FDSTOREREMOVE=1; when both
	// are given, systemd only removes.
	FDStore, FDStoreRemove bool
	// FDName is FDNAME=, FDNameValid whether it passes
	// [sdnotify.ValidFDName], systemd's fdname_is_valid() (the empty name
	// is valid). FDSTOREREMOVE=1 needs a valid name; FDSTORE=1 falls back
	// to DefaultFDName (see StoreName).
	FDName      string
	HasFDName   bool
	FDNameValid bool
	// FDPoll is false when FDPOLL=0 was sent: do not watch the stored fds
	// for POLLHUP/POLLERR.
	FDPoll bool

	// Problems lists, in systemd's words, the fields that systemd would log
	// a warning about and ignore.
	Problems []string
}

// Close closes the files the Message still owns: Files and PIDFD, unless
// taken. It returns the first error, and does nothing the second time.
func (m *Message) Close() error {
	var errs []error
	for _, f := range m.Files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	m.Files = nil
	if m.PIDFD != nil {
		if err := m.PIDFD.Close(); err != nil {
			errs = append(errs, err)
		}
		m.PIDFD = nil
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// TakeFiles transfers the ownership of Files to the caller and leaves
// m.Files nil.
func (m *Message) TakeFiles() []*os.File {
	fs := m.Files
	m.Files = nil
	return fs
}

// TakePIDFD transfers the ownership of PIDFD to the caller and leaves
// m.PIDFD nil.
func (m *Message) TakePIDFD() *os.File {
	f := m.PIDFD
	m.PIDFD = nil
	return f
}

// BarrierValid reports whether m is a well-formed barrier: BARRIER=1 as its
// only line and exactly one fd. When m has BARRIER=1 the supervisor must
// process nothing else in it and close its fds, valid or not; reason is then
// what systemd logs (as a warning) for an invalid one. Without BARRIER=1, ok
// is false and reason says so.
func (m *Message) BarrierValid() (ok bool, reason string) {
	switch {
	case !m.Barrier:
		return false, "message has no BARRIER=1"
	case len(m.Fields)+len(m.Ignored) != 1:
		return false, "extra notification messages sent with BARRIER=1, ignoring everything"
	case len(m.Files) != 1:
		return false, "got incorrect number of fds with BARRIER=1, closing them"
	}
	return true, ""
}

// StoreName is the name that FDSTORE=1 gives to the fds of m: FDName when
// it was given and is valid, DefaultFDName otherwise.
func (m *Message) StoreName() string {
	if m.HasFDName && m.FDNameValid {
		return m.FDName
	}
	return DefaultFDName
}

// Lengths at which String truncates values.
const (
	stringStatusMax = 64
	stringValueMax  = 128
)

// String summarizes m on one line for logs: credentials, the number of
// files, and the fields with long values (STATUS= especially) truncated and
// unusual ones quoted, for example
//
//	pid=42 uid=0 gid=0 pidfd fds=1 FDSTORE=1 FDNAME=db STATUS="serving 3 clients"
//
// LogValue makes a log line show m as String does, computed only when the
// line is written (slog.LogValuer).
func (m *Message) LogValue() slog.Value { return slog.StringValue(m.String()) }

func (m *Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid=%d uid=%d gid=%d", m.PID, m.UID, m.GID)
	if m.PIDFD != nil {
		b.WriteString(" pidfd")
	}
	fmt.Fprintf(&b, " fds=%d", len(m.Files))
	for _, f := range m.Fields {
		limit := stringValueMax
		if f.Key == "STATUS" {
			limit = stringStatusMax
		}
		b.WriteByte(' ')
		b.WriteString(quoteForLog(truncate(f.Key, stringValueMax)))
		b.WriteByte('=')
		b.WriteString(quoteForLog(truncate(f.Value, limit)))
	}
	if len(m.Ignored) > 0 {
		fmt.Fprintf(&b, " ignored=%d", len(m.Ignored))
	}
	return b.String()
}

// truncate cuts s to at most limit bytes, on a rune boundary, marking the
// cut with "…".
func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// quoteForLog returns s as is when it is non-empty printable ASCII without
// quotes, backslashes or spaces, and Go-quoted otherwise.
func quoteForLog(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.Quote(s)
		}
	}
	return s
}
