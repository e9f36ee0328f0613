//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/liveupdate/luo/internal/cgroup"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/fleet"
	"github.com/liveupdate/luo/internal/notify"
	"github.com/liveupdate/luo/internal/update"
)

// Config configures a Manager. Zero fields take the defaults shown.
type Config struct {
	// UnitDirs are the directories of *.service files, in priority order:
	// a unit in an earlier directory hides one of the same name in a later
	// one, as systemd's /etc over /run over /usr/lib
	// ("/etc/luod/system", "/run/luod/system").
	UnitDirs []string
	// RuntimeDir holds the notify and control sockets ("/run/luod").
	RuntimeDir string
	// Exe is the luod binary used for the exec shim and re-exec
	// (os.Executable at start).
	Exe string
	// Logger receives the log lines (slog.Default()), the units' captured
	// output included: a line a unit wrote is a record with the attributes
	// LogKeyUnit, LogKeyStream and LogKeyPriority, at the level of its
	// syslog priority (PriorityLevel).
	Logger *slog.Logger
	// PID1 runs luod as init: mount /proc, /sys, /dev and /run when
	// missing, reap orphans, power off or reboot on request.
	PID1 bool
	// StateFile is the serialized state of the luod that re-executed into
	// this one, nil on a normal start.
	StateFile *os.File
	// LiveUpdate configures the kexec live update.
	LiveUpdate LiveUpdateConfig
	// Signals are the signals caught since luod started (CatchSignals);
	// Run catches them itself when nil.
	Signals *Signals
	// Changed, when set, is called in the loop after every event that
	// may have changed what Observe shows; it must not block.
	Changed func()
	// Fleet, when set, is the fleet whose update slots the host takes
	// (package fleet).
	Fleet *fleet.Fleet
}

// LiveUpdateConfig configures live updates.
type LiveUpdateConfig struct {
	// Kernel is the kernel luod updates (update.NewSystem(Device)).
	Kernel update.Kernel
	// Device is the LUO device of the default Kernel (/dev/liveupdate).
	Device string
	// FinishTimeout bounds how long luod keeps its incoming session
	// unfinished after a live update while waiting for the units to get
	// their fds back (60s).
	FinishTimeout time.Duration
	// PreserveMax limits the bytes all units together may pin in memory
	// for the next kernel (no limit); each unit's [X-LUO]
	// PreserveMaxBytes= limits its own.
	PreserveMax update.Quota
	// HealthTimeout is the health gate of an update that names none (0:
	// none): see update.Health.
	HealthTimeout time.Duration
	// Kernels are the globs under which the running kernel's image is
	// looked for, to roll back to (update.DefaultKernels).
	Kernels []string
}

func (c *Config) fill() error {
	if len(c.UnitDirs) == 0 {
		c.UnitDirs = []string{"/etc/luod/system", "/run/luod/system"}
	}
	if c.RuntimeDir == "" {
		c.RuntimeDir = "/run/luod"
	}
	if c.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
		c.Exe = exe
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LiveUpdate.Device == "" {
		c.LiveUpdate.Device = "/dev/liveupdate"
	}
	if c.LiveUpdate.Kernel == nil {
		c.LiveUpdate.Kernel = update.NewSystem(c.LiveUpdate.Device)
	}
	if len(c.LiveUpdate.Kernels) == 0 {
		c.LiveUpdate.Kernels = update.DefaultKernels
	}
	if c.LiveUpdate.FinishTimeout == 0 {
		c.LiveUpdate.FinishTimeout = 60 * time.Second
	}
	return nil
}

