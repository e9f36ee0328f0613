package vm

import (
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cavaliergopher/cpio"

	"github.com/liveupdate/luo/internal/kimage"
)

// vminitPackage is the guest init that Build puts in the initrd.
const vminitPackage = "github.com/liveupdate/luo/internal/vm/vminit"

// baseCmdline is the start of every stage's kernel command line.
// liveupdate=on is required by LUO; panic=-1 with QEMU's -no-reboot turns a
// kernel panic into the end of the run; no_timer_check skips the boot-time
// IO-APIC timer check, which panics ("IO-APIC + timer doesn't work!") when
// the emulated CPU is starved on a loaded host.
const baseCmdline = "console=ttyS0 panic=-1 liveupdate=on quiet no_timer_check"

// Config describes a VM run: the kernel of each stage, what goes on the
// disk and what the guest runs. The zero value of each field but Kernels
// means its default.
type Config struct {
	// Kernels lists the kernel image (bzImage) of each stage: stage i boots
	// Kernels[i-1], so len(Kernels) is the number of stages. Use
	// [FindKernel] (or vmtest.Kernel in a test) to find them.
	Kernels []string
	// Package is the package whose tests run in the guest, built with
	// "go test -c -tags vmguest"; it is a directory or an import path,
	// resolved from the current directory. Default: "." (the package of
	// the calling test). Unused with Program.
	Package string
	// TestArgs are extra arguments of the guest test binary, such as
	// "-test.run=TestKexec" (-test.v is always on), or of Program.
	TestArgs []string
	// Binaries maps a path on the disk (relative to /vmtest in the guest)
	// to a main package, built static with CGO_ENABLED=0 "go build".
	Binaries map[string]string
	// BuildTags are Go build tags given with -tags to every "go build" of
	// Binaries, and after vmguest to the "go test -c" of Package: e.g.
	// "luodfault" for test builds of cmd/luod with fault injection. vminit
	// is always built without them. A tag is made of letters, digits, "_"
	// and "."; nil means no tags.
	BuildTags []string
	// Files maps a path on the disk (relative to /vmtest) to its content.
	Files map[string][]byte
	// Init, if set, is the argv vminit executes as PID 1 after mounting the
	// file systems, instead of starting the test binary itself; paths are
	// guest paths such as "/vmtest/bin/luod". That init must then start
	// /vmtest/test.bin (with any arguments; vmtest.GuestMain applies
	// TestArgs when it gets none), and GuestMain does the rest. The test
	// binary's output goes to the results port whatever its stdout is.
	Init []string
	// Program, when set, is the key of Binaries that vminit runs instead
	// of a test binary (with TestArgs as its arguments); no package is
	// built with go test -c. It is how programs, not tests, use the VM
	// (the demo).
	Program string
	// Driver, with Init, makes vminit start the test binary (or Program)
	// itself, as without Init, and then exec Init as PID 1: the test binary
	// drives the init from outside (a service manager under test, which
	// must not stop the tests when it stops its services), and its process
	// becomes a child of that init. The test binary runs at nice 19: it
	// drives and watches, and must not slow down what it measures.
	Driver bool
	// DriverDelay, with Driver, makes vminit start the test binary this
	// long after it execs Init, through a copy of itself that sleeps and
	// then execs the test binary (vminit is in the initramfs: the copy
	// reads nothing from the disk). Even niced, the start of a large test
	// binary takes CPU time from the init under test: under TCG the
	// guest's CPUs share one host thread. Benchmarks set it beyond the
	// time the init needs to bring its services up.
	DriverDelay time.Duration
	// Cmdline is appended to the kernel command line of every stage, after
	// "console=ttyS0 panic=-1 liveupdate=on quiet no_timer_check" (and,
	// with HostForward, the ip= parameter); e.g. "loglevel=7" undoes quiet.
	Cmdline string
	// HostForward, when not empty, gives the guest a network that reaches
	// these services of the host, and nothing else: in the guest, a TCP
	// connection to HostIP on a GuestPort reaches its Host, an address on
	// the host's loopback. The guest's eth0 (virtio-net, on QEMU's user
	// networking with restrict=on) is 10.0.2.15/24, configured by the
	// kernel from the ip= parameter that every stage's command line then
	// carries. QEMU runs a small forwarder program (vm/hostfwd, which
	// Build compiles into the image directory) for each connection.
	// Without it, the guest has no network device.
	HostForward []Forward
	// Memory is the guest memory in MiB. Default: 2048.
	Memory int
	// CPUs is the number of guest CPUs. Default: 2.
	CPUs int
	// Timeout bounds a whole vmtest.Run, all stages included; QEMU is
	// killed when it expires. Default: 4 minutes per stage. Run also keeps
	// it short of the test's deadline. Build and Boot ignore it: they
	// follow their context.
	Timeout time.Duration
}

