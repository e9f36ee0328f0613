//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/notify"
	"github.com/liveupdate/luo/internal/unit"
)

// Version is luod's version, reported by GetManager.
var Version = "0.1.0"

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
	// Logger receives the log lines (slog.Default()).
	Logger *slog.Logger
	// PID1 runs luod as init: mount /proc, /sys, /dev and /run when
	// missing, reap orphans, power off or reboot on request.
	PID1 bool
	// StateFile is the serialized state of the luod that re-executed into
	// this one, nil on a normal start.
	StateFile *os.File
	// LiveUpdate configures the kexec live update.
	LiveUpdate LiveUpdateConfig
}

// LiveUpdateConfig configures live updates.
type LiveUpdateConfig struct {
	// Device is the LUO device (/dev/liveupdate).
	Device string
	// FinishTimeout bounds how long luod keeps its incoming session
	// unfinished after a live update while waiting for the units to get
	// their fds back (60s).
	FinishTimeout time.Duration
	// Fault injects a failure for tests of the abort paths (luod reads it
	// from $LUOD_TEST_FAULT; a file RuntimeDir/test-fault does the same for
	// the next update only): "preserve=ERRNO" fails preserving the first
	// memfd, "reboot=ERRNO" fails the reboot, "hang=preserved" stops the
	// update after preserving (so luod can be killed there).
	Fault string
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

	notify  *notify.Socket
	control *control.Server
	poller  *fdstore.Poller

	events  chan event
	waiters []*waiter
	// quit is set when the loop should end (shutdown).
	quit func() error
	// reexecReq is set when luod should re-execute itself; it is called
	// with the error if the exec fails (the loop then goes on).
	reexecReq func(error)

	// update is the state of an update in progress or just restored.
	update *updateState
	report *control.Report
	// testFault is the fault injected into the running update (see
	// LiveUpdateConfig.Fault).
	testFault string

	stopReceivers context.CancelFunc
	receivers     chan struct{}
}

// event is something the loop handles.
type event interface{}

type funcEvent struct {
	fn   func()
	done chan struct{}
}

type waiter struct {
	pred func() bool
	ch   chan struct{}
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
	}
	if cfg.PID1 {
		if err := setupPID1(m.log); err != nil {
			return nil, err
		}
	} else if err := becomeSubreaper(); err != nil {
		m.log.Warn("cannot become a child subreaper; orphans of services will not be reaped by luod", "err", err)
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
	m.restoreLiveUpdate()
	return m, nil
}

func (m *Manager) logf(format string, args ...any) {
	m.log.Info(fmt.Sprintf(format, args...))
}

// Run runs the loop until ctx is done (then units are stopped and Run
// returns nil), a shutdown was requested, or luod re-executes (Run does
// not return then).
func (m *Manager) Run(ctx context.Context) error {
	sigs := m.watchSignals()
	defer sigs.stop()
	m.startReceivers()
	go func() {
		if err := m.control.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
			m.log.Error("control socket", "err", err)
		}
	}()
	m.reap() // children that exited while we were not looking (re-exec)
	if m.cfg.StateFile == nil {
		m.startAll()
	}
	m.afterStart()
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
		if done := m.reexecReq; done != nil {
			m.reexecReq = nil
			m.pauseReceivers()
			err := m.reexec() // returns only on failure
			m.log.Error("re-exec failed, carrying on", "err", err)
			m.startReceivers()
			done(err)
		}
		if m.quit != nil {
			return m.quit()
		}
	}
}

func (m *Manager) dispatch(ev event) {
	switch ev := ev.(type) {
	case funcEvent:
		ev.fn()
		close(ev.done)
	case *notify.Message:
		m.handleNotify(ev)
	case []fdstore.Event:
		m.handlePoll(ev)
	case timerEvent:
		m.handleTimer(ev)
	default:
		m.log.Error("unknown event", "type", fmt.Sprintf("%T", ev))
	}
}

// do runs fn in the loop and waits for it. It must not be called from the
// loop itself.
func (m *Manager) do(fn func()) {
	done := make(chan struct{})
	m.events <- funcEvent{fn, done}
	<-done
}

