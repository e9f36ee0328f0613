package activation

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/liveupdate/luo/sdnotify"
)

func TestParseNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []string
		wantErr string // substring; "" means success
	}{
		{in: "web", want: []string{"web"}},
		{in: "web:db:web", want: []string{"web", "db", "web"}},
		{in: "stored:unknown:connection", want: []string{"stored", "unknown", "connection"}},
		{in: "a::b", want: []string{"a", "", "b"}},
		{in: "", want: []string{""}},
		{in: ":", want: []string{"", ""}},
		{in: "with space=~!", want: []string{"with space=~!"}},
		{in: strings.Repeat("n", 255), want: []string{strings.Repeat("n", 255)}},
		{in: "ok:" + strings.Repeat("n", 256), wantErr: "entry 1"},
		{in: "a\tb", wantErr: "byte 0x09 at offset 1"},
		{in: "ok:x\x7f", wantErr: "entry 1 \"x\\x7f\": byte 0x7f at offset 1"},
		{in: "\x80", wantErr: "byte 0x80 at offset 0"},
		{in: "a\nb", wantErr: "byte 0x0a"},
		{in: "caf\u00e9", wantErr: "byte 0xc3 at offset 3"},
	}
	for _, tt := range tests {
		got, err := ParseNames(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseNames(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseNames(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzParseNames checks that ParseNames never panics, that what it accepts
// joins back to its input, and that it agrees with sdnotify.ValidFDName, the
// check on the sending side.
func FuzzParseNames(f *testing.F) {
	for _, s := range []string{"web", "web:db:web", "a::b", "", ":", "a\tb", "x\x7f", "\x80", "caf\u00e9", strings.Repeat("n", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ParseNames(s)
		parts := strings.Split(s, ":")
		allValid := true
		for _, p := range parts {
			if sdnotify.ValidFDName(p) != nil {
				allValid = false
			}
		}
		if err != nil {
			if names != nil {
				t.Fatalf("ParseNames(%q) returned %q with error %v", s, names, err)
			}
			if allValid {
				t.Fatalf("ParseNames(%q) = %v, but sdnotify.ValidFDName accepts every entry", s, err)
			}
			return
		}
		if !allValid {
			t.Fatalf("ParseNames(%q) accepted a name sdnotify.ValidFDName rejects", s)
		}
		if strings.Join(names, ":") != s {
			t.Fatalf("ParseNames(%q) = %q, does not join back", s, names)
		}
		for _, n := range names {
			if len(n) > 255 || strings.ContainsAny(n, ":") {
				t.Fatalf("ParseNames(%q) accepted %q", s, n)
			}
			for i := 0; i < len(n); i++ {
				if n[i] < 0x20 || n[i] > 0x7e {
					t.Fatalf("ParseNames(%q) accepted byte 0x%02x", s, n[i])
				}
			}
		}
	})
}

func TestParseEnv(t *testing.T) {
	t.Parallel()
	const pid = 4242
	const ourID = 77
	idOK := func() (uint64, bool, error) { return ourID, true, nil }
	idUnsupported := func() (uint64, bool, error) { return 0, false, nil }
	idFails := func() (uint64, bool, error) { return 0, false, errors.New("pidfd_open: too many open files") }
	unknown := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = "unknown"
		}
		return s
	}
	tests := []struct {
		name     string
		env      map[string]string
		pidFDID  func() (uint64, bool, error)
		want     listenEnv
		wantErr  string // substring; "" means success
		notForUs bool
	}{
		{name: "not activated", env: map[string]string{}, want: listenEnv{}},
		{name: "not activated, stray names", env: map[string]string{"LISTEN_FDNAMES": "a", "LISTEN_PID": "4242"}, want: listenEnv{}},
		{name: "names", env: map[string]string{"LISTEN_FDS": "3", "LISTEN_PID": "4242", "LISTEN_FDNAMES": "a:b:a"},
			want: listenEnv{n: 3, names: []string{"a", "b", "a"}}},
		{name: "no names", env: map[string]string{"LISTEN_FDS": "2", "LISTEN_PID": "4242"},
			want: listenEnv{n: 2, names: unknown(2)}},
		{name: "zero fds", env: map[string]string{"LISTEN_FDS": "0", "LISTEN_PID": "4242"}, want: listenEnv{names: []string{}}},
		{name: "zero fds empty names", env: map[string]string{"LISTEN_FDS": "0", "LISTEN_PID": "4242", "LISTEN_FDNAMES": ""}, want: listenEnv{}},
		{name: "one fd empty name", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "4242", "LISTEN_FDNAMES": ""},
			want: listenEnv{n: 1, names: []string{""}}},
		{name: "pidfdid matches", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "4242", "LISTEN_PIDFDID": "77", "LISTEN_FDNAMES": "x"},
			pidFDID: idOK, want: listenEnv{n: 1, names: []string{"x"}}},
		{name: "pidfdid mismatch", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "4242", "LISTEN_PIDFDID": "78"},
			pidFDID: idOK, wantErr: "LISTEN_PIDFDID=78, but our pidfd inode is 77", notForUs: true},
		{name: "pidfdid unsupported: skipped", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "4242", "LISTEN_PIDFDID": "78"},
			pidFDID: idUnsupported, want: listenEnv{n: 1, names: unknown(1)}},
		{name: "pidfdid check fails", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "4242", "LISTEN_PIDFDID": "77"},
			pidFDID: idFails, wantErr: "too many open files"},
		{name: "pidfdid malformed", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "4242", "LISTEN_PIDFDID": "-1"},
			pidFDID: idOK, wantErr: "malformed LISTEN_PIDFDID"},
		{name: "other pid", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "1"},
			wantErr: "LISTEN_PID=1, but our PID is 4242", notForUs: true},
		{name: "other pid wins over malformed fds", env: map[string]string{"LISTEN_FDS": "x", "LISTEN_PID": "1"}, notForUs: true, wantErr: "our PID"},
		{name: "no pid", env: map[string]string{"LISTEN_FDS": "1"}, wantErr: "LISTEN_PID is not", notForUs: true},
		{name: "pid malformed", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "42x"}, wantErr: "malformed LISTEN_PID"},
		{name: "pid zero", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "0"}, wantErr: "malformed LISTEN_PID"},
		{name: "pid empty", env: map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": ""}, wantErr: "malformed LISTEN_PID"},
		{name: "fds empty", env: map[string]string{"LISTEN_FDS": "", "LISTEN_PID": "4242"}, wantErr: "malformed LISTEN_FDS"},
		{name: "fds negative", env: map[string]string{"LISTEN_FDS": "-1", "LISTEN_PID": "4242"}, wantErr: "malformed LISTEN_FDS"},
		{name: "fds plus sign", env: map[string]string{"LISTEN_FDS": "+1", "LISTEN_PID": "4242"}, wantErr: "malformed LISTEN_FDS"},
		{name: "fds space", env: map[string]string{"LISTEN_FDS": " 1", "LISTEN_PID": "4242"}, wantErr: "malformed LISTEN_FDS"},
		{name: "fds too many", env: map[string]string{"LISTEN_FDS": "65537", "LISTEN_PID": "4242"}, wantErr: "between 0 and 65536"},
		{name: "fds huge", env: map[string]string{"LISTEN_FDS": "99999999999999999999999", "LISTEN_PID": "4242"}, wantErr: "malformed LISTEN_FDS"},
		{name: "count mismatch", env: map[string]string{"LISTEN_FDS": "2", "LISTEN_PID": "4242", "LISTEN_FDNAMES": "a:b:c"},
			wantErr: "mismatch between LISTEN_FDS=2 and 3 LISTEN_FDNAMES entries"},
		{name: "count mismatch zero", env: map[string]string{"LISTEN_FDS": "0", "LISTEN_PID": "4242", "LISTEN_FDNAMES": "a"},
			wantErr: "mismatch between LISTEN_FDS=0 and 1 LISTEN_FDNAMES entries"},
		{name: "bad name", env: map[string]string{"LISTEN_FDS": "2", "LISTEN_PID": "4242", "LISTEN_FDNAMES": "a:b\x01"},
			wantErr: "LISTEN_FDNAMES entry 1 \"b\\x01\": byte 0x01 at offset 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lookup := func(k string) (string, bool) {
				v, ok := tt.env[k]
				return v, ok
			}
			me := self{pid: pid, pidFDID: tt.pidFDID}
			if me.pidFDID == nil {
				me.pidFDID = func() (uint64, bool, error) {
					t.Error("pidFDID called without LISTEN_PIDFDID")
					return 0, false, nil
				}
			}
			got, err := parseEnv(lookup, me)
			if errors.Is(err, ErrNotForUs) != tt.notForUs {
				t.Errorf("errors.Is(%v, ErrNotForUs) = %v, want %v", err, !tt.notForUs, tt.notForUs)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseEnv = %+v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseEnv: %v", err)
			}
			if got.n != tt.want.n || len(got.names) != len(tt.want.names) || (len(got.names) > 0 && !reflect.DeepEqual(got.names, tt.want.names)) {
				t.Errorf("parseEnv = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNilFiles(t *testing.T) {
	t.Parallel()
	var f *Files
	if f.All() != nil || f.Named("x") != nil || f.Names() != nil || f.Len() != 0 || f.Close() != nil {
		t.Error("nil *Files is not an empty set")
	}
}

// FuzzParseEnv checks that parseEnv never panics on any environment, and that
// an accepted one is consistent: one valid name per fd, at most maxFDs fds,
// and only for our PID.
func FuzzParseEnv(f *testing.F) {
	f.Add("3", "4242", "a:b:a", "", uint8(0b0111))
	f.Add("2", "4242", "", "77", uint8(0b1011))
	f.Add("1", "1", "x", "", uint8(0b0111))
	f.Add("0", "4242", "", "", uint8(0b0111))
	f.Add("65537", "4242", "", "", uint8(0b0011))
	f.Add("1", "4242", "a\x01", "78", uint8(0b1111))
	f.Add("1", "04242", "a", "077", uint8(0b1111))
	f.Fuzz(func(t *testing.T, fds, pid, names, pidfdid string, present uint8) {
		env := map[string]string{}
		for i, kv := range [][2]string{{"LISTEN_FDS", fds}, {"LISTEN_PID", pid}, {"LISTEN_FDNAMES", names}, {"LISTEN_PIDFDID", pidfdid}} {
			if present&(1<<i) != 0 {
				env[kv[0]] = kv[1]
			}
		}
		lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		me := self{pid: 4242, pidFDID: func() (uint64, bool, error) { return 77, true, nil }}
		got, err := parseEnv(lookup, me)
		if err != nil {
			return
		}
		if got.n < 0 || got.n > maxFDs || len(got.names) != got.n {
			t.Fatalf("parseEnv(%q) = %d fds, %d names", env, got.n, len(got.names))
		}
		if p, err := strconv.ParseUint(env["LISTEN_PID"], 10, 64); got.n > 0 && (err != nil || p != 4242) {
			t.Fatalf("parseEnv(%q) accepted fds for another PID", env)
		}
		if v, ok := env["LISTEN_PIDFDID"]; ok && got.n > 0 && strings.TrimLeft(v, "0") != "77" {
			t.Fatalf("parseEnv(%q) accepted a wrong LISTEN_PIDFDID", env)
		}
		for _, n := range got.names {
			if validName(n) != nil || strings.Contains(n, ":") {
				t.Fatalf("parseEnv(%q) accepted name %q", env, n)
			}
		}
	})
}
