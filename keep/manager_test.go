//go:build linux

package keep_test

import (
	"bytes"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/liveupdate/luo/activation"
	"github.com/liveupdate/luo/internal/sdnotifytest"
	"github.com/liveupdate/luo/keep"
	"github.com/liveupdate/luo/sdnotify"
)

// manager plays the service manager's fd store for keep, in process: it
// receives FDSTORE=1 / FDSTOREREMOVE=1 on a socket of its own, enforces
// FileDescriptorStoreMax= like systemd (and records what it drops), and
// hands its entries to the next Open as LISTEN_FDS would.
type manager struct {
	t       testing.TB
	sock    *sdnotifytest.Manager
	max     int
	entries []*os.File // named by their fd name
	dropped []string
	passed  []*os.File // to the running instance
}

func newManager(t testing.TB, max int) *manager {
	m := &manager{t: t, sock: sdnotifytest.New(t), max: max}
	t.Cleanup(func() {
		m.exit()
		for _, f := range m.entries {
			f.Close()
		}
	})
	return m
}

// drain applies every message sent so far (sendmsg queues a datagram
// before it returns).
func (m *manager) drain() {
	m.t.Helper()
	for {
		d, err := m.sock.TryReceive()
		if err != nil {
			m.t.Fatal(err)
		}
		if d == nil {
			return
		}
		m.apply(d.Payload, d.Files)
		d.Files = nil
	}
}

func (m *manager) apply(msg []byte, files []*os.File) {
	kv := map[string]string{}
	for _, line := range bytes.Split(msg, []byte("\n")) {
		k, v, _ := strings.Cut(string(line), "=")
		kv[k] = v
	}
	name := kv["FDNAME"]
	if kv["FDSTOREREMOVE"] == "1" {
		for _, f := range m.take(name) {
			f.Close()
		}
	}
	for _, f := range files {
		if kv["FDSTORE"] != "1" || len(m.entries) >= m.max {
			m.dropped = append(m.dropped, name)
			f.Close()
			continue
		}
		m.entries = append(m.entries, m.dup(f, name))
		f.Close()
	}
}

// names returns the names of the entries, in order.
func (m *manager) names() []string {
	m.drain()
	var names []string
	for _, f := range m.entries {
		names = append(names, f.Name())
	}
	return names
}

// open starts a new instance of the service: keep.Open with the store's
// entries passed as LISTEN_FDS would (duplicates of the manager's fds).
func (m *manager) open(cfg keep.Config) (*keep.Store, error) {
	m.t.Helper()
	m.drain()
	m.exit()
	for _, f := range m.entries {
		m.passed = append(m.passed, m.dup(f, f.Name()))
	}
	n, err := sdnotify.OpenAddr(m.sock.Addr())
	if err != nil {
		m.t.Fatal(err)
	}
	cfg.Notifier, cfg.Files = n, activation.FilesOf(m.passed...)
	if cfg.StoreMax == 0 {
		cfg.StoreMax = m.max
	}
	return keep.Open(&cfg)
}

// exit closes what the manager passed to the running instance, as its
// exit would.
func (m *manager) exit() {
	for _, f := range m.passed {
		f.Close()
	}
	m.passed = nil
}

// add puts a duplicate of f in the store under name, as a manager that
// hands out a LUO session does.
func (m *manager) add(name string, f *os.File) {
	m.drain()
	m.entries = append(m.entries, m.dup(f, name))
}

// take removes the entries called name from the store and returns them.
func (m *manager) take(name string) []*os.File {
	var taken, kept []*os.File
	for _, f := range m.entries {
		if f.Name() == name {
			taken = append(taken, f)
		} else {
			kept = append(kept, f)
		}
	}
	m.entries = kept
	return taken
}

func (m *manager) dup(f *os.File, name string) *os.File {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		m.t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), name)
}

// mustOpen is open that fails the test on error.
func (m *manager) mustOpen(cfg keep.Config) *keep.Store {
	m.t.Helper()
	st, err := m.open(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { st.Close() })
	return st
}

// region opens a region and maps it, failing the test on error.
func region(t *testing.T, st *keep.Store, name string, size int64) (*keep.Region, []byte) {
	t.Helper()
	r, err := st.Region(name, size)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return r, b
}
