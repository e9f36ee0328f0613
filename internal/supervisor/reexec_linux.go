//go:build linux

package supervisor

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/manifest"
	"github.com/liveupdate/luo/internal/notify"
	"github.com/liveupdate/luo/memfd"
)

// StateEnv names the environment variable that tells a re-executed luod
// which fd holds the state of its predecessor.
const StateEnv = "LUOD_STATE_FD"

const stateVersion = 1

// savedState is luod's state across a re-exec: everything the loop owns,
// with fds by number (inherited across execve).
type savedState struct {
	Version     int             `json:"version"`
	Started     time.Time       `json:"started"`
	Reexecs     int             `json:"reexecs"`
	LiveUpdates int             `json:"live_updates"`
	NotifyFD    int             `json:"notify_fd"`
	ControlFD   int             `json:"control_fd"`
	Units       []savedUnit     `json:"units"`
	Report      *control.Report `json:"report,omitempty"`
	Update      *savedUpdate    `json:"update,omitempty"`
}

type savedUnit struct {
	Name                 string       `json:"name"`
	Missing              bool         `json:"missing,omitempty"`
	Active               string       `json:"active"`
	Sub                  string       `json:"sub"`
	Since                time.Time    `json:"since"`
	MainPID              int          `json:"main_pid,omitempty"`
	SID                  int          `json:"sid,omitempty"`
	ExecIdx              int          `json:"exec_idx,omitempty"`
	Status               string       `json:"status,omitempty"`
	Errno                int          `json:"errno,omitempty"`
	Result               string       `json:"result,omitempty"`
	ExitCode             int          `json:"exit_code,omitempty"`
	ExitSig              int          `json:"exit_sig,omitempty"`
	Restarts             int          `json:"restarts,omitempty"`
	Consecutive          int          `json:"consecutive,omitempty"`
	Stopping             bool         `json:"stopping,omitempty"`
	NotifyAccessOverride string       `json:"notify_access_override,omitempty"`
	StartedAt            time.Time    `json:"started_at,omitzero"`
	ReadyAt              time.Time    `json:"ready_at,omitzero"`
	PendingStart         bool         `json:"pending_start,omitempty"`
	StopReason           string       `json:"stop_reason,omitempty"`
	HoldStore            bool         `json:"hold_store,omitempty"`
	TimerKind            string       `json:"timer_kind,omitempty"`
	TimerDeadline        time.Time    `json:"timer_deadline,omitzero"`
	Max                  int          `json:"max"`
	Entries              []savedEntry `json:"entries,omitempty"`
}

type savedEntry struct {
	Name   string    `json:"name"`
	FD     int       `json:"fd"`
	Poll   bool      `json:"poll"`
	Origin string    `json:"origin"`
	Added  time.Time `json:"added"`
}

// savedUpdate is an update in flight across the re-exec: a soft update's
// manifest, or a live update's restore still waiting to finish.
type savedUpdate struct {
	Soft      *manifest.Manifest `json:"soft,omitempty"`
	SessionFD int                `json:"session_fd,omitempty"` // luod's incoming session, unfinished
	Held      string             `json:"held,omitempty"`       // why the session is held (manifest unusable)
	Pending   []string           `json:"pending,omitempty"`    // units that have not got their fds yet
	Deadline  time.Time          `json:"deadline,omitzero"`
}

// reexec serializes the state into a memfd and execs luod again with every
// fd inherited. Called when the loop ends; only returns on failure, after
// which the loop resumes.
func (m *Manager) reexec() error {
	st, files, err := m.saveState()
	if err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	sf, err := memfd.New("luod-state", 0)
	if err != nil {
		return err
	}
	defer sf.Close()
	if _, err := sf.Write(b); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	files = append(files, sf)
	for _, f := range files {
		if err := setCloexec(f, false); err != nil {
			return fmt.Errorf("keep %s across exec: %w", f.Name(), err)
		}
	}
	sfd, _ := rawFd(sf)
	env := setenv(os.Environ(), StateEnv, strconv.Itoa(int(sfd)))
	m.log.Info("re-executing", "exe", m.cfg.Exe, "units", len(st.Units), "fds", len(files)-1, "state_bytes", len(b))
	err = syscall.Exec(m.cfg.Exe, os.Args, env)
	for _, f := range files {
		setCloexec(f, true)
	}
	return fmt.Errorf("exec %s: %w", m.cfg.Exe, err)
}

