package manifest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sample() *Manifest {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	return &Manifest{
		Version: Version, Kind: "kexec", Count: 3,
		From:     Kernel{Release: "7.2.13", Cmdline: "console=ttyS0 liveupdate=on"},
		To:       Kernel{Image: "/boot/bzImage-7.3", Cmdline: "console=ttyS0 liveupdate=on"},
		Timeline: Timeline{Requested: t0, Loaded: t0.Add(time.Second), StopBegin: t0.Add(2 * time.Second)},
		Units: map[string]*Unit{
			"counter.service": {Active: true, Entries: []Entry{
				{Name: "state", Kind: KindMemfd, Token: 1, Size: 4096},
				{Name: "sess", Kind: KindSession, Session: "luod/counter/sess", LUOSession: true},
			}, Lost: []Lost{{Name: "sock", Reason: "a socket"}}},
			"idle.service": {Entries: []Entry{}},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	b, err := Encode(m, Capacity(m))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != Capacity(m) || len(b)%(64<<10) != 0 {
		t.Fatalf("encoded %d bytes, capacity %d", len(b), Capacity(m))
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
}

func TestEncodeTooSmall(t *testing.T) {
	if _, err := Encode(sample(), 10); err == nil {
		t.Fatal("Encode into 10 bytes succeeded")
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		version        bool
	}{
		{"empty", "", "not valid JSON", false},
		{"garbage", "\x01\x02", "not valid JSON", false},
		{"no version", `{"kind":"kexec"}`, "no version", false},
		{"future", `{"version":2,"units":"whatever"}`, "version 2", true},
		{"old", `{"version":0}`, "version 0", true},
		{"bad kind", `{"version":1,"kind":"x"}`, "unknown kind", false},
		{"token 0", `{"version":1,"kind":"kexec","units":{"a.service":{"entries":[{"name":"x","kind":"memfd","token":0}]}}}`, "token 0", false},
		{"dup token", `{"version":1,"kind":"kexec","units":{"a.service":{"entries":[{"name":"x","kind":"memfd","token":1},{"name":"y","kind":"memfd","token":1}]}}}`, "already used", false},
		{"bad fdname", `{"version":1,"kind":"kexec","units":{"a.service":{"entries":[{"name":"a:b","kind":"memfd","token":1}]}}}`, "invalid fd name", false},
		{"long session", `{"version":1,"kind":"kexec","units":{"a.service":{"entries":[{"name":"s","kind":"session","session":"` + strings.Repeat("s", 64) + `"}]}}}`, "invalid session name", false},
		{"unknown entry kind", `{"version":1,"kind":"kexec","units":{"a.service":{"entries":[{"name":"s","kind":"socket"}]}}}`, "unknown kind", false},
		{"null unit", `{"version":1,"kind":"kexec","units":{"a.service":null}}`, "null", false},
		{"bad unit name", `{"version":1,"kind":"kexec","units":{"a/b":{}}}`, "invalid unit name", false},
		{"junk after padding", "{\"version\":1,\"kind\":\"kexec\"}\x00\x00x", "after the NUL", false},
	} {
		_, err := Decode([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Decode = %v, want error containing %q", tc.name, err, tc.want)
		}
		if errors.Is(err, ErrVersion) != tc.version {
			t.Errorf("%s: errors.Is(ErrVersion) = %v, want %v", tc.name, !tc.version, tc.version)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := Encode(sample(), 0)
	f.Add(b)
	f.Add([]byte(`{"version":1,"kind":"soft","units":{"x.service":{"entries":[{"name":"a","kind":"fd","fd":5}]}}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and decode to the same thing.
		b2, err := Encode(m, 0)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Decode(b2)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		b3, _ := Encode(m2, 0)
		if string(b2) != string(b3) {
			t.Fatalf("unstable encoding:\n%s\n%s", b2, b3)
		}
	})
}
