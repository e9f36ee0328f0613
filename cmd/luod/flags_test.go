//go:build linux

package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/liveupdate/luo/internal/fleet"
	"github.com/liveupdate/luo/internal/update"
)

// TestParseArgs: GNU-style long options, and the single-dash spellings of
// luod's first releases, give the same options.
func TestParseArgs(t *testing.T) {
	want := options{units: "/u", runtimeDir: "/r", logFormat: "json", logLevel: "debug", logTarget: "auto", device: "/dev/x", preserveMax: -1,
		kernels: update.DefaultKernels, fleet: fleet.Config{Group: "default", Host: fleet.DefaultHost(), Slots: 1, Timeout: 10 * time.Second}}
	for _, args := range [][]string{
		{"--units", "/u", "--runtime-dir", "/r", "--log-format", "json", "--log-level", "debug", "--device", "/dev/x"},
		{"--units=/u", "--runtime-dir=/r", "--log-format=json", "--log-level=debug", "--device=/dev/x"},
		{"-units", "/u", "-runtime", "/r", "-log-format", "json", "-log-level", "debug", "-device", "/dev/x"},
		{"-units=/u", "--runtime=/r", "-log-format=json", "-log-level=debug", "-device=/dev/x"},
	} {
		o, err := parseArgs(args, io.Discard)
		if err != nil || !reflect.DeepEqual(*o, want) {
			t.Errorf("parseArgs(%q) = %+v, %v; want %+v", args, o, err, want)
		}
	}
	if o, err := parseArgs(nil, io.Discard); err != nil || o.units != "/etc/luod/system:/run/luod/system" || o.runtimeDir != "/run/luod" || o.logLevel != "info" {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	if o, err := parseArgs([]string{"-log-target=stderr"}, io.Discard); err != nil || o.logTarget != "stderr" {
		t.Errorf("-log-target=stderr: %+v, %v", o, err)
	}
	fl := []string{"--fleet-endpoints=http://127.0.0.1:1,127.0.0.1:2", "--fleet-group=g", "--fleet-host=h1", "--fleet-slots=2", "--health-timeout=30s", "--kernels=/k/*"}
	if o, err := parseArgs(fl, io.Discard); err != nil || len(o.fleet.Endpoints) != 2 || o.fleet.Group != "g" || o.fleet.Host != "h1" || o.fleet.Slots != 2 ||
		o.healthTimeout != 30*time.Second || len(o.kernels) != 1 {
		t.Errorf("parseArgs(%q) = %+v, %v", fl, o, err)
	}
	if o, err := parseArgs([]string{"--version"}, io.Discard); err != nil || !o.version {
		t.Errorf("--version: %+v, %v", o, err)
	}
	var usage strings.Builder
	if _, err := parseArgs([]string{"--help"}, &usage); !errors.Is(err, pflag.ErrHelp) || !strings.Contains(usage.String(), "--runtime-dir") || strings.Contains(usage.String(), "--runtime ") {
		t.Errorf("--help: %v, usage:\n%s", err, usage.String())
	}
	for _, tc := range []struct {
		arg  string
		want int64
	}{{"--preserve-max-bytes=1.5G", 3 << 29}, {"--preserve-max-bytes=4096", 4096}, {"--preserve-max-bytes=infinity", -1}, {"-preserve-max-bytes=0", 0}} {
		if o, err := parseArgs([]string{tc.arg, "--metrics-listen=127.0.0.1:9", "--metrics-textfile=/t"}, io.Discard); err != nil || o.preserveMax != tc.want || o.metricsListen != "127.0.0.1:9" || o.metricsTextfile != "/t" {
			t.Errorf("parseArgs(%s) = %+v, %v; want preserveMax %d", tc.arg, o, err, tc.want)
		}
	}
	for _, bad := range [][]string{{"--preserve-max-bytes=lots"}, {"--preserve-max-bytes=-1"}, {"--units"}, {"-bogus"}, {"--bogus"}, {"extra"}, {"--log-level", "x", "extra"}} {
		if o, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("parseArgs(%q) = %+v, want an error", bad, o)
		}
	}
}

// TestSameVersion: make build gives luod and luoctl the version from git
// describe (not a constant), and both report it.
func TestSameVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries")
	}
	for _, tool := range []string{"go", "make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("no " + tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	cmd := exec.Command("make", "-C", root, "build", "BIN="+bin, "VERSION=9.8.7-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	for _, c := range []struct{ bin, want string }{{"luod", "luod 9.8.7-test"}, {"luoctl", "luoctl 9.8.7-test"}} {
		out, err := exec.Command(filepath.Join(bin, c.bin), "--version").Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != c.want {
			t.Errorf("%s --version = %q, %v; want %q", c.bin, got, err, c.want)
		}
	}
	describe, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	if err := exec.Command("make", "-C", root, "build", "BIN="+bin).Run(); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(filepath.Join(bin, "luod"), "--version").Output()
	if got, want := strings.TrimSpace(string(out)), "luod "+strings.TrimSpace(string(describe)); got != want {
		t.Errorf("luod --version = %q after make build, want %q", got, want)
	}
}

// TestManPageHasEveryOption: docs/man/luod.8 documents each of luod's
// options (the hidden old spelling aside).
func TestManPageHasEveryOption(t *testing.T) {
	b, err := os.ReadFile("../../docs/man/luod.8")
	if err != nil {
		t.Fatal(err)
	}
	page := strings.ReplaceAll(string(b), `\-`, "-")
	flagSet(&options{}).VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && !strings.Contains(page, "--"+f.Name) {
			t.Errorf("docs/man/luod.8 does not document --%s", f.Name)
		}
	})
}
