package luo

import (
	"fmt"
	"os"
	"runtime"
	"sync"
)

// DevicePath is where the kernel's misc device appears when LUO is enabled.
const DevicePath = "/dev/liveupdate"

// MaxNameLen is the longest session name the kernel accepts, in bytes
// (LIVEUPDATE_SESSION_NAME_LENGTH minus the NUL).
const MaxNameLen = LIVEUPDATE_SESSION_NAME_LENGTH - 1

// Device is an open /dev/liveupdate. The kernel lets one open file
// description exist at a time, so close it as soon as the sessions are
// created or retrieved: sessions do not need it. Safe for concurrent use.
type Device struct {
	// The device is a raw fd rather than an *os.File, which would cost an
	// fcntl(2) and a finalizer per Open for nothing: the fd never leaves
	// the package. mu keeps it open during an ioctl: every ioctl holds it
	// for reading, Close for writing.
	mu      sync.RWMutex
	fd      int
	open    bool // fd is valid: set by OpenPath, cleared by Close
	path    string
	cleanup runtime.Cleanup // closes fd if the Device is dropped unclosed
	err     error
}

// Session is a LUO session fd, either outgoing (created in this boot, to be
// carried to the next kernel) or incoming (retrieved from the previous one).
//
// The session lives exactly as long as its fd: keep the *Session (and do not
// close File()) until the kexec, or the kernel unpreserves its files.
// Safe for concurrent use.
type Session struct {
	// A session starts as a raw fd rather than an *os.File, which would
	// cost an fcntl(2), two allocations and a finalizer per session for
	// nothing as long as the fd never leaves the package: File makes the
	// *os.File the first time it is asked for, and from then on that file
	// owns the fd. mu keeps the raw fd open during an ioctl: every ioctl
	// holds it for reading, Close and File for writing.
	mu       sync.RWMutex
	fd       int             // the raw fd: valid while open and f is nil
	f        *os.File        // the fd as a file, once File or SessionFromFile made it
	open     bool            // set by the constructors, cleared by Close
	cleanup  runtime.Cleanup // closes the raw fd if the Session is dropped unclosed
	name     string
	incoming bool
	err      error
}

// Name returns the session's name as it was created, retrieved or read from
// the fd.
func (s *Session) Name() string { return s.name }

// Incoming reports whether s was retrieved from the previous kernel: it can
// retrieve files and be finished, but takes no new files.
func (s *Session) Incoming() bool { return s.incoming }

// String returns a description such as `outgoing session "cache"`.
func (s *Session) String() string {
	dir := "outgoing"
	if s.incoming {
		dir = "incoming"
	}
	return fmt.Sprintf("%s session %q", dir, s.name)
}

// ValidateName checks a session name against the kernel's rules before any
// syscall: 1 to MaxNameLen bytes, no NUL byte (which would silently cut the
// name). Other bytes, including spaces and '/', are accepted by the kernel.
func ValidateName(name string) error {
	switch {
	case name == "":
		return &NameError{Name: name, Reason: fmt.Sprintf("empty; the kernel wants 1 to %d bytes", MaxNameLen)}
	case len(name) > MaxNameLen:
		return &NameError{Name: name, Reason: fmt.Sprintf("%d bytes; the kernel allows at most %d", len(name), MaxNameLen)}
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return &NameError{Name: name, Reason: fmt.Sprintf("NUL byte at offset %d", i)}
		}
	}
	return nil
}
