package sdnotify

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestBuildMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		states  []string
		want    string
		wantErr error // nil: success
	}{
		{name: "one", states: []string{"READY=1"}, want: "READY=1"},
		{name: "several", states: []string{"FDSTORE=1", "FDNAME=db", "FDPOLL=0"}, want: "FDSTORE=1\nFDNAME=db\nFDPOLL=0"},
		{name: "empty value", states: []string{"STATUS="}, want: "STATUS="},
		{name: "value with equals", states: []string{"STATUS=a=b"}, want: "STATUS=a=b"},
		{name: "private key", states: []string{"X_FOO_2=bar baz"}, want: "X_FOO_2=bar baz"},
		{name: "exactly max", states: []string{"STATUS=" + strings.Repeat("x", MaxMessageSize-len("STATUS="))}, want: "STATUS=" + strings.Repeat("x", MaxMessageSize-len("STATUS="))},
		{name: "max with newlines", states: []string{"A=" + strings.Repeat("x", 2045), "B=" + strings.Repeat("y", 2046)}, want: "A=" + strings.Repeat("x", 2045) + "\nB=" + strings.Repeat("y", 2046)},
		{name: "no states", states: nil, wantErr: syscall.EINVAL},
		{name: "empty state", states: []string{""}, wantErr: syscall.EINVAL},
		{name: "empty key", states: []string{"=1"}, wantErr: syscall.EINVAL},
		{name: "no equals", states: []string{"READY"}, wantErr: syscall.EINVAL},
		{name: "lower-case key", states: []string{"ready=1"}, wantErr: syscall.EINVAL},
		{name: "space in key", states: []string{"READY =1"}, wantErr: syscall.EINVAL},
		{name: "newline in key", states: []string{"READY\nSTOPPING=1"}, wantErr: syscall.EINVAL},
		{name: "newline in value", states: []string{"STATUS=a\nREADY=1"}, wantErr: syscall.EINVAL},
		{name: "trailing newline", states: []string{"READY=1\n"}, wantErr: syscall.EINVAL},
		{name: "NUL in value", states: []string{"STATUS=a\x00b"}, wantErr: syscall.EINVAL},
		{name: "NUL in key", states: []string{"REA\x00DY=1"}, wantErr: syscall.EINVAL},
		{name: "second state bad", states: []string{"READY=1", "bad"}, wantErr: syscall.EINVAL},
		{name: "one byte too long", states: []string{"STATUS=" + strings.Repeat("x", MaxMessageSize-len("STATUS=")+1)}, wantErr: syscall.E2BIG},
		{name: "too long with newlines", states: []string{"A=" + strings.Repeat("x", 2046), "B=" + strings.Repeat("y", 2046)}, wantErr: syscall.E2BIG},
		{name: "huge", states: []string{"STATUS=" + strings.Repeat("x", 1<<20)}, wantErr: syscall.E2BIG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := buildMessage(tt.states)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("buildMessage(%q) = %q, %v; want error wrapping %v", tt.states, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("buildMessage(%q) error: %v", tt.states, err)
			}
			if string(got) != tt.want {
				t.Errorf("buildMessage(%q) = %q, want %q", tt.states, got, tt.want)
			}
		})
	}
}

