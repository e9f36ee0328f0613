package luo_test

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/liveupdate/luo"
)

// TestDeviceClosed checks that a closed or zero Device issues no ioctl (on
// whatever now has its fd number, or on fd 0) and that Close is idempotent.

func TestDeviceClosed(t *testing.T) {
	d, err := luo.OpenPath(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateSession("s"); !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("CreateSession on /dev/null = %v, want ENOTTY", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	for _, d := range []*luo.Device{d, new(luo.Device)} {
		if _, err := d.CreateSession("s"); !errors.Is(err, os.ErrClosed) || !errors.Is(err, syscall.EBADF) {
			t.Errorf("CreateSession on a closed or zero Device = %v, want os.ErrClosed and EBADF", err)
		}
	}
	if err := new(luo.Device).Close(); err != nil {
		t.Errorf("Close of a zero Device = %v, want nil", err)
	}
}
