package update

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/fdstore"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// kexecManifest is what a kexec writes: every fate, tokens and sessions.
func kexecManifest() *Manifest {
	return &Manifest{
		Version: ManifestVersion, Kind: Kexec, Count: 3,
		From:     Boot{Release: "7.2.13", Cmdline: "console=ttyS0 liveupdate=on"},
		To:       Boot{Image: "/boot/bzImage-7.3", Cmdline: "console=ttyS0 liveupdate=on"},
		Timeline: Timeline{Requested: t0, Loaded: t0.Add(time.Second), StopBegin: t0.Add(2 * time.Second)},
		Units: []Unit{
			{Name: "counter.service", Active: true, Stopped: t0.Add(3 * time.Second), Entries: []Entry{
				{Name: "state", Type: "memfd", Fate: FatePreserve, Token: 1, Size: 4096, Origin: fdstore.OriginNotify, Added: t0},
				{Name: "sess", Type: "luo-session", Fate: FateSession, Session: "luod/counter/sess", Origin: fdstore.OriginHandedOut},
				{Name: "own", Type: "memfd", Fate: FateSession, Reason: "own session"},
				{Name: "old", Type: "luo-session", Fate: FateDrop, Session: "luod/counter/sess", Incoming: true},
				{Name: "sock", Type: "sock", Fate: FateLost, Reason: "a socket"},
			}},
			{Name: "idle.service", Entries: []Entry{}},
		},
	}
}

// reexecManifest is what a re-exec writes: fds, the process state, the
// manager with a report and a completion in flight.
func reexecManifest() *Manifest {
	return &Manifest{
		Version: ManifestVersion, Kind: Reexec, Count: 2,
		Units: []Unit{{Name: "a.service", Active: true, Entries: []Entry{
			{Name: "x", Fate: FateInherit, FD: 7, Poll: true, Origin: fdstore.OriginLUO},
		}, Process: &Process{State: "running", Since: t0, MainPID: 42, SID: 42, StoreMax: 4, Timer: "stop", TimerDeadline: t0}}},
		Manager: &Manager{Started: t0, Reexecs: 1, NotifyFD: 3, ControlFD: 4,
			Report:     &Report{Count: 2, Kind: Kexec, Timeline: []Event{{Name: "requested", Time: t0}}, Units: []ReportUnit{{Name: "a.service", Delivered: []string{"x"}}}},
			Completion: &CompletionState{SessionFD: 5, Pending: []string{"a.service"}, Deadline: t0},
			Held:       &HeldState{SessionFD: 6, Why: "manifest: version 99"}},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	for _, m := range []*Manifest{kexecManifest(), reexecManifest()} {
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
			t.Fatalf("round trip of a %s manifest:\n got %+v\nwant %+v", m.Kind, got, m)
		}
	}
}

func TestEncodeTooSmall(t *testing.T) {
	if _, err := Encode(kexecManifest(), 10); err == nil {
		t.Fatal("Encode into 10 bytes succeeded")
	}
}

