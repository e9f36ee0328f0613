package update

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/kexec"
)

// System is the running kernel: the LUO device at Device
// (luo.DevicePath when empty) and kexec.
type System struct {
	Device string
}

func (s System) device() string {
	if s.Device == "" {
		return luo.DevicePath
	}
	return s.Device
}

// Open opens the LUO device.
func (s System) Open() (Device, error) {
	d, err := luo.OpenPath(s.device())
	if err != nil {
		return nil, err
	}
	return luoDevice{d}, nil
}

// Load loads t with kexec_file_load(2).
func (System) Load(t kexec.Image) error { return kexec.Load(t) }

// Unload drops the loaded kexec image.
func (System) Unload() error { return kexec.Unload() }

// Loaded reports whether a kexec image is loaded.
func (System) Loaded() (bool, error) { return kexec.Loaded() }

// Exec reboots into the loaded image.
func (System) Exec() error { return kexec.Exec() }

// Inspect gathers the facts of the running kernel and of the image t.
func (s System) Inspect(t kexec.Image) Facts {
	var f Facts
	if d, err := luo.OpenPath(s.device()); err != nil {
		f.Device = err
	} else {
		d.Close()
	}
	f.Cmdline, _ = kexec.CurrentCmdline()
	f.KHO = khoEnabled(s.device())
	f.Scratch = khoScratch()
	f.Segments, f.Images = segments(t)
	f.Formats, f.FormatsDetail = formats(t)
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
	for _, p := range []string{t.Kernel, t.Initrd} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		sizes = append(sizes, fi.Size())
	}
	if t.Kernel != "" {
		n, err := bzImageInitSize(t.Kernel)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: kexec_file_load would not load it", t.Kernel, err)
		}
		sizes[0] = max(sizes[0], n)
	}
	return sizes, nil
}

// bzImageInitSize reads init_size from an x86 bzImage's setup header: the
// memory the kernel needs while it decompresses, which is what kexec
// reserves for it.
func bzImageInitSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	hdr := make([]byte, 0x270)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return 0, err
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return 0, errors.New("not a bzImage")
	}
	initSize := uint32(hdr[0x260]) | uint32(hdr[0x261])<<8 | uint32(hdr[0x262])<<16 | uint32(hdr[0x263])<<24
	return int64(initSize), nil
}

// formats compares the LUO formats of the running kernel with those of t.
func formats(t kexec.Image) (error, string) {
	return nil, "not checked"
}
