package luo

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNotPreservable is matched (errors.Is) by the errors of CheckPreservable.
var ErrNotPreservable = fmt.Errorf("cannot be preserved across a kexec")

// CheckPreservable tells, without touching any session, whether the kernel
// would accept f in PRESERVE_FD. It mirrors the memfd handler's can_preserve
// test of Linux 7.2/7.3 (a shmem file with no links: a memfd or an unlinked
// tmpfs file) and returns nil or an error wrapping ErrNotPreservable that
// says what f is instead. A LUO session fd is reported as not preservable:
// sessions are carried across a kexec by keeping their fd open, not by
// nesting them.
func CheckPreservable(f *os.File) error {
	if f == nil {
		return fmt.Errorf("nil file: %w", ErrNotPreservable)
	}
	if _, err := sessionName(f); err == nil {
		return fmt.Errorf("a LUO session fd (carried by keeping it open, not by preserving it into another session): %w", ErrNotPreservable)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	var res error
	if err := rc.Control(func(fd uintptr) {
		var sfs unix.Statfs_t
		var st unix.Stat_t
		if err := unix.Fstatfs(int(fd), &sfs); err != nil {
			res = fmt.Errorf("fstatfs: %w", err)
			return
		}
		if err := unix.Fstat(int(fd), &st); err != nil {
			res = fmt.Errorf("fstat: %w", err)
			return
		}
		res = preservable(int64(sfs.Type), st.Mode, uint64(st.Nlink))
	}); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	return res
}

// preservable is the decision of CheckPreservable from fstatfs and fstat.
func preservable(fsType int64, mode uint32, nlink uint64) error {
	kind := fileKind(fsType, mode)
	switch {
	case fsType == unix.HUGETLBFS_MAGIC:
		return fmt.Errorf("a hugetlb memfd (only shmem memfds are supported): %w", ErrNotPreservable)
	case fsType != unix.TMPFS_MAGIC || mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("%s (only memfds and unlinked tmpfs files are supported): %w", kind, ErrNotPreservable)
	case nlink != 0:
		return fmt.Errorf("a tmpfs file with a link (unlink it first, or use a memfd): %w", ErrNotPreservable)
	}
	return nil
}

func fileKind(fsType int64, mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFIFO:
		return "a pipe"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symlink"
	}
	switch fsType {
	case unix.ANON_INODE_FS_MAGIC:
		return "an anonymous inode (eventfd, timerfd, epoll, ...)"
	case unix.TMPFS_MAGIC:
		return "a tmpfs file"
	case unix.PROC_SUPER_MAGIC:
		return "a /proc file"
	case unix.SYSFS_MAGIC:
		return "a sysfs file"
	}
	return fmt.Sprintf("a regular file on a filesystem of type %#x", fsType)
}
