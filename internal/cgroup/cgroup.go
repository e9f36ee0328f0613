// Package cgroup gives each of luod's units a cgroup v2 group of its own:
// luod starts a unit's processes in it (clone3 with CLONE_INTO_CGROUP),
// finds which unit a process belongs to from its group, signals and kills
// all of a unit's processes (freezing the group meanwhile), and can charge
// memory to a unit by running in its group for a moment.
//
// The groups live in a subtree luod owns. As PID 1, luod mounts cgroup2 on
// /sys/fs/cgroup when no cgroup2 hierarchy is mounted, stays in the root
// group and puts the units under /system.slice. Otherwise it moves itself
// into a leaf next to a subtree of its own, named after its pid so that two
// luods never share one:
//
//	<own>/luod-<pid>.scope      luod itself
//	<own>/luod-<pid>.slice/<unit>  each unit
//
// As PID 1, luod sets favordynmods on the hierarchy (see favorDynmods).
//
// The memory controller is enabled for the units where the hierarchy
// allows it (under a delegated systemd service, as PID 1), so that
// memory.current is a unit's own.
//
// Imported by luod's supervisor. Needs root. Linux only.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUnavailable is wrapped by Open's error when no cgroup v2 hierarchy
// can be used.
var ErrUnavailable = errors.New("cgroup v2 is not available")

// Tree is the part of the cgroup v2 hierarchy luod owns. Safe for
// concurrent use.
type Tree struct {
	mount string // where the cgroup2 hierarchy is mounted
	// dynmods is why favordynmods could not be set (PID 1 only).
	dynmods error
	own     string // the group luod was started in, relative to mount ("/" for the root)
	self    string // the group luod runs in
	base    string // the parent of the units' groups
	memory  bool   // the memory controller is enabled for the units
}

