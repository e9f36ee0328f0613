// Package sdnotify implements the service side of the sd_notify(3) protocol:
// a service tells its manager (systemd, or luod) that it is ready, reloading
// or stopping, reports a status line, pets the watchdog, and hands file
// descriptors to the manager's per-service fd store so that they survive a
// restart of the service (and, with FileDescriptorStorePreserve= and LUO, a
// kexec).
//
// # Who should import it
//
// Go services started by systemd (v262 is the reference) or by luod, and the
// higher-level packages of this module that wrap the fd store. The manager side
// (receiving notifications) lives elsewhere: this package only sends. It needs
// no privileges; the messages are authorised by the manager through
// NotifyAccess=, which defaults to the main PID for Type=notify services.
// Only Linux is supported; on other systems Open reports ErrNoSocket when
// $NOTIFY_SOCKET is unset and an error wrapping [errors.ErrUnsupported]
// otherwise.
//
// # Protocol
//
// The manager passes the address of its notification socket in
// $NOTIFY_SOCKET: "/path" names an AF_UNIX socket in the file system,
// "@name" one in the abstract namespace. (systemd also defines "vsock:CID:PORT"
// and friends for virtual machines; they are rejected with an error wrapping
// [errors.ErrUnsupported].) Each notification is one AF_UNIX SOCK_DGRAM
// datagram whose payload is a list of newline-separated KEY=VALUE assignments,
// for example "READY=1\nSTATUS=serving". The manager reads at most
// [MaxMessageSize] bytes and drops longer datagrams, and drops datagrams with
// an embedded NUL; this package checks both before sending, so a datagram
// that leaves the process is one the manager accepts. Each datagram also
// carries the sender's credentials (SCM_CREDENTIALS): the manager attributes
// the message to a unit by the sender's PID.
//
// File descriptors travel as SCM_RIGHTS ancillary data of the same datagram
// (at most [MaxFiles] per datagram, the kernel's SCM_MAX_FD). The manager
// keeps them only when the message says what to do with them:
//
//   - FDSTORE=1 with an optional FDNAME= adds them to the unit's fd store
//     ([Notifier.StoreFiles]); FDPOLL=0 stops the manager from watching them
//     for POLLHUP/POLLERR, which would otherwise remove them from the store;
//   - FDSTOREREMOVE=1 with FDNAME= removes and closes every stored fd of
//     that name ([Notifier.RemoveFiles]);
//   - BARRIER=1 with exactly one fd is a barrier: the manager closes the fd
//     once it has processed every earlier message ([Notifier.Barrier]).
//
// Every other fd is closed by the manager. The fd store is disabled unless
// the unit sets FileDescriptorStoreMax= to a non-zero value (the default is
// 0): without it the manager logs a warning and closes the fds, but the
// sender cannot tell, because sendmsg succeeded. The same happens when the
// store is full. A service can check $FDSTORE, which systemd sets to the
// limit when it is non-zero. The stored fds come back to the next instance of
// the service through $LISTEN_FDS (see package activation), after the
// socket-activation fds and in no promised order.
//
// Names given with FDNAME= must pass [ValidFDName]; they reach the service
// again through $LISTEN_FDNAMES, which is why ':' is not allowed. Names need
// not be unique.
//
// # Errors
//
// When $NOTIFY_SOCKET is unset every operation returns [ErrNoSocket], the
// analogue of sd_notify returning 0: a service not started by a manager can
// ignore it with errors.Is. Invalid input is rejected before anything is sent,
// with errors that wrap [syscall.EINVAL], or [syscall.E2BIG] for size limits.
// Send errors wrap the errno of sendmsg(2).
package sdnotify
