// Package luo binds the Linux Live Update Orchestrator uAPI: the
// /dev/liveupdate device and the session file descriptors it hands out
// (include/uapi/linux/liveupdate.h, Documentation/userspace-api/liveupdate.rst).
//
// With LUO, userspace creates named sessions, preserves memfds into them by
// token, keeps the session fds open until it kexecs into the next kernel
// (kexec_file_load + reboot(LINUX_REBOOT_CMD_KEXEC)), and in the new kernel
// retrieves the sessions by name and the files by token, then finishes them:
//
//	dev, err := luo.Open()               // exclusive: one opener at a time
//	s, err := dev.CreateSession("cache")  // outgoing session
//	err = s.PreserveFD(memfd, 1)          // memfd's size is frozen from now on
//	dev.Close()                           // sessions stay valid without the device
//	// ... keep s open, kexec ...
//	dev, err = luo.Open()
//	s, err = dev.RetrieveSession("cache") // incoming session
//	f, err := s.RetrieveFD(1)             // contents, size, offset and seals restored
//	err = s.Finish()                      // unretrieved tokens are discarded
//
// # Who should import it
//
// Service managers (luod, or anything that holds state for the next kernel)
// and services that own their LUO sessions. Most services should use the
// higher-level package keep instead, which also covers the fd store.
//
// # Privileges and kernel
//
// /dev/liveupdate is created 0600 root:root, so opening it needs root (or a
// udev rule). Session fds need no privileges: a manager can hand them to an
// unprivileged service. The kernel must be Linux 7.2 or later built with
// CONFIG_LIVEUPDATE and CONFIG_LIVEUPDATE_MEMFD and booted with liveupdate=on.
// The next kernel must be loaded with kexec_file_load (not kexec_load) and
// also get liveupdate=on; otherwise nothing can be retrieved after the kexec.
//
// # Rules the kernel enforces
//
//   - The device has a single owner: a second open, even from the same
//     process, fails with EBUSY. Open it for an operation and close it.
//   - A session lives as long as its fd. Closing the last fd of an outgoing
//     session unpreserves everything in it; closing an incoming session is an
//     implicit FINISH that discards unretrieved files. All fds this package
//     returns are O_CLOEXEC, so an execve drops them unless handed on.
//   - Only memfds (not hugetlb) and unlinked tmpfs files can be preserved in
//     Linux 7.2 and 7.3; anything else fails with ENOENT. Each file can be
//     preserved once system-wide (EBUSY), and its size is frozen while it is.
//   - Incoming sessions are read-only and are not carried over another kexec.
//     To carry state further: retrieve every token, FINISH, create a new
//     outgoing session (the same name is allowed) and preserve again.
//
// Errors are *Error values that keep the errno, so errors.Is(err,
// unix.EBUSY) works, and whose message explains the usual causes.
//
// On other operating systems the package compiles, and every operation
// returns an error wrapping errors.ErrUnsupported.
package luo
