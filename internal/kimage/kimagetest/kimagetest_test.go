package kimagetest_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/kimage"
	"github.com/liveupdate/luo/internal/kimage/kimagetest"
	"github.com/liveupdate/luo/internal/vmtest"
)

var v5 = kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v2"}

// TestImage rewrites the 7.3 LUO test kernel (../shared/vm/bzImage-7.3 or
// $LUO_TEST_KERNEL_7_3; without it, it skips, or fails when $CI is set).
func TestImage(t *testing.T) {
	t.Parallel()
	src := vmtest.Kernel(t, "7.3")
	for _, tt := range []struct {
		name    string
		replace map[string]string
		want    kimage.Formats
		is      error
	}{
		{"memfd", map[string]string{"memfd-v2": "memfd-v9"}, kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v9"}, nil},
		{"all", map[string]string{"luo-v5": "luo-v6", "kho-v4": "kho-v3", "memfd-v2": "memfd-v3"}, kimage.Formats{LUO: "luo-v6", KHO: "kho-v3", Memfd: "memfd-v3"}, nil},
		{"no memfd", map[string]string{"memfd-v2": "memfd-x2"}, kimage.Formats{}, kimage.ErrMissing},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img, err := kimage.Open(kimagetest.Image(t, src, tt.replace))
			if err != nil {
				t.Fatal(err)
			}
			if img.Release != "7.3.4" || img.Compression != "gzip" {
				t.Errorf("Open = %+v, want release 7.3.4, gzip", *img)
			}
			got, err := img.Formats()
			if tt.is != nil {
				if !errors.Is(err, tt.is) {
					t.Fatalf("Formats() = %v, %v; want an error wrapping %v", got, err, tt.is)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Formats() = %v, %v; want %v", got, err, tt.want)
			}
			var m *kimage.MismatchError
			if err := v5.Accepts(got); !errors.As(err, &m) {
				t.Errorf("%v.Accepts(%v) = %v, want a *MismatchError", v5, got, err)
			}
		})
	}
}

func TestRewriteErrors(t *testing.T) {
	t.Parallel()
	src := vmtest.Kernel(t, "7.3")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// The same kernel, but its payload says it is zstd-compressed.
	zstd := append([]byte(nil), b...)
	off := (int(zstd[0x1f1])+1)*512 + int(binary.LittleEndian.Uint32(zstd[0x248:]))
	copy(zstd[off:], "\x28\xb5\x2f\xfd")
	zsrc := filepath.Join(t.TempDir(), "bzImage-zstd")
	if err := os.WriteFile(zsrc, zstd, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, src string
		replace   map[string]string
		says      string
	}{
		{"nothing", src, nil, "nothing to replace"},
		{"longer", src, map[string]string{"memfd-v2": "memfd-v10"}, `cannot replace "memfd-v2" by "memfd-v10"`},
		{"absent", src, map[string]string{"luo-v4": "luo-v6"}, `the kernel has no compatible string "luo-v4"`},
		{"prefix only", src, map[string]string{"memfd-v": "memfd-x"}, `no compatible string "memfd-v"`},
		{"zstd", zsrc, map[string]string{"memfd-v2": "memfd-v9"}, "a zstd payload; only gzip payloads can be rewritten"},
		{"not a kernel", filepath.Join(t.TempDir(), "missing"), map[string]string{"memfd-v2": "memfd-v9"}, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := filepath.Join(t.TempDir(), "bzImage")
			err := kimagetest.Rewrite(dst, tt.src, tt.replace)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Rewrite = %v, want an error saying %q", err, tt.says)
			}
			if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Rewrite failed but wrote %s (%v)", dst, err)
			}
		})
	}
}
