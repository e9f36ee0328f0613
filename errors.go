package luo

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// ErrNotSession is returned by SessionFromFile for a file that is not a LUO
// session fd.
var ErrNotSession = errors.New("not a LUO session fd")

// ErrInvalidName is matched (errors.Is) by every *NameError.
var ErrInvalidName = errors.New("invalid session name")

// NameError reports a session name the kernel would reject. It matches
// ErrInvalidName and syscall.EINVAL (what the kernel would have returned).
type NameError struct {
	Name   string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("invalid session name %q: %s", e.Name, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidName) and errors.Is(err, syscall.EINVAL) true.
func (e *NameError) Is(target error) bool {
	return target == ErrInvalidName || target == syscall.EINVAL
}

// Error is a failed LUO operation. Err is usually a syscall.Errno, so
// errors.Is(err, unix.EBUSY) works; Error() adds the usual causes of that
// errno for that operation.
type Error struct {
	// Op is the operation: "open", "close", or the ioctl's name without
	// prefix ("CREATE_SESSION", "PRESERVE_FD", ...).
	Op string
	// Session is the session's name, when known.
	Session string
	// Token is the file token of PRESERVE_FD and RETRIEVE_FD.
	Token uint64
	// Detail is extra context found while handling the error, such as which
	// process holds the device.
	Detail string
	// Err is the underlying error.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("luo: ")
	b.WriteString(e.Op)
	if e.Session != "" {
		fmt.Fprintf(&b, " session %q", e.Session)
	}
	if e.Op == "PRESERVE_FD" || e.Op == "RETRIEVE_FD" {
		fmt.Fprintf(&b, " token %d", e.Token)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if h := e.Hint(); h != "" {
		b.WriteString(" (")
		b.WriteString(h)
		b.WriteString(")")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Hint explains the common causes of the error for its operation, or
// returns "" when there is nothing to add.
func (e *Error) Hint() string {
	var errno syscall.Errno
	if !errors.As(e.Err, &errno) {
		return ""
	}
	if h, ok := hints[hintKey{e.Op, errno}]; ok {
		return h
	}
	switch errno {
	case syscall.ENOTTY:
		return "the kernel does not know this ioctl: a 32-bit process (LUO has no compat_ioctl) or a kernel with another LUO ABI"
	case syscall.EMFILE, syscall.ENFILE:
		return "too many open files: raise RLIMIT_NOFILE"
	case syscall.EBADF:
		return "the fd is closed"
	}
	return ""
}

type hintKey struct {
	op    string
	errno syscall.Errno
}

var hints = map[hintKey]string{
	{"open", syscall.ENOENT}: "no " + DevicePath + ": the kernel lacks CONFIG_LIVEUPDATE, was booted without liveupdate=on, " +
		"has KHO disabled (kho=off), or devtmpfs is not mounted on /dev",
	{"open", syscall.ENODEV}: "LUO is not enabled in this kernel (liveupdate=on missing from the command line?)",
	{"open", syscall.ENXIO}:  "LUO is not enabled in this kernel (liveupdate=on missing from the command line?)",
	{"open", syscall.EBUSY}:  "the device is single-owner and another open file description exists (another process, or an earlier open in this one)",
	{"open", syscall.EACCES}: "the device is 0600 root:root; run as root or ask the service manager for a session (LUOSession=)",
	{"open", syscall.EPERM}:  "the device is 0600 root:root; run as root or ask the service manager for a session (LUOSession=)",
	{"open", syscall.EIO}: "the kernel failed to restore the previous kernel's LUO state (e.g. a file handler missing in this kernel); " +
		"nothing can be retrieved until the next reboot",

	{"CREATE_SESSION", syscall.EEXIST}: "an outgoing session with this name already exists",
	{"CREATE_SESSION", syscall.EINVAL}: fmt.Sprintf("the name must be 1 to %d bytes", MaxNameLen),
	{"CREATE_SESSION", syscall.ENOSPC}: "the kernel's session table is full",

	{"RETRIEVE_SESSION", syscall.ENOENT}: "no incoming session with this name: a cold boot, the previous kernel did not preserve it, " +
		"it was retrieved and closed already, or the kexec did not go through kexec_file_load",
	{"RETRIEVE_SESSION", syscall.EINVAL}: "the session was already retrieved and that fd is still open",

	{"PRESERVE_FD", syscall.EEXIST}: "the token is already used in this session",
	{"PRESERVE_FD", syscall.EBUSY}: "the file is already preserved (in this or another session), " +
		"or it was retrieved from an incoming session that is not finished yet",
	{"PRESERVE_FD", syscall.ENOENT}: "this kind of file cannot be preserved: Linux 7.2/7.3 preserve memfds " +
		"(not hugetlb) and unlinked tmpfs files only, not sockets, pipes, regular files or session fds",
	{"PRESERVE_FD", syscall.EINVAL}: "the session is incoming (retrieved) and takes no new files: " +
		"FINISH it, create a new outgoing session (the same name is allowed) and preserve there",
	{"PRESERVE_FD", syscall.EFBIG}:  "the memfd is too large to preserve",
	{"PRESERVE_FD", syscall.ENOSPC}: "the session's file table is full",
	{"PRESERVE_FD", syscall.ENOMEM}: "out of memory while pinning the memfd's pages",
	{"PRESERVE_FD", syscall.EFAULT}: "the kernel could not write the result back; the file may be preserved anyway",

	{"RETRIEVE_FD", syscall.ENOENT}: "no file with this token in the session, or the session is finished",
	{"RETRIEVE_FD", syscall.EINVAL}: "the session is outgoing: files are retrieved from incoming sessions only",
	{"RETRIEVE_FD", syscall.ENOMEM}: "the restored pages are charged to the caller's memory cgroup; " +
		"retrieve failures are sticky, the data of this token is lost",

	{"FINISH", syscall.EINVAL}: "only incoming (retrieved) sessions can be finished",
	{"FINISH", syscall.EBUSY}:  "a file in the session refused to finish; nothing was finished, retry later",
}
