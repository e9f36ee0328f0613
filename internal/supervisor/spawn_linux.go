//go:build linux

package supervisor

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/liveupdate/luo/internal/execshim"
	"github.com/liveupdate/luo/internal/unit"
)

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
	stdout, stderr, pipes, err := u.outputFiles(null)
	if err != nil {
		return 0, fmt.Errorf("output of %s: %w", u.name, err)
	}
	// The child has its own copies once forked (or failed to fork).
	defer closeFiles(pipes)
	files := []uintptr{null.Fd(), stdout, stderr}
	stored, names := u.listenFiles()
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
		env = setenv(env, execshim.CredEnv, fmt.Sprintf("%d:%d:%s", cred.Uid, cred.Gid, strings.Join(gs, ",")))
	}
	shimArgs := append(append(slices.Clone(m.shim), path), argv...)
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	// Born in the unit's cgroup (clone3 with CLONE_INTO_CGROUP): nothing
	// of the unit ever runs outside it.
	if g := m.group(u); g != nil {
		dir, err := g.OpenDir()
		if err != nil {
			return 0, err
		}
		defer dir.Close()
		fd, err := rawFd(dir)
		if err != nil {
			return 0, fmt.Errorf("cgroup of %s: %w", u.name, err)
		}
		attr.Sys.UseCgroupFD, attr.Sys.CgroupFD = true, int(fd)
	}
	pid, err := syscall.ForkExec(shimArgs[0], shimArgs, attr)
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
		kvs, err := unit.ReadEnvironmentFile(ef.Path)
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
