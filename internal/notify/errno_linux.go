package notify

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// errnoFromName is systemd's errno_from_name(): the number of the errno
// named name ("EIO"), or 0.
func errnoFromName(name string) int {
	if len(name) < 2 || name[0] != 'E' {
		return 0
	}
	// <errno.h> aliases, which unix.ErrnoName does not return.
	switch name {
	case "EWOULDBLOCK":
		return int(unix.EWOULDBLOCK)
	case "EDEADLOCK":
		return int(unix.EDEADLOCK)
	case "ENOTSUP":
		return int(unix.ENOTSUP)
	}
	// Linux's errnos end at EHWPOISON (133).
	for e := syscall.Errno(1); e < 256; e++ {
		if unix.ErrnoName(e) == name {
			return int(e)
		}
	}
	return 0
}
