package notify

import (
	"fmt"
	"strings"
)

// Reasons for dropping a whole datagram, in systemd's words (lower case).
const (
	reasonTruncatedControl = "got message with truncated control data (too many fds sent?), ignoring"
	reasonTruncatedPayload = "got message with truncated payload data, ignoring"
	reasonNoCredentials    = "got notification datagram lacking valid credential information, ignoring"
	reasonEmbeddedNUL      = "got notification message with embedded NUL, ignoring"
	reasonTrailingEscape   = "invalid message: lone backslash at the end, ignoring"
)

// DropError reports a datagram that was dropped as a whole, in one of the
// cases in which systemd ignores a notification (see the package doc). By
// the time it is returned, every file descriptor that came with the datagram,
// the pidfd included, has been closed. It is not fatal: a receive loop logs it
// and goes on.
type DropError struct {
	// Reason says why, in systemd's words, for example "got notification
	// message with embedded NUL, ignoring".
	Reason string
	// PID is the sender's PID from SCM_CREDENTIALS, or 0 when it is not known
	// (always 0 from Parse).
	PID int
	// FDs is the number of SCM_RIGHTS descriptors that were received with
	// the datagram and closed. After a truncation of the control data it
	// counts only those the kernel installed; it discarded the rest.
	FDs int
}

func (e *DropError) Error() string {
	var b strings.Builder
	b.WriteString("notify: ")
	b.WriteString(e.Reason)
	fds := "fds"
	if e.FDs == 1 {
		fds = "fd"
	}
	switch {
	case e.PID > 0 && e.FDs > 0:
		fmt.Fprintf(&b, " (PID %d, %d %s closed)", e.PID, e.FDs, fds)
	case e.PID > 0:
		fmt.Fprintf(&b, " (PID %d)", e.PID)
	case e.FDs > 0:
		fmt.Fprintf(&b, " (%d %s closed)", e.FDs, fds)
	}
	return b.String()
}
