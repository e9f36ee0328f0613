//go:build linux

package supervisor

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/unit"
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
	if os.Getenv("LISTEN_FDS") != "" {
		env = setenv(env, "LISTEN_PID", strconv.Itoa(os.Getpid()))
		if id, err := selfPidfdID(); err == nil {
			env = setenv(env, "LISTEN_PIDFDID", strconv.FormatUint(id, 10))
		}
	}
	err := unix.Exec(args[0], args[1:], env)
	fmt.Fprintf(os.Stderr, "luod: exec %s: %v\n", args[0], err)
	return 203
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

func setenv(env []string, key, value string) []string {
	prefix := key + "="
	for i, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			env[i] = prefix + value
			return env
		}
	}
	return append(env, prefix+value)
}

// spawn forks the shim for cmd with the unit's environment, credentials
// and fd store, in a new session. It returns the pid.
func (m *Manager) spawn(u *Unit, cmd unit.Command) (int, error) {
	d := u.def
	path, err := cmd.LookPath()
	if err != nil {
		return 0, err
	}
	env, err := m.environment(u)
	if err != nil {
		return 0, err
	}
	cred, home, err := credential(d.User, d.Group)
	if err != nil {
		return 0, err
	}
	if home != "" {
		env = setenv(env, "HOME", home)
	}
	dir := "/"
	switch {
	case d.WorkingDirectory == "~" && home != "":
		dir = home
	case d.WorkingDirectory != "" && d.WorkingDirectory != "~":
		dir = d.WorkingDirectory
	}
	if _, err := os.Stat(dir); err != nil {
		if !d.WorkingDirectoryOptional {
			return 0, fmt.Errorf("WorkingDirectory=%s: %w", dir, err)
		}
		dir = "/"
	}
	argv := cmd.Argv
	if !cmd.NoEnvExpand {
		argv = cmd.Expand(env)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	files := []uintptr{null.Fd(), os.Stdout.Fd(), os.Stderr.Fd()}
	stored, names := u.storeFiles()
	if len(stored) > 0 {
		env = setenv(env, "LISTEN_FDS", strconv.Itoa(len(stored)))
		env = setenv(env, "LISTEN_FDNAMES", strings.Join(names, ":"))
		// Fd() would switch pollable files to blocking mode; the fds are
		// only read here, so take them through the raw connection.
		for _, f := range stored {
			fd, err := rawFd(f)
			if err != nil {
				return 0, fmt.Errorf("fd store entry %s: %w", f.Name(), err)
			}
			files = append(files, fd)
		}
	}
	if cred != nil {
		var gs []string
		for _, g := range cred.Groups {
			gs = append(gs, strconv.FormatUint(uint64(g), 10))
		}
		env = setenv(env, credEnv, fmt.Sprintf("%d:%d:%s", cred.Uid, cred.Gid, strings.Join(gs, ",")))
	}
	shimArgs := append([]string{m.cfg.Exe, ShimArg, path}, argv...)
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	pid, err := syscall.ForkExec(m.cfg.Exe, shimArgs, attr)
	for _, f := range stored {
		runtime.KeepAlive(f)
	}
	if err != nil {
		return 0, fmt.Errorf("fork %s: %w", path, err)
	}
	m.log.Info("process started", "unit", u.name, "pid", pid, "cmd", strings.Join(argv, " "), "fds", len(stored))
	return pid, nil
}

// environment is the service's environment: a base, Environment=,
// EnvironmentFile= and the manager's variables.
func (m *Manager) environment(u *Unit) ([]string, error) {
	d := u.def
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if lang := os.Getenv("LANG"); lang != "" {
		env = append(env, "LANG="+lang)
	}
	id := make([]byte, 16)
	rand.Read(id)
	env = append(env, "INVOCATION_ID="+hex.EncodeToString(id), "LUOD_UNIT="+u.name)
	for _, kv := range d.Environment {
		k, v, _ := strings.Cut(kv, "=")
		env = setenv(env, k, v)
	}
	for _, ef := range d.EnvironmentFiles {
		kvs, err := readEnvFile(ef.Path)
		if err != nil {
			if ef.Optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("EnvironmentFile=%s: %w", ef.Path, err)
		}
		for _, kv := range kvs {
			k, v, _ := strings.Cut(kv, "=")
			env = setenv(env, k, v)
		}
	}
	if d.EffectiveNotifyAccess() != unit.NotifyAccessNone || u.notifyAccessOverride != "" {
		env = setenv(env, "NOTIFY_SOCKET", m.notify.Path())
	}
	if n := d.EffectiveFileDescriptorStoreMax(); n > 0 {
		env = setenv(env, "FDSTORE", strconv.FormatUint(uint64(n), 10))
	}
	return env, nil
}

// readEnvFile reads KEY=VALUE lines as systemd's EnvironmentFile= does:
// comments (# ;) and blank lines skipped, optional "export ", values in
// single or double quotes unquoted, backslash-newline continued.
func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	var cont string
	for sc.Scan() {
		line := cont + sc.Text()
		cont = ""
		if strings.HasSuffix(line, "\\") {
			cont = strings.TrimSuffix(line, "\\")
			continue
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("invalid line %q", line)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		out = append(out, k+"="+v)
	}
	return out, sc.Err()
}

// credential resolves User= and Group= (names or ids) and returns the home
// directory of User=.
func credential(userName, groupName string) (*syscall.Credential, string, error) {
	if userName == "" && groupName == "" {
		return nil, "", nil
	}
	c := &syscall.Credential{}
	home := ""
	if userName != "" {
		usr, err := lookupUser(userName)
		if err != nil {
			return nil, "", fmt.Errorf("User=%s: %w", userName, err)
		}
		uid, _ := strconv.Atoi(usr.Uid)
		gid, _ := strconv.Atoi(usr.Gid)
		c.Uid, c.Gid, home = uint32(uid), uint32(gid), usr.HomeDir
		if gids, err := usr.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.Atoi(g); err == nil {
					c.Groups = append(c.Groups, uint32(n))
				}
			}
		}
	}
	if groupName != "" {
		gid, err := lookupGroup(groupName)
		if err != nil {
			return nil, "", fmt.Errorf("Group=%s: %w", groupName, err)
		}
		c.Gid = gid
	}
	return c, home, nil
}

