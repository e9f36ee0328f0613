package kimage_test

import (
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/kimage"
	"github.com/liveupdate/luo/internal/vmtest"
)

// TestRealImages reads the LUO test kernels (../shared/vm/bzImage and
// bzImage-7.3, or $LUO_TEST_KERNEL and $LUO_TEST_KERNEL_7_3). Without them
// it skips, or fails when $CI is set.
func TestRealImages(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ version, release string }{
		{"7.2", "7.2.13"},
		{"7.3", "7.3.4"},
	} {
		t.Run(tt.version, func(t *testing.T) {
			t.Parallel()
			path := vmtest.Kernel(t, tt.version)
			img, err := kimage.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if img.Release != tt.release || img.Compression != "gzip" {
				t.Errorf("Open(%s) = %+v, want release %s, gzip", path, *img, tt.release)
			}
			// The kernel decompresses itself in place: it needs more than
			// its 34 MiB of vmlinux.
			if img.InitSize < 32<<20 || img.InitSize > 256<<20 {
				t.Errorf("InitSize = %d, want some 34 MiB", img.InitSize)
			}
			start := time.Now()
			f, err := img.Formats()
			if err != nil {
				t.Fatal(err)
			}
			if f != v5 {
				t.Errorf("Formats() = %v, want %v", f, v5)
			}
			t.Logf("%s: Linux %s, init_size %d, %s: %v in %v", path, img.Release, img.InitSize, img.Compression, f, time.Since(start).Round(time.Millisecond))
		})
	}
}
