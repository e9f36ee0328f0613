package activation

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// pidfsMagic is PIDFS_MAGIC from linux/magic.h: the file system type of
// pidfds since Linux 6.9, where each process has its own inode. Before, all
// pidfds shared one anonymous inode and the inode number identified nothing.
const pidfsMagic = 0x50494446

// ownPIDFDID returns the inode number of a pidfd for this process, which
// systemd compares with $LISTEN_PIDFDID. ok is false when the kernel cannot
// provide one: no pidfd_open(2) (Linux < 5.3, or forbidden by a seccomp
// filter), no pidfs (Linux < 6.9), or a 32-bit system, where systemd uses a
// file handle rather than the inode number.
func ownPIDFDID() (id uint64, ok bool, err error) {
	if strconv.IntSize == 32 {
		return 0, false, nil
	}
	fd, err := unix.PidfdOpen(os.Getpid(), 0) // always close-on-exec
	switch err {
	case nil:
	case unix.ENOSYS, unix.EPERM, unix.EACCES, unix.EINVAL, unix.EOPNOTSUPP:
		return 0, false, nil
	default:
		return 0, false, os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(fd)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return 0, false, os.NewSyscallError("fstatfs", err)
	}
	if fs.Type != pidfsMagic {
		return 0, false, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false, os.NewSyscallError("fstat", err)
	}
	return st.Ino, true, nil
}

// claim checks that the descriptors are open, sets FD_CLOEXEC on them and
// wraps them. It changes nothing unless every descriptor is open.
func claim(env listenEnv) ([]*os.File, error) {
	flags := make([]int, env.n)
	for i := range env.n {
		fd := listenFDsStart + i
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			return nil, fmt.Errorf("activation: %s=%d, but fd %d (%q) is not open: %w",
				envFDs, env.n, fd, env.names[i], os.NewSyscallError("fcntl", err))
		}
		flags[i] = fl
	}
	for i := range env.n {
		fd := listenFDsStart + i
		if flags[i]&unix.FD_CLOEXEC != 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags[i]|unix.FD_CLOEXEC); err != nil {
			return nil, fmt.Errorf("activation: set close-on-exec on fd %d (%q): %w",
				fd, env.names[i], os.NewSyscallError("fcntl", err))
		}
	}
	// Wrap only once nothing can fail: an *os.File closes its descriptor
	// when it is garbage collected.
	files := make([]*os.File, env.n)
	for i := range env.n {
		files[i] = os.NewFile(uintptr(listenFDsStart+i), env.names[i])
	}
	return files, nil
}
