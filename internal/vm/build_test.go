package vm

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
)

func TestStageFromCmdline(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		want    int
	}{
		{"console=ttyS0 panic=-1 liveupdate=on quiet vmtest.stage=2\n", 2},
		{"vmtest.stage=1", 1},
		{"console=ttyS0 quiet", 0},
		{"vmtest.stage=x", 0},
		{"vmtest.stage=0", 0},
		{"myvmtest.stage=3", 0},
	} {
		if got := stageFromCmdline(tt.cmdline); got != tt.want {
			t.Errorf("stageFromCmdline(%q) = %d, want %d", tt.cmdline, got, tt.want)
		}
	}
	p := Plan{Cmdline: "console=ttyS0 liveupdate=on"}
	if got, want := p.StageCmdline(3), "console=ttyS0 liveupdate=on vmtest.stage=3"; got != want {
		t.Errorf("StageCmdline(3) = %q, want %q", got, want)
	}
}

func TestDiskPath(t *testing.T) {
	for _, tt := range []struct {
		name, want string // want "" means an error
	}{
		{"bin/luod", "/r/bin/luod"},
		{"etc/luod/system/a.service", "/r/etc/luod/system/a.service"},
		{"./x", "/r/x"},
		{"a/../b", "/r/b"},
		{"", ""},
		{"/etc/passwd", ""},
		{"../x", ""},
		{"a/../../x", ""},
		{"test.bin", ""},
		{"plan.json", ""},
		{"boot/x", ""},
	} {
		got, err := diskPath("/r", tt.name)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("diskPath(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestWriteInitrd(t *testing.T) {
	dir := t.TempDir()
	init := filepath.Join(dir, "init")
	if err := os.WriteFile(init, []byte("#!init"), 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "initrd.img")
	if err := writeInitrd(dst, init); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(zr)
	var got []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entry := h.Name + " " + h.Mode.String()
		if h.Mode.IsRegular() {
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			entry += " " + string(b)
		}
		got = append(got, entry)
	}
	want := []string{
		"dev 040755", "proc 040755", "sys 040755", "tmp 040755", "run 040755", "vmtest 040755",
		"init 0100755 #!init",
	}
	if !slices.Equal(got, want) {
		t.Errorf("initrd entries:\n got %q\nwant %q", got, want)
	}
}

func TestGoBuilds(t *testing.T) {
	const vminit = "go build -ldflags=-s -w -o D/init " + vminitPackage
	bins := map[string]string{"bin/luod": "example.com/cmd/luod", "bin/luoctl": "example.com/cmd/luoctl"}
	tests := []struct {
		name string
		cfg  Config
		want []string // the go commands, building into "D"
		err  string   // or a part of the error
	}{
		{
			name: "no tags",
			cfg:  Config{Binaries: bins},
			want: []string{
				vminit,
				"go test -c -tags vmguest -o D/vmtest/test.bin .",
				"go build -o D/vmtest/bin/luoctl example.com/cmd/luoctl",
				"go build -o D/vmtest/bin/luod example.com/cmd/luod",
			},
		},
		{
			name: "one tag",
			cfg:  Config{Binaries: bins, BuildTags: []string{"luodfault"}, Package: "./internal/e2e"},
			want: []string{
				vminit,
				"go test -c -tags vmguest,luodfault -o D/vmtest/test.bin ./internal/e2e",
				"go build -tags luodfault -o D/vmtest/bin/luoctl example.com/cmd/luoctl",
				"go build -tags luodfault -o D/vmtest/bin/luod example.com/cmd/luod",
			},
		},
		{
			name: "two tags, a program instead of tests",
			cfg:  Config{Binaries: bins, BuildTags: []string{"luodfault", "go1.26"}, Program: "bin/luod"},
			want: []string{
				vminit,
				"go build -tags luodfault,go1.26 -o D/vmtest/bin/luoctl example.com/cmd/luoctl",
				"go build -tags luodfault,go1.26 -o D/vmtest/bin/luod example.com/cmd/luod",
			},
		},
		{
			name: "host forwards",
			cfg:  Config{BuildTags: []string{"luodfault"}, HostForward: []Forward{{GuestPort: 2379, Host: "127.0.0.1:2379"}}},
			want: []string{
				vminit,
				"go test -c -tags vmguest,luodfault -o D/vmtest/test.bin .",
				"go build -ldflags=-s -w -o D/hostfwd " + forwarderPackage,
			},
		},
		{name: "a tag list in one tag", cfg: Config{BuildTags: []string{"a,b"}}, err: `"a,b" is not a build tag`},
		{name: "an empty tag", cfg: Config{BuildTags: []string{""}}, err: `"" is not a build tag`},
		{name: "a tag with a blank", cfg: Config{BuildTags: []string{"a b"}}, err: `"a b" is not a build tag`},
		{name: "a program not built", cfg: Config{Binaries: bins, Program: "bin/x"}, err: `Config.Program "bin/x" is not a key`},
		{name: "a binary outside the disk", cfg: Config{Binaries: map[string]string{"../x": "p"}}, err: `disk path "../x" must be relative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			builds, err := goBuilds(tt.cfg, "D")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("goBuilds: %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range builds {
				got = append(got, "go "+strings.Join(b.args, " "))
				if out := b.args[slices.Index(b.args, "-o")+1]; out != b.out {
					t.Errorf("go %q writes %s, but out is %s", b.args, out, b.out)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("go commands:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
