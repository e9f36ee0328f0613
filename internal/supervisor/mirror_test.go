package supervisor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/cgroup"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
	"github.com/liveupdate/luo/internal/sdnotifytest"
)

// fakeStore is the fd store of a systemd service, as luod's own manager
// keeps it: FDSTORE=1 with FDNAME= adds, FDSTOREREMOVE=1 removes by name,
// and a restart passes what is left in $LISTEN_FDS (withFDs).
type fakeStore struct {
	t     *testing.T
	mu    sync.Mutex
	names []string
	files map[string]*os.File
}

func newFakeStore(t *testing.T) *fakeStore {
	mgr := sdnotifytest.New(t)
	mgr.Setenv(t)
	t.Setenv("FDSTORE", "64")
	s := &fakeStore{t: t, files: map[string]*os.File{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			dg, err := mgr.Receive(ctx)
			if err != nil {
				return
			}
			kv := map[string]string{}
			for _, l := range dg.Lines() {
				if k, v, ok := strings.Cut(l, "="); ok {
					kv[k] = v
				}
			}
			s.mu.Lock()
			switch name := kv["FDNAME"]; {
			case kv["FDSTORE"] == "1" && len(dg.Files) == 1:
				if old := s.files[name]; old != nil {
					old.Close()
					s.names = slices.DeleteFunc(s.names, func(n string) bool { return n == name })
				}
				s.files[name] = dg.Files[0]
				s.names = append(s.names, name)
				dg.Files = nil
			case kv["FDSTOREREMOVE"] == "1":
				if f := s.files[name]; f != nil {
					f.Close()
				}
				delete(s.files, name)
				s.names = slices.DeleteFunc(s.names, func(n string) bool { return n == name })
			}
			s.mu.Unlock()
			dg.Close()
		}
	}()
	return s
}

// snapshot returns the stored names, in order.
func (s *fakeStore) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.names)
}

// mapEntries waits until the store holds exactly one map and want entries
// (or, for none, possibly nothing at all), and returns the map's entries
// as "fdname unit/name".
func (s *fakeStore) mapEntries(want int) []string {
	s.t.Helper()
	var got []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		var maps []string
		got = nil
		for _, n := range s.names {
			if strings.HasPrefix(n, "luod-map-") {
				maps = append(maps, n)
			}
		}
		if want == 0 && len(s.names) == 0 {
			s.mu.Unlock()
			return nil // nothing was ever mirrored: no map either
		}
		if len(maps) == 1 && len(s.names) == want+1 {
			f := s.files[maps[0]]
			b := make([]byte, 1<<16)
			n, _ := f.ReadAt(b, 0)
			var mp struct {
				Entries []struct{ FDName, Unit, Name string }
			}
			if json.Unmarshal(b[:n], &mp) == nil {
				for _, e := range mp.Entries {
					got = append(got, e.FDName+" "+e.Unit+"/"+e.Name)
				}
			}
			if len(got) == want {
				s.mu.Unlock()
				slices.Sort(got)
				return got
			}
		}
		s.mu.Unlock()
	}
	s.t.Fatalf("the manager's store holds %v (map entries %v), want one map and %d entries", s.snapshot(), got, want)
	return nil
}

// withFDs is what systemd gives luod at a start: its store in $LISTEN_FDS
// (fd 3...), $LISTEN_FDNAMES and, through the wrapper (LISTEN_PID is the
// started process's own pid), $LISTEN_PID.
func (s *fakeStore) withFDs(d *luodtest.Daemon) luodtest.Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	wrapper := filepath.Join(d.Dir, "luod-wrapper")
	os.WriteFile(wrapper, []byte("#!/bin/sh\nLISTEN_PID=$$ exec "+filepath.Join(d.Bin, "luod")+" \"$@\"\n"), 0o755)
	var files []*os.File
	for _, n := range s.names {
		files = append(files, s.files[n])
	}
	return luodtest.Options{Binary: wrapper, Dir: d.Dir, Inherit: files,
		Env: []string{fmt.Sprintf("LISTEN_FDS=%d", len(files)), "LISTEN_FDNAMES=" + strings.Join(s.names, ":")}}
}

