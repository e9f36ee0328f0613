package updatetest

import (
	"os"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/update"
)

// Faulty wraps an update.Kernel and fails chosen operations: Fail is asked
// before each one (with the same Op names as Kernel's) and, when it returns
// an error, the operation is not performed and fails with it. Fail may
// also block, to hold an update at a point.
type Faulty struct {
	update.Kernel
	Fail func(Op) error
}

func (f *Faulty) fail(op Op) error {
	if f.Fail == nil {
		return nil
	}
	return f.Fail(op)
}

// Open opens the device.
func (f *Faulty) Open() (update.Device, error) {
	if err := f.fail(Op{Name: "open"}); err != nil {
		return nil, err
	}
	d, err := f.Kernel.Open()
	if err != nil {
		return nil, err
	}
	return &faultyDevice{Device: d, f: f}, nil
}

// Load loads img.
func (f *Faulty) Load(img kexec.Image) error {
	if err := f.fail(Op{Name: "load", Image: img.Kernel}); err != nil {
		return &kexec.Error{Op: "load", Kernel: img.Kernel, Err: err}
	}
	return f.Kernel.Load(img)
}

// Unload drops the loaded image.
func (f *Faulty) Unload() error {
	if err := f.fail(Op{Name: "unload"}); err != nil {
		return &kexec.Error{Op: "unload", Err: err}
	}
	return f.Kernel.Unload()
}

// Loaded reports whether an image is loaded.
func (f *Faulty) Loaded() (bool, error) {
	if err := f.fail(Op{Name: "loaded"}); err != nil {
		return false, err
	}
	return f.Kernel.Loaded()
}

// Exec reboots into the loaded image.
func (f *Faulty) Exec() error {
	if err := f.fail(Op{Name: "exec"}); err != nil {
		return &kexec.Error{Op: "exec", Err: err}
	}
	return f.Kernel.Exec()
}

type faultyDevice struct {
	update.Device
	f *Faulty
}

func (d *faultyDevice) CreateSession(name string) (update.Session, error) {
	if err := d.f.fail(Op{Name: "create", Session: name}); err != nil {
		return nil, &luo.Error{Op: "CREATE_SESSION", Session: name, Err: err}
	}
	s, err := d.Device.CreateSession(name)
	if err != nil {
		return nil, err
	}
	return &faultySession{Session: s, f: d.f}, nil
}

func (d *faultyDevice) RetrieveSession(name string) (update.Session, error) {
	if err := d.f.fail(Op{Name: "retrieve", Session: name}); err != nil {
		return nil, &luo.Error{Op: "RETRIEVE_SESSION", Session: name, Err: err}
	}
	s, err := d.Device.RetrieveSession(name)
	if err != nil {
		return nil, err
	}
	return &faultySession{Session: s, f: d.f}, nil
}

type faultySession struct {
	update.Session
	f *Faulty
}

func (s *faultySession) PreserveFD(file *os.File, token uint64) error {
	if err := s.f.fail(Op{Name: "preserve", Session: s.Name(), Token: token}); err != nil {
		return &luo.Error{Op: "PRESERVE_FD", Session: s.Name(), Token: token, Err: err}
	}
	return s.Session.PreserveFD(file, token)
}

func (s *faultySession) RetrieveFD(token uint64) (*os.File, error) {
	if err := s.f.fail(Op{Name: "retrieve-fd", Session: s.Name(), Token: token}); err != nil {
		return nil, &luo.Error{Op: "RETRIEVE_FD", Session: s.Name(), Token: token, Err: err}
	}
	return s.Session.RetrieveFD(token)
}

func (s *faultySession) Finish() error {
	if err := s.f.fail(Op{Name: "finish", Session: s.Name()}); err != nil {
		return &luo.Error{Op: "FINISH", Session: s.Name(), Err: err}
	}
	return s.Session.Finish()
}