// Manager is luod. Create it with New and run it with Run.
type Manager struct {
	cfg Config
	log *slog.Logger

	units map[string]*Unit
	bySID map[int]*Unit // session id -> unit, for attribution
	// exited remembers recently reaped main processes: a service's last
	// notification (STOPPING=1, a final FDSTORE=1) can be read after its
	// exit was reaped, and must still be attributed.
	exited map[int]exitedMain
	// procScan caches a scan of /proc by session (see sessionMembers).
	procScan struct {
		at    time.Time
		bySID map[int][]int
	}
	started time.Time
	reexecs int
	// liveUpdates counts kexec live updates since the last cold boot.
	liveUpdates int
	// outcomes counts the updates since the last cold boot by kind and
	// result; lastAbort is the last one that ended before the point of no
	// return.
	outcomes  []update.Outcome
	lastAbort *update.Abort

	notify  *notify.Socket
	control *control.Server
	poller  *fdstore.Poller
	kernel  update.Kernel
	// reloading makes daemon-reloads run one at a time.
	reloading sync.Mutex
	// closer closes files off the loop.
	closer closer
	// strangers bounds the log lines of datagrams from no unit.
	strangers logLimit
	// clientLog bounds the control server's log lines; the server's
	// goroutines share it.
	clientLog struct {
		sync.Mutex
		logLimit
	}
	// cgroups is luod's part of the cgroup v2 hierarchy, nil when there is
	// none: processes are then tracked by session.
	cgroups *cgroup.Tree

	events  chan event
	waiters []*waiter
	// quit is set when the loop should end (shutdown).
	quit func() error
	// reexecReq is set when luod should re-execute itself (see reexec).
	reexecReq *reexecRequest
	// shuttingDown is set once a shutdown began: luod neither
	// re-executes nor updates any more.
	shuttingDown bool
	// sigs are the signals luod handles, while Run runs.
	sigs *Signals

	// updating is set while an update runs (old side), or a staging.
	updating bool
	// staged is the kexec update staged ahead, if any.
	staged *update.Staged
	// completion is an update restored (new side) until it is finished.
	completion  *update.Completion
	finishTimer *time.Timer
	// slotWrite is a change of the host's fleet slot being made in etcd.
	slotWrite *update.SlotWrite
	// held is luod's incoming session kept unfinished for good.
	held *heldSession
	// up is luod's own service manager, when it has one.
	up *upstream
	// incoming is the live update New found, until startAll restores it.
	incoming *update.Restored
	// shim is the argv prefix of the exec shim (see shimCommand).
	shim []string
	// report is the report of the last update; kexecReport the one of the
	// last kexec live update while report is a soft update's (see
	// setReport).
	report, kexecReport *update.Report
	// softUpdates counts the soft updates since luod started.
	softUpdates int

	stopReceivers context.CancelFunc
	receivers     chan struct{}
}

// New prepares a Manager: PID-1 setup, units, sockets, and either the state
// of the luod that re-executed into this one or what a live update left in
// the kernel.
func New(cfg Config) (*Manager, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:     cfg,
		log:     cfg.Logger,
		units:   map[string]*Unit{},
		bySID:   map[int]*Unit{},
		exited:  map[int]exitedMain{},
		started: time.Now(),
		events:  make(chan event, 256),
		kernel:  cfg.LiveUpdate.Kernel,
		shim:    shimCommand(cfg.Exe),
		up:      openUpstream(cfg.PID1, cfg.Logger),
	}
	if cfg.PID1 {
		if err := setupPID1(m.log); err != nil {
			return nil, err
		}
	} else if err := becomeSubreaper(); err != nil {
		m.log.Warn("cannot become a child subreaper; orphans of services will not be reaped by luod", "err", err)
	}
	// What a live update left is read while the rest is set up: both are
	// on the path of every carried unit back to READY.
	restored := make(chan struct{})
	if cfg.StateFile == nil {
		go func() {
			defer close(restored)
			m.restore()
		}()
	} else {
		close(restored)
	}
	// Every return below waits for it first.
	defer func() { <-restored }()
	if t, err := cgroup.Open(cfg.PID1); err != nil {
		m.log.Warn("no cgroups: units' processes are tracked by session, so one that leaves its session escapes its unit", "err", err)
	} else {
		m.cgroups = t
		if err := t.DynmodsErr(); err != nil {
			m.log.Warn("cannot set favordynmods on the cgroup2 hierarchy: moving between groups at a live update waits for RCU", "err", err)
		}
		if !t.Memory() {
			m.log.Warn("the memory controller is not available for the units' cgroups: their memory is not accounted apart", "cgroups", t.Base())
		}
	}
	if n, err := raiseFDLimit(); err != nil {
		m.log.Warn("cannot raise the fd limit; large fd stores may not fit", "err", err)
	} else {
		m.log.Debug("fd limit", "nofile", n)
	}
	if err := os.MkdirAll(cfg.RuntimeDir, 0o755); err != nil {
		return nil, fmt.Errorf("runtime dir: %w", err)
	}
	p, err := fdstore.NewPoller()
	if err != nil {
		return nil, err
	}
	m.poller = p
	if cfg.StateFile != nil {
		if err := m.resume(cfg.StateFile); err != nil {
			return nil, fmt.Errorf("resume after re-exec: %w", err)
		}
		return m, nil
	}
	if m.notify, err = notify.Listen(filepath.Join(cfg.RuntimeDir, "notify")); err != nil {
		return nil, err
	}
	if m.control, err = control.Listen(filepath.Join(cfg.RuntimeDir, "io.luo.Manager"), m.handle, m.logf); err != nil {
		m.notify.Close()
		return nil, err
	}
	m.loadUnits()
	m.rebuildFromManager()
	m.prefetch()
	return m, nil
}

