//go:build vmguest

// The kernel's own LUO selftests (tools/testing/selftests/liveupdate/ in
// Linux 7.2), ported to package luo and run in the VM on the real kernel,
// plus the cases a user of this package hits that the kernel suite lacks.
// Case names are the kernel's. vm_test.go boots the VM.

package luo_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
	"github.com/liveupdate/luo/memfd"
)

func TestMain(m *testing.M) { vmtest.GuestMain(m) }

// mustOpen opens the device, failing the test otherwise, and closes it at
// the end of the test unless the test closed it already.
func mustOpen(t *testing.T) *luo.Device {
	t.Helper()
	dev, err := luo.Open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

func mustCreate(t *testing.T, dev *luo.Device, name string) *luo.Session {
	t.Helper()
	s, err := dev.CreateSession(name)
	if err != nil {
		t.Fatalf("create %q: %v", name, err)
	}
	return s
}

// memfdWith returns a memfd holding data, closed at the end of the test.
func memfdWith(t *testing.T, name, data string) *os.File {
	t.Helper()
	f, err := memfd.New(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if n, err := f.WriteString(data); err != nil || n != len(data) {
		t.Fatalf("write %q: %d, %v", name, n, err)
	}
	return f
}

// readAll reads f from offset 0.
func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	if err != nil {
		t.Fatalf("read %s: %v", f.Name(), err)
	}
	return string(b)
}

func wantErrno(t *testing.T, what string, err error, errno unix.Errno) {
	t.Helper()
	if !errors.Is(err, errno) {
		t.Fatalf("%s: got %v, want %v (%s)", what, err, errno, unix.ErrnoName(errno))
	}
}

// singleBoot skips the kernel's single-boot cases after the first stage:
// they need no kexec, and running them once per kernel version would only
// repeat them.
func singleBoot(t *testing.T) {
	if vm.Stage() > 2 {
		t.Skipf("single-boot cases run in stages 1 and 2 (one per kernel version), this is stage %d", vm.Stage())
	}
}

// TestLiveupdateDevice ports tools/testing/selftests/liveupdate/liveupdate.c,
// fixture liveupdate_device, case by case.
func TestLiveupdateDevice(t *testing.T) {
	singleBoot(t)

	t.Run("basic_open_close", func(t *testing.T) {
		dev, err := luo.Open()
		if err != nil {
			t.Fatal(err)
		}
		if err := dev.Close(); err != nil {
			t.Fatal(err)
		}
		if err := dev.Close(); err != nil {
			t.Fatalf("second Close = %v, want nil", err)
		}
	})

	t.Run("exclusive_open", func(t *testing.T) {
		mustOpen(t)
		_, err := luo.Open()
		wantErrno(t, "second open", err, unix.EBUSY)
		if !strings.Contains(err.Error(), "[this process]") {
			t.Errorf("EBUSY error does not name the holder: %v", err)
		}
	})

	t.Run("create_duplicate_session", func(t *testing.T) {
		dev := mustOpen(t)
		s := mustCreate(t, dev, "duplicate-session-test")
		defer s.Close()
		_, err := dev.CreateSession("duplicate-session-test")
		wantErrno(t, "duplicate create", err, unix.EEXIST)
	})

	t.Run("create_distinct_sessions", func(t *testing.T) {
		dev := mustOpen(t)
		s1 := mustCreate(t, dev, "distinct-session-1")
		s2 := mustCreate(t, dev, "distinct-session-2")
		if err := s1.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("preserve_memfd", func(t *testing.T) {
		dev := mustOpen(t)
		s := mustCreate(t, dev, "preserve-memfd-test")
		f := memfdWith(t, "test-memfd", "hello liveupdate")
		if err := s.PreserveFD(f, 0x1234); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil { // unpreserves
			t.Fatal(err)
		}
		if got := readAll(t, f); got != "hello liveupdate" {
			t.Fatalf("after unpreserve read %q", got)
		}
	})

	t.Run("preserve_multiple_memfds", func(t *testing.T) {
		dev := mustOpen(t)
		s := mustCreate(t, dev, "preserve-multi-memfd-test")
		defer s.Close()
		f1 := memfdWith(t, "test-memfd-1", "data for memfd one")
		f2 := memfdWith(t, "test-memfd-2", "data for memfd two")
		if err := s.PreserveFD(f1, 0xAAAA); err != nil {
			t.Fatal(err)
		}
		if err := s.PreserveFD(f2, 0xBBBB); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, f1); got != "data for memfd one" {
			t.Errorf("memfd 1 reads %q while preserved", got)
		}
		if got := readAll(t, f2); got != "data for memfd two" {
			t.Errorf("memfd 2 reads %q while preserved", got)
		}
	})

	t.Run("preserve_complex_scenario", func(t *testing.T) {
		dev := mustOpen(t)
		s1 := mustCreate(t, dev, "complex-session-1")
		defer s1.Close()
		s2 := mustCreate(t, dev, "complex-session-2")
		defer s2.Close()
		data1 := memfdWith(t, "data1", "data for session 1")
		empty1 := memfdWith(t, "empty1", "")
		data2 := memfdWith(t, "data2", "data for session 2")
		empty2 := memfdWith(t, "empty2", "")
		for _, p := range []struct {
			s   *luo.Session
			f   *os.File
			tok uint64
		}{{s1, data1, 0x1111}, {s1, empty1, 0x2222}, {s2, data2, 0x3333}, {s2, empty2, 0x4444}} {
			if err := p.s.PreserveFD(p.f, p.tok); err != nil {
				t.Fatal(err)
			}
		}
		if readAll(t, data1) != "data for session 1" || readAll(t, data2) != "data for session 2" {
			t.Error("data memfds changed while preserved")
		}
		if readAll(t, empty1) != "" || readAll(t, empty2) != "" {
			t.Error("empty memfds are not empty")
		}
	})

	t.Run("preserve_unsupported_fd", func(t *testing.T) {
		dev := mustOpen(t)
		s := mustCreate(t, dev, "unsupported-fd-test")
		defer s.Close()
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer null.Close()
		err = s.PreserveFD(null, 0xDEAD)
		wantErrno(t, "preserve /dev/null", err, unix.ENOENT)
		if !strings.Contains(err.Error(), "cannot be preserved") {
			t.Errorf("ENOENT error does not explain: %v", err)
		}
		if err := luo.CheckPreservable(null); !errors.Is(err, luo.ErrNotPreservable) {
			t.Errorf("CheckPreservable(/dev/null) = %v, disagrees with the kernel", err)
		}
	})

	t.Run("prevent_double_preservation", func(t *testing.T) {
		dev := mustOpen(t)
		s1 := mustCreate(t, dev, "double-preserve-session-1")
		defer s1.Close()
		s2 := mustCreate(t, dev, "double-preserve-session-2")
		defer s2.Close()
		f := memfdWith(t, "test-memfd", "")
		if err := s1.PreserveFD(f, 0x1111); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, "preserve in second session", s2.PreserveFD(f, 0x2222), unix.EBUSY)
		wantErrno(t, "preserve again in first session", s1.PreserveFD(f, 0x3333), unix.EBUSY)
	})

	t.Run("create_session_no_null_termination", func(t *testing.T) {
		fd := rawOpen(t)
		arg := luo.LiveupdateIoctlCreateSession{Size: 72}
		for i := range arg.Name {
			arg.Name[i] = 'X'
		}
		wantErrno(t, "raw create with 64 bytes of name", rawIoctl(fd, luo.LIVEUPDATE_IOCTL_CREATE_SESSION, unsafe.Pointer(&arg)), unix.EINVAL)
		unix.Close(fd)
		// The package refuses it before the kernel does.
		dev := mustOpen(t)
		_, err := dev.CreateSession(strings.Repeat("X", 64))
		if !errors.Is(err, luo.ErrInvalidName) || !errors.Is(err, unix.EINVAL) {
			t.Fatalf("CreateSession(64 bytes) = %v, want ErrInvalidName", err)
		}
	})

	t.Run("create_session_empty_name", func(t *testing.T) {
		fd := rawOpen(t)
		arg := luo.LiveupdateIoctlCreateSession{Size: 72}
		wantErrno(t, "raw create with empty name", rawIoctl(fd, luo.LIVEUPDATE_IOCTL_CREATE_SESSION, unsafe.Pointer(&arg)), unix.EINVAL)
		unix.Close(fd)
		dev := mustOpen(t)
		_, err := dev.CreateSession("")
		if !errors.Is(err, luo.ErrInvalidName) || !errors.Is(err, unix.EINVAL) {
			t.Fatalf("CreateSession(\"\") = %v, want ErrInvalidName", err)
		}
	})

	t.Run("get_session_name", func(t *testing.T) {
		dev := mustOpen(t)
		s := mustCreate(t, dev, "get-name-test-session")
		defer s.Close()
		name, err := s.GetName()
		if err != nil || name != "get-name-test-session" {
			t.Fatalf("GetName = %q, %v", name, err)
		}
	})

	t.Run("get_session_name_max_length", func(t *testing.T) {
		dev := mustOpen(t)
		long := strings.Repeat("A", 63)
		s := mustCreate(t, dev, long)
		defer s.Close()
		name, err := s.GetName()
		if err != nil || name != long {
			t.Fatalf("GetName = %q, %v", name, err)
		}
	})

	t.Run("preserve_many_sessions", func(t *testing.T) {
		dev := mustOpen(t)
		var ss []*luo.Session
		for i := range 2000 {
			ss = append(ss, mustCreate(t, dev, fmt.Sprintf("many-session-%d", i)))
		}
		for _, s := range ss {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("preserve_many_files", func(t *testing.T) {
		dev := mustOpen(t)
		s := mustCreate(t, dev, "many-files-test")
		for i := range 500 {
			f, err := memfd.New("test-memfd", 0)
			if err != nil {
				t.Fatal(err)
			}
			err = s.PreserveFD(f, uint64(i))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func rawOpen(t *testing.T) int {
	t.Helper()
	fd, err := unix.Open(luo.DevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return fd
}

func rawIoctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// stateSession is luo_test_utils.c's create_state_file: a session holding
// one memfd whose first bytes name the next stage. It is kept open (held)
// across the kexec, as the kernel's harness does.
func createStateSession(t *testing.T, dev *luo.Device, name string, token uint64) {
	t.Helper()
	s := mustCreate(t, dev, name)
	preserveData(t, s, token, strconv.Itoa(vm.Stage()+1))
	vm.Hold(s)
}

// preserveData is create_and_preserve_memfd: a one-page memfd written
// through a mapping, preserved under token.
func preserveData(t *testing.T, s *luo.Session, token uint64, data string) {
	t.Helper()
	f, err := memfd.New("test_mfd", int64(os.Getpagesize()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := memfd.Map(f)
	if err != nil {
		t.Fatal(err)
	}
	copy(m, data)
	memfd.Unmap(m)
	if err := s.PreserveFD(f, token); err != nil {
		t.Fatal(err)
	}
}

// restoreAndVerify is restore_and_verify_memfd: the data must read back
// through a mapping, NUL-terminated.
func restoreAndVerify(t *testing.T, s *luo.Session, token uint64, want string) {
	t.Helper()
	f, err := s.RetrieveFD(token)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := memfd.Map(f)
	if err != nil {
		t.Fatal(err)
	}
	defer memfd.Unmap(m)
	got := m
	if i := bytes.IndexByte(got, 0); i >= 0 {
		got = got[:i]
	}
	if string(got) != want {
		t.Fatalf("token %#x: got %q, want %q", token, got, want)
	}
}

// checkStateSession is restore_and_read_stage plus the final FINISH of the
// state session: the stage it recorded must be this one.
func checkStateSession(t *testing.T, dev *luo.Device, name string, token uint64) {
	t.Helper()
	s, err := dev.RetrieveSession(name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.RetrieveFD(token)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 31)
	n, _ := f.Read(b) // from the restored offset, 0
	f.Close()
	if got, _ := strconv.Atoi(string(bytes.TrimRight(b[:n], "\x00"))); got != vm.Stage() {
		t.Fatalf("state session %q says stage %q, this is stage %d", name, b[:n], vm.Stage())
	}
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func retrieve(t *testing.T, dev *luo.Device, name string) *luo.Session {
	t.Helper()
	s, err := dev.RetrieveSession(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func finishClose(t *testing.T, s *luo.Session) {
	t.Helper()
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// kexecStages runs stage1 in the first boot and stage2 in the second: the
// kernel's two-stage tests. Later stages have nothing to do.
func kexecStages(t *testing.T, stage1, stage2 func(t *testing.T, dev *luo.Device)) {
	switch vm.Stage() {
	case 1:
		dev := mustOpen(t)
		stage1(t, dev)
		dev.Close() // the kernel's tests close the device before the kexec
	case 2:
		stage2(t, mustOpen(t))
	default:
		t.Skipf("two-stage case: done in stages 1 and 2")
	}
}

// TestKexec ports the kernel's two-stage tests luo_kexec_simple,
// luo_multi_session, luo_stress_sessions and luo_stress_files.
func TestKexec(t *testing.T) {
	t.Run("kexec_simple", func(t *testing.T) {
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			createStateSession(t, dev, "kexec_simple_state", 999)
			s := mustCreate(t, dev, "test-session")
			preserveData(t, s, 0x1A, "hello kexec world")
			vm.Hold(s)
		}, func(t *testing.T, dev *luo.Device) {
			s := retrieve(t, dev, "test-session")
			restoreAndVerify(t, s, 0x1A, "hello kexec world")
			finishClose(t, s)
			checkStateSession(t, dev, "kexec_simple_state", 999)
		})
	})

	t.Run("multi_session", func(t *testing.T) {
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			createStateSession(t, dev, "kexec_multi_state", 998)
			vm.Hold(mustCreate(t, dev, "multi-test-empty-1"), mustCreate(t, dev, "multi-test-empty-2"))
			f1 := mustCreate(t, dev, "multi-test-files-1")
			preserveData(t, f1, 0x1001, "Data for session files 1")
			f2 := mustCreate(t, dev, "multi-test-files-2")
			preserveData(t, f2, 0x2002, "First file for session files 2")
			preserveData(t, f2, 0x3003, "Second file for session files 2")
			vm.Hold(f1, f2)
		}, func(t *testing.T, dev *luo.Device) {
			e1 := retrieve(t, dev, "multi-test-empty-1")
			e2 := retrieve(t, dev, "multi-test-empty-2")
			f1 := retrieve(t, dev, "multi-test-files-1")
			f2 := retrieve(t, dev, "multi-test-files-2")
			restoreAndVerify(t, f1, 0x1001, "Data for session files 1")
			restoreAndVerify(t, f2, 0x2002, "First file for session files 2")
			restoreAndVerify(t, f2, 0x3003, "Second file for session files 2")
			for _, s := range []*luo.Session{e1, e2, f1, f2} {
				finishClose(t, s)
			}
			checkStateSession(t, dev, "kexec_multi_state", 998)
		})
	})

	t.Run("stress_sessions", func(t *testing.T) {
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			createStateSession(t, dev, "kexec_many_state", 999)
			for i := range 2000 {
				vm.Hold(mustCreate(t, dev, fmt.Sprintf("many-test-%d", i)))
			}
		}, func(t *testing.T, dev *luo.Device) {
			for i := range 2000 {
				finishClose(t, retrieve(t, dev, fmt.Sprintf("many-test-%d", i)))
			}
			checkStateSession(t, dev, "kexec_many_state", 999)
		})
	})

	t.Run("stress_files", func(t *testing.T) {
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			createStateSession(t, dev, "kexec_many_files_state", 9999)
			s := mustCreate(t, dev, "many_files_session")
			for i := range 500 {
				preserveData(t, s, uint64(i), fmt.Sprintf("file-data-%d", i))
			}
			vm.Hold(s)
		}, func(t *testing.T, dev *luo.Device) {
			s := retrieve(t, dev, "many_files_session")
			for i := range 500 {
				restoreAndVerify(t, s, uint64(i), fmt.Sprintf("file-data-%d", i))
			}
			finishClose(t, s)
			checkStateSession(t, dev, "kexec_many_files_state", 9999)
		})
	})
}

// TestExtra holds the cases the kernel suite lacks that a user of this
// package runs into.
func TestExtra(t *testing.T) {
	t.Run("retrieve_twice", func(t *testing.T) {
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			s := mustCreate(t, dev, "extra-retrieve-twice")
			preserveData(t, s, 7, "0123456789")
			vm.Hold(s)
		}, func(t *testing.T, dev *luo.Device) {
			s := retrieve(t, dev, "extra-retrieve-twice")
			defer s.Close()
			a, err := s.RetrieveFD(7)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := s.RetrieveFD(7)
			if err != nil {
				t.Fatalf("second RetrieveFD: %v (the kernel returns a new fd on the same file)", err)
			}
			defer b.Close()
			// Same open file description: the offset is shared.
			buf := make([]byte, 4)
			if _, err := a.Read(buf); err != nil || string(buf) != "0123" {
				t.Fatalf("read a: %q %v", buf, err)
			}
			if _, err := b.Read(buf); err != nil || string(buf) != "4567" {
				t.Fatalf("read b after a: %q %v, want the shared offset to continue at 4", buf, err)
			}
			// RETRIEVE_SESSION of a session that is retrieved and open: EINVAL.
			_, err = dev.RetrieveSession("extra-retrieve-twice")
			wantErrno(t, "second RetrieveSession", err, unix.EINVAL)
			if err := s.Finish(); err != nil {
				t.Fatal(err)
			}
		})
	})

	t.Run("finish_discards_unretrieved", func(t *testing.T) {
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			s := mustCreate(t, dev, "extra-finish-discards")
			preserveData(t, s, 1, "kept")
			preserveData(t, s, 2, "discarded")
			vm.Hold(s)
		}, func(t *testing.T, dev *luo.Device) {
			s := retrieve(t, dev, "extra-finish-discards")
			defer s.Close()
			f, err := s.RetrieveFD(1)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := s.Finish(); err != nil {
				t.Fatalf("Finish with an unretrieved token: %v, want success", err)
			}
			_, err = s.RetrieveFD(2)
			wantErrno(t, "RetrieveFD of an unretrieved token after FINISH", err, unix.ENOENT)
			if got := strings.TrimRight(readAll(t, f), "\x00"); got != "kept" {
				t.Fatalf("retrieved file reads %q after FINISH", got)
			}
			if err := s.Finish(); err != nil {
				t.Fatalf("second Finish: %v, want nil", err)
			}
			wantErrno(t, "PRESERVE_FD on an incoming session", s.PreserveFD(f, 3), unix.EINVAL)
			if name, err := s.GetName(); err != nil || name != "extra-finish-discards" {
				t.Fatalf("GetName after FINISH = %q, %v", name, err)
			}
			s.Close()
			_, err = dev.RetrieveSession("extra-finish-discards")
			wantErrno(t, "RetrieveSession after close", err, unix.ENOENT)
		})
	})

	t.Run("preserve_retrieved_needs_finish", func(t *testing.T) {
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			s := mustCreate(t, dev, "extra-represerve")
			preserveData(t, s, 1, "again")
			vm.Hold(s)
		}, func(t *testing.T, dev *luo.Device) {
			in := retrieve(t, dev, "extra-represerve")
			defer in.Close()
			f, err := in.RetrieveFD(1)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			out := mustCreate(t, dev, "extra-represerve") // same name as the incoming one: allowed
			defer out.Close()
			wantErrno(t, "preserve a retrieved file before FINISH", out.PreserveFD(f, 1), unix.EBUSY)
			if err := in.Finish(); err != nil {
				t.Fatal(err)
			}
			if err := out.PreserveFD(f, 1); err != nil {
				t.Fatalf("preserve after FINISH: %v", err)
			}
		})
	})

	t.Run("three_kexecs", func(t *testing.T) {
		// One memfd carried 7.2 -> 7.3 -> 7.2 -> 7.3: each boot retrieves it,
		// checks and appends to its history, finishes, and preserves it again
		// in a new outgoing session of the same name.
		const name, tok = "extra-three-kexecs", 42
		dev := mustOpen(t)
		var f *os.File
		if vm.Stage() == 1 {
			var err error
			f, err = memfd.New("history", 4096)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			in := retrieve(t, dev, name)
			var err error
			if f, err = in.RetrieveFD(tok); err != nil {
				t.Fatal(err)
			}
			finishClose(t, in)
		}
		defer f.Close()
		m, err := memfd.Map(f)
		if err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for i := 1; i < vm.Stage(); i++ {
			fmt.Fprintf(&want, "stage %d;", i)
		}
		if got := string(bytes.TrimRight(m, "\x00")); got != want.String() {
			t.Fatalf("history %q, want %q", got, want.String())
		}
		copy(m[len(want.String()):], fmt.Sprintf("stage %d;", vm.Stage()))
		memfd.Unmap(m)
		if vm.Stage() == vm.Stages() {
			t.Logf("carried across %d kexecs", vm.Stage()-1)
			return
		}
		out := mustCreate(t, dev, name)
		if err := out.PreserveFD(f, tok); err != nil {
			t.Fatal(err)
		}
		vm.Hold(out)
	})

	t.Run("memfd_64mib_checksum", func(t *testing.T) {
		const size = 64 << 20
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			f, err := memfd.New("big", size)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := memfd.Map(f)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.NewChaCha8([32]byte{1, 2, 3})
			rng.Read(m)
			sum := sha256.Sum256(m)
			memfd.Unmap(m)
			s := mustCreate(t, dev, "extra-64mib")
			if err := s.PreserveFD(f, 1); err != nil {
				t.Fatal(err)
			}
			// The checksum travels in a second memfd of the same session.
			preserveData(t, s, 2, fmt.Sprintf("%x", sum))
			vm.Hold(s)
		}, func(t *testing.T, dev *luo.Device) {
			s := retrieve(t, dev, "extra-64mib")
			defer s.Close()
			f, err := s.RetrieveFD(1)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if n, _ := memfd.Size(f); n != size {
				t.Fatalf("size %d, want %d", n, size)
			}
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
				t.Fatal(err)
			}
			sf, err := s.RetrieveFD(2)
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			want := strings.TrimRight(readAll(t, sf), "\x00")
			if got := fmt.Sprintf("%x", h.Sum(nil)); got != want {
				t.Fatalf("sha256 %s, want %s", got, want)
			}
			if err := s.Finish(); err != nil {
				t.Fatal(err)
			}
		})
	})

	t.Run("seals_and_offset", func(t *testing.T) {
		const seals = memfd.SealShrink | memfd.SealGrow | memfd.SealSeal
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			f := memfdWith(t, "sealed", strings.Repeat("x", 5000))
			if _, err := f.Seek(1234, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if err := memfd.AddSeals(f, seals); err != nil {
				t.Fatal(err)
			}
			s := mustCreate(t, dev, "extra-seals")
			if err := s.PreserveFD(f, 1); err != nil {
				t.Fatal(err)
			}
			// The offset is re-recorded at the kexec: move it after preserving.
			if _, err := f.Seek(2345, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			vm.Hold(s)
		}, func(t *testing.T, dev *luo.Device) {
			s := retrieve(t, dev, "extra-seals")
			defer s.Close()
			f, err := s.RetrieveFD(1)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := memfd.GetSeals(f)
			if err != nil || got != seals {
				t.Errorf("seals %v (%v), want %v", got, err, seals)
			}
			if off, err := f.Seek(0, io.SeekCurrent); err != nil || off != 2345 {
				t.Errorf("offset %d (%v), want 2345", off, err)
			}
			if n, _ := memfd.Size(f); n != 5000 {
				t.Errorf("size %d, want 5000", n)
			}
			if err := s.Finish(); err != nil {
				t.Fatal(err)
			}
		})
	})

	t.Run("noexec_seal_comes_back_write_sealed", func(t *testing.T) {
		// Kernel behaviour that memfd.New works around: memfd_luo restores
		// seals on a new executable memfd, where F_SEAL_EXEC implies every
		// write seal. If this fails, the kernel changed: revisit memfd.New.
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			fd, err := unix.MemfdCreate("noexec", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
			if err != nil {
				t.Fatal(err)
			}
			f := os.NewFile(uintptr(fd), "noexec")
			defer f.Close()
			f.WriteString("x")
			s := mustCreate(t, dev, "extra-noexec")
			if err := s.PreserveFD(f, 1); err != nil {
				t.Fatal(err)
			}
			vm.Hold(s)
		}, func(t *testing.T, dev *luo.Device) {
			s := retrieve(t, dev, "extra-noexec")
			defer s.Close()
			f, err := s.RetrieveFD(1)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			seals, err := memfd.GetSeals(f)
			if err != nil {
				t.Fatal(err)
			}
			if want := memfd.SealExec | memfd.SealWrite | memfd.SealFutureWrite | memfd.SealShrink | memfd.SealGrow; seals != want {
				t.Fatalf("seals after restore %v, want %v (the kernel's F_SEAL_EXEC implication)", seals, want)
			}
			if _, err := f.WriteAt([]byte("y"), 0); !errors.Is(err, unix.EPERM) {
				t.Fatalf("write to the restored memfd: %v, want EPERM", err)
			}
			s.Finish()
		})
	})

	t.Run("size_frozen_while_preserved", func(t *testing.T) {
		if vm.Stage() != 1 {
			t.Skip("single-boot case")
		}
		dev := mustOpen(t)
		s := mustCreate(t, dev, "extra-frozen")
		f := memfdWith(t, "frozen", "abc")
		if err := s.PreserveFD(f, 1); err != nil {
			t.Fatal(err)
		}
		err := memfd.Resize(f, 8192)
		wantErrno(t, "ftruncate of a preserved memfd", err, unix.EPERM)
		if !strings.Contains(err.Error(), "preserved in a LUO session") {
			t.Errorf("resize error does not explain: %v", err)
		}
		if _, err := f.WriteAt([]byte("z"), 1); err != nil {
			t.Errorf("in-place write of a preserved memfd: %v", err)
		}
		s.Close()
		if err := memfd.Resize(f, 8192); err != nil {
			t.Errorf("resize after the session closed: %v", err)
		}
	})

	t.Run("wrong_session_direction", func(t *testing.T) {
		if vm.Stage() != 1 {
			t.Skip("single-boot case")
		}
		dev := mustOpen(t)
		s := mustCreate(t, dev, "extra-direction")
		defer s.Close()
		wantErrno(t, "FINISH on an outgoing session", s.Finish(), unix.EINVAL)
		_, err := s.RetrieveFD(1)
		wantErrno(t, "RETRIEVE_FD on an outgoing session", err, unix.EINVAL)
		_, err = dev.RetrieveSession("never-preserved")
		wantErrno(t, "RETRIEVE_SESSION of an unknown name", err, unix.ENOENT)
		f := memfdWith(t, "tok", "")
		if err := s.PreserveFD(f, 5); err != nil {
			t.Fatal(err)
		}
		g := memfdWith(t, "tok2", "")
		wantErrno(t, "PRESERVE_FD with a used token", s.PreserveFD(g, 5), unix.EEXIST)
		s.Close()
		wantErrno(t, "PRESERVE_FD after Close", s.PreserveFD(g, 6), unix.EBADF)
	})

	t.Run("session_from_file", func(t *testing.T) {
		kexecStages(t, func(t *testing.T, dev *luo.Device) {
			s := mustCreate(t, dev, "extra from file")
			dup, err := dupFile(s.File())
			if err != nil {
				t.Fatal(err)
			}
			got, err := luo.SessionFromFile(dup)
			if err != nil {
				t.Fatal(err)
			}
			if got.Name() != "extra from file" || got.Incoming() {
				t.Fatalf("SessionFromFile = %v, want outgoing session %q", got, "extra from file")
			}
			got.Close()
			vm.Hold(s)
		}, func(t *testing.T, dev *luo.Device) {
			s := retrieve(t, dev, "extra from file")
			dup, err := dupFile(s.File())
			if err != nil {
				t.Fatal(err)
			}
			got, err := luo.SessionFromFile(dup)
			if err != nil {
				t.Fatal(err)
			}
			if got.Name() != "extra from file" || !got.Incoming() {
				t.Fatalf("SessionFromFile = %v, want incoming session", got)
			}
			got.Close()
			finishClose(t, s)
		})
	})

	t.Run("unpreservable_kinds", func(t *testing.T) {
		if vm.Stage() != 1 {
			t.Skip("single-boot case")
		}
		dev := mustOpen(t)
		s := mustCreate(t, dev, "extra-kinds")
		defer s.Close()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		sock := os.NewFile(uintptr(fds[0]), "socket")
		defer sock.Close()
		unix.Close(fds[1])
		other := mustCreate(t, dev, "extra-kinds-other")
		defer other.Close()
		for i, f := range []*os.File{r, sock, other.File()} {
			err := s.PreserveFD(f, uint64(i))
			wantErrno(t, "preserve "+f.Name(), err, unix.ENOENT)
			if cerr := luo.CheckPreservable(f); !errors.Is(cerr, luo.ErrNotPreservable) {
				t.Errorf("CheckPreservable(%s) = %v, but the kernel refused it", f.Name(), cerr)
			}
		}
	})
}

