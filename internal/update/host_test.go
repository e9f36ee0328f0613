package update_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/unit"
	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/internal/update/updatetest"
	"github.com/liveupdate/luo/memfd"
)

// host is a fake update.Host: units with real fd stores (memfds, pipes)
// and fake LUO sessions, whose processes are only a flag.
type host struct {
	t testing.TB
	// quota is the host's limit on preserved bytes.
	quota update.Quota
	mu    sync.Mutex
	units []*hostUnit
	// sessions are the store files that stand for LUO sessions.
	sessions map[*os.File]update.Session
	// stuck units do not stop.
	stuck map[string]bool
	// duringStop runs inside Stop, before the units are down.
	duringStop func()
	// reexec answers Reexec (nil: fail).
	reexec func(*update.Manifest) error

	progress []update.Phase
	stopped  []string
	resumed  []string
}

type hostUnit struct {
	name     string
	preserve unit.Preserve
	max      update.Quota // PreserveMaxBytes=
	active   bool
	store    *fdstore.Store
}

func newHost(t testing.TB) *host {
	return &host{t: t, sessions: map[*os.File]update.Session{}, stuck: map[string]bool{}}
}

// unit adds a unit.
func (h *host) unit(name string, p unit.Preserve, active bool) *hostUnit {
	u := &hostUnit{name: name, preserve: p, active: active, store: fdstore.New(1000)}
	h.units = append(h.units, u)
	return u
}

func (h *host) find(name string) *hostUnit {
	for _, u := range h.units {
		if u.name == name {
			return u
		}
	}
	return nil
}

// memfd stores a new memfd holding data in u's store.
func (h *host) memfd(u *hostUnit, name, data string) *os.File {
	h.t.Helper()
	f, err := memfd.New(name, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		h.t.Fatal(err)
	}
	h.add(u, name, f)
	return f
}

// pipe stores the read end of a new pipe in u's store.
func (h *host) pipe(u *hostUnit, name string) {
	h.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { w.Close() })
	h.add(u, name, r)
}

// session stores the fd of s under name, as a service stores its own
// session (or luod one it hands out, with origin OriginHandedOut).
func (h *host) session(u *hostUnit, name string, s update.Session, origin fdstore.Origin) {
	h.sessions[s.File()] = s
	if _, err := u.store.Add(name, s.File(), false, origin); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) add(u *hostUnit, name string, f *os.File) {
	h.t.Helper()
	if _, err := u.store.Add(name, f, false, fdstore.OriginNotify); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) HostQuota() update.Quota { return h.quota }

func (h *host) Locked(fn func([]update.Unit)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn(h.snapshot(true))
}

// snapshot describes every store; without facts it only names the
// entries, as the supervisor does for a re-exec. Called with h.mu held.
func (h *host) snapshot(facts bool) []update.Unit {
	var s []update.Unit
	for _, u := range h.units {
		hu := update.Unit{Name: u.name, Preserve: u.preserve, PreserveMax: u.max, Active: u.active}
		for _, se := range u.store.Entries() {
			e := update.Entry{Name: se.Name, Poll: se.Poll, Origin: se.Origin, Added: se.Added, File: se.File}
			if facts {
				e = update.FromStore(se)
			}
			if sess, ok := h.sessions[se.File]; ok && facts {
				e.Type, e.Session, e.Unpreservable = "luo-session", sess.Name(), "a LUO session fd"
				e.Incoming = incoming(sess)
			}
			hu.Entries = append(hu.Entries, e)
		}
		s = append(s, hu)
	}
	return s
}

// incoming tells a fake session's direction: an incoming one refuses
// PRESERVE_FD with EINVAL before anything else.
func incoming(s update.Session) bool {
	fs, ok := s.(*updatetest.Session)
	return ok && fs.Incoming()
}

func (h *host) Stop(ctx context.Context, units []string) (map[string]time.Time, error) {
	if h.duringStop != nil {
		h.duringStop()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	at := map[string]time.Time{}
	var still []string
	for _, name := range units {
		if h.stuck[name] {
			still = append(still, name)
			continue
		}
		h.find(name).active = false
		h.stopped = append(h.stopped, name)
		at[name] = time.Now()
	}
	if len(still) > 0 {
		<-ctx.Done()
		return at, fmt.Errorf("units did not stop in time: %v", still)
	}
	return at, nil
}

func (h *host) Resume(units []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range units {
		h.find(name).active = true
	}
	h.resumed = append(h.resumed, units...)
}

// Reexec fills in the stores as the supervisor does at the exec, then
// hands m to h.reexec.
func (h *host) Reexec(m *update.Manifest) error {
	if h.reexec == nil {
		return fmt.Errorf("no re-exec in this test")
	}
	h.mu.Lock()
	units := update.Decide(update.Snapshot{Kind: m.Kind, Units: h.snapshot(false)})
	h.mu.Unlock()
	for i := range m.Units {
		for _, u := range units {
			if u.Name == m.Units[i].Name {
				m.Units[i].Entries = u.Entries
			}
		}
	}
	return h.reexec(m)
}

func (h *host) Progress(p update.Phase, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.progress = append(h.progress, p)
	h.t.Logf("progress %s: %s", p, msg)
}

// contents reads a whole file from its start.
func contents(t testing.TB, f *os.File) string {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// storeNames lists a store's entry names.
func storeNames(s *fdstore.Store) []string {
	var names []string
	for _, e := range s.Entries() {
		names = append(names, e.Name)
	}
	return names
}

// kexecTo is a request to update into a test image.
func kexecTo(allowLoss bool) update.Request {
	return update.Request{Kind: update.Kexec, Target: testImage, AllowLoss: allowLoss, Count: 1, From: update.Boot{Release: "7.2.13"}}
}

var testImage = kexecImage("/boot/next", "liveupdate=on")

// outgoing creates an outgoing fake session on k, as a service would.
func outgoing(t testing.TB, k *updatetest.Kernel, name string) update.Session {
	t.Helper()
	dev, err := k.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	s, err := dev.CreateSession(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func equal[T comparable](a, b []T) bool { return slices.Equal(a, b) }

// mustRestore restores what the update into next left, failing the test
// when it cannot.
func mustRestore(t *testing.T, next *updatetest.Kernel) *update.Restored {
	t.Helper()
	r, err := update.Restore(next)
	if err != nil || r.Err != nil {
		t.Fatalf("Restore: %v, %v", err, r.Err)
	}
	return r
}