// TestMirrorsStoresUpstream: run as a service whose manager gave it an fd
// store, luod mirrors its units' store entries into it with a map, and
// rebuilds the units' stores from it after a restart and after a crash
// (kill -9); across its own re-exec it keeps the names; an entry its unit
// drops is removed upstream too, and only the newest map stays.
func TestMirrorsStoresUpstream(t *testing.T) {
	fs := newFakeStore(t)
	units := map[string]string{
		"a.service": svc("-ctl @DIR@/a.ctl") + "FileDescriptorStoreMax=4\nFileDescriptorStorePreserve=yes\n",
		"b.service": svc("-ctl @DIR@/b.ctl") + "FileDescriptorStoreMax=4\nFileDescriptorStorePreserve=yes\n",
	}
	d := luodtest.Start(t, units)
	d.WaitUnit("a.service", "active", active)
	d.WaitUnit("b.service", "active", active)
	if ans, err := luodtest.Ctl(filepath.Join(d.Dir, "a.ctl"), "store m=memfd:data"); ans != "ok" {
		t.Fatalf("a: store: %q %v", ans, err)
	}
	if got := fs.mapEntries(1); !slices.Equal(got, []string{"luod-0 a.service/m"}) {
		t.Fatalf("mirrored: %v", got)
	}

	storeOf := func(d *luodtest.Daemon, unit string) []string {
		var r control.FDStore
		d.MustCall(control.MethodDumpFDStore, control.UnitName{Name: unit}, &r)
		var es []string
		for _, e := range r.Entries {
			es = append(es, fmt.Sprintf("%s %s %d", e.Name, e.Type, e.Size))
		}
		return es
	}
	restart := func(d *luodtest.Daemon, how syscall.Signal) *luodtest.Daemon {
		t.Helper()
		var mains []int
		for _, name := range []string{"a.service", "b.service"} {
			mains = append(mains, d.Unit(name).MainPID)
		}
		syscall.Kill(d.PID(), how)
		if how == syscall.SIGKILL {
			// luod's units outlive it; systemd would kill them with
			// luod's cgroup (KillMode=mixed), and so does the test, which
			// also removes the cgroups the dead luod left.
			crashed(t, d.PID(), mains)
		}
		<-d.Exited()
		nd := luodtest.StartWith(t, fs.withFDs(d), nil)
		// Both units serve their ctl sockets from READY on.
		nd.WaitUnit("a.service", "active", active)
		nd.WaitUnit("b.service", "active", active)
		return nd
	}

	d = restart(d, syscall.SIGTERM)
	if got := storeOf(d, "a.service"); !slices.Equal(got, []string{"m memfd 4"}) {
		t.Errorf("a.service's store after a restart: %v", got)
	}
	if got := fs.mapEntries(1); !slices.Equal(got, []string{"luod-0 a.service/m"}) {
		t.Errorf("mirrored after a restart: %v", got)
	}

	// Re-exec, then a new entry: it gets a new name.
	if err := d.Call(control.MethodReexec, nil, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var m control.Manager
		if err := d.Call(control.MethodGetManager, nil, &m); err == nil && m.Reexecs == 1 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("luod did not come back from its re-exec: %v", err)
		}
	}
	if ans, err := luodtest.Ctl(filepath.Join(d.Dir, "b.ctl"), "store x=memfd:hello"); ans != "ok" {
		t.Fatalf("b: store: %q %v", ans, err)
	}
	if got := fs.mapEntries(2); !slices.Equal(got, []string{"luod-0 a.service/m", "luod-1 b.service/x"}) {
		t.Errorf("mirrored after a re-exec and a new entry: %v", got)
	}

	d = restart(d, syscall.SIGKILL)
	if got := storeOf(d, "b.service"); !slices.Equal(got, []string{"x memfd 5"}) {
		t.Errorf("b.service's store after kill -9: %v", got)
	}

	// The unit drops its entry: gone upstream too.
	if ans, err := luodtest.Ctl(filepath.Join(d.Dir, "b.ctl"), "remove x"); ans != "ok" {
		t.Fatalf("b: remove: %q %v", ans, err)
	}
	if got := fs.mapEntries(1); !slices.Equal(got, []string{"luod-0 a.service/m"}) {
		t.Errorf("mirrored after the unit removed x: %v", got)
	}
}

