package luo_test

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/memfd"
)

// The benchmarks below measure the wrapper's own cost on the host, without
// the device: package luo against the same raw ioctl(2) on the same fd, a
// file (/dev/null) on which every LUO ioctl fails at once with ENOTTY. The
// difference between the luo and raw cases is what the wrapper adds to each
// call (on this error path the luo case also builds its *luo.Error). The
// real-kernel comparison is TestVMBench.

// benchSession returns a session on /dev/null and its raw fd.
func benchSession(b testing.TB) (*luo.Session, int) {
	b.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		b.Fatal(err)
	}
	s := luo.NewTestSession(f, "bench", false)
	b.Cleanup(func() { s.Close() })
	return s, int(f.Fd())
}

func benchMemfd(b testing.TB) *os.File {
	b.Helper()
	f, err := memfd.New("bench", 4096)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

func rawIoctlErrno(fd int, req uintptr, arg unsafe.Pointer) unix.Errno {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	return e
}

// TestSessionIoctlAllocs keeps PreserveFD and RetrieveFD from allocating
// anything but their *luo.Error (ENOTTY here): see Session.ioctl.
func TestSessionIoctlAllocs(t *testing.T) {
	s, _ := benchSession(t)
	mf := benchMemfd(t)
	if n := testing.AllocsPerRun(100, func() { s.PreserveFD(mf, 1) }); n != 1 {
		t.Errorf("PreserveFD failing with ENOTTY: %v allocations, want 1 (the *luo.Error)", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.RetrieveFD(1) }); n != 1 {
		t.Errorf("RetrieveFD failing with ENOTTY: %v allocations, want 1 (the *luo.Error)", n)
	}
}

func BenchmarkPreserveFD(b *testing.B) {
	s, sfd := benchSession(b)
	mf := benchMemfd(b)
	if err := s.PreserveFD(mf, 1); !errors.Is(err, unix.ENOTTY) {
		b.Fatalf("PreserveFD on /dev/null = %v, want ENOTTY", err)
	}
	b.Run("luo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.PreserveFD(mf, 1); err == nil {
				b.Fatal("PreserveFD on /dev/null succeeded")
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			arg := luo.LiveupdateSessionPreserveFd{Size: 16, Fd: int32(mf.Fd()), Token: 1}
			if e := rawIoctlErrno(sfd, luo.LIVEUPDATE_SESSION_PRESERVE_FD, unsafe.Pointer(&arg)); e != unix.ENOTTY {
				b.Fatal(e)
			}
		}
	})
}

func BenchmarkRetrieveFD(b *testing.B) {
	s, sfd := benchSession(b)
	if _, err := s.RetrieveFD(1); !errors.Is(err, unix.ENOTTY) {
		b.Fatalf("RetrieveFD on /dev/null = %v, want ENOTTY", err)
	}
	b.Run("luo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.RetrieveFD(1); err == nil {
				b.Fatal("RetrieveFD on /dev/null succeeded")
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			arg := luo.LiveupdateSessionRetrieveFd{Size: 16, Token: 1}
			if e := rawIoctlErrno(sfd, luo.LIVEUPDATE_SESSION_RETRIEVE_FD, unsafe.Pointer(&arg)); e != unix.ENOTTY {
				b.Fatal(e)
			}
		}
	})
}

// BenchmarkRetrievedFile measures what a successful RetrieveFD does after
// the ioctl, wrapping the new fd in an *os.File, against os.NewFile with a
// constant name; both dup a memfd first and close the file after.
func BenchmarkRetrievedFile(b *testing.B) {
	s, _ := benchSession(b)
	mf := benchMemfd(b)
	dup := func(b *testing.B) int32 {
		fd, err := unix.FcntlInt(mf.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		return int32(fd)
	}
	b.Run("luo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.RetrievedFile(dup(b), 12345).Close()
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			os.NewFile(uintptr(dup(b)), "raw").Close()
		}
	})
}

// BenchmarkOpenClose measures OpenPath and Close on /dev/null against
// open(2) and close(2), the fixed cost of every preserve or retrieve.
func BenchmarkOpenClose(b *testing.B) {
	b.Run("luo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := luo.OpenPath(os.DevNull)
			if err != nil {
				b.Fatal(err)
			}
			d.Close()
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fd, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
		}
	})
}

// TestRawSession pins what CreateSession and RetrieveSession rely on to
// cost no more than the ioctl: the session keeps the kernel's fd as is (no
// *os.File, so no fcntl(2) and no finalizer; two allocations, the Session
// and its cleanup) until File asks for it, and its ioctls allocate nothing
// but their *luo.Error. File then returns one *os.File that owns the fd.
func TestRawSession(t *testing.T) {
	open := func() int {
		fd, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	// What open(2) and close(2) themselves allocate (the path), and what
	// the runtime allocates for a cleanup.
	base := testing.AllocsPerRun(100, func() { unix.Close(open()) })
	cleanup := testing.AllocsPerRun(100, func() {
		p := new([8]int)
		c := runtime.AddCleanup(p, func(int) {}, 1)
		c.Stop()
	})
	if n := testing.AllocsPerRun(100, func() { luo.NewRawTestSession(open(), "s", true).Close() }); n != base+cleanup {
		t.Errorf("session from a raw fd, closed: %v allocations, want %v (open's, then the Session and its cleanup)", n, base+cleanup)
	}
	s := luo.NewRawTestSession(open(), "s", true)
	if n := testing.AllocsPerRun(100, func() { s.RetrieveFD(1) }); n != 1 {
		t.Errorf("RetrieveFD failing with ENOTTY: %v allocations, want 1 (the *luo.Error)", n)
	}
	mf := benchMemfd(t)
	if n := testing.AllocsPerRun(100, func() { s.PreserveFD(mf, 1) }); n != 1 {
		t.Errorf("PreserveFD failing with ENOTTY: %v allocations, want 1 (the *luo.Error)", n)
	}
	f := s.File()
	if f == nil || s.File() != f {
		t.Fatalf("File = %v then %v, want one *os.File", f, s.File())
	}
	if _, err := s.RetrieveFD(1); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("RetrieveFD through File's fd = %v, want ENOTTY", err)
	}
	f.Close() // closing File() ends the session
	if _, err := s.RetrieveFD(1); !errors.Is(err, unix.EBADF) {
		t.Errorf("RetrieveFD after File().Close = %v, want EBADF", err)
	}

	s = luo.NewRawTestSession(open(), "t", false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := s.PreserveFD(mf, 1); !errors.Is(err, os.ErrClosed) || !errors.Is(err, unix.EBADF) {
		t.Errorf("PreserveFD after Close = %v, want os.ErrClosed and EBADF", err)
	}
	if f := s.File(); f == nil || s.File() != f {
		t.Errorf("File after Close = %v then %v, want one closed *os.File", f, s.File())
	} else if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Stat of File after Close = %v, want os.ErrClosed", err)
	}
}