// An Image is everything needed to boot a run: the output of [Build].
type Image struct {
	// Dir is the directory Build wrote to.
	Dir string
	// Kernel is the host path of the first stage's kernel.
	Kernel string
	// Initrd is the host path of the gzip-compressed initrd.
	Initrd string
	// Disk is the host path of the raw ext4 disk image.
	Disk string
	// Plan is the plan written to the disk.
	Plan Plan
	// Memory (MiB) and CPUs size the VM.
	Memory, CPUs int
	// HostForward is Config.HostForward.
	HostForward []Forward
	// Forwarder is the host path of the program QEMU runs for each
	// connection to a HostForward, set when there is one.
	Forwarder string
}

// Build compiles the guest init (package vm/vminit), the guest test binary
// (unless cfg.Program is set) and cfg.Binaries, and writes the initrd and the
// disk image into dir, which must exist. With cfg.HostForward it also
// compiles vm/hostfwd for the host into dir (Image.Forwarder). It runs the go command and
// mkfs.ext4; it needs no privileges. The guest tests time out shortly before
// ctx's deadline, if it has one.
func Build(ctx context.Context, cfg Config, dir string) (*Image, error) {
	if len(cfg.Kernels) == 0 {
		return nil, errors.New("vm: Config.Kernels is empty")
	}
	root := filepath.Join(dir, "vmtest")
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		return nil, err
	}
	img := &Image{
		Dir:    dir,
		Kernel: filepath.Join(root, "boot", "stage-1.bzImage"),
		Initrd: filepath.Join(dir, "initrd.img"),
		Disk:   filepath.Join(dir, "disk.img"),
		Memory: cmp.Or(cfg.Memory, 2048),
		CPUs:   cmp.Or(cfg.CPUs, 2),
	}
	if err := checkForwards(cfg.HostForward); err != nil {
		return nil, err
	}
	if len(cfg.HostForward) > 0 {
		img.HostForward = slices.Clone(cfg.HostForward)
		img.Forwarder = filepath.Join(dir, forwarderName)
	}

	test := append([]string{DiskDir + "/test.bin", "-test.v=true"}, cfg.TestArgs...)
	if cfg.Program != "" {
		test = append([]string{DiskDir + "/" + cfg.Program}, cfg.TestArgs...)
	}
	img.Plan = Plan{
		Cmdline: kernelCmdline(cfg),
		Initrd:  DiskDir + "/boot/initrd.img",
		Test:    test,
		Init:    cfg.Init,
		Driver:  cfg.Driver,
		Delay:   cfg.DriverDelay,
		Results: ResultsPort,
	}
	if d, ok := ctx.Deadline(); ok {
		img.Plan.Deadline = d
	}

	builds, err := goBuilds(cfg, dir)
	if err != nil {
		return nil, err
	}
	for _, b := range builds {
		if err := os.MkdirAll(filepath.Dir(b.out), 0o755); err != nil {
			return nil, err
		}
	}
	if err := runBuilds(ctx, builds); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "test.bin")); err != nil && cfg.Program == "" {
		return nil, fmt.Errorf("vm: go test -c %s wrote no test binary (no test files with the vmguest tag?)", cmp.Or(cfg.Package, "."))
	}

	for i, k := range cfg.Kernels {
		ki, err := kimage.Open(k)
		if err != nil {
			return nil, fmt.Errorf("vm: kernel of stage %d: %w", i+1, err)
		}
		name := fmt.Sprintf("stage-%d.bzImage", i+1)
		if err := copyFile(filepath.Join(root, "boot", name), k, 0o644); err != nil {
			return nil, err
		}
		img.Plan.Stages = append(img.Plan.Stages, PlanStage{Kernel: DiskDir + "/boot/" + name, Release: ki.Release})
	}
	for _, name := range sortedKeys(cfg.Files) {
		dst, err := diskPath(root, name)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(dst, cfg.Files[name], 0o644); err != nil {
			return nil, err
		}
	}
	plan, err := json.MarshalIndent(img.Plan, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "plan.json"), append(plan, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := writeInitrd(img.Initrd, filepath.Join(dir, "init")); err != nil {
		return nil, err
	}
	if err := copyFile(filepath.Join(root, "boot", "initrd.img"), img.Initrd, 0o644); err != nil {
		return nil, err
	}
	if err := makeDisk(ctx, img.Disk, root); err != nil {
		return nil, err
	}
	return img, nil
}

// kernelCmdline returns the kernel command line of every stage, without
// the stage number.
func kernelCmdline(cfg Config) string {
	cmdline := baseCmdline
	if len(cfg.HostForward) > 0 {
		cmdline += " " + ipCmdline
	}
	return strings.TrimSpace(cmdline + " " + cfg.Cmdline)
}

// A goBuild is one run of the go command.
type goBuild struct {
	args []string // the go command's arguments
	out  string   // the file it writes
	host bool     // for the host (QEMU runs it), not the guest
}

// tagRE matches a Go build tag.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_.]+$`)