// logf logs for the control server: refused peers and protocol errors,
// which any local process that can connect may cause, so within a rate
// limit of their own.
func (m *Manager) logf(format string, args ...any) {
	m.clientLog.Lock()
	defer m.clientLog.Unlock()
	m.limited(&m.clientLog.logLimit, slog.LevelInfo, fmt.Sprintf(format, args...))
}

// Run runs the loop until ctx is done (then units are stopped and Run
// returns nil), a shutdown was requested, or luod re-executes (Run does
// not return then).
func (m *Manager) Run(ctx context.Context) error {
	sigs := m.cfg.Signals
	if sigs == nil {
		sigs = CatchSignals()
	}
	defer sigs.stop()
	sigs.inherit(m.log)
	m.sigs = sigs
	m.startReceivers()
	go func() {
		if err := m.control.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
			m.log.Error("control socket", "err", err)
		}
	}()
	// Children that exited while we were not looking (re-exec), once what
	// they sent is handled.
	m.drainNotify()
	m.reap()
	if m.cfg.StateFile == nil {
		m.startAll()
	}
	m.armFinish()
	m.up.flush(m)
	m.up.ready(m.statusLine())
	done := ctx.Done()
	for {
		select {
		case <-done:
			done = nil
			m.shutdown(shutdownExit)
		case ev := <-m.events:
			m.dispatch(ev)
		case sig := <-sigs.ch:
			m.signal(sig)
		}
		m.checkWaiters()
		m.up.flush(m)
		if !m.updating && !m.shuttingDown {
			m.up.follow(m.statusLine)
		}
		if req := m.reexecReq; req != nil && m.shuttingDown {
			// A shutdown began after the request: the luod that
			// re-executed would not know it was stopping.
			m.reexecReq = nil
			req.done <- errShuttingDown
		}
		if req := m.reexecReq; req != nil {
			m.reexecReq = nil
			m.pauseReceivers()
			err := m.reexec(req.soft) // returns only on failure
			m.log.Error("re-exec failed, carrying on", "err", err)
			m.startReceivers()
			req.done <- err
		}
		if m.quit != nil {
			return m.quit()
		}
	}
}

func (m *Manager) dispatch(ev event) {
	if fe, ok := ev.(funcEvent); !(ok && fe.quiet) && m.cfg.Changed != nil {
		defer m.cfg.Changed()
	}
	switch ev := ev.(type) {
	case funcEvent:
		ev.fn()
		close(ev.done)
	case notifyReadable:
		m.drainNotify()
		close(ev.drained)
	case []fdstore.Event:
		m.handlePoll(ev)
	case timerEvent:
		m.handleTimer(ev)
	default:
		m.log.Error("unknown event", "type", fmt.Sprintf("%T", ev))
	}
}
