package memfd

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// New creates a memfd named name (shown as "/memfd:name" in /proc; at most
// 249 bytes) of size bytes, with MFD_CLOEXEC and MFD_ALLOW_SEALING. The
// contents read as zeros.
//
// It asks for MFD_EXEC rather than MFD_NOEXEC_SEAL on purpose: Linux 7.2
// and 7.3 restore a preserved memfd's seals by adding them to a new,
// executable memfd, and adding F_SEAL_EXEC to an executable memfd implies
// F_SEAL_WRITE, F_SEAL_FUTURE_WRITE, F_SEAL_SHRINK and F_SEAL_GROW. A
// memfd made with MFD_NOEXEC_SEAL (which carries F_SEAL_EXEC) therefore
// comes back from a live update read-only. Where vm.memfd_noexec=2 refuses
// MFD_EXEC, New falls back to MFD_NOEXEC_SEAL and such memfds have that
// problem.
func New(name string, size int64) (*os.File, error) {
	if size < 0 {
		return nil, fmt.Errorf("memfd: create %q: negative size %d", name, size)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	switch {
	case errors.Is(err, unix.EINVAL):
		// Kernels before 6.3 know neither MFD_EXEC nor MFD_NOEXEC_SEAL.
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	case errors.Is(err, unix.EACCES):
		// vm.memfd_noexec=2: only non-executable memfds.
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd: create %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if size > 0 {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("memfd: size %q to %d bytes: %w", name, size, err)
		}
	}
	return f, nil
}

// Size returns the file's size in bytes.
func Size(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("memfd: %w", err)
	}
	return fi.Size(), nil
}

// Resize changes the file's size. It fails with EPERM while the memfd is
// preserved in a LUO session, and with EPERM if a seal forbids it.
func Resize(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("memfd: resize %s to %d bytes: %w (the memfd is sealed, or preserved in a LUO session, which freezes its size)", f.Name(), size, err)
		}
		return fmt.Errorf("memfd: resize %s to %d bytes: %w", f.Name(), size, err)
	}
	return nil
}

// AddSeals adds seals with fcntl(F_ADD_SEALS). SealWrite fails with EBUSY
// while a writable shared mapping exists.
func AddSeals(f *os.File, s Seals) error {
	if _, err := fcntl(f, unix.F_ADD_SEALS, int(s)); err != nil {
		return fmt.Errorf("memfd: seal %s with %s: %w", f.Name(), s, err)
	}
	return nil
}

// GetSeals returns the file's seals with fcntl(F_GET_SEALS).
func GetSeals(f *os.File) (Seals, error) {
	seals, err := fcntl(f, unix.F_GET_SEALS, 0)
	if err != nil {
		return 0, fmt.Errorf("memfd: get seals of %s: %w", f.Name(), err)
	}
	return Seals(seals), nil
}

func fcntl(f *os.File, cmd, arg int) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var r int
	var opErr error
	if err := rc.Control(func(fd uintptr) { r, opErr = unix.FcntlInt(fd, cmd, arg) }); err != nil {
		return 0, err
	}
	return r, opErr
}

// Map maps the whole file shared and read-write (read-only when the file
// has SealWrite or SealFutureWrite). Writes through the mapping are what a
// live update carries. Release it with Unmap; the mapping does not keep f
// open, and f may be closed while it is mapped.
func Map(f *os.File) ([]byte, error) {
	size, err := Size(f)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return []byte{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("memfd: map %s: size %d does not fit in memory", f.Name(), size)
	}
	prot := unix.PROT_READ | unix.PROT_WRITE
	if seals, err := GetSeals(f); err == nil && seals&(SealWrite|SealFutureWrite) != 0 {
		prot = unix.PROT_READ
	}
	var b []byte
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { b, opErr = unix.Mmap(int(fd), 0, int(size), prot, unix.MAP_SHARED) }); err != nil {
		return nil, fmt.Errorf("memfd: %s: %w", f.Name(), err)
	}
	if opErr != nil {
		return nil, fmt.Errorf("memfd: map %s (%d bytes): %w", f.Name(), size, opErr)
	}
	return b, nil
}

// Unmap releases a mapping returned by Map.
func Unmap(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := unix.Munmap(b); err != nil {
		return fmt.Errorf("memfd: unmap: %w", err)
	}
	return nil
}
