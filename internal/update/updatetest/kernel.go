// Package updatetest has fakes of the kernel side of a live update for
// tests: Kernel, an update.Kernel that keeps LUO sessions in memory with
// the kernel's rules and "reboots" by handing its open outgoing sessions to
// the next Kernel; and Faulty, a wrapper that fails chosen operations of
// any update.Kernel (the fake, or the real one in luod's fault-injection
// test build).
//
// Imported by tests and by luod built with the luodfault tag; never by a
// production binary.
package updatetest

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/update"
)

// Kernel is a fake update.Kernel. It follows the LUO rules of Linux 7.2
// that an update depends on: one opener of the device at a time (EBUSY),
// session names 1 to 63 bytes and unique among outgoing sessions (EINVAL,
// EEXIST), tokens unique per session (EEXIST), only memfds and unlinked
// tmpfs files preservable (ENOENT), a file preserved once system-wide,
// retrieved-but-unfinished files included (EBUSY), PRESERVE_FD only on
// outgoing and RETRIEVE_FD and FINISH only on incoming sessions (EINVAL),
// an incoming session retrievable once (EINVAL while open, ENOENT after).
// A session ends when Close is called or its file is closed.
//
// Exec "reboots": the open outgoing sessions, with the files preserved in
// them, become the incoming sessions of Next(), and the calling goroutine
// ends with runtime.Goexit as a real kexec ends the process (see Boot).
// Safe for concurrent use.
type Kernel struct {
	// Facts is what Inspect returns.
	Facts update.Facts
	// Fail, when set, is asked before every operation and fails it with
	// the error it returns.
	Fail func(Op) error

	mu       sync.Mutex
	devOpen  bool
	sessions []*Session // every session of this boot
	loaded   *kexec.Image
	next     *Kernel
	ops      []Op
}

// Op is one operation on the fake kernel.
type Op struct {
	// Name is open, create, retrieve, preserve, retrieve-fd, finish,
	// load, unload, loaded or exec.
	Name    string
	Session string // for session operations
	Token   uint64 // for preserve and retrieve-fd
	Image   string // the kernel of a load
}

func (o Op) String() string {
	switch {
	case o.Image != "":
		return o.Name + " " + o.Image
	case o.Name == "preserve" || o.Name == "retrieve-fd":
		return fmt.Sprintf("%s %s/%d", o.Name, o.Session, o.Token)
	case o.Session != "":
		return o.Name + " " + o.Session
	}
	return o.Name
}

// New returns a fake kernel on a cold boot (no incoming sessions), whose
// Inspect reports a kernel where every check passes.
func New() *Kernel {
	return &Kernel{Facts: update.Facts{Cmdline: "console=ttyS0 liveupdate=on", FormatsDetail: "luo-v5 kho-v4 memfd-v2"}}
}

// Ops returns the operations performed so far, in order.
func (k *Kernel) Ops() []Op {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ops)
}

// do records op and asks Fail about it. Called with k.mu held.
func (k *Kernel) do(op Op) error {
	k.ops = append(k.ops, op)
	if k.Fail != nil {
		return k.Fail(op)
	}
	return nil
}

// Open opens the device.
func (k *Kernel) Open() (update.Device, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.do(Op{Name: "open"}); err != nil {
		return nil, err
	}
	if k.devOpen {
		return nil, &luo.Error{Op: "open", Err: syscall.EBUSY}
	}
	k.devOpen = true
	return &device{k: k}, nil
}

// Load loads img.
func (k *Kernel) Load(img kexec.Image) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.do(Op{Name: "load", Image: img.Kernel}); err != nil {
		return &kexec.Error{Op: "load", Kernel: img.Kernel, Err: err}
	}
	k.loaded = &img
	return nil
}

// Unload drops the loaded image.
func (k *Kernel) Unload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.do(Op{Name: "unload"}); err != nil {
		return &kexec.Error{Op: "unload", Err: err}
	}
	k.loaded = nil
	return nil
}

// Loaded reports whether an image is loaded.
func (k *Kernel) Loaded() (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.do(Op{Name: "loaded"}); err != nil {
		return false, err
	}
	return k.loaded != nil, nil
}

// Image returns the loaded image, or nil.
func (k *Kernel) Image() *kexec.Image {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loaded
}

// Inspect returns k.Facts.
func (k *Kernel) Inspect(kexec.Image) update.Facts { return k.Facts }

// Exec reboots into the loaded image: see Kernel. On success it does not
// return.
func (k *Kernel) Exec() error {
	k.mu.Lock()
	if err := k.do(Op{Name: "exec"}); err != nil {
		k.mu.Unlock()
		return &kexec.Error{Op: "exec", Err: err}
	}
	if k.loaded == nil {
		k.mu.Unlock()
		return &kexec.Error{Op: "exec", Err: syscall.EINVAL}
	}
	next := New()
	next.Facts = k.Facts
	for _, s := range k.sessions {
		if s.incoming || !s.aliveLocked() {
			continue
		}
		in := &Session{k: next, name: s.name, incoming: true, files: map[uint64]*os.File{}}
		for tok, f := range s.files {
			in.files[tok] = f // the preserved copy moves to the next boot
		}
		s.files = map[uint64]*os.File{}
		next.sessions = append(next.sessions, in)
	}
	// Nothing of this boot outlives it.
	for _, s := range k.sessions {
		s.closed = true
		s.release()
		if s.file != nil {
			s.file.Close()
		}
	}
	k.next = next
	k.mu.Unlock()
	runtime.Goexit()
	return nil
}

// Next returns the kernel Exec rebooted into, or nil.
func (k *Kernel) Next() *Kernel {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.next
}

// Boot runs f, which may end in a successful Exec of k, in a goroutine of
// its own. It returns the next kernel when f rebooted, else nil and what f
// returned.
func (k *Kernel) Boot(f func() error) (*Kernel, error) {
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		done <- f()
	}()
	<-exited
	select {
	case err := <-done:
		return nil, err
	default:
		return k.Next(), nil
	}
}

// Sessions returns the names of the sessions alive in this boot, outgoing
// ones prefixed "out:" and incoming ones "in:", sorted.
func (k *Kernel) Sessions() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, s := range k.sessions {
		if s.aliveLocked() {
			dir := "out:"
			if s.incoming {
				dir = "in:"
			}
			out = append(out, dir+s.name)
		}
	}
	slices.Sort(out)
	return out
}

// Find returns the live session of that name in this boot (the newest, if
// an incoming and an outgoing one share it), or nil.
func (k *Kernel) Find(name string) *Session {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := len(k.sessions) - 1; i >= 0; i-- {
		if s := k.sessions[i]; s.name == name && s.aliveLocked() {
			return s
		}
	}
	return nil
}

// DeviceOpen reports whether the device is open.
func (k *Kernel) DeviceOpen() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.devOpen
}

// Incoming adds an incoming session to a fresh kernel, as if the previous
// kernel had left it, with the given files preserved under their tokens
// (the files are duplicated). For tests of what a restore does with what
// another program left.
func (k *Kernel) Incoming(name string, files map[uint64]*os.File) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := &Session{k: k, name: name, incoming: true, files: map[uint64]*os.File{}}
	for tok, f := range files {
		d, err := dup(f)
		if err != nil {
			return err
		}
		s.files[tok] = d
	}
	k.sessions = append(k.sessions, s)
	return nil
}
