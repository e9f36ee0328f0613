package activation

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// parseNamesTests are the table of TestParseNames and the seeds of
// FuzzParseNames.
var parseNamesTests = []struct {
	name    string
	in      string
	want    []string
	wantErr bool
}{
	{name: "one", in: "web", want: []string{"web"}},
	{name: "duplicates", in: "web:db:web", want: []string{"web", "db", "web"}},
	{name: "special names", in: "stored:unknown:connection", want: []string{"stored", "unknown", "connection"}},
	{name: "empty entry", in: "a::b", want: []string{"a", "", "b"}},
	{name: "empty", in: "", want: []string{""}},
	{name: "only separator", in: ":", want: []string{"", ""}},
	{name: "printable", in: "with space=~!", want: []string{"with space=~!"}},
	{name: "longest valid", in: strings.Repeat("n", 255), want: []string{strings.Repeat("n", 255)}},
	// Names that fdname_is_valid() refuses are taken as they are, as
	// sd_listen_fds_with_names takes them: the manager is the judge.
	{name: "too long", in: "ok:" + strings.Repeat("n", 256), want: []string{"ok", strings.Repeat("n", 256)}},
	{name: "tab", in: "a\tb", want: []string{"a\tb"}},
	{name: "DEL", in: "ok:x\x7f", want: []string{"ok", "x\x7f"}},
	{name: "high byte", in: "\x80", want: []string{"\x80"}},
	{name: "newline", in: "a\nb", want: []string{"a\nb"}},
	{name: "UTF-8", in: "caf\u00e9", want: []string{"caf\u00e9"}},
	// No environment variable holds a NUL byte.
	{name: "NUL", in: "a\x00b", wantErr: true},
	{name: "NUL in second entry", in: "ok:\x00", wantErr: true},
}

func TestParseNames(t *testing.T) {
	t.Parallel()
	for _, tt := range parseNamesTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseNames(tt.in)
			if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseNames(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// FuzzParseNames checks that ParseNames never panics, that it refuses
// exactly the strings with a NUL byte, and that it splits any other string
// at every ':' and nowhere else, so that the names join back to its input.
func FuzzParseNames(f *testing.F) {
	for _, tt := range parseNamesTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ParseNames(s)
		if strings.Contains(s, "\x00") {
			if err == nil || names != nil {
				t.Fatalf("ParseNames(%q) = %q, %v; want an error for the NUL byte", s, names, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseNames(%q): %v", s, err)
		}
		if len(names) != strings.Count(s, ":")+1 {
			t.Fatalf("ParseNames(%q) = %d names, want one more than the %d ':'", s, len(names), strings.Count(s, ":"))
		}
		for _, n := range names {
			if strings.Contains(n, ":") {
				t.Fatalf("ParseNames(%q) gave name %q, which holds a ':'", s, n)
			}
		}
		if strings.Join(names, ":") != s {
			t.Fatalf("ParseNames(%q) = %q, does not join back", s, names)
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
		{name: "names not checked", env: map[string]string{"LISTEN_FDS": "2", "LISTEN_PID": "4242", "LISTEN_FDNAMES": "a:b\x01"},
			want: listenEnv{n: 2, names: []string{"a", "b\x01"}}},
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
// an accepted one is consistent: one name per fd (those of LISTEN_FDNAMES
// when it is set), at most maxFDs fds, and only for our PID.
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
		if v, ok := env["LISTEN_FDNAMES"]; ok && got.n > 0 && strings.Join(got.names, ":") != v {
			t.Fatalf("parseEnv(%q) = names %q, not LISTEN_FDNAMES", env, got.names)
		}
		for _, n := range got.names {
			if strings.ContainsAny(n, ":\x00") {
				t.Fatalf("parseEnv(%q) accepted name %q", env, n)
			}
		}
	})
}