func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// TestSizeField checks the size-field rules of every ioctl on the real
// kernel: too small is EINVAL, larger with non-zero tail bytes is E2BIG,
// larger with a zero tail is accepted; reserved fields must be zero; ioctls
// on the wrong fd kind are EINVAL and ioctls with size bits are ENOTTY.
func TestSizeField(t *testing.T) {
	if vm.Stage() > 2 {
		t.Skip("single-boot case")
	}
	type big struct {
		luo.LiveupdateIoctlCreateSession
		Tail [8]byte
	}
	fd := rawOpen(t)
	defer unix.Close(fd)
	create := func(size uint32, tail byte, name string) error {
		var a big
		a.Size = size
		copy(a.Name[:], name)
		a.Tail[3] = tail
		err := rawIoctl(fd, luo.LIVEUPDATE_IOCTL_CREATE_SESSION, unsafe.Pointer(&a))
		if err == nil {
			unix.Close(int(a.Fd))
		}
		return err
	}
	t.Run("create_size_too_small", func(t *testing.T) { wantErrno(t, "size 71", create(71, 0, "sz-small"), unix.EINVAL) })
	t.Run("create_size_zero", func(t *testing.T) { wantErrno(t, "size 0", create(0, 0, "sz-zero"), unix.EINVAL) })
	t.Run("create_size_larger_nonzero_tail", func(t *testing.T) { wantErrno(t, "size 80 + tail", create(80, 1, "sz-e2big"), unix.E2BIG) })
	t.Run("create_size_larger_zero_tail", func(t *testing.T) {
		if err := create(80, 0, "sz-zero-tail"); err != nil {
			t.Fatalf("size 80 with a zero tail: %v, want success", err)
		}
	})

	var cs luo.LiveupdateIoctlCreateSession
	cs.Size = 72
	copy(cs.Name[:], "size-field-session")
	if err := rawIoctl(fd, luo.LIVEUPDATE_IOCTL_CREATE_SESSION, unsafe.Pointer(&cs)); err != nil {
		t.Fatal(err)
	}
	sfd := int(cs.Fd)
	defer unix.Close(sfd)

	t.Run("preserve_size", func(t *testing.T) {
		mfd, err := memfd.New("sz", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer mfd.Close()
		type bigp struct {
			luo.LiveupdateSessionPreserveFd
			Tail [8]byte
		}
		for _, tc := range []struct {
			size  uint32
			tail  byte
			token uint64
			want  error
		}{
			{15, 0, 1, unix.EINVAL},
			{24, 1, 2, unix.E2BIG},
			{24, 0, 3, nil},
		} {
			a := bigp{LiveupdateSessionPreserveFd: luo.LiveupdateSessionPreserveFd{Size: tc.size, Fd: int32(mfd.Fd()), Token: tc.token}}
			a.Tail[0] = tc.tail
			err := rawIoctl(sfd, luo.LIVEUPDATE_SESSION_PRESERVE_FD, unsafe.Pointer(&a))
			if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
				t.Errorf("PRESERVE_FD size %d tail %d: %v, want %v", tc.size, tc.tail, err, tc.want)
			}
		}
	})
	t.Run("get_name_reserved", func(t *testing.T) {
		a := luo.LiveupdateSessionGetName{Size: 72, Reserved: 1}
		wantErrno(t, "GET_NAME reserved=1", rawIoctl(sfd, luo.LIVEUPDATE_SESSION_GET_NAME, unsafe.Pointer(&a)), unix.EINVAL)
		a = luo.LiveupdateSessionGetName{Size: 71}
		wantErrno(t, "GET_NAME size 71", rawIoctl(sfd, luo.LIVEUPDATE_SESSION_GET_NAME, unsafe.Pointer(&a)), unix.EINVAL)
	})
	t.Run("finish_size", func(t *testing.T) {
		a := luo.LiveupdateSessionFinish{Size: 7}
		wantErrno(t, "FINISH size 7", rawIoctl(sfd, luo.LIVEUPDATE_SESSION_FINISH, unsafe.Pointer(&a)), unix.EINVAL)
	})
	t.Run("wrong_fd_kind", func(t *testing.T) {
		var a luo.LiveupdateSessionGetName
		a.Size = 72
		wantErrno(t, "GET_NAME on the device fd", rawIoctl(fd, luo.LIVEUPDATE_SESSION_GET_NAME, unsafe.Pointer(&a)), unix.EINVAL)
		var c luo.LiveupdateIoctlCreateSession
		c.Size = 72
		copy(c.Name[:], "x")
		wantErrno(t, "CREATE_SESSION on a session fd", rawIoctl(sfd, luo.LIVEUPDATE_IOCTL_CREATE_SESSION, unsafe.Pointer(&c)), unix.EINVAL)
		wantErrno(t, "unknown nr 0x02 on the device", rawIoctl(fd, 0xBA02, unsafe.Pointer(&c)), unix.EINVAL)
		wantErrno(t, "unknown nr 0x44 on a session", rawIoctl(sfd, 0xBA44, unsafe.Pointer(&a)), unix.EINVAL)
	})
	t.Run("size_bits_enotty", func(t *testing.T) {
		var c luo.LiveupdateIoctlCreateSession
		c.Size = 72
		copy(c.Name[:], "iowr")
		iowr := uintptr(3<<30 | 72<<16 | luo.LIVEUPDATE_IOCTL_CREATE_SESSION)
		wantErrno(t, "_IOWR(0xBA, 0, 72)", rawIoctl(fd, iowr, unsafe.Pointer(&c)), unix.ENOTTY)
	})
}
