package sdnotify

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

const (
	// MaxMessageSize is the largest payload, in bytes, that the manager
	// accepts in one notification: systemd reads datagrams into a buffer of
	// PIPE_BUF (4096) bytes and drops truncated ones.
	MaxMessageSize = 4096

	// MaxFiles is the largest number of files one notification can carry:
	// the kernel's SCM_MAX_FD. sendmsg(2) fails with EINVAL beyond it.
	MaxFiles = 253

	// MaxFDNameLen is the longest name, in bytes, that [ValidFDName]
	// accepts (systemd's FDNAME_MAX).
	MaxFDNameLen = 255
)

// ValidFDName reports whether name is acceptable to the manager as the value
// of FDNAME=, using the rules of systemd's fdname_is_valid(): at most
// [MaxFDNameLen] bytes, each a printable ASCII character (0x20 to 0x7E) other
// than ':', which separates the names in $LISTEN_FDNAMES. The error names the
// offending byte and its offset, and wraps [syscall.EINVAL].
//
// The empty name is valid, as in systemd, but [Notifier.StoreFiles] and
// [Notifier.RemoveFiles] refuse it (see there).
func ValidFDName(name string) error {
	if len(name) > MaxFDNameLen {
		return fmt.Errorf("sdnotify: fd name %s is %d bytes long, at most %d are allowed: %w",
			quoteShort(name), len(name), MaxFDNameLen, syscall.EINVAL)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == ':':
			return fmt.Errorf("sdnotify: fd name %s: ':' at offset %d is not allowed (it separates names in LISTEN_FDNAMES): %w",
				quoteShort(name), i, syscall.EINVAL)
		case c < 0x20 || c > 0x7e:
			return fmt.Errorf("sdnotify: fd name %s: byte 0x%02x at offset %d is not allowed (only printable ASCII 0x20-0x7e): %w",
				quoteShort(name), c, i, syscall.EINVAL)
		}
	}
	return nil
}

// validStoreName is ValidFDName plus the rejection of the empty name.
func validStoreName(name string) error {
	if name == "" {
		// systemd accepts FDNAME= with an empty value, but the empty name
		// then becomes an empty field of LISTEN_FDNAMES, which libsystemd's
		// sd_listen_fds_with_names cannot parse when it is the only one
		// (an empty LISTEN_FDNAMES splits into no names at all), and which
		// readers cannot tell from a missing name. Require a real name.
		return fmt.Errorf("sdnotify: empty fd name: systemd accepts it, but it breaks LISTEN_FDNAMES for the next instance; choose a name: %w", syscall.EINVAL)
	}
	return ValidFDName(name)
}

// buildMessage validates the KEY=VALUE assignments in states and joins them
// with newlines into one notification payload. Every accepted payload is at
// most MaxMessageSize bytes, holds no NUL byte, and consists of lines of the
// form KEY=VALUE where KEY is a non-empty string of [A-Z0-9_].
func buildMessage(states []string) ([]byte, error) {
	if len(states) == 0 {
		return nil, fmt.Errorf("sdnotify: no state to send: %w", syscall.EINVAL)
	}
	size := len(states) - 1 // the newlines
	for i, s := range states {
		if err := validState(s); err != nil {
			return nil, fmt.Errorf("sdnotify: state %d %s: %w", i, quoteShort(s), err)
		}
		size += len(s)
		if size > MaxMessageSize {
			break
		}
	}
	if size > MaxMessageSize {
		return nil, fmt.Errorf("sdnotify: message of %d or more bytes is too long, the manager drops messages over %d bytes: %w",
			size, MaxMessageSize, syscall.E2BIG)
	}
	b := make([]byte, 0, size)
	for i, s := range states {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, s...)
	}
	return b, nil
}

// validState checks that s is one KEY=VALUE assignment.
func validState(s string) error {
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("missing '=': want KEY=VALUE: %w", syscall.EINVAL)
	}
	if key == "" {
		return fmt.Errorf("empty key: want KEY=VALUE: %w", syscall.EINVAL)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return fmt.Errorf("byte 0x%02x at offset %d of the key is not allowed (only A-Z, 0-9 and _): %w",
				c, i, syscall.EINVAL)
		}
	}
	if i := strings.IndexByte(value, '\n'); i >= 0 {
		return fmt.Errorf("newline at offset %d of the value (it would start a new assignment): %w",
			len(key)+1+i, syscall.EINVAL)
	}
	if i := strings.IndexByte(value, 0); i >= 0 {
		return fmt.Errorf("NUL byte at offset %d of the value (the manager drops such messages): %w",
			len(key)+1+i, syscall.EINVAL)
	}
	return nil
}

// checkFiles validates the files to send with one message.
func checkFiles(files []*os.File) error {
	if len(files) > MaxFiles {
		return fmt.Errorf("sdnotify: %d files in one message, the kernel passes at most %d (SCM_MAX_FD); split them over several messages: %w",
			len(files), MaxFiles, syscall.E2BIG)
	}
	for i, f := range files {
		if f == nil {
			return fmt.Errorf("sdnotify: file %d is nil: %w", i, syscall.EINVAL)
		}
	}
	return nil
}

// quoteShort quotes s for an error message, eliding the middle of long
// strings.
func quoteShort(s string) string {
	const max = 48
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...(%d bytes)", s[:max], len(s))
}
