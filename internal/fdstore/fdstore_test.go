//go:build linux

package fdstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/memfd"
)

func newMemfd(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := memfd.New(name, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func dup(t *testing.T, f *os.File) *os.File {
	t.Helper()
	d, err := dupOf(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestAddLimitDuplicateRemove(t *testing.T) {
	s := New(3)
	a, b := newMemfd(t, "a"), newMemfd(t, "b")
	if _, err := s.Add("x", a, false, "notify"); err != nil {
		t.Fatal(err)
	}
	// A dup of the same open file description is a duplicate; the existing
	// entry keeps its name.
	if _, err := s.Add("other", dup(t, a), false, "notify"); !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("Add(dup) = %v, want ErrDuplicate naming x", err)
	}
	// Names are not unique.
	if _, err := s.Add("x", b, false, "notify"); err != nil {
		t.Fatal(err)
	}
	// The same memfd opened again through /proc is another description.
	re, err := os.OpenFile("/proc/self/fd/"+itoa(int(a.Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	if SameFile(a, re) {
		t.Error("SameFile(a, reopened a) = true, want false (different open file descriptions)")
	}
	if _, err := s.Add("y", re, false, "notify"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add("z", newMemfd(t, "c"), false, "notify"); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "FileDescriptorStoreMax=3") {
		t.Fatalf("Add over the limit = %v, want ErrFull", err)
	}
	names := func() (ns []string) {
		for _, e := range s.Entries() {
			ns = append(ns, e.Name)
		}
		return ns
	}
	if got := strings.Join(names(), ","); got != "x,x,y" {
		t.Fatalf("entries %s, want insertion order x,x,y", got)
	}
	if removed := s.RemoveName("x"); len(removed) != 2 {
		t.Fatalf("RemoveName removed %d, want 2", len(removed))
	}
	if dropped := s.SetLimits(0, nil); len(dropped) != 1 || dropped[0].Name != "y" || s.Len() != 0 {
		t.Fatalf("SetLimits(0) dropped %v, store has %d", dropped, s.Len())
	}
}

// TestLUOSessionSlot: a LUOSession= name takes one slot, however many
// sessions luod holds under it. The store keep's docs size for one region
// (FileDescriptorStoreMax=3: region, keep.index, session) still takes both
// after a live update, when luod holds the incoming session next to a
// fresh outgoing one.
func TestLUOSessionSlot(t *testing.T) {
	s := New(3)
	s.SetLimits(3, []string{"state"})
	// The incoming session, restored by luod after the kexec.
	in := s.Adopt("state", newMemfd(t, "in"), false, OriginLUO)
	in.LUOSession = true
	// The outgoing session luod hands out next to it.
	if _, err := s.Add("state", newMemfd(t, "out"), false, OriginHandedOut); err != nil {
		t.Fatalf("hand out the outgoing session: %v", err)
	}
	for _, name := range []string{"counter", "keep.index"} {
		if _, err := s.Add(name, newMemfd(t, name), false, OriginNotify); err != nil {
			t.Fatalf("Add(%s) with two sessions under LUOSession=state: %v", name, err)
		}
	}
	if s.Used() != 3 || s.Len() != 4 {
		t.Errorf("used %d slots by %d entries, want 3 by 4", s.Used(), s.Len())
	}
	if _, err := s.Add("more", newMemfd(t, "more"), false, OriginNotify); !errors.Is(err, ErrFull) {
		t.Errorf("Add over the limit = %v, want ErrFull", err)
	}
	// The slot is reserved before the session is there: the service
	// cannot take it.
	r := New(0)
	r.SetLimits(2, []string{"state"})
	if _, err := r.Add("a", newMemfd(t, "a"), false, OriginNotify); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add("b", newMemfd(t, "b"), false, OriginNotify); !errors.Is(err, ErrFull) {
		t.Errorf("Add into the reserved slot = %v, want ErrFull", err)
	}
	// What the service stores under the name and is not a LUO session
	// takes a slot of its own. (A session it stores back goes into the
	// name's slot: TestVMModel, keep in LUOSession= mode.)
	if _, err := r.Add("state", newMemfd(t, "own"), false, OriginNotify); !errors.Is(err, ErrFull) {
		t.Errorf("Add(state) by the service = %v, want ErrFull", err)
	}
	// A reload lowering the limit drops the newest other entries, never a
	// session in its slot; one dropping the name makes its sessions
	// ordinary entries.
	if dropped := s.SetLimits(2, []string{"state"}); len(dropped) != 1 || dropped[0].Name != "keep.index" {
		t.Errorf("SetLimits(2) dropped %v, want keep.index", names(dropped))
	}
	if dropped := s.SetLimits(2, nil); len(dropped) != 1 || dropped[0].Name != "counter" || s.Used() != 2 {
		t.Errorf("SetLimits(2, no sessions) dropped %v, used %d; want counter, 2", names(dropped), s.Used())
	}
}

func names(es []*Entry) (ns []string) {
	for _, e := range es {
		ns = append(ns, e.Name)
	}
	return ns
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestDescribe(t *testing.T) {
	m := newMemfd(t, "state")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	reg, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for _, tc := range []struct {
		f           *os.File
		typ         string
		preservable bool
		why         string
	}{
		{m, "memfd", true, ""},
		{w, "fifo", false, "a pipe"},
		{reg, "reg", false, "regular file"},
		{null, "chr", false, "character device"},
	} {
		info, err := Describe(tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if info.Type != tc.typ || (info.Unpreservable == nil) != tc.preservable || info.Session != "" {
			t.Errorf("Describe(%s) = %+v, want type %s preservable %v", tc.f.Name(), info, tc.typ, tc.preservable)
		}
		if !tc.preservable && (!errors.Is(info.Unpreservable, luo.ErrNotPreservable) || !strings.Contains(info.Unpreservable.Error(), tc.why)) {
			t.Errorf("Describe(%s).Unpreservable = %v, want ~%q", tc.f.Name(), info.Unpreservable, tc.why)
		}
	}
	info, _ := Describe(null)
	if info.RDev == nil || info.RDev[0] != 1 || info.RDev[1] != 3 {
		t.Errorf("/dev/null rdev = %v, want 1:3", info.RDev)
	}
	if info.Flags != "ro" {
		t.Errorf("/dev/null flags %q, want ro", info.Flags)
	}
	if info, _ := Describe(m); info.Size != 4096 || !strings.HasPrefix(info.Path, "/memfd:state") || info.Flags != "rw" {
		t.Errorf("memfd info %+v", info)
	}
}

// TestDescribeLeavesNoFD: describing opens nothing that outlives it (a
// dump of a large store once left a duplicate of every fd open until the
// next garbage collection).
func TestDescribeLeavesNoFD(t *testing.T) {
	m := newMemfd(t, "state")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before := openFDs(t)
	for range 500 {
		for _, f := range []*os.File{m, r} {
			if _, err := Describe(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d fds open after 1000 descriptions, %d before", after, before)
	}
	// The pipe is closed at once when its writer goes: nothing else holds it.
	w.Close()
	if n, err := r.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read after the writer closed: %d, %v", n, err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestPoller(t *testing.T) {
	p, err := NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	kept, peer := os.NewFile(uintptr(fds[0]), "kept"), os.NewFile(uintptr(fds[1]), "peer")
	defer kept.Close()
	s := New(10)
	e, _ := s.Add("sock", kept, true, "notify")
	if ok, err := p.Watch(e); !ok || err != nil {
		t.Fatalf("Watch(socket) = %v, %v", ok, err)
	}
	me, _ := s.Add("mem", newMemfd(t, "m"), true, "notify")
	if ok, err := p.Watch(me); ok || err != nil {
		t.Fatalf("Watch(memfd) = %v, %v, want false, nil (not pollable)", ok, err)
	}
	// Nothing happens while the peer lives.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	evs, err := p.Wait(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || len(evs) != 0 {
		t.Fatalf("Wait with a live peer = %v, %v", evs, err)
	}
	peer.Close()
	evs, err = p.Wait(context.Background())
	if err != nil || len(evs) != 1 || evs[0].ID != e.ID || !evs[0].Hup {
		t.Fatalf("Wait after peer close = %+v, %v, want HUP of %d", evs, err, e.ID)
	}
	p.Unwatch(e)
	s.RemoveID(e.ID)
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if evs, err := p.Wait(ctx); len(evs) != 0 {
		t.Fatalf("events after Unwatch: %+v %v", evs, err)
	}
}

// TestDescribeNamelessMemfd: a memfd LUO restored after a kexec has no name
// (the kernel creates it with ""), so its /proc link reads "/ (deleted)",
// not "/memfd:...". It is still a memfd, not a regular file. The nearest
// such file on any kernel is the shmem file behind a shared anonymous
// mapping, opened through /proc/self/map_files (CAP_SYS_ADMIN); the VM
// test checks real restored memfds.
func TestDescribeNamelessMemfd(t *testing.T) {
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	start := uintptr(unsafe.Pointer(&b[0]))
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/map_files/%x-%x", start, start+4096), os.O_RDWR, 0)
	if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) {
		t.Skipf("cannot open a shmem file without a memfd name: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := Describe(f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(info.Path, "/memfd:") || info.Type != "memfd" || info.Unpreservable != nil {
		t.Errorf("Describe(shmem file %q) = type %s, unpreservable %v; want a preservable memfd", info.Path, info.Type, info.Unpreservable)
	}
	// A tmpfs file is not one, even unlinked.
	tf, err := os.CreateTemp("/dev/shm", "fdstore-test")
	if err != nil {
		t.Skip(err)
	}
	defer tf.Close()
	os.Remove(tf.Name())
	if info, _ := Describe(tf); info.Type != "reg" {
		t.Errorf("Describe(unlinked tmpfs file) = type %s, want reg", info.Type)
	}
}