// waitFor waits until pred, evaluated in the loop after every event, holds,
// or ctx is done.
func (m *Manager) waitFor(ctx context.Context, pred func() bool) error {
	w := &waiter{pred: pred, ch: make(chan struct{})}
	m.do(func() {
		if pred() {
			close(w.ch)
			return
		}
		m.waiters = append(m.waiters, w)
	})
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		m.do(func() {
			if i := slices.Index(m.waiters, w); i >= 0 {
				m.waiters = slices.Delete(m.waiters, i, i+1)
			}
		})
		select {
		case <-w.ch:
			return nil
		default:
		}
		return ctx.Err()
	}
}

func (m *Manager) checkWaiters() {
	m.waiters = slices.DeleteFunc(m.waiters, func(w *waiter) bool {
		if w.pred() {
			close(w.ch)
			return true
		}
		return false
	})
}

// startReceivers starts the goroutines that feed the loop: notify messages
// and fd-store poll events.
func (m *Manager) startReceivers() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stopReceivers = cancel
	m.receivers = make(chan struct{}, 2)
	go func() {
		defer func() { m.receivers <- struct{}{} }()
		for {
			msg, err := m.notify.Receive(ctx)
			var drop *notify.DropError
			switch {
			case err == nil:
				m.events <- msg
			case errors.As(err, &drop):
				m.log.Warn("notify: "+drop.Error(), "pid", drop.PID)
			case ctx.Err() != nil, errors.Is(err, net.ErrClosed):
				return
			default:
				m.log.Error("notify socket failed", "err", err)
				return
			}
		}
	}()
	go func() {
		defer func() { m.receivers <- struct{}{} }()
		for {
			evs, err := m.poller.Wait(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				m.log.Error("fd store poller failed", "err", err)
				return
			}
			if len(evs) > 0 {
				m.events <- evs
			}
		}
	}()
}

// pauseReceivers stops the receiver goroutines and handles what they had
// already queued, so that nothing read from the notify socket is lost
// (re-exec). Called from the loop.
func (m *Manager) pauseReceivers() {
	m.stopReceivers()
	for n := 0; n < 2; {
		select {
		case <-m.receivers:
			n++
		case ev := <-m.events:
			m.dispatch(ev)
		}
	}
	for {
		select {
		case ev := <-m.events:
			m.dispatch(ev)
		default:
			return
		}
	}
}

// sortedUnits returns the units by name.
func (m *Manager) sortedUnits() []*Unit {
	us := make([]*Unit, 0, len(m.units))
	for _, u := range m.units {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return us[i].name < us[j].name })
	return us
}

// loadUnits reads the unit directories at start.
func (m *Manager) loadUnits() {
	defs, errs := m.readUnitDirs()
	for _, err := range errs {
		m.log.Error("unit failed to load", "err", err)
	}
	for _, d := range defs {
		m.addUnit(d)
	}
	m.log.Info("units loaded", "dirs", strings.Join(m.cfg.UnitDirs, ":"), "units", len(defs), "errors", len(errs))
}

// readUnitDirs loads every unit directory; the first directory that has a
// unit of a name wins, also when that unit fails to load.
func (m *Manager) readUnitDirs() ([]*unit.Unit, []error) {
	var defs []*unit.Unit
	var errs []error
	seen := map[string]bool{}
	for _, dir := range m.cfg.UnitDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("unit directory: %w", err))
			}
			continue
		}
		ds, es := unit.LoadDir(dir)
		for _, d := range ds {
			if !seen[d.Name] {
				defs = append(defs, d)
			}
		}
		errs = append(errs, es...)
		for _, e := range ents {
			seen[e.Name()] = true
		}
	}
	return defs, errs
}

func (m *Manager) addUnit(d *unit.Unit) *Unit {
	u := newUnit(m, d.Name)
	u.setDef(d)
	m.units[d.Name] = u
	for _, w := range d.Warnings {
		m.log.Warn("unit file: "+w.String(), "unit", d.Name)
	}
	return u
}

// startAll starts every loaded unit at boot.
func (m *Manager) startAll() {
	for _, u := range m.sortedUnits() {
		if u.def != nil {
			u.start("boot")
		}
	}
}