func TestValidFDName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fdname  string
		wantErr string // substring of the error; "" means valid
	}{
		{name: "simple", fdname: "db"},
		{name: "empty is valid like systemd", fdname: ""},
		{name: "all printable", fdname: " !\"#$%&'()*+,-./0123456789;<=>?@AZ[\\]^_`az{|}~"},
		{name: "max length", fdname: strings.Repeat("n", 255)},
		{name: "too long", fdname: strings.Repeat("n", 256), wantErr: "256 bytes long"},
		{name: "colon", fdname: "a:b", wantErr: "':' at offset 1"},
		{name: "DEL", fdname: "ab\x7f", wantErr: "byte 0x7f at offset 2"},
		{name: "high byte", fdname: "\x80", wantErr: "byte 0x80 at offset 0"},
		{name: "UTF-8", fdname: "caf\u00e9", wantErr: "byte 0xc3 at offset 3"},
		{name: "newline", fdname: "a\n", wantErr: "byte 0x0a at offset 1"},
		{name: "tab", fdname: "\t", wantErr: "byte 0x09 at offset 0"},
		{name: "NUL", fdname: "a\x00", wantErr: "byte 0x00 at offset 1"},
		{name: "unit separator", fdname: "\x1f", wantErr: "byte 0x1f at offset 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidFDName(tt.fdname)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidFDName(%q) = %v, want nil", tt.fdname, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("ValidFDName(%q) = %v, want an EINVAL error containing %q", tt.fdname, err, tt.wantErr)
			}
		})
	}
}

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr    string
		wantErr error // nil: valid
	}{
		{addr: "/run/systemd/notify"},
		{addr: "@abstract"},
		{addr: "/" + strings.Repeat("p", 106)},
		{addr: "/" + strings.Repeat("p", 107), wantErr: syscall.EINVAL},
		{addr: "", wantErr: ErrNoSocket},
		{addr: "@", wantErr: syscall.EINVAL},
		{addr: "relative/path", wantErr: syscall.EINVAL},
		{addr: "unix:/run/x", wantErr: syscall.EINVAL},
		{addr: "/a\x00b", wantErr: syscall.EINVAL},
		{addr: "vsock:2:1234", wantErr: errors.ErrUnsupported},
		{addr: "vsock-stream:2:1234", wantErr: errors.ErrUnsupported},
		{addr: "vsock-dgram:2:1234", wantErr: errors.ErrUnsupported},
		{addr: "vsock-seqpacket:2:1234", wantErr: errors.ErrUnsupported},
	}
	for _, tt := range tests {
		err := checkAddr(tt.addr)
		if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("checkAddr(%q) = %v, want %v", tt.addr, err, tt.wantErr)
		}
	}
	if err := checkAddr("vsock:2:1234"); err == nil || !strings.Contains(err.Error(), "vsock notify sockets are not supported") {
		t.Errorf("checkAddr(vsock) = %v, want the vsock message", err)
	}
}

// FuzzBuildMessage checks that buildMessage never panics and that whatever
// it accepts is a payload the manager accepts and parses back into the same
// assignments. The first argument is split at 0x1e (record separator) into
// states, so the fuzzer controls their number and content.
func FuzzBuildMessage(f *testing.F) {
	for _, s := range []string{
		"READY=1",
		"FDSTORE=1\x1eFDNAME=db\x1eFDPOLL=0",
		"STATUS=a\nb",
		"STATUS=a\x00b",
		"=1",
		"ready=1",
		"",
		"\x1e",
		"STATUS=" + strings.Repeat("x", 4089),
		"STATUS=" + strings.Repeat("x", 4090),
		"A=" + strings.Repeat("x", 2045) + "\x1eB=" + strings.Repeat("y", 2046),
	} {
		f.Add(s, "")
	}
	f.Add("READY=1", "STATUS=extra")
	f.Fuzz(func(t *testing.T, joined, extra string) {
		states := strings.Split(joined, "\x1e")
		if extra != "" {
			states = append(states, extra)
		}
		b, err := buildMessage(states)
		if err != nil {
			if b != nil {
				t.Fatalf("buildMessage returned %q with error %v", b, err)
			}
			return
		}
		if len(b) > MaxMessageSize {
			t.Fatalf("accepted payload of %d bytes", len(b))
		}
		if bytes.IndexByte(b, 0) >= 0 {
			t.Fatalf("accepted payload with NUL: %q", b)
		}
		lines := strings.Split(string(b), "\n")
		if len(lines) != len(states) {
			t.Fatalf("payload %q has %d lines, want %d", b, len(lines), len(states))
		}
		for i, line := range lines {
			if line != states[i] {
				t.Fatalf("line %d = %q, want %q", i, line, states[i])
			}
			key, _, ok := strings.Cut(line, "=")
			if !ok || key == "" || strings.Trim(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
				t.Fatalf("line %d %q is not KEY=VALUE", i, line)
			}
		}
	})
}