func TestDecodeErrors(t *testing.T) {
	const v = `{"version":2,`
	kexec := func(entries string) string {
		return v + `"kind":"kexec","units":[{"name":"a.service","entries":[` + entries + `]}]}`
	}
	reexec := func(manager, entries string) string {
		return v + `"kind":"reexec","manager":` + manager + `,"units":[{"name":"a.service","process":{"state":"dead"},"entries":[` + entries + `]}]}`
	}
	const mgr = `{"notify_fd":3,"control_fd":4}`
	for _, tc := range []struct {
		name, in, want string
		version        bool
	}{
		{"empty", "", "not valid JSON", false},
		{"garbage", "\x01\x02", "not valid JSON", false},
		{"no version", `{"kind":"kexec"}`, "no version", false},
		{"future", `{"version":3,"units":"whatever"}`, "version 3", true},
		{"version 1", `{"version":1,"kind":"kexec","units":{}}`, "version 1", true},
		{"unknown field", v + `"kind":"kexec","units":[],"extra":1}`, "unknown field", false},
		{"bad kind", v + `"kind":"x"}`, "unknown kind", false},
		{"negative count", v + `"kind":"kexec","count":-1}`, "negative count", false},
		{"kexec with manager", v + `"kind":"kexec","manager":` + mgr + `}`, "no manager state", false},
		{"reexec without manager", v + `"kind":"reexec"}`, "needs the manager state", false},
		{"token 0", kexec(`{"name":"x","fate":"preserve","token":0}`), "token 0", false},
		{"dup token", kexec(`{"name":"x","fate":"preserve","token":1},{"name":"y","fate":"preserve","token":1}`), "already used", false},
		{"bad fdname", kexec(`{"name":"a:b","fate":"preserve","token":1}`), "invalid fd name", false},
		{"long session", kexec(`{"name":"s","fate":"session","session":"` + strings.Repeat("s", 64) + `"}`), "64 bytes", false},
		{"dup session", kexec(`{"name":"s","fate":"session","session":"x"},{"name":"t","fate":"session","session":"x"}`), "already listed", false},
		{"inherit in kexec", kexec(`{"name":"s","fate":"inherit","fd":5}`), "fate \"inherit\" in a kexec", false},
		{"unknown fate", kexec(`{"name":"s","fate":"teleport"}`), "fate \"teleport\"", false},
		{"process in kexec", v + `"kind":"kexec","units":[{"name":"a","process":{"state":"dead"},"entries":[]}]}`, "process state", false},
		{"no process in reexec", v + `"kind":"reexec","manager":` + mgr + `,"units":[{"name":"a","entries":[]}]}`, "process state", false},
		{"preserve in reexec", reexec(mgr, `{"name":"x","fate":"preserve","token":1}`), "fate \"preserve\" in a reexec", false},
		{"fd 2", reexec(mgr, `{"name":"x","fate":"inherit","fd":2}`), "invalid fd number 2", false},
		{"fd of the notify socket", reexec(mgr, `{"name":"x","fate":"inherit","fd":3}`), "already used by the notify socket", false},
		{"output fd of the control socket", v + `"kind":"reexec","manager":` + mgr + `,"units":[{"name":"a.service","process":{"state":"running","output":[{"fd":4,"stream":"stdout"}]}}]}`, "invalid output fd 4", false},
		{"output stream", v + `"kind":"reexec","manager":` + mgr + `,"units":[{"name":"a.service","process":{"state":"running","output":[{"fd":7,"stream":"stdin"}]}}]}`, "invalid output stream", false},
		{"entry on an output fd", v + `"kind":"reexec","manager":` + mgr + `,"units":[{"name":"a.service","process":{"state":"running","output":[{"fd":7,"stream":"stdout"}]},"entries":[{"name":"x","fate":"inherit","fd":7}]}]}`, "fd 7 already used by a.service", false},
		{"dup fd", reexec(mgr, `{"name":"x","fate":"inherit","fd":9},{"name":"y","fate":"inherit","fd":9}`), "fd 9 already used", false},
		{"same sockets", reexec(`{"notify_fd":3,"control_fd":3}`, ``), "share fd 3", false},
		{"bad socket fd", reexec(`{"notify_fd":0,"control_fd":4}`, ``), "invalid notify socket fd", false},
		{"session fd clash", reexec(`{"notify_fd":3,"control_fd":4,"completion":{"session_fd":4}}`, ``), "invalid session fd 4", false},
		{"held fd clash", reexec(`{"notify_fd":3,"control_fd":4,"completion":{"session_fd":5},"held":{"session_fd":5}}`, ``), "invalid session fd 5", false},
		{"dup unit", v + `"kind":"kexec","units":[{"name":"a","entries":[]},{"name":"a","entries":[]}]}`, "listed twice", false},
		{"bad unit name", v + `"kind":"kexec","units":[{"name":"a/b","entries":[]}]}`, "invalid unit name", false},
		{"empty unit name", v + `"kind":"kexec","units":[{"name":"","entries":[]}]}`, "invalid unit name", false},
		{"junk after padding", v + `"kind":"kexec"}` + "\x00\x00x", "after the NUL", false},
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

// FuzzDecode: Decode never panics, and whatever it accepts is written back
// by Encode into bytes that decode to the same manifest.
func FuzzDecode(f *testing.F) {
	for _, m := range []*Manifest{kexecManifest(), reexecManifest()} {
		b, _ := Encode(m, 0)
		f.Add(b)
	}
	f.Add([]byte(`{"version":2,"kind":"soft","manager":{"notify_fd":3,"control_fd":4},"units":[{"name":"x.service","process":{"state":"dead"},"entries":[{"name":"a","fate":"inherit","fd":5}]}]}`))
	f.Add([]byte(`{"version":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		b2, err := Encode(m, 0)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Decode(b2)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("not read back as written:\n%+v\n%+v", m, m2)
		}
	})
}
