// Package sdnotifytest provides a fake service manager notification socket
// for the tests of this module: it receives sd_notify(3) datagrams the way
// systemd's manager does (AF_UNIX SOCK_DGRAM with SO_PASSCRED, recvmsg with
// MSG_CMSG_CLOEXEC, a payload buffer one byte larger than the manager's and
// room for as many fds as the manager accepts) and hands them to the test
// with their raw ancillary data, credentials and files.
//
// Only tests import it. It needs Linux and no privileges; on other systems
// the package is empty.
package sdnotifytest