func lookupUser(name string) (*user.User, error) {
	if _, err := strconv.Atoi(name); err == nil {
		if u, err := user.LookupId(name); err == nil {
			return u, nil
		}
		return &user.User{Uid: name, Gid: name, HomeDir: "/"}, nil
	}
	return user.Lookup(name)
}

func lookupGroup(name string) (uint32, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return uint32(n), nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	n, _ := strconv.Atoi(g.Gid)
	return uint32(n), nil
}

// killUnit sends sig to the unit's processes: its main process, its
// process group and every other process in its session.
func (m *Manager) killUnit(u *Unit, sig syscall.Signal) {
	if u.mainPID != 0 {
		syscall.Kill(u.mainPID, sig)
	}
	if u.sid != 0 {
		syscall.Kill(-u.sid, sig)
		for _, pid := range m.sessionMembers(u.sid) {
			syscall.Kill(pid, sig)
		}
	}
}

// killStragglers SIGKILLs what is left of the unit's session once its main
// process is gone (systemd's KillMode=control-group).
func (m *Manager) killStragglers(u *Unit) {
	if u.sid == 0 {
		return
	}
	syscall.Kill(-u.sid, syscall.SIGKILL)
	if left := m.sessionMembers(u.sid); len(left) > 0 {
		m.log.Info("killing remaining processes", "unit", u.name, "pids", fmt.Sprint(left))
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// sessionMembers lists the live processes of session sid. One scan of
// /proc serves every unit for a few milliseconds (stopping 100 units at
// once must not read /proc 100 times); each pid taken from it is checked
// again before it is returned, so a pid reused since the scan is not.
func (m *Manager) sessionMembers(sid int) []int {
	if time.Since(m.procScan.at) > 20*time.Millisecond {
		m.procScan.at = time.Now()
		m.procScan.bySID = scanSessions()
	}
	var out []int
	for _, pid := range m.procScan.bySID[sid] {
		if s, state, ok := procSession(pid); ok && s == sid && state != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// scanSessions maps session ids to the pids in /proc.
func scanSessions() map[int][]int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, state, ok := procSession(pid); ok && state != 'Z' {
			out[s] = append(out[s], pid)
		}
	}
	return out
}

// procSession reads the session id and state of pid from /proc/PID/stat.
func procSession(pid int) (sid int, state byte, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp session ...; comm may contain spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return 0, 0, false
	}
	sid, err = strconv.Atoi(f[3])
	if err != nil || len(f[0]) == 0 {
		return 0, 0, false
	}
	return sid, f[0][0], true
}

// reap collects every exited child (wait4(-1, WNOHANG)) and hands the
// exits of main processes to their units.
func (m *Manager) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if !ws.Exited() && !ws.Signaled() {
			continue
		}
		for _, u := range m.units {
			if u.mainPID == pid {
				m.exited[pid] = exitedMain{unit: u, at: time.Now()}
				u.exited(ws)
				break
			}
		}
	}
}

// exitedMain is a main process reaped a moment ago.
type exitedMain struct {
	unit *Unit
	at   time.Time
}

// exitedGrace is how long a reaped main process's notifications are still
// attributed to its unit.
const exitedGrace = 10 * time.Second

// recentlyExited returns the unit of a main process reaped within the
// grace period, forgetting older ones.
func (m *Manager) recentlyExited(pid int) *Unit {
	for p, e := range m.exited {
		if time.Since(e.at) > exitedGrace {
			delete(m.exited, p)
		}
	}
	if e, ok := m.exited[pid]; ok && m.units[e.unit.name] == e.unit {
		return e.unit
	}
	return nil
}

func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// raiseFDLimit lifts luod's own RLIMIT_NOFILE as far as the kernel allows
// (fs.nr_open): every stored fd is an open fd of luod.
func raiseFDLimit() (uint64, error) {
	n := uint64(1 << 20)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			n = v
		}
	}
	lim := unix.Rlimit{Cur: n, Max: n}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		// Not root: take what the hard limit allows.
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
		lim.Cur = lim.Max
		return lim.Cur, unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	return n, nil
}
