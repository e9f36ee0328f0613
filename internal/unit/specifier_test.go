package unit

import (
	"errors"
	"strings"
	"testing"
)

func TestSpecifiers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		unit string
		in   string
		want string
	}{
		{"web@blue.service", "%n|%N|%p|%P|%i|%I|%j|%J|%f", "web@blue.service|web@blue|web|web|blue|blue|web|web|/blue"},
		{"getty@tty-1.service", "%i|%I|%f", "tty-1|tty/1|/tty/1"},
		{"foo-bar-baz.service", "%p|%P|%i|%I|%j|%J|%f|%N", "foo-bar-baz|foo/bar/baz|||baz|baz|/foo/bar/baz|foo-bar-baz"},
		{`a\x2db-c.service`, "%P|%j|%J", "a-b/c|c|c"},
		{`x@a\x2fb.service`, "%I|%f", "a/b|/a/b"},
		{"x@-.service", "%f", "/"},
		{"dash-.service", "[%j]", "[]"},
		{"c.service", "%t %S %C %L %E %T %V %h %s %u %U %g %G", "/run /var/lib /var/cache /var/log /etc /tmp /var/tmp /root /bin/sh root 0 root 0"},
		{"c.service", "100%", "100%"},
		{"c.service", "%%", "%"},
		{"c.service", "%%%", "%%"},
		{"c.service", "%%n", "%n"},
		{"c.service", "a%-b% c%/d%", "a%-b% c%/d%"},
		{"c.service", "%t/%n.sock", "/run/c.service.sock"},
		{"c.service", "no specifiers", "no specifiers"},
		{"c.service", "", ""},
	}
	for _, tt := range tests {
		got, err := newSpecifiers(tt.unit).expand(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("%s: expand(%q) = %q, %v; want %q", tt.unit, tt.in, got, err, tt.want)
		}
	}
}

func TestSpecifierErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		unit, in, want string
		unsupported    bool
	}{
		{"c.service", "%H", "%H", true},
		{"c.service", "%m", "%m", true},
		{"c.service", "x%bx", "%b", true},
		{"c.service", "%z", "%z", true},
		{"c.service", "%0", "%0", true},
		{`x@a\xzz.service`, "%I", "%I", false},
		{`x@a\x00.service`, "%I", "%I", false},
		{`x@a\x2f.service`, "%f", "%f", false},
		{"x@a--b.service", "%f", "%f", false},
		{`x@\x2e\x2e.service`, "%f", "%f", false},
		{"x.service", "%f", "", false}, // valid: /x
	}
	for _, tt := range tests {
		_, err := newSpecifiers(tt.unit).expand(tt.in)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: expand(%q): %v", tt.unit, tt.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: expand(%q) error = %v, want one naming %s", tt.unit, tt.in, err, tt.want)
			continue
		}
		if errors.Is(err, errors.ErrUnsupported) != tt.unsupported {
			t.Errorf("%s: expand(%q) error = %v, ErrUnsupported: want %v", tt.unit, tt.in, err, tt.unsupported)
		}
	}
}

// The package doc lists every supported specifier; keep the table honest.
func TestSpecifierTable(t *testing.T) {
	t.Parallel()
	sp := newSpecifiers("a@b.service")
	for c := byte(0); c < 128; c++ {
		if !isAlnum(c) {
			continue
		}
		_, err := sp.lookup(c)
		_, documented := specifierTable[c]
		if (err == nil) != documented {
			t.Errorf("%%%c: lookup error %v, documented %v", c, err, documented)
		}
	}
}
