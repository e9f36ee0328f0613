// Package activation receives the file descriptors a service manager passes
// to the process it starts, through the LISTEN_FDS protocol of systemd
// (sd_listen_fds(3), sd_listen_fds_with_names(3)): sockets of socket
// activation, and the fds the previous instance of the service put in its fd
// store (see package sdnotify).
//
// # Who should import it
//
// Go services started by systemd (v262 is the reference) or by luod, usually
// from main, once, early. Libraries should take the *os.File they need as a
// parameter rather than call [Receive] themselves: the descriptors belong to
// the process, and only one caller can own them. No privileges are needed.
// Only Linux is supported; on other systems [Receive] returns an empty set
// when $LISTEN_FDS is unset and an error wrapping [errors.ErrUnsupported]
// when descriptors were passed. The $LISTEN_PIDFDID check needs Linux 6.9 (pidfs) and is skipped
// on older kernels, as libsystemd does.
//
// # Protocol
//
// The manager passes the fds as descriptors 3, 4, ... (SD_LISTEN_FDS_START
// is 3) and describes them in the environment:
//
//   - LISTEN_FDS: how many fds there are;
//   - LISTEN_PID: the PID of the process they are for. The variables are
//     inherited by children that did not unset them, so a process must
//     ignore the fds when LISTEN_PID is not its own PID ([ErrNotForUs]);
//   - LISTEN_PIDFDID (systemd 259 and later): the inode number of a pidfd
//     for that process, which unlike a PID is never reused;
//   - LISTEN_FDNAMES: the names of the fds, separated by ':'. Names need
//     not be unique. The manager checks a name when it is given one
//     (FDNAME= of sd_notify, FileDescriptorName= of a socket unit): it must
//     be printable ASCII except ':', at most 255 bytes (systemd's
//     fdname_is_valid(), ValidFDName in package sdnotify). Like libsystemd's
//     sd_listen_fds_with_names, [Receive] does not check the names again:
//     it splits the list at ':', requires one name per fd, and takes each
//     name as the manager wrote it.
//
// The manager passes socket-activation fds first (named after
// FileDescriptorName=, by default the socket unit's name), then fd-store fds
// in an order it does not promise. Some names are special:
//
//   - "unknown": the manager gave no names (LISTEN_FDNAMES unset); every fd
//     is called that, as sd_listen_fds_with_names does;
//   - "stored": an fd-store entry that was stored without FDNAME=;
//   - "connection": the connection socket of an Accept=yes socket unit.
//
// [Receive] checks the environment, checks that each descriptor is open,
// sets FD_CLOEXEC on it (so that it does not leak into child processes) and
// wraps it in an *os.File whose Name is the fd's name. Look them up with
// [Files.Named]: an fd store can hold several entries of one name, and
// their order is not stable across restarts.
package activation
