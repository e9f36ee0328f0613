package unit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrMasked is returned by Load for a masked unit: an empty file, or a
// symbolic link to /dev/null (systemd.unit(5)).
var ErrMasked = errors.New("unit is masked")

// ErrNotRegular is wrapped by the error Load and LoadDir return for a unit
// file that is neither a regular file nor a symbolic link to one: a
// directory, a FIFO, a socket or a device node. Such a file is refused
// before it is opened, since opening a FIFO blocks until a writer comes and
// opening a device may have side effects.
var ErrNotRegular = errors.New("not a regular file")

// Load reads the unit file at path. The unit's name is the file's base
// name; a symbolic link is followed, and keeps its own name, so that
// "worker@1.service" linked to "worker@.service" loads the instance.
// Errors name the file. A masked unit gives an error wrapping ErrMasked.
//
// Load never blocks on what it finds at path: anything but a regular file
// (or a symbolic link to one) gives an error wrapping ErrNotRegular without
// being opened, and the file is opened with O_NONBLOCK and checked again
// after the open, in case it was replaced in between.
func Load(path string) (*Unit, error) {
	f, err := openUnitFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return parse(filepath.Base(path), path, data)
}

// openUnitFile opens the unit file at path for reading without blocking.
// It stats path first (following symbolic links, as systemd does) and
// refuses anything but a non-empty regular file, so that it never opens a
// FIFO or a device; then openRegular opens it.
func openUnitFile(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, statError(path, err)
	}
	if err := checkUnitFile(path, fi); err != nil {
		return nil, err
	}
	return openRegular(path)
}

// openRegular opens path read-only and checks with fstat(2) that what it
// opened is a non-empty regular file. O_NONBLOCK makes the open itself
// return at once even if path was replaced by a FIFO after the caller's
// stat (open(2) of a FIFO for reading waits for a writer otherwise), and
// has no effect on reading a regular file; O_NOCTTY keeps a terminal from
// becoming luod's controlling terminal.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkUnitFile(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkUnitFile returns nil if fi, the information about the unit file at
// path, is a regular file that can be loaded, and otherwise an error saying
// why it cannot.
func checkUnitFile(path string, fi fs.FileInfo) error {
	m := fi.Mode()
	switch {
	case m.IsRegular() && fi.Size() == 0:
		return fmt.Errorf("%s: %w (empty file)", path, ErrMasked)
	case m.IsRegular() && fi.Size() > MaxFileSize:
		return errFileTooLarge(path)
	case m.IsRegular():
		return nil
	case m.Type() == fs.ModeDevice|fs.ModeCharDevice && isDevNull(fi):
		return fmt.Errorf("%s: %w (linked to /dev/null)", path, ErrMasked)
	}
	return fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, fileKind(m))
}

// fileKind names the type of a file that is not regular: "a FIFO".
func fileKind(m fs.FileMode) string {
	switch m.Type() {
	case fs.ModeDir:
		return "a directory"
	case fs.ModeNamedPipe:
		return "a FIFO"
	case fs.ModeSocket:
		return "a socket"
	case fs.ModeDevice:
		return "a block device"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "a character device"
	case fs.ModeSymlink:
		return "a symbolic link"
	}
	return "an irregular file"
}

func isDevNull(fi fs.FileInfo) bool {
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, null)
}

// statError makes the error of os.Stat(path) clearer for a dangling
// symbolic link, which stat reports as a missing file. A symbolic link loop
// gives ELOOP, "too many levels of symbolic links".
func statError(path string, err error) error {
	var pe *fs.PathError
	if errors.Is(err, fs.ErrNotExist) && errors.As(err, &pe) {
		if target, lerr := os.Readlink(path); lerr == nil {
			return fmt.Errorf("%s: dangling symbolic link to %s: %w", path, quote(target), pe.Err)
		}
	}
	return err
}

// LoadDir loads every "*.service" file of dir (not its subdirectories), in
// name order. A file that cannot be loaded yields an error that names it and
// does not affect the others; a file that is not a regular file (a FIFO, a
// directory, …) is one of those, and never blocks LoadDir. Templates
// ("name@.service"), which are only used through their instances, and
// masked units are skipped. If dir is not a directory, LoadDir returns at
// once with an error (ENOTDIR), even if it is a FIFO.
func LoadDir(dir string) (units []*Unit, errs []error) {
	entries, err := readDir(dir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, serviceSuffix) || strings.HasSuffix(name, "@"+serviceSuffix) {
			continue
		}
		u, err := Load(filepath.Join(dir, name))
		switch {
		case errors.Is(err, ErrMasked):
		case err != nil:
			errs = append(errs, err)
		default:
			units = append(units, u)
		}
	}
	return units, errs
}

// readDir is os.ReadDir, except that it opens dir with O_DIRECTORY, which
// makes open(2) fail with ENOTDIR on anything but a directory instead of
// waiting for a writer if dir is a FIFO.
func readDir(dir string) ([]fs.DirEntry, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}