// goBuilds returns the go commands that compile the programs of cfg into
// dir: vminit, the guest test binary (unless cfg.Program is set),
// cfg.Binaries and, with cfg.HostForward, the host's forwarder.
func goBuilds(cfg Config, dir string) ([]goBuild, error) {
	for _, tag := range cfg.BuildTags {
		if !tagRE.MatchString(tag) {
			return nil, fmt.Errorf("vm: Config.BuildTags: %q is not a build tag", tag)
		}
	}
	root := filepath.Join(dir, "vmtest")
	initBin := filepath.Join(dir, "init")
	builds := []goBuild{
		{args: []string{"build", "-ldflags=-s -w", "-o", initBin, vminitPackage}, out: initBin},
	}
	if cfg.Program == "" {
		tags := strings.Join(append([]string{"vmguest"}, cfg.BuildTags...), ",")
		bin := filepath.Join(root, "test.bin")
		builds = append(builds, goBuild{args: []string{"test", "-c", "-tags", tags, "-o", bin, cmp.Or(cfg.Package, ".")}, out: bin})
	} else if _, ok := cfg.Binaries[cfg.Program]; !ok {
		return nil, fmt.Errorf("vm: Config.Program %q is not a key of Config.Binaries", cfg.Program)
	}
	var tags []string
	if len(cfg.BuildTags) > 0 {
		tags = []string{"-tags", strings.Join(cfg.BuildTags, ",")}
	}
	for _, name := range sortedKeys(cfg.Binaries) {
		dst, err := diskPath(root, name)
		if err != nil {
			return nil, err
		}
		args := append([]string{"build"}, tags...)
		builds = append(builds, goBuild{args: append(args, "-o", dst, cfg.Binaries[name]), out: dst})
	}
	if len(cfg.HostForward) > 0 {
		fwd := filepath.Join(dir, forwarderName)
		builds = append(builds, goBuild{args: []string{"build", "-ldflags=-s -w", "-o", fwd, forwarderPackage}, out: fwd, host: true})
	}
	return builds, nil
}

// runBuilds runs the go command for each build, in parallel, and returns
// the errors of all that failed.
func runBuilds(ctx context.Context, builds []goBuild) error {
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, b := range builds {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, "go", b.args...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
			if b.host {
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("vm: go %s: %v\n%s", strings.Join(b.args, " "), err, out)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// diskPath returns the host path of name, a path relative to the disk root.
func diskPath(root, name string) (string, error) {
	clean := path.Clean(name)
	if name == "" || path.IsAbs(name) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("vm: disk path %q must be relative and stay under %s", name, DiskDir)
	}
	switch clean {
	case "test.bin", "plan.json", "boot":
		return "", fmt.Errorf("vm: disk path %q is reserved", name)
	}
	if strings.HasPrefix(clean, "boot/") {
		return "", fmt.Errorf("vm: disk path %q is reserved", name)
	}
	return filepath.Join(root, filepath.FromSlash(clean)), nil
}

// initrdDirs are the directories of the initrd, mount points all. The
// kernel's built-in initramfs, which is unpacked first, provides
// /dev/console.
var initrdDirs = []string{"dev", "proc", "sys", "tmp", "run", "vmtest"}

// writeInitrd writes a gzip-compressed newc cpio archive holding only init
// and the mount points.
func writeInitrd(dst, init string) error {
	data, err := os.ReadFile(init)
	if err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	w := cpio.NewWriter(zw)
	for _, d := range initrdDirs {
		if err := w.WriteHeader(&cpio.Header{Name: d, Mode: cpio.TypeDir | 0o755, Links: 2}); err != nil {
			return fmt.Errorf("vm: initrd: %w", err)
		}
	}
	if err := w.WriteHeader(&cpio.Header{Name: "init", Mode: cpio.TypeReg | 0o755, Size: int64(len(data))}); err != nil {
		return fmt.Errorf("vm: initrd: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("vm: initrd: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("vm: initrd: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("vm: initrd: %w", err)
	}
	return f.Close()
}

// makeDisk writes an ext4 image of the directory root to dst, sized from
// its content plus a margin, at least 64 MiB.
func makeDisk(ctx context.Context, dst, root string) error {
	mkfs, err := mkfsPath()
	if err != nil {
		return err
	}
	var size int64
	err = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size += (info.Size() + 4095) &^ 4095
		return nil
	})
	if err != nil {
		return err
	}
	mib := max(64, (size*5/4)>>20+16)
	cmd := exec.CommandContext(ctx, mkfs, "-q", "-d", root, dst, fmt.Sprintf("%dM", mib))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vm: %s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// mkfsPath finds mkfs.ext4, which often lives outside a user's PATH.
func mkfsPath() (string, error) {
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("vm: mkfs.ext4 not found (apt-get install e2fsprogs)")
}

// copyFile copies src to dst, hard-linking when it can.
func copyFile(dst, src string, perm os.FileMode) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
