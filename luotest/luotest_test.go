package luotest

import (
	"regexp"
	"strings"
	"testing"
)

func TestRunPattern(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		match, not []string
	}{
		{name: "TestVMCache", not: []string{"TestVMCache2", "XTestVMCache"}},
		{name: "TestVM/a.b+c", not: []string{"TestVM/aXb+c", "TestVM/a.bbc"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pat := runPattern(tt.name)
			parts := strings.Split(pat, "/")
			matches := func(name string) bool {
				elems := strings.Split(name, "/")
				if len(elems) != len(parts) {
					return false
				}
				for i, p := range parts {
					if !regexp.MustCompile(p).MatchString(elems[i]) {
						return false
					}
				}
				return true
			}
			if !matches(tt.name) {
				t.Errorf("runPattern(%q) = %q does not match the test itself", tt.name, pat)
			}
			for _, n := range tt.not {
				if matches(n) {
					t.Errorf("runPattern(%q) = %q matches %q", tt.name, pat, n)
				}
			}
		})
	}
}

func TestVMConfig(t *testing.T) {
	t.Parallel()
	cfg := Config{
		Services: map[string]string{"svc": "example.com/svc"},
		Units:    map[string]string{"svc.service": "[Service]\nExecStart=/vmtest/bin/svc\n"},
		Files:    map[string][]byte{"etc/svc.conf": []byte("x")},
	}
	c, err := vmConfig(cfg, []string{"/k1", "/k2"}, "TestVMSvc")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"bin/luod":      "github.com/liveupdate/luo/cmd/luod",
		"bin/luod-exec": "github.com/liveupdate/luo/cmd/luod-exec",
		"bin/luoctl":    "github.com/liveupdate/luo/cmd/luoctl",
		"bin/svc":       "example.com/svc",
	} {
		if got := c.Binaries[name]; got != want {
			t.Errorf("Binaries[%q] = %q, want %q", name, got, want)
		}
	}
	if got := string(c.Files["etc/luod/system/svc.service"]); got != cfg.Units["svc.service"] {
		t.Errorf("unit file = %q, want %q", got, cfg.Units["svc.service"])
	}
	if _, ok := cfg.Files["etc/luod/system/svc.service"]; ok {
		t.Error("vmConfig modified Config.Files")
	}
	if !c.Driver || len(c.Init) == 0 || c.Init[0] != BinDir+"/luod" {
		t.Errorf("luod is not PID 1: Init %q, Driver %v", c.Init, c.Driver)
	}

	for _, bad := range []Config{
		{Services: map[string]string{"luod": "example.com/luod"}},
		{Services: map[string]string{"a/b": "example.com/b"}},
		{Units: map[string]string{"../x.service": ""}},
	} {
		if _, err := vmConfig(bad, []string{"/k"}, "TestVM"); err == nil {
			t.Errorf("vmConfig(%+v) succeeded", bad)
		}
	}
}
