package update

import (
	"os"

	"github.com/liveupdate/luo/internal/kexec"
)

// Kernel is everything an update asks of the kernel. [System] is the
// running kernel; package updatetest has a fake.
type Kernel interface {
	// Open opens the LUO device. Only one opener may hold it at a time:
	// close it as soon as the sessions are created or retrieved.
	Open() (Device, error)
	// Load loads the next kernel (kexec_file_load), replacing any image
	// loaded before.
	Load(kexec.Image) error
	// Unload drops the loaded image.
	Unload() error
	// Loaded reports whether an image is loaded.
	Loaded() (bool, error)
	// Exec reboots into the loaded image; the outgoing sessions that are
	// open go with it. On success it does not return.
	Exec() error
	// Inspect gathers the facts the checks of a plan look at, for an
	// update into t. It changes nothing.
	Inspect(t kexec.Image) Facts
}

// Device is an open LUO device.
type Device interface {
	// CreateSession creates an outgoing session.
	CreateSession(name string) (Session, error)
	// RetrieveSession retrieves an incoming session left by the previous
	// kernel.
	RetrieveSession(name string) (Session, error)
	Close() error
}

// Session is a LUO session; *luo.Session implements it.
type Session interface {
	Name() string
	// File is the session's fd, owned by the session.
	File() *os.File
	// PreserveFD preserves f under token in an outgoing session.
	PreserveFD(f *os.File, token uint64) error
	// RetrieveFD retrieves the file preserved under token in an incoming
	// session, as a new file owned by the caller.
	RetrieveFD(token uint64) (*os.File, error)
	// Finish ends an incoming session once everything was retrieved.
	Finish() error
	// Close closes the session: an outgoing one unpreserves its files, an
	// incoming one is finished implicitly.
	Close() error
}

// Facts are what the checks of a plan look at (see [Checks]).
type Facts struct {
	// Device is why the LUO device cannot be opened; nil when it is
	// present and free.
	Device error
	// Cmdline is the running kernel's command line.
	Cmdline string
	// KHO is why Kexec HandOver is off in this kernel; nil when it is on.
	KHO error
	// Scratch lists the sizes of the KHO scratch regions in bytes; nil
	// when unknown.
	Scratch []int64
	// Segments are the bytes the next kernel (at least its init_size) and
	// initrd need; Images says why they could not all be read.
	Segments []int64
	Images   error
	// Formats is why the next kernel may not take the state this one
	// preserves: a different memfd or KHO format, or formats that cannot
	// be read. Every entry is then lost, which an operator may allow.
	Formats error
	// Panics is why the next kernel would not even boot: it speaks
	// another LUO format (luo-vN), and LUO panics at boot on that. No
	// option overrides it.
	Panics error
	// FormatsDetail names the formats when they match.
	FormatsDetail string
}