// Open finds or mounts (pid1) the cgroup2 hierarchy and sets up luod's
// subtree (see the package doc). A luod that re-executed finds the subtree
// its predecessor set up. The error wraps ErrUnavailable when there is no
// usable hierarchy; luod then tracks processes by session.
func Open(pid1 bool) (*Tree, error) {
	mount, opts, err := findMountOpts()
	if err != nil && pid1 {
		mount, opts = "/sys/fs/cgroup", "nsdelegate"
		if merr := mountCgroup2(mount); merr != nil {
			return nil, fmt.Errorf("%w: mount cgroup2 on %s: %v", ErrUnavailable, mount, merr)
		}
		err = nil
	}
	if err != nil {
		return nil, err
	}
	var dynmods error
	if pid1 {
		dynmods = favorDynmods(mount, opts)
	}
	own, err := Of(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	t := &Tree{mount: mount, dynmods: dynmods}
	if pid1 {
		t.own, t.self, t.base = own, own, path.Join(own, "system.slice")
	} else {
		leaf := fmt.Sprintf("luod-%d.scope", os.Getpid())
		if path.Base(own) == leaf { // re-executed: already in its leaf
			own = path.Dir(own)
		}
		t.own, t.self = own, path.Join(own, leaf)
		t.base = path.Join(own, fmt.Sprintf("luod-%d.slice", os.Getpid()))
		if err := t.mkdir(t.self); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if err := t.write(t.self, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
			return nil, fmt.Errorf("%w: move luod into %s: %v", ErrUnavailable, t.self, err)
		}
	}
	if err := t.mkdir(t.base); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	t.memory = t.enable(t.own, "memory") && t.enable(t.base, "memory")
	return t, nil
}

// DynmodsErr says why luod as PID 1 could not set favordynmods on the
// hierarchy (see favorDynmods), nil when it did or is not PID 1.
func (t *Tree) DynmodsErr() error { return t.dynmods }

// Memory reports whether the units' groups have the memory controller.
func (t *Tree) Memory() bool { return t.memory }

// Base returns the absolute path of the parent of the units' groups.
func (t *Tree) Base() string { return filepath.Join(t.mount, t.base) }

// Group creates (if needed) and opens the group of unit.
func (t *Tree) Group(unit string) (*Group, error) {
	if unit == "" || strings.ContainsAny(unit, "/\x00") || unit == "." || unit == ".." {
		return nil, fmt.Errorf("cgroup: invalid unit name %q", unit)
	}
	rel := path.Join(t.base, unit)
	if err := t.mkdir(rel); err != nil {
		return nil, err
	}
	g := &Group{t: t, rel: rel}
	// A luod that stopped in the middle of a Kill may have left the group
	// frozen; every process started in it would be born frozen.
	if b, err := os.ReadFile(filepath.Join(g.Path(), "cgroup.freeze")); err == nil && strings.TrimSpace(string(b)) != "0" {
		if err := g.thaw(); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// UnitOf returns the unit whose group (or a group below it) pid is in, or
// "" when it is in none.
func (t *Tree) UnitOf(pid int) string {
	cg, err := Of(pid)
	if err != nil {
		return ""
	}
	rest, ok := strings.CutPrefix(cg, t.base+"/")
	if !ok {
		return ""
	}
	unit, _, _ := strings.Cut(rest, "/")
	return unit
}

// Enter moves luod into g, so that the memory it allocates meanwhile is
// charged to g, and returns the function that moves it back. luod must
// not be in g when g is killed.
func (t *Tree) Enter(g *Group) (leave func() error, err error) {
	if err := t.write(g.rel, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
		return nil, fmt.Errorf("cgroup: enter %s: %w", g.rel, err)
	}
	return func() error {
		if err := t.write(t.self, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
			return fmt.Errorf("cgroup: leave %s: %w", g.rel, err)
		}
		return nil
	}, nil
}

// Close removes what luod set up and can remove: the empty groups of its
// units and, when it is not PID 1, its subtree and leaf, moving itself back
// into the group it started in. For a luod that exits, not one that
// re-executes.
func (t *Tree) Close() error {
	ents, _ := os.ReadDir(filepath.Join(t.mount, t.base))
	for _, e := range ents {
		if e.IsDir() {
			syscall.Rmdir(filepath.Join(t.mount, t.base, e.Name()))
		}
	}
	if t.self == t.own {
		return nil
	}
	if err := t.write(t.own, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
		return fmt.Errorf("cgroup: leave %s: %w", t.self, err)
	}
	var errs []error
	for _, rel := range []string{t.base, t.self} {
		if err := syscall.Rmdir(filepath.Join(t.mount, rel)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cgroup: remove %s: %w", rel, err))
		}
	}
	return errors.Join(errs...)
}

func (t *Tree) mkdir(rel string) error {
	if err := os.MkdirAll(filepath.Join(t.mount, rel), 0o755); err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	return nil
}

func (t *Tree) write(rel, file, value string) error {
	return os.WriteFile(filepath.Join(t.mount, rel, file), []byte(value), 0)
}

// enable enables controller for the children of rel, when rel offers it.
func (t *Tree) enable(rel, controller string) bool {
	b, err := os.ReadFile(filepath.Join(t.mount, rel, "cgroup.controllers"))
	if err != nil || !slices.Contains(strings.Fields(string(b)), controller) {
		return false
	}
	return t.write(rel, "cgroup.subtree_control", "+"+controller) == nil
}

// Of returns the cgroup v2 group of pid, from the "0::" line of
// /proc/PID/cgroup, such as "/system.slice/counter.service".
func Of(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if cg, ok := strings.CutPrefix(line, "0::"); ok {
			return cg, nil
		}
	}
	return "", fmt.Errorf("cgroup: process %d is in no cgroup v2 group", pid)
}

// Mount returns where the cgroup2 hierarchy is mounted
// (/proc/self/mountinfo), preferring /sys/fs/cgroup (a hybrid host has it
// at /sys/fs/cgroup/unified).
func Mount() (string, error) {
	m, _, err := findMountOpts()
	return m, err
}

// findMountOpts is Mount with the hierarchy's super-block options
// ("rw,nsdelegate,...").
func findMountOpts() (string, string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer f.Close()
	var found, opts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source options
		before, after, ok := strings.Cut(sc.Text(), " - ")
		fields, fs := strings.Fields(before), strings.Fields(after)
		if ok && len(fields) >= 5 && len(fs) > 0 && fs[0] == "cgroup2" && fields[3] == "/" {
			found = append(found, unescape(fields[4]))
			o := ""
			if len(fs) > 2 {
				o = fs[2]
			}
			opts = append(opts, o)
		}
	}
	if i := slices.Index(found, "/sys/fs/cgroup"); i >= 0 {
		return found[i], opts[i], nil
	}
	if len(found) > 0 {
		return found[0], opts[0], nil
	}
	return "", "", fmt.Errorf("%w: no cgroup2 hierarchy is mounted", ErrUnavailable)
}

// favorDynmods sets favordynmods on the cgroup2 hierarchy at dir, keeping
// its other options (a remount clears the flags it is not given). It makes
// moving a process between groups, and removing a group, cheap: they no
// longer wait for an RCU grace period each, at the price of a shared lock
// on fork and exit. luod as PID 1 moves itself through every carried
// unit's group after a kexec (see Enter) and removes a group at each stop.
// Kernels before 6.0 do not know the option; the error is then EINVAL.
func favorDynmods(dir, opts string) error {
	data, ok := dynmodsOptions(opts)
	if !ok {
		return nil
	}
	return unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data)
}

// dynmodsOptions returns the options of a remount that adds favordynmods
// to a cgroup2 hierarchy mounted with opts, and false when it has it.
func dynmodsOptions(opts string) (string, bool) {
	var keep []string
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "favordynmods":
			return "", false
		case "", "rw", "ro":
		default:
			keep = append(keep, o)
		}
	}
	return strings.Join(append(keep, "favordynmods"), ","), true
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	if u, err := strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`); err == nil {
		return u
	}
	return s
}

func mountCgroup2(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return unix.Mount("cgroup2", dir, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "nsdelegate")
}
