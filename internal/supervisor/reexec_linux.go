//go:build linux

package supervisor

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/notify"
	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/memfd"
)

// StateEnv names the environment variable that tells a re-executed luod
// which fd holds the manifest of the luod it replaces.
const StateEnv = "LUOD_STATE_FD"

// reexecRequest asks the loop to re-execute luod: for a soft update
// (soft is its manifest) or a daemon-reexec (soft is nil). done gets the
// error when the exec fails.
type reexecRequest struct {
	soft *update.Manifest
	done chan error
}

// reexec writes luod's state as a manifest (update.Encode) into a memfd
// and execs luod again with every fd inherited. Called in the loop; it
// only returns on failure, after which the loop resumes.
func (m *Manager) reexec(soft *update.Manifest) error {
	// The units' output pipes are read by the next luod from where this
	// one stops; the lines already read are not carried.
	paused := map[string][]*reader{}
	for _, u := range m.units {
		paused[u.name] = u.out.pause()
	}
	defer func() {
		for _, u := range m.units {
			u.out.resume()
		}
	}()
	mf, files, err := m.reexecManifest(soft, paused)
	if err != nil {
		return err
	}
	b, err := update.Encode(mf, 0)
	if err != nil {
		return err
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
	m.log.Info("re-executing", "exe", m.cfg.Exe, "kind", string(mf.Kind), "units", len(mf.Units), "fds", len(files)-1, "state_bytes", len(b))
	// Last thing before the exec: the stop signals the Go runtime
	// queued for the loop go to the new luod (see Signals).
	var pending []syscall.Signal
	if m.sigs != nil {
		if pending = m.sigs.pending(); len(pending) > 0 {
			env = setenv(env, SignalsEnv, signalsValue(pending))
		}
	}
	err = syscall.Exec(m.cfg.Exe, os.Args, env)
	if m.sigs != nil {
		m.sigs.requeue(pending)
	}
	for _, f := range files {
		setCloexec(f, true)
	}
	return fmt.Errorf("exec %s: %w", m.cfg.Exe, err)
}

// reexecManifest captures the state: the soft update's manifest, or a
// Reexec one, with every unit's process state and store entries (fds by
// number) and the manager's sockets, report and updates in flight. The
// returned files must survive the exec.
func (m *Manager) reexecManifest(soft *update.Manifest, output map[string][]*reader) (*update.Manifest, []*os.File, error) {
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
	mf := soft
	if mf == nil {
		mf = &update.Manifest{Version: update.ManifestVersion, Kind: update.Reexec, Count: m.liveUpdates}
	}
	mg := &update.Manager{Started: m.started, Reexecs: m.reexecs + 1, NotifyFD: fdOf(nf), ControlFD: fdOf(cf),
		Report: m.report, KexecReport: m.kexecReport, SoftUpdates: m.softUpdates, LastAbort: m.lastAbort, SlotWrite: m.slotWrite}
	if mf.Kind == update.Soft {
		mg.SoftUpdates++
	}
	if c := m.completion; c != nil {
		mg.Completion = c.Save(fdOf)
	}
	if h := m.held; h != nil {
		mg.Held = &update.HeldState{SessionFD: fdOf(h.session.File()), Why: h.why}
	}
	if st := m.staged; st != nil {
		mg.Staged = st.Save()
	}
	if m.up.mirrors() {
		mg.Upstream = &update.UpstreamState{Next: m.up.next, MapGen: m.up.mapGen}
	}
	mf.Manager = mg
	if mf.Kind == update.Reexec {
		mf.Outcomes = m.outcomes
	}
	stopped := map[string]update.Unit{}
	for _, u := range mf.Units {
		stopped[u.Name] = u
	}
	units := update.Decide(update.Snapshot{Kind: mf.Kind, Units: m.snapshot(false)})
	for i := range units {
		uu := &units[i]
		uu.Active, uu.Stopped = stopped[uu.Name].Active, stopped[uu.Name].Stopped
		uu.Process = m.units[uu.Name].process()
		for _, r := range output[uu.Name] {
			uu.Process.Output = append(uu.Process.Output, update.OutputPipe{FD: fdOf(r.f), Stream: r.stream})
		}
		for j := range uu.Entries {
			uu.Entries[j].FD = fdOf(uu.Entries[j].File)
		}
	}
	mf.Units = units
	return mf, files, nil
}

// process is the unit's state for a re-exec.
func (u *Unit) process() *update.Process {
	return &update.Process{
		State: string(u.state), Since: u.since, MainPID: u.mainPID, SID: u.sid, ExecIndex: u.execIdx,
		Status: u.status, Errno: u.errno, Result: u.result, ExitCode: u.exitCode, ExitSignal: int(u.exitSig),
		Restarts: u.restarts, Consecutive: u.consecutive, Stopping: u.stopping, NotifyAccess: u.notifyAccessOverride,
		StartedAt: u.startedAt, ReadyAt: u.readyAt, PendingStart: u.pendingStart, StopReason: u.stopReason,
		HoldStore: u.holdStore, Timer: u.timerKind, TimerDeadline: u.timerDeadline, StoreMax: u.store.Max(), Missing: u.def == nil,
		StartWindow: u.startWindow, Starts: u.starts, StartLimitHits: u.startLimitHits,
		Refused: u.refused, RefusedName: u.lastRefused.fdname, RefusedWhy: u.lastRefused.why, RefusedAt: u.lastRefused.at,
	}
}

// resumeProcess restores the state of a unit saved by process.
func (u *Unit) resumeProcess(p *update.Process) error {
	st, err := ParseState(p.State)
	if err != nil {
		return err
	}
	u.state, u.since = st, p.Since
	u.mainPID, u.execIdx = p.MainPID, p.ExecIndex
	u.setSID(p.SID)
	u.status, u.errno, u.result, u.exitCode, u.exitSig = p.Status, p.Errno, p.Result, p.ExitCode, syscall.Signal(p.ExitSignal)
	u.restarts, u.consecutive, u.stopping, u.notifyAccessOverride = p.Restarts, p.Consecutive, p.Stopping, p.NotifyAccess
	u.startedAt, u.readyAt, u.pendingStart, u.stopReason, u.holdStore = p.StartedAt, p.ReadyAt, p.PendingStart, p.StopReason, p.HoldStore
	u.startWindow, u.starts, u.startLimitHits = p.StartWindow, p.Starts, p.StartLimitHits
	u.refused, u.lastRefused = p.Refused, refusal{fdname: p.RefusedName, why: p.RefusedWhy, at: p.RefusedAt}
	if p.Timer != "" {
		u.setTimer(p.Timer, max(time.Until(p.TimerDeadline), 0))
	}
	return nil
}

// resume rebuilds the state saved by the luod that re-executed into this
// one.
func (m *Manager) resume(sf *os.File) error {
	b, err := io.ReadAll(io.NewSectionReader(sf, 0, 1<<30))
	sf.Close()
	if err != nil {
		return err
	}
	mf, err := update.Decode(b)
	if err != nil {
		return err
	}
	if mf.Kind == update.Kexec {
		return fmt.Errorf("a %s manifest cannot be resumed", mf.Kind)
	}
	adopt := func(fd int, name string) *os.File {
		f := os.NewFile(uintptr(fd), name)
		setCloexec(f, true)
		return f
	}
	mg := mf.Manager
	m.started, m.reexecs, m.liveUpdates, m.report, m.kexecReport = mg.Started, mg.Reexecs, mf.Count, mg.Report, mg.KexecReport
	m.softUpdates, m.outcomes, m.lastAbort = mg.SoftUpdates, mf.Outcomes, mg.LastAbort
	nf := adopt(mg.NotifyFD, "notify")
	m.notify, err = notify.FromFile(nf) // a duplicate: nf is ours to close
	nf.Close()
	if err != nil {
		return err
	}
	cf := adopt(mg.ControlFD, "control")
	l, err := net.FileListener(cf)
	cf.Close()
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if m.control, err = control.FromListener(l.(*net.UnixListener), m.handle, m.logf); err != nil {
		return err
	}
	m.loadUnits()
	if us := mg.Upstream; us != nil {
		m.up.next, m.up.mapGen = us.Next, us.MapGen
	}
	for _, mu := range mf.Units {
		m.resumeUnit(mu, adopt)
	}
	if c := mg.Completion; c != nil {
		var s update.Session
		if c.SessionFD > 0 {
			s = m.adoptSession(adopt(c.SessionFD, "luod session"))
		}
		m.completion = update.ResumeCompletion(c, s, m.report)
	}
	if st := mg.Staged; st != nil {
		m.staged = update.ResumeStaged(st)
	}
	if h := mg.Held; h != nil {
		if s := m.adoptSession(adopt(h.SessionFD, "luod session")); s != nil {
			m.held = &heldSession{session: s, why: h.Why}
		}
	}
	if w := mg.SlotWrite; w != nil {
		m.fleetWrite(w, m.report)
	}
	if mf.Kind == update.Soft {
		m.completeSoft(mf)
	}
	m.log.Info("resumed after re-exec", "kind", string(mf.Kind), "reexecs", m.reexecs, "units", len(mf.Units))
	return nil
}

// resumeUnit restores one unit and its store from a re-exec manifest.
func (m *Manager) resumeUnit(mu update.Unit, adopt func(int, string) *os.File) {
	u := m.units[mu.Name]
	if u == nil {
		u = newUnit(m, mu.Name)
		u.loadErr = "unit file not found"
		m.units[mu.Name] = u
		if !mu.Process.Missing {
			m.log.Warn("unit file vanished across the re-exec; keeping its state and store", "unit", mu.Name)
		}
		u.store = fdstore.New(max(mu.Process.StoreMax, len(mu.Entries)))
	}
	if err := u.resumeProcess(mu.Process); err != nil {
		m.log.Error("cannot resume the unit's state", "unit", mu.Name, "err", err)
	}
	m.watchMain(u)
	for _, p := range mu.Process.Output {
		u.out.read(adopt(p.FD, p.Stream+" of "+mu.Name), p.Stream)
	}
	if !u.running() {
		u.out.release()
	}
	for _, e := range mu.Entries {
		se := m.adopt(u, e.Name, adopt(e.FD, e.Name), e.Poll, e.Origin)
		se.Added, se.LUOSession, se.MemfdPath, se.Upstream = e.Added, e.LUOSession, e.Path, e.Upstream
	}
}

// adoptSession takes luod's own session back from its inherited fd.
func (m *Manager) adoptSession(f *os.File) update.Session {
	s, err := luo.SessionFromFile(f)
	if err != nil {
		m.log.Error("re-adopt luod's LUO session", "err", err)
		f.Close()
		return nil
	}
	return s
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
