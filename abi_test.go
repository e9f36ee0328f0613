package luo_test

import (
	"testing"
	"unsafe"

	"github.com/liveupdate/luo"
)

// ioc is _IOC() of include/uapi/asm-generic/ioctl.h (x86-64, arm64).
func ioc(dir, typ, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | typ<<8 | nr
}

// _IO(type, nr) = _IOC(_IOC_NONE, type, nr, 0)
func ioNone(typ, nr uintptr) uintptr { return ioc(0, typ, nr, 0) }

func TestIoctlNumbers(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  uintptr
		nr   uintptr
		want uintptr
	}{
		{"LIVEUPDATE_IOCTL_CREATE_SESSION", luo.LIVEUPDATE_IOCTL_CREATE_SESSION, 0x00, 0xBA00},
		{"LIVEUPDATE_IOCTL_RETRIEVE_SESSION", luo.LIVEUPDATE_IOCTL_RETRIEVE_SESSION, 0x01, 0xBA01},
		{"LIVEUPDATE_SESSION_PRESERVE_FD", luo.LIVEUPDATE_SESSION_PRESERVE_FD, 0x40, 0xBA40},
		{"LIVEUPDATE_SESSION_RETRIEVE_FD", luo.LIVEUPDATE_SESSION_RETRIEVE_FD, 0x41, 0xBA41},
		{"LIVEUPDATE_SESSION_FINISH", luo.LIVEUPDATE_SESSION_FINISH, 0x42, 0xBA42},
		{"LIVEUPDATE_SESSION_GET_NAME", luo.LIVEUPDATE_SESSION_GET_NAME, 0x43, 0xBA43},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
		if ioNone(luo.LIVEUPDATE_IOCTL_TYPE, tc.nr) != tc.want {
			t.Errorf("_IO(0xBA, %#x) = %#x, want %#x", tc.nr, ioNone(luo.LIVEUPDATE_IOCTL_TYPE, tc.nr), tc.want)
		}
	}
}

type field struct {
	name      string
	off, size uintptr
	wantOff   uintptr
	wantSize  uintptr
}

func TestStructLayout(t *testing.T) {
	var cs luo.LiveupdateIoctlCreateSession
	var rs luo.LiveupdateIoctlRetrieveSession
	var pf luo.LiveupdateSessionPreserveFd
	var rf luo.LiveupdateSessionRetrieveFd
	var fin luo.LiveupdateSessionFinish
	var gn luo.LiveupdateSessionGetName
	for _, tc := range []struct {
		name                string
		size, align         uintptr
		wantSize, wantAlign uintptr
		fields              []field
	}{
		{"liveupdate_ioctl_create_session", unsafe.Sizeof(cs), unsafe.Alignof(cs), 72, 4, []field{
			{"size", unsafe.Offsetof(cs.Size), unsafe.Sizeof(cs.Size), 0, 4},
			{"fd", unsafe.Offsetof(cs.Fd), unsafe.Sizeof(cs.Fd), 4, 4},
			{"name", unsafe.Offsetof(cs.Name), unsafe.Sizeof(cs.Name), 8, 64},
		}},
		{"liveupdate_ioctl_retrieve_session", unsafe.Sizeof(rs), unsafe.Alignof(rs), 72, 4, []field{
			{"size", unsafe.Offsetof(rs.Size), unsafe.Sizeof(rs.Size), 0, 4},
			{"fd", unsafe.Offsetof(rs.Fd), unsafe.Sizeof(rs.Fd), 4, 4},
			{"name", unsafe.Offsetof(rs.Name), unsafe.Sizeof(rs.Name), 8, 64},
		}},
		{"liveupdate_session_preserve_fd", unsafe.Sizeof(pf), unsafe.Alignof(pf), 16, 8, []field{
			{"size", unsafe.Offsetof(pf.Size), unsafe.Sizeof(pf.Size), 0, 4},
			{"fd", unsafe.Offsetof(pf.Fd), unsafe.Sizeof(pf.Fd), 4, 4},
			{"token", unsafe.Offsetof(pf.Token), unsafe.Sizeof(pf.Token), 8, 8},
		}},
		{"liveupdate_session_retrieve_fd", unsafe.Sizeof(rf), unsafe.Alignof(rf), 16, 8, []field{
			{"size", unsafe.Offsetof(rf.Size), unsafe.Sizeof(rf.Size), 0, 4},
			{"fd", unsafe.Offsetof(rf.Fd), unsafe.Sizeof(rf.Fd), 4, 4},
			{"token", unsafe.Offsetof(rf.Token), unsafe.Sizeof(rf.Token), 8, 8},
		}},
		{"liveupdate_session_finish", unsafe.Sizeof(fin), unsafe.Alignof(fin), 8, 4, []field{
			{"size", unsafe.Offsetof(fin.Size), unsafe.Sizeof(fin.Size), 0, 4},
			{"reserved", unsafe.Offsetof(fin.Reserved), unsafe.Sizeof(fin.Reserved), 4, 4},
		}},
		{"liveupdate_session_get_name", unsafe.Sizeof(gn), unsafe.Alignof(gn), 72, 4, []field{
			{"size", unsafe.Offsetof(gn.Size), unsafe.Sizeof(gn.Size), 0, 4},
			{"reserved", unsafe.Offsetof(gn.Reserved), unsafe.Sizeof(gn.Reserved), 4, 4},
			{"name", unsafe.Offsetof(gn.Name), unsafe.Sizeof(gn.Name), 8, 64},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.size != tc.wantSize {
				t.Errorf("sizeof = %d, want %d", tc.size, tc.wantSize)
			}
			if tc.align != tc.wantAlign {
				t.Errorf("alignof = %d, want %d", tc.align, tc.wantAlign)
			}
			for _, f := range tc.fields {
				if f.off != f.wantOff || f.size != f.wantSize {
					t.Errorf("%s: offset %d size %d, want offset %d size %d", f.name, f.off, f.size, f.wantOff, f.wantSize)
				}
			}
		})
	}
}
