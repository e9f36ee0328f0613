// Package execshim is what runs in a service's process between luod's fork
// and the exec of the service: it sets LISTEN_PID (and LISTEN_PIDFDID) to
// its own pid when LISTEN_FDS is set, so the service sees the fd-store
// protocol exactly as under systemd (luod cannot set them before the fork),
// lowers the fd limit, switches to User=/Group=, marks every other fd
// close-on-exec, and execs the service.
//
// It is the whole of the small luod-exec binary (cmd/luod-exec), which luod
// runs for each service as systemd runs systemd-executor: a process that
// starts in a few milliseconds, where luod's own binary (the fallback,
// "luod --exec-shim") spends longer in the Go runtime's and its packages'
// initialization. It imports nothing that initializes anything.
package execshim

import (
	"math"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// CredEnv carries User=/Group= from luod to the shim as "UID:GID:G1,G2,...",
// which switches to them right before exec: luod's binaries then need not
// be executable by the service's user.
const CredEnv = "LUOD_SHIM_CREDENTIAL"

// Exit statuses, systemd's.
const (
	exitExec = 203 // EXIT_EXEC
	exitUser = 216 // EXIT_GROUP/EXIT_USER range
)

// Run execs args[0] with argv args[1:] (PATH ARGV0 ARGS...). It only
// returns on failure, with the exit status systemd uses.
func Run(args []string) int {
	if len(args) < 2 {
		fail("usage: luod-exec PATH ARGV0 [ARGS...]")
		return exitExec
	}
	// luod raised its own fd limit to hold large stores; services start
	// with systemd's default (DefaultLimitNOFILE=1024:524288).
	var lim unix.Rlimit
	maxFD := uint64(65536)
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		maxFD = lim.Cur
		lim.Cur, lim.Max = min(1024, lim.Max), min(lim.Max, 524288)
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	env := syscall.Environ()
	cred, env := cut(env, CredEnv)
	if cred != "" {
		if err := dropCredentials(cred); err != "" {
			fail(err)
			return exitUser
		}
	}
	keep := 3 // stdin, stdout, stderr
	if v, _ := cut(env, "LISTEN_FDS"); v != "" {
		pid := syscall.Getpid()
		_, env = cut(env, "LISTEN_PID")
		env = append(env, "LISTEN_PID="+strconv.Itoa(pid))
		_, env = cut(env, "LISTEN_PIDFDID")
		if id, ok := pidfdID(pid); ok {
			env = append(env, "LISTEN_PIDFDID="+strconv.FormatUint(id, 10))
		}
		n, _ := strconv.Atoi(v)
		keep += max(n, 0)
	}
	if err := unix.CloseRange(uint(keep), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		// Linux before 5.11: mark every fd luod's limit allowed.
		for fd := uint64(keep); fd < maxFD; fd++ {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
	// A service starts with no signal blocked, as under systemd, whatever
	// mask luod inherited from whoever started it. The mask is per
	// thread: the exec must happen on this one.
	runtime.LockOSThread()
	var none unix.Sigset_t
	unix.PthreadSigmask(unix.SIG_SETMASK, &none, nil)
	err := unix.Exec(args[0], args[1:], env)
	fail("exec " + args[0] + ": " + err.Error())
	return exitExec
}

// cut returns the value of key in env and env without it.
func cut(env []string, key string) (string, []string) {
	val := ""
	out := env[:0:0]
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			val = v
			continue
		}
		out = append(out, kv)
	}
	return val, out
}

// dropCredentials switches to "UID:GID:G1,G2,..." and returns what failed.
func dropCredentials(v string) string {
	f := strings.SplitN(v, ":", 3)
	if len(f) != 3 {
		return "bad " + CredEnv + "=" + strconv.Quote(v)
	}
	uid, err1 := strconv.Atoi(f[0])
	gid, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return "bad " + CredEnv + "=" + strconv.Quote(v)
	}
	gids := []int{}
	for _, g := range strings.Split(f[2], ",") {
		if n, err := strconv.Atoi(g); err == nil {
			gids = append(gids, n)
		}
	}
	if err := syscall.Setgroups(gids); err != nil {
		return "setgroups: " + err.Error()
	}
	if err := syscall.Setgid(gid); err != nil {
		return "setgid " + f[1] + ": " + err.Error()
	}
	if err := syscall.Setuid(uid); err != nil {
		return "setuid " + f[0] + ": " + err.Error()
	}
	return ""
}

// pidfdID is the inode number of a pidfd for pid on a kernel with pidfs
// (6.9+), where it identifies the process for its lifetime.
func pidfdID(pid int) (uint64, bool) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	const pidfsMagic = 0x50494446
	if unix.Fstatfs(fd, &sfs) != nil || sfs.Type != pidfsMagic {
		return 0, false
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0, false
	}
	return st.Ino, true
}

func fail(msg string) {
	syscall.Write(2, []byte("luod: "+msg+"\n"))
}
