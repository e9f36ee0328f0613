//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ShimArg is the first argument that makes luod act as the exec shim.
const ShimArg = "--exec-shim"

// RunShim is the exec shim: luod re-executed as ShimArg PATH ARGV0 ARGS...
// in the service's process. It sets LISTEN_PID (and LISTEN_PIDFDID) to its
// own pid when LISTEN_FDS is set, then execs PATH, so the service sees the
// fd-store protocol exactly as under systemd. It only returns on failure,
// with the exit status systemd uses for exec failures (203).
func RunShim(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "luod exec shim: usage: luod --exec-shim PATH ARGV0 [ARGS...]")
		return 203
	}
	// luod raised its own fd limit to hold large stores; services start
	// with systemd's default (DefaultLimitNOFILE=1024:524288).
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		lim.Cur, lim.Max = min(1024, lim.Max), min(lim.Max, 524288)
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	if err := dropCredentials(); err != nil {
		fmt.Fprintf(os.Stderr, "luod: %v\n", err)
		return 216 // systemd's EXIT_GROUP/EXIT_USER range
	}
	env := os.Environ()
	keep := 3 // stdin, stdout, stderr
	if v := os.Getenv("LISTEN_FDS"); v != "" {
		env = setenv(env, "LISTEN_PID", strconv.Itoa(os.Getpid()))
		if id, err := selfPidfdID(); err == nil {
			env = setenv(env, "LISTEN_PIDFDID", strconv.FormatUint(id, 10))
		}
		n, _ := strconv.Atoi(v)
		keep += max(n, 0)
	}
	if err := closeOthers(keep); err != nil {
		fmt.Fprintf(os.Stderr, "luod: %v\n", err)
		return 203
	}
	err := unix.Exec(args[0], args[1:], env)
	fmt.Fprintf(os.Stderr, "luod: exec %s: %v\n", args[0], err)
	return 203
}

// closeOthers makes every fd from keep on close at the exec: a service
// gets stdin, stdout, stderr and its LISTEN_FDS, as under systemd, and
// nothing else that luod had open (or inherited) without O_CLOEXEC.
func closeOthers(keep int) error {
	err := unix.CloseRange(uint(keep), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Before Linux 5.11: mark each open fd.
	ents, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close inherited fds: %w (close_range: %v)", rerr, err)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= keep {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
	return nil
}

// credEnv carries User=/Group= from luod to the shim, which switches to
// them right before exec: luod's own binary then need not be executable
// by the service's user.
const credEnv = "LUOD_SHIM_CREDENTIAL"

func dropCredentials() error {
	v, ok := os.LookupEnv(credEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(credEnv)
	var uid, gid int
	var groups string
	if _, err := fmt.Sscanf(v, "%d:%d:%s", &uid, &gid, &groups); err != nil {
		if _, err := fmt.Sscanf(v, "%d:%d:", &uid, &gid); err != nil {
			return fmt.Errorf("bad %s=%q", credEnv, v)
		}
	}
	var gids []int
	for _, g := range strings.Split(groups, ",") {
		if n, err := strconv.Atoi(g); err == nil {
			gids = append(gids, n)
		}
	}
	if err := syscall.Setgroups(gids); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	return nil
}

// selfPidfdID is the inode number of a pidfd for ourselves on a kernel with
// pidfs (6.9+), where it identifies the process for its lifetime.
func selfPidfdID() (uint64, error) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return 0, err
	}
	const pidfsMagic = 0x50494446
	if sfs.Type != pidfsMagic {
		return 0, errors.New("no pidfs")
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
