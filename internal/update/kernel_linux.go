package update

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/kimage"
)

// System is the running kernel: its LUO device and kexec. Create it with
// NewSystem. Safe for concurrent use.
type System struct {
	device string
	// running reads this kernel's LUO formats once.
	running func() (kimage.Formats, error)

	mu     sync.Mutex
	images map[imageKey]kimage.Formats // formats of next kernels read so far
}

// NewSystem returns the running kernel, with its LUO device at device
// (luo.DevicePath when empty).
func NewSystem(device string) *System {
	if device == "" {
		device = luo.DevicePath
	}
	return &System{device: device, running: sync.OnceValues(kimage.Running), images: map[imageKey]kimage.Formats{}}
}

// Open opens the LUO device.
func (s *System) Open() (Device, error) {
	d, err := luo.OpenPath(s.device)
	if err != nil {
		return nil, err
	}
	return luoDevice{d}, nil
}

// Load loads t with kexec_file_load(2).
func (*System) Load(t kexec.Image) error { return kexec.Load(t) }

// Unload drops the loaded kexec image.
func (*System) Unload() error { return kexec.Unload() }

// Loaded reports whether a kexec image is loaded.
func (*System) Loaded() (bool, error) { return kexec.Loaded() }

// Exec reboots into the loaded image.
func (*System) Exec() error { return kexec.Exec() }

// Inspect gathers the facts of the running kernel and of the image t.
func (s *System) Inspect(t kexec.Image) Facts {
	var f Facts
	if d, err := luo.OpenPath(s.device); err != nil {
		f.Device = err
	} else {
		d.Close()
	}
	f.Cmdline, _ = kexec.CurrentCmdline()
	f.KHO = khoEnabled(s.device)
	f.Scratch = khoScratch()
	f.Segments, f.Images = segments(t)
	if f.Images == nil && t.Kernel != "" {
		f.Formats, f.Panics, f.FormatsDetail = s.formats(t.Kernel)
	}
	return f
}

// luoDevice adapts *luo.Device to Device.
type luoDevice struct{ d *luo.Device }

func (d luoDevice) CreateSession(name string) (Session, error) {
	s, err := d.d.CreateSession(name)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (d luoDevice) RetrieveSession(name string) (Session, error) {
	s, err := d.d.RetrieveSession(name)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (d luoDevice) Close() error { return d.d.Close() }

// khoEnabled tells whether Kexec HandOver is on in this kernel: without it
// LUO disables itself.
func khoEnabled(device string) error {
	if _, err := os.Stat("/sys/kernel/debug/kho"); err == nil {
		return nil
	}
	if _, err := os.Stat(device); err == nil {
		return nil // LUO runs only with KHO
	}
	return errors.New("no /sys/kernel/debug/kho and no LUO device: KHO is off or debugfs is not mounted")
}

// khoScratch reads the sizes of the KHO scratch regions from debugfs
// (kho/out/scratch_len, one hex size per line), or nil.
func khoScratch() []int64 {
	b, err := os.ReadFile("/sys/kernel/debug/kho/out/scratch_len")
	if err != nil {
		return nil
	}
	return parseScratch(b)
}

// parseScratch parses kho/out/scratch_len.
func parseScratch(b []byte) []int64 {
	sizes := []int64{}
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.ParseInt(strings.TrimPrefix(f, "0x"), 16, 64); err == nil {
			sizes = append(sizes, n)
		}
	}
	return sizes
}

// segments returns the memory the kernel and initrd of t need: the files'
// sizes, and for the kernel at least the init_size of its bzImage header.
func segments(t kexec.Image) ([]int64, error) {
	var sizes []int64
	if t.Kernel != "" {
		img, err := kimage.Open(t.Kernel)
		if err != nil {
			return nil, fmt.Errorf("%w: kexec_file_load would not load it", err)
		}
		fi, err := os.Stat(t.Kernel)
		if err != nil {
			return nil, err
		}
		sizes = append(sizes, max(fi.Size(), img.InitSize))
	}
	if t.Initrd != "" {
		fi, err := os.Stat(t.Initrd)
		if err != nil {
			return nil, err
		}
		sizes = append(sizes, fi.Size())
	}
	return sizes, nil
}

// imageKey identifies one version of an image file.
type imageKey struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

// formats compares the LUO formats of the running kernel with those of
// the image at path: a known different LUO format makes the next kernel
// panic (panics); any other difference, or a format that cannot be read,
// loses what is preserved (loss).
func (s *System) formats(path string) (loss, panics error, detail string) {
	running, err := s.running()
	if err != nil {
		return fmt.Errorf("cannot read this kernel's LUO formats: %w", err), nil, ""
	}
	next, err := s.imageFormats(path)
	if err != nil {
		return fmt.Errorf("cannot read the LUO formats of %s: %w", path, err), nil, ""
	}
	err = running.Accepts(next)
	var me *kimage.MismatchError
	switch {
	case err == nil:
		return nil, nil, running.String()
	case errors.As(err, &me) && slices.Contains(me.Kinds, "LUO") && me.Running.LUO != "" && me.Next.LUO != "":
		return nil, err, ""
	}
	return err, nil, ""
}

// imageFormats reads the formats of the image at path, once per version
// of the file: decompressing a kernel takes seconds on a slow machine.
func (s *System) imageFormats(path string) (kimage.Formats, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return kimage.Formats{}, err
	}
	key := imageKey{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: time.Unix(st.Mtim.Unix())}
	s.mu.Lock()
	f, ok := s.images[key]
	s.mu.Unlock()
	if ok {
		return f, nil
	}
	img, err := kimage.Open(path)
	if err != nil {
		return kimage.Formats{}, err
	}
	if f, err = img.Formats(); err != nil {
		return kimage.Formats{}, err
	}
	s.mu.Lock()
	s.images[key] = f
	s.mu.Unlock()
	return f, nil
}
