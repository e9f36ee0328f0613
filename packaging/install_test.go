package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// need skips without a tool, or fails under $CI, which installs them.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing on this CI machine", tool)
			}
			t.Skipf("no %s here", tool)
		}
	}
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestInstall: make install DESTDIR=... PREFIX=/usr installs everything,
// "man luoctl", "man luoctl-update-run", "man luod" and "man
// luod.service" show the pages, and bash completes luoctl's commands.
func TestInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs")
	}
	need(t, "make", "man", "bash")
	root := t.TempDir()
	run(t, nil, "make", "-C", "..", "--no-print-directory", "install", "DESTDIR="+root, "PREFIX=/usr", "BIN="+t.TempDir(), "VERSION=1.2.3-test")
	for _, f := range []string{"usr/sbin/luod", "usr/sbin/luod-exec", "usr/bin/luoctl"} {
		if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s: %v, not an executable", f, err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/luod.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=/usr/sbin/luod $LUOD_OPTS\n") || !strings.Contains(string(unit), "Type=notify") {
		t.Errorf("luod.service: %v\n%s", err, unit)
	}
	if v := run(t, nil, filepath.Join(root, "usr/sbin/luod"), "--version"); v != "luod 1.2.3-test\n" {
		t.Errorf("installed luod --version: %q", v)
	}

	manpath := filepath.Join(root, "usr/share/man")
	for page, want := range map[string]string{
		"luoctl":            "luoctl controls luod",
		"luoctl-update-run": "--staged",
		"luod":              "--runtime-dir",
		"luod.service":      "FileDescriptorStorePreserve=",
	} {
		out := run(t, []string{"MANPAGER=cat", "MANWIDTH=200"}, "man", "--manpath="+manpath, page)
		if !strings.Contains(out, want) {
			t.Errorf("man %s does not say %q:\n%s", page, want, out)
		}
	}

	luoctl := filepath.Join(root, "usr/bin/luoctl")
	bashComp := filepath.Join(root, "usr/share/bash-completion/completions/luoctl")
	if out := run(t, nil, "bash", "-c", "source "+bashComp+" && complete -p luoctl"); !strings.Contains(out, "__start_luoctl") {
		t.Errorf("bash does not complete luoctl after loading %s: %s", bashComp, out)
	}
	// What the loaded completion asks luoctl for "luoctl update <TAB>".
	out := run(t, nil, luoctl, "__complete", "update", "")
	for _, sub := range []string{"plan", "run", "stage", "status", "unstage"} {
		if !strings.Contains(out, "\n"+sub+"\t") && !strings.HasPrefix(out, sub+"\t") {
			t.Errorf("luoctl update <TAB> does not offer %s:\n%s", sub, out)
		}
	}
	for _, f := range []string{"usr/share/zsh/vendor-completions/_luoctl", "usr/share/fish/vendor_completions.d/luoctl.fish"} {
		if b, err := os.ReadFile(filepath.Join(root, f)); err != nil || !strings.Contains(string(b), "luoctl") {
			t.Errorf("%s: %v", f, err)
		}
	}

	run(t, nil, "make", "-C", "..", "--no-print-directory", "uninstall", "DESTDIR="+root, "PREFIX=/usr")
	var left []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, strings.TrimPrefix(p, root))
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("make uninstall left %v", left)
	}
}

// TestDeb: make deb builds a package with a Debian version made from the
// build's version, the binaries, the unit, compressed manual pages and the
// completions, owned by root.
func TestDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a package")
	}
	need(t, "make", "dpkg-deb")
	for _, c := range []struct{ version, debVersion string }{{"v1.2.3-4-gabcdef0", "1.2.3+4+gabcdef0"}, {"5d9887d-dirty", "0~git5d9887d+dirty"}} {
		out := t.TempDir()
		cmd := exec.Command("../packaging/deb.sh", out)
		cmd.Dir = "."
		cmd.Env = append(os.Environ(), "VERSION="+c.version)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("deb.sh: %v\n%s", err, b)
		}
		deb := strings.TrimSpace(string(b))
		if !strings.Contains(filepath.Base(deb), "luo_"+c.debVersion+"_") {
			t.Errorf("VERSION=%s gave %s, want version %s", c.version, deb, c.debVersion)
		}
		if v := run(t, nil, "dpkg-deb", "--field", deb, "Version"); strings.TrimSpace(v) != c.debVersion {
			t.Errorf("Version: %q, want %q", v, c.debVersion)
		}
		list := run(t, nil, "dpkg-deb", "--contents", deb)
		for _, f := range []string{"./usr/sbin/luod", "./usr/sbin/luod-exec", "./usr/bin/luoctl", "./usr/lib/systemd/system/luod.service",
			"./usr/share/man/man1/luoctl.1.gz", "./usr/share/man/man8/luod.8.gz", "./usr/share/man/man5/luod.service.5.gz",
			"./usr/share/bash-completion/completions/luoctl"} {
			if !strings.Contains(list, " "+f+"\n") {
				t.Errorf("%s lacks %s", deb, f)
			}
		}
		for _, l := range strings.Split(strings.TrimSpace(list), "\n") {
			if f := strings.Fields(l); len(f) < 6 || f[1] != "root/root" || (f[5] == "./" && f[0] != "drwxr-xr-x") {
				t.Errorf("entry not root-owned with sane modes: %s", l)
			}
		}
	}
}
