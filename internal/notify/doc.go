// Package notify is the manager side of the sd_notify(3) protocol for luod:
// the notification socket, the reception of datagrams with the sender's
// credentials and file descriptors, and the parsing of the payload into a
// typed [Message]. It mirrors systemd 262 (notify_recv_with_fds() in
// src/shared/notify-recv.c and service_notify_message() in
// src/core/service.c), so that a service behaves the same under luod as under
// systemd.
//
// # Who should import it
//
// Only luod's supervisor (and its tests). Services send notifications with
// package sdnotify instead. This package does not attribute messages to
// units, check NotifyAccess=, or keep an fd store: it hands the supervisor
// everything it needs to do so, and closes every file descriptor it does not
// hand over.
//
// # Requirements
//
// Linux only: on other systems [Listen] and [FromFile] fail with an error
// wrapping [errors.ErrUnsupported] ([Parse] works everywhere). Listening needs
// no privileges beyond write access to the socket's directory. The socket
// file is made mode 0777 like systemd's, so that services running as any user
// can notify; senders are identified by their credentials, not by file
// permissions. The receive buffer is raised to 8 MiB with SO_RCVBUFFORCE,
// which needs CAP_NET_ADMIN; without it SO_RCVBUF is used, capped by
// net.core.rmem_max. (For AF_UNIX datagram sockets the queue length, sysctl
// net.unix.max_dgram_qlen, is what makes senders wait.) SO_PASSCRED is
// required. SO_PASSPIDFD needs Linux 6.5; on older kernels messages carry no
// pidfd and [Socket.PIDFDEnabled] reports false.
//
// # Protocol
//
// A notification is one AF_UNIX SOCK_DGRAM datagram of at most [BufferMax]
// bytes, with the sender's SCM_CREDENTIALS (the kernel attaches them because
// the socket has SO_PASSCRED), with an SCM_PIDFD for the sender when
// SO_PASSPIDFD is on, and with up to [FDMax] file descriptors as SCM_RIGHTS.
// [Socket.Receive] drops a datagram, closing every descriptor that came
// with it and returning a [*DropError], when
//
//   - the control data was truncated (MSG_CTRUNC: more fds than fit),
//   - the payload was truncated (MSG_TRUNC: more than [BufferMax] bytes),
//   - it lacks valid credentials (no SCM_CREDENTIALS or PID 0: the sender is
//     not visible in luod's PID namespace),
//   - the payload contains a NUL byte other than a single trailing one, or
//   - the payload cannot be split into lines (see below).
//
// The payload is split into lines exactly as systemd's strv_split_newlines()
// does: '\n' and '\r' both separate lines, empty lines vanish, and a
// backslash makes the next byte literal and is itself removed (so the line
// STATUS=a\b sets the status "ab", STATUS=a\\b sets "a\b", and a backslash
// before a newline puts the newline into the value). A lone backslash at the very end makes systemd
// drop the message, and so does [Parse]. Each line is KEY=VALUE, split at the
// first '='; lines without '=' are kept in [Message.Ignored] and otherwise
// ignored, as in systemd.
//
// When a key appears more than once, the first occurrence wins (systemd's
// strv_find_startswith()); flags such as READY=1 count if any line matches
// exactly. [Message] reports what each field says and records, in
// [Message.Problems], every value systemd would log a warning about and
// ignore. Precedence between fields that depends on the unit's state
// (STOPPING=1 over READY=1 over RELOADING=1, MAINPIDFD=1 over MAINPID=,
// FDSTOREREMOVE=1 over FDSTORE=1, BARRIER=1 over everything) is for the
// supervisor to apply; the field docs say what systemd does.
//
// # File descriptors
//
// A [Message] owns the files it carries ([Message.Files], [Message.PIDFD]):
// the caller either takes them ([Message.TakeFiles], [Message.TakePIDFD]) or
// calls [Message.Close]. Received descriptors are close-on-exec
// (MSG_CMSG_CLOEXEC). On every path that does not return a Message, Receive
// closes them itself.
package notify

const (
	// BufferMax is the largest payload, in bytes, that is accepted: systemd's
	// NOTIFY_BUFFER_MAX (PIPE_BUF). Longer datagrams are dropped.
	BufferMax = 4096

	// FDMax is the number of file descriptors the control buffer has room
	// for: systemd's NOTIFY_FD_MAX. The kernel lets a sender attach at most
	// 253 (SCM_MAX_FD) to one datagram, so the control data never gets
	// truncated in practice; Receive handles it anyway.
	FDMax = 768
)
