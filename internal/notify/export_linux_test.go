package notify

// ListenControlSize is Listen with a control buffer of size bytes, so that
// tests can make the kernel truncate the control data (MSG_CTRUNC): a sender
// can attach at most 253 (SCM_MAX_FD) fds to a datagram, fewer than the
// FDMax that Listen makes room for.
func ListenControlSize(path string, size int) (*Socket, error) {
	return listen(path, size)
}

// ControlSize is the size of a control buffer with room for the
// credentials, a pidfd and maxFDs fds. The kernel puts the SCM_RIGHTS
// message before SCM_PIDFD (Linux 6.18), so when the fds do not fit, some of
// the pidfd's room goes to fds.
func ControlSize(maxFDs int) int { return controlSize(maxFDs) }

// Control is what parseControl finds, for tests.
type Control struct {
	FDs     []int
	PIDFD   int
	Stray   []int
	PID     int
	HasCred bool
}

// ParseControl runs parseControl on b.
func ParseControl(b []byte) Control {
	c := parseControl(b)
	return Control{FDs: c.fds, PIDFD: c.pidfd, Stray: c.stray, PID: int(c.cred.Pid), HasCred: c.hasCred}
}