// saveState captures the state. The returned files must survive the exec.
func (m *Manager) saveState() (*savedState, []*os.File, error) {
	var files []*os.File
	fdOf := func(f *os.File) int {
		fd, _ := rawFd(f)
		files = append(files, f)
		return int(fd)
	}
	nf, err := m.notify.File()
	if err != nil {
		return nil, nil, err
	}
	cf, err := m.control.File()
	if err != nil {
		nf.Close()
		return nil, nil, err
	}
	st := &savedState{
		Version: stateVersion, Started: m.started, Reexecs: m.reexecs + 1, LiveUpdates: m.liveUpdates,
		NotifyFD: fdOf(nf), ControlFD: fdOf(cf), Report: m.report,
	}
	for _, u := range m.sortedUnits() {
		su := savedUnit{
			Name: u.name, Missing: u.def == nil, Active: u.active, Sub: u.sub, Since: u.since,
			MainPID: u.mainPID, SID: u.sid, ExecIdx: u.execIdx, Status: u.status, Errno: u.errno,
			Result: u.result, ExitCode: u.exitCode, ExitSig: int(u.exitSig), Restarts: u.restarts,
			Consecutive: u.consecutive, Stopping: u.stopping, NotifyAccessOverride: u.notifyAccessOverride,
			StartedAt: u.startedAt, ReadyAt: u.readyAt, PendingStart: u.pendingStart, StopReason: u.stopReason,
			HoldStore: u.holdStore, TimerKind: u.timerKind, TimerDeadline: u.timerDeadline, Max: u.store.Max(),
		}
		for _, e := range u.store.Entries() {
			su.Entries = append(su.Entries, savedEntry{Name: e.Name, FD: fdOf(e.File), Poll: e.Poll, Origin: e.Origin, Added: e.Added})
		}
		st.Units = append(st.Units, su)
	}
	if m.update != nil {
		st.Update = m.update.save(fdOf)
	}
	return st, files, nil
}

// resume rebuilds the state saved by the luod that re-executed into us.
func (m *Manager) resume(sf *os.File) error {
	b, err := io.ReadAll(io.NewSectionReader(sf, 0, 1<<30))
	sf.Close()
	if err != nil {
		return err
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("decode state: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("state version %d, this luod reads %d", st.Version, stateVersion)
	}
	adopt := func(fd int, name string) *os.File {
		f := os.NewFile(uintptr(fd), name)
		setCloexec(f, true)
		return f
	}
	m.started, m.reexecs, m.liveUpdates, m.report = st.Started, st.Reexecs, st.LiveUpdates, st.Report
	if m.notify, err = notify.FromFile(adopt(st.NotifyFD, "notify")); err != nil {
		return err
	}
	cf := adopt(st.ControlFD, "control")
	l, err := net.FileListener(cf)
	cf.Close()
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if m.control, err = control.FromListener(l.(*net.UnixListener), m.handle, m.logf); err != nil {
		return err
	}
	m.loadUnits()
	for _, su := range st.Units {
		u := m.units[su.Name]
		if u == nil {
			u = newUnit(m, su.Name)
			u.loadErr = "unit file not found"
			m.units[su.Name] = u
			if !su.Missing {
				m.log.Warn("unit file vanished across the re-exec; keeping its state and store", "unit", su.Name)
			}
		}
		u.active, u.sub, u.since = su.Active, su.Sub, su.Since
		u.mainPID, u.execIdx = su.MainPID, su.ExecIdx
		u.setSID(su.SID)
		u.status, u.errno, u.result, u.exitCode, u.exitSig = su.Status, su.Errno, su.Result, su.ExitCode, syscall.Signal(su.ExitSig)
		u.restarts, u.consecutive, u.stopping, u.notifyAccessOverride = su.Restarts, su.Consecutive, su.Stopping, su.NotifyAccessOverride
		u.startedAt, u.readyAt, u.pendingStart, u.stopReason, u.holdStore = su.StartedAt, su.ReadyAt, su.PendingStart, su.StopReason, su.HoldStore
		if u.def == nil {
			u.store = fdstore.New(max(su.Max, len(su.Entries)))
		}
		for _, e := range su.Entries {
			ent := u.store.Adopt(e.Name, adopt(e.FD, e.Name), e.Poll, e.Origin)
			ent.Added = e.Added
			if e.Poll {
				m.poller.Watch(ent)
			}
		}
		if su.TimerKind != "" {
			u.setTimer(su.TimerKind, max(time.Until(su.TimerDeadline), 0))
		}
	}
	if st.Update != nil {
		m.update = resumeUpdate(m, st.Update, adopt)
	}
	m.log.Info("resumed after re-exec", "reexecs", m.reexecs, "units", len(st.Units))
	return nil
}

func setCloexec(f *os.File, on bool) error {
	flag := 0
	if on {
		flag = unix.FD_CLOEXEC
	}
	err := os.ErrClosed
	withRawFd(f, func(fd int) { _, err = unix.FcntlInt(uintptr(fd), unix.F_SETFD, flag) })
	return err
}

// reload re-reads the unit directory (daemon-reload).
func (m *Manager) reload() control.ReloadReply {
	var rep control.ReloadReply
	defs, errs := m.readUnitDirs()
	for _, err := range errs {
		m.log.Error("unit failed to load", "err", err)
		rep.Errors = append(rep.Errors, err.Error())
	}
	seen := map[string]bool{}
	for _, d := range defs {
		seen[d.Name] = true
		rep.Loaded = append(rep.Loaded, d.Name)
		for _, w := range d.Warnings {
			rep.Warnings = append(rep.Warnings, w.String())
		}
		if u := m.units[d.Name]; u != nil {
			if u.def == nil {
				m.log.Info("unit file appeared; its pinned store is kept", "unit", d.Name, "fds", u.store.Len())
			}
			u.setDef(d)
			continue
		}
		m.addUnit(d)
	}
	for name, u := range m.units {
		if seen[name] || u.def == nil {
			continue
		}
		if u.dead() && u.store.Len() == 0 {
			m.forget(u)
			continue
		}
		m.log.Warn("unit file removed; keeping the unit until it stops", "unit", name)
		u.def = nil
		u.loadErr = "unit file not found"
	}
	m.log.Info("reloaded", "units", len(defs), "errors", len(errs))
	return rep
}
