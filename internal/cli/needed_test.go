package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/cli"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/control/controltest"
	"github.com/liveupdate/luo/internal/kimage/kimagetest"
)

// runOn runs luoctl against socket on a kernel of release running.
func runOn(t *testing.T, socket, running string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cli.Env{Stdout: &out, Stderr: &errb, Release: func() string { return running },
		Getenv: func(k string) string {
			if k == cli.SocketEnv {
				return socket
			}
			return ""
		}}
	code := env.Main(context.Background(), args)
	return result{code, out.String(), errb.String()}
}

// TestUpdateNeeded: exit 0 for a staged update whose kernel is loaded, or
// a newer kernel image on disk (by its boot header's release, compared as
// sort -V does); 1 otherwise; luod unreachable is not "needed".
func TestUpdateNeeded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, version string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, kimagetest.BzImage(version, []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00")), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("vmlinuz-7.2.13", "7.2.13 (builder@debian) #1 SMP")
	write("vmlinuz-7.10.1", "7.10.1 (builder@debian) #1 SMP")
	write("vmlinuz-7.9.9", "7.9.9 (builder@debian) #1 SMP")
	// A name that lies: the header's release counts.
	write("vmlinuz-9.9.9", "6.1.0-18-amd64 (x) #1")
	os.WriteFile(filepath.Join(dir, "vmlinuz-junk"), []byte("not a kernel"), 0o644)
	glob := "--kernels=" + filepath.Join(dir, "vmlinuz-*")

	notStaged := controltest.New(t, map[string]func(*control.Call){
		control.MethodGetStagedUpdate: controltest.Error(control.ErrNotStaged, map[string]string{"message": "no update is staged"}),
	})
	check(t, runOn(t, notStaged, "7.2.13", "update", "needed", glob), 0,
		"newer kernel: "+filepath.Join(dir, "vmlinuz-7.10.1")+" (7.10.1, running 7.2.13)\n", "")
	check(t, runOn(t, notStaged, "7.10.1", "update", "needed", glob), cli.ExitFailure,
		"no update needed: nothing staged, no kernel newer than 7.10.1\n", "luoctl: no update needed\n")
	check(t, runOn(t, notStaged, "7.2.13", "update", "needed", "--kernels="+filepath.Join(dir, "none-*")), cli.ExitFailure,
		"no update needed: nothing staged, no kernel newer than 7.2.13\n", "luoctl: no update needed\n")
	r := runOn(t, notStaged, "6.1.0-12-amd64", "update", "needed", glob, "--json")
	var n cli.Needed
	decodeJSON(t, r.stdout, &n)
	if r.code != 0 || !n.Needed || n.Staged || n.Release != "7.10.1" || n.Running != "6.1.0-12-amd64" {
		t.Errorf("--json: exit %d, %+v", r.code, n)
	}

	staged := func(loaded bool) string {
		return controltest.New(t, map[string]func(*control.Call){
			control.MethodGetStagedUpdate: func(c *control.Call) {
				_ = c.Reply(control.Staged{Kernel: "/boot/next", Loaded: loaded})
			},
		})
	}
	check(t, runOn(t, staged(true), "7.10.1", "update", "needed", glob), 0, "staged update waiting: /boot/next\n", "")
	// A staged kernel unloaded behind luod's back is not waiting: the disk decides.
	check(t, runOn(t, staged(false), "7.10.1", "update", "needed", glob), cli.ExitFailure,
		"no update needed: nothing staged, no kernel newer than 7.10.1\n", "luoctl: no update needed\n")

	missing := filepath.Join(t.TempDir(), "none")
	if r := runOn(t, missing, "7.2.13", "update", "needed", glob); r.code != cli.ExitUnreachable || r.stdout != "" {
		t.Errorf("luod unreachable: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := runOn(t, notStaged, "7.2.13", "update", "needed", "--kernels=["); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "--kernels") {
		t.Errorf("bad glob: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"7.2.13", "7.3.4", -1}, {"7.10", "7.9", 1}, {"6.1.0-21-amd64", "6.1.0-18-amd64", 1},
		{"7.3.4", "7.3.4", 0}, {"7.3", "7.3.1", -1}, {"7.3.0-rc1", "7.3.0", 1}, {"a", "b", -1},
	} {
		if got := cli.CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
