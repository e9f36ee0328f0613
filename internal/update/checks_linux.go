package update

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/kexec"
)

// Target is the kernel to update into.
type Target struct {
	Kernel, Initrd, Cmdline string
}

// Checks runs the kernel-side checks of a plan, changing nothing: the LUO
// device is present and free, the next command line enables liveupdate, KHO
// is enabled, the images fit the KHO scratch area, and, with trialLoad, the
// kernel loads (trial kexec_file_load + unload, only when no other image is
// loaded).
func Checks(devPath string, t Target, trialLoad bool) []control.Check {
	var cs []control.Check
	add := func(name string, err error, detail string) {
		c := control.Check{Name: name, OK: err == nil, Detail: detail}
		if err != nil {
			c.Detail = err.Error()
		}
		cs = append(cs, c)
	}

	if dev, err := luo.OpenPath(devPath); err != nil {
		add("LUO device present and free", err, "")
	} else {
		dev.Close()
		add("LUO device present and free", nil, devPath)
	}

	cur, _ := kexec.CurrentCmdline()
	switch {
	case !kexec.CmdlineHas(t.Cmdline, "liveupdate"):
		add("liveupdate=on in the next command line", errors.New("missing: the next kernel would not restore anything"), "")
	case !kexec.CmdlineHas(cur, "liveupdate"):
		add("liveupdate=on in the next command line", nil, "present (but not on this kernel's command line)")
	default:
		add("liveupdate=on in the next command line", nil, "present")
	}

	add("KHO enabled", khoEnabled(t.Cmdline), "")

	var sizes []int64
	for _, p := range []string{t.Kernel, t.Initrd} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil {
			sizes = append(sizes, fi.Size())
		}
	}
	if t.Kernel != "" {
		if n, err := bzImageInitSize(t.Kernel); err == nil && len(sizes) > 0 {
			sizes[0] = max(sizes[0], n)
		}
	}
	detail, err := scratchFits(sizes)
	add("kernel and initrd fit the KHO scratch area", err, detail)

	if t.Kernel == "" {
		add("next kernel loads", errors.New("no kernel given (--kernel)"), "")
		return cs
	}
	if !trialLoad {
		return cs // the caller loads it for real next
	}
	if loaded, _ := kexec.Loaded(); loaded {
		add("next kernel loads", nil, "not tried: another kexec image is loaded and would be replaced")
		return cs
	}
	if err := kexec.Load(kexec.Image{Kernel: t.Kernel, Initrd: t.Initrd, Cmdline: t.Cmdline}); err != nil {
		add("next kernel loads", err, "")
		return cs
	}
	kexec.Unload()
	add("next kernel loads", nil, "trial kexec_file_load succeeded (and was unloaded)")
	return cs
}

// khoEnabled tells whether Kexec HandOver is on in this kernel: without it
// LUO disables itself.
func khoEnabled(nextCmdline string) error {
	if strings.Contains(" "+nextCmdline+" ", " kho=off ") || strings.Contains(" "+nextCmdline+" ", " kho=0 ") {
		return errors.New("kho=off in the next command line disables LUO there")
	}
	if _, err := os.Stat("/sys/kernel/debug/kho"); err == nil {
		return nil
	}
	if _, err := os.Stat("/dev/liveupdate"); err == nil {
		return nil // LUO runs only with KHO
	}
	return errors.New("no /sys/kernel/debug/kho and no /dev/liveupdate: KHO is off or debugfs is not mounted")
}

// scratchFits compares the segments with the KHO scratch regions listed in
// debugfs (kho/out/scratch_len, one hex size per line): the largest
// segment must fit the largest region and all of them the total. It is an
// estimate; the trial load is the real test.
func scratchFits(sizes []int64) (string, error) {
	b, err := os.ReadFile("/sys/kernel/debug/kho/out/scratch_len")
	if err != nil {
		return "scratch size unknown (no debugfs): the trial load decides", nil
	}
	var total, largest int64
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.ParseInt(strings.TrimPrefix(f, "0x"), 16, 64)
		if err != nil {
			continue
		}
		total += n
		largest = max(largest, n)
	}
	var need, biggest int64
	for _, s := range sizes {
		need += s
		biggest = max(biggest, s)
	}
	detail := fmt.Sprintf("need about %s, scratch %s (largest region %s)", HumanSize(need), HumanSize(total), HumanSize(largest))
	if biggest > largest || need > total {
		return "", fmt.Errorf("%s: kexec_file_load would fail with EADDRNOTAVAIL; cold-boot with a larger kho_scratch=", detail)
	}
	return detail, nil
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
	if !bytes.Equal(hdr[0x202:0x206], []byte("HdrS")) {
		return 0, errors.New("not a bzImage")
	}
	initSize := uint32(hdr[0x260]) | uint32(hdr[0x261])<<8 | uint32(hdr[0x262])<<16 | uint32(hdr[0x263])<<24
	return int64(initSize), nil
}

// HumanSize formats a byte count for people: "16.1 MiB".
func HumanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