// crashed kills the processes a luod killed with SIGKILL left, and removes
// its cgroups (luod-PID.scope and luod-PID.slice, with the units' groups).
func crashed(t *testing.T, luod int, pids []int) {
	t.Helper()
	var slice string
	for _, pid := range pids {
		if cg, err := cgroup.Of(pid); err == nil && slice == "" && strings.Contains(cg, fmt.Sprintf("/luod-%d.slice/", luod)) {
			slice = filepath.Dir(cg)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range pids {
		for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if slice == "" {
		return // no cgroups here
	}
	root := cgroup2Mount(t)
	dirs, _ := filepath.Glob(filepath.Join(root, slice, "*"))
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			for deadline := time.Now().Add(10 * time.Second); syscall.Rmdir(d) != nil && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	syscall.Rmdir(filepath.Join(root, slice))
	syscall.Rmdir(filepath.Join(root, filepath.Dir(slice), fmt.Sprintf("luod-%d.scope", luod)))
}

// TestMirrorSequences drives luod, as a service with an fd store, through
// random sequences (seeded; the seed is in the failure) of stores and
// removals by its units, restarts and kill -9 of luod, re-execs and unit
// restarts. After each step the units' stores are what the model says,
// the manager's store holds exactly their mirror and one map, and the map
// names each entry's unit and name.
func TestMirrorSequences(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { mirrorSequence(t, seed, 20) })
	}
}

func mirrorSequence(t *testing.T, seed int64, steps int) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	fs := newFakeStore(t)
	units := []string{"a.service", "b.service"}
	unitText := map[string]string{}
	for _, u := range units {
		unitText[u] = svc("-ctl @DIR@/"+u+".ctl") + "FileDescriptorStoreMax=8\nFileDescriptorStorePreserve=yes\n"
	}
	d := luodtest.Start(t, unitText)
	// model: unit -> the sizes of its entries by name (one entry per name
	// here: a name is removed before it is stored again).
	model := map[string]map[string]int{"a.service": {}, "b.service": {}}
	reexecs := 0
	waitUp := func() {
		for _, u := range units {
			d.WaitUnit(u, "active", active)
		}
	}
	waitUp()
	var trail []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, after %v: %s", seed, trail, fmt.Sprintf(format, args...))
	}
	for i := range steps {
		u := units[rng.IntN(len(units))]
		name := fmt.Sprintf("x%d", rng.IntN(3))
		switch op := rng.IntN(7); {
		case op <= 2: // store, or remove what is there
			ctl := filepath.Join(d.Dir, u+".ctl")
			if _, ok := model[u][name]; ok {
				trail = append(trail, "remove "+u+"/"+name)
				if ans, err := luodtest.Ctl(ctl, "remove "+name); ans != "ok" {
					fail("remove: %q %v", ans, err)
				}
				delete(model[u], name)
			} else {
				data := strings.Repeat("d", 1+rng.IntN(50))
				trail = append(trail, fmt.Sprintf("store %s/%s (%d bytes)", u, name, len(data)))
				if ans, err := luodtest.Ctl(ctl, "store "+name+"=memfd:"+data); ans != "ok" {
					fail("store: %q %v", ans, err)
				}
				model[u][name] = len(data)
			}
		case op == 3, op == 4:
			how := syscall.SIGTERM
			if op == 4 {
				how = syscall.SIGKILL
			}
			trail = append(trail, "luod "+how.String())
			var mains []int
			for _, name := range units {
				mains = append(mains, d.Unit(name).MainPID)
			}
			syscall.Kill(d.PID(), how)
			if how == syscall.SIGKILL {
				crashed(t, d.PID(), mains)
			}
			<-d.Exited()
			d = luodtest.StartWith(t, fs.withFDs(d), nil)
			reexecs = 0
			waitUp()
		case op == 5:
			trail = append(trail, "re-exec")
			if err := d.Call(control.MethodReexec, nil, nil); err != nil {
				fail("reexec: %v", err)
			}
			reexecs++
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				var m control.Manager
				if err := d.Call(control.MethodGetManager, nil, &m); err == nil && m.Reexecs == reexecs {
					break
				} else if time.Now().After(deadline) {
					fail("luod did not come back from its re-exec: %v", err)
				}
			}
		default:
			trail = append(trail, "restart "+u)
			d.MustCall(control.MethodRestartUnit, control.UnitName{Name: u}, nil)
			d.WaitUnit(u, "active", active)
		}

		// The invariant.
		var want []string
		n := 0
		for _, u := range units {
			var r control.FDStore
			d.MustCall(control.MethodDumpFDStore, control.UnitName{Name: u}, &r)
			var got []string
			for _, e := range r.Entries {
				got = append(got, fmt.Sprintf("%s/%s %d", u, e.Name, e.Size))
			}
			var exp []string
			for name, size := range model[u] {
				exp = append(exp, fmt.Sprintf("%s/%s %d", u, name, size))
				want = append(want, u+"/"+name)
				n++
			}
			slices.Sort(got)
			slices.Sort(exp)
			if !slices.Equal(got, exp) {
				fail("step %d: %s's store is %v, want %v", i, u, got, exp)
			}
		}
		var mirrored []string
		for _, e := range fs.mapEntries(n) {
			_, un, _ := strings.Cut(e, " ")
			mirrored = append(mirrored, un)
		}
		slices.Sort(mirrored)
		slices.Sort(want)
		if !slices.Equal(mirrored, want) {
			fail("step %d: the map names %v, the stores hold %v", i, mirrored, want)
		}
	}
	t.Logf("seed %d: %v", seed, trail)
}
