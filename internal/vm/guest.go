package vm

import (
	"errors"
	"io"
	"sync"
)

// errNotInGuest is returned by guest functions called outside a VM.
var errNotInGuest = errors.New("vm: not in a VM built by package vm (no vmtest.stage= on /proc/cmdline)")

// held keeps the values given to Hold reachable. It is package state on
// purpose: what it holds must outlive every test of the stage, up to the
// kexec.
var held struct {
	sync.Mutex
	values []io.Closer
}

// Hold keeps each value (typically a LUO session or a preserved file)
// referenced, and so open, until the process kexecs into the next stage or
// exits: nothing ever closes them (vmtest.GuestMain does not), which is what
// carries a session across the kexec. Hold is safe for concurrent use.
func Hold(c ...io.Closer) {
	held.Lock()
	defer held.Unlock()
	held.values = append(held.values, c...)
}
