package notify_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/liveupdate/luo/internal/notify"
	"github.com/liveupdate/luo/sdnotify"
)

func ptr(s string) *string { return &s }

// parseTests are the table for TestParse and the seeds of FuzzParse.
var parseTests = []struct {
	name    string
	payload string
	// want modifies a Message{FDPoll: true}; nil for no typed fields.
	want func(m *notify.Message)
	// fields and ignored, when not nil, are the expected raw lines.
	fields  []notify.Field
	ignored []string
	// problems are substrings of the expected Problems, one per problem.
	problems []string
	// drop is a substring of the DropError's reason when the whole
	// message must be dropped.
	drop string
}{
	// Framing.
	{name: "empty", payload: "", fields: []notify.Field{}, ignored: []string{}},
	{name: "only NUL", payload: "\x00", fields: []notify.Field{}},
	{name: "ready", payload: "READY=1", want: func(m *notify.Message) { m.Ready = true },
		fields: []notify.Field{{"READY", "1"}}},
	{name: "trailing newline", payload: "READY=1\n", want: func(m *notify.Message) { m.Ready = true }},
	{name: "trailing NUL", payload: "READY=1\x00", want: func(m *notify.Message) { m.Ready = true }},
	{name: "two trailing NULs", payload: "READY=1\x00\x00", drop: "embedded NUL"},
	{name: "embedded NUL", payload: "READY=\x001", drop: "embedded NUL"},
	{name: "leading NUL", payload: "\x00READY=1", drop: "embedded NUL"},
	{name: "CRLF", payload: "READY=1\r\nSTATUS=x\r\n",
		want:   func(m *notify.Message) { m.Ready = true; m.Status = ptr("x") },
		fields: []notify.Field{{"READY", "1"}, {"STATUS", "x"}}},
	{name: "CR alone separates", payload: "READY=1\rSTATUS=x",
		fields: []notify.Field{{"READY", "1"}, {"STATUS", "x"}},
		want:   func(m *notify.Message) { m.Ready = true; m.Status = ptr("x") }},
	{name: "empty lines vanish", payload: "\n\n\r\nREADY=1\n\n\nX_A=b\n\n",
		fields: []notify.Field{{"READY", "1"}, {"X_A", "b"}},
		want:   func(m *notify.Message) { m.Ready = true }},
	{name: "value keeps spaces", payload: "STATUS=  a b  ", want: func(m *notify.Message) { m.Status = ptr("  a b  ") }},
	{name: "value with equals", payload: "STATUS=a=b", fields: []notify.Field{{"STATUS", "a=b"}},
		want: func(m *notify.Message) { m.Status = ptr("a=b") }},
	{name: "lines without equals", payload: "hello\nREADY=1\nworld",
		fields:  []notify.Field{{"READY", "1"}},
		ignored: []string{"hello", "world"},
		want:    func(m *notify.Message) { m.Ready = true }},
	{name: "empty key", payload: "=x", fields: []notify.Field{{"", "x"}}},
	{name: "private key", payload: "X_LUO_FOO=bar", fields: []notify.Field{{"X_LUO_FOO", "bar"}}},

	// Backslash escapes, as strv_split_newlines() does them.
	{name: "escape dropped", payload: `STATUS=a\b`, want: func(m *notify.Message) { m.Status = ptr("ab") }},
	{name: "escaped backslash", payload: `STATUS=a\\b`, want: func(m *notify.Message) { m.Status = ptr(`a\b`) }},
	{name: "escaped newline", payload: "STATUS=one\\\ntwo\nREADY=1",
		fields: []notify.Field{{"STATUS", "one\ntwo"}, {"READY", "1"}},
		want:   func(m *notify.Message) { m.Status = ptr("one\ntwo"); m.Ready = true }},
	{name: "escaped CR", payload: "STATUS=a\\\rb", want: func(m *notify.Message) { m.Status = ptr("a\rb") }},
	{name: "escape does not protect equals", payload: `A\=B=C`, fields: []notify.Field{{"A", "B=C"}}},
	{name: "escaped key", payload: `RE\ADY=1`, want: func(m *notify.Message) { m.Ready = true }},
	{name: "trailing backslash", payload: `STATUS=x\`, drop: "lone backslash"},
	{name: "trailing backslash then NUL", payload: "STATUS=x\\\x00", drop: "lone backslash"},
	{name: "quotes are literal", payload: `STATUS="a b"`, want: func(m *notify.Message) { m.Status = ptr(`"a b"`) }},

	// READY/RELOADING/STOPPING are exact lines; all are reported.
	{name: "ready 0", payload: "READY=0"},
	{name: "ready with space", payload: "READY=1 "},
	{name: "ready true", payload: "READY=true"},
	{name: "ready any line", payload: "READY=0\nREADY=1", want: func(m *notify.Message) { m.Ready = true }},
	{name: "all three", payload: "RELOADING=1\nREADY=1\nSTOPPING=1",
		want: func(m *notify.Message) { m.Reloading, m.Ready, m.Stopping = true, true, true }},
	{name: "monotonic", payload: "RELOADING=1\nMONOTONIC_USEC=123456",
		want: func(m *notify.Message) { m.Reloading, m.MonotonicUsec, m.HasMonotonic = true, 123456, true }},
	{name: "monotonic max", payload: "MONOTONIC_USEC=18446744073709551615",
		want: func(m *notify.Message) { m.MonotonicUsec, m.HasMonotonic = math.MaxUint64, true }},
	{name: "monotonic overflow", payload: "MONOTONIC_USEC=18446744073709551616", problems: []string{"MONOTONIC_USEC"}},
	{name: "monotonic negative", payload: "MONOTONIC_USEC=-1", problems: []string{"MONOTONIC_USEC"}},
	{name: "monotonic minus zero", payload: "MONOTONIC_USEC=-0", want: func(m *notify.Message) { m.HasMonotonic = true }},
	{name: "monotonic first wins", payload: "MONOTONIC_USEC=x\nMONOTONIC_USEC=5", problems: []string{"MONOTONIC_USEC"}},

	// STATUS=.
	{name: "status first wins", payload: "STATUS=a\nSTATUS=b", want: func(m *notify.Message) { m.Status = ptr("a") }},
	{name: "status clear", payload: "STATUS=", want: func(m *notify.Message) { m.Status = ptr("") }},
	{name: "status utf8", payload: "STATUS=héllo ✓ 𝄞", want: func(m *notify.Message) { m.Status = ptr("héllo ✓ 𝄞") }},
	{name: "status invalid utf8", payload: "STATUS=a\xffb",
		want: func(m *notify.Message) { m.Status = ptr("") }, problems: []string{"not UTF-8 clean"}},
	{name: "status surrogate", payload: "STATUS=\xed\xa0\x80",
		want: func(m *notify.Message) { m.Status = ptr("") }, problems: []string{"not UTF-8 clean"}},
	{name: "status overlong", payload: "STATUS=\xc0\xaf",
		want: func(m *notify.Message) { m.Status = ptr("") }, problems: []string{"not UTF-8 clean"}},
	{name: "status noncharacter FDD0", payload: "STATUS=\uFDD0",
		want: func(m *notify.Message) { m.Status = ptr("") }, problems: []string{"not UTF-8 clean"}},
	{name: "status noncharacter FFFE", payload: "STATUS=\uFFFE",
		want: func(m *notify.Message) { m.Status = ptr("") }, problems: []string{"not UTF-8 clean"}},
	{name: "status noncharacter 10FFFF", payload: "STATUS=\U0010FFFF",
		want: func(m *notify.Message) { m.Status = ptr("") }, problems: []string{"not UTF-8 clean"}},
	{name: "status FDF0 is fine", payload: "STATUS=\uFDF0", want: func(m *notify.Message) { m.Status = ptr("\uFDF0") }},
	{name: "status control chars are fine", payload: "STATUS=a\tb\x1b", want: func(m *notify.Message) { m.Status = ptr("a\tb\x1b") }},

	// MAINPID= and friends.
	{name: "mainpid", payload: "MAINPID=1234", want: func(m *notify.Message) { m.MainPID = 1234 }},
	{name: "mainpid 1", payload: "MAINPID=1", want: func(m *notify.Message) { m.MainPID = 1 }},
	{name: "mainpid max", payload: "MAINPID=2147483647", want: func(m *notify.Message) { m.MainPID = math.MaxInt32 }},
	{name: "mainpid too big", payload: "MAINPID=2147483648", problems: []string{"MAINPID="}},
	{name: "mainpid 0", payload: "MAINPID=0", problems: []string{"MAINPID="}},
	{name: "mainpid negative", payload: "MAINPID=-5", problems: []string{"MAINPID="}},
	{name: "mainpid empty", payload: "MAINPID=", problems: []string{"MAINPID="}},
	{name: "mainpid junk", payload: "MAINPID=12a", problems: []string{"MAINPID="}},
	{name: "mainpid trailing space", payload: "MAINPID=12 ", problems: []string{"MAINPID="}},
	{name: "mainpid leading space", payload: "MAINPID= 12", want: func(m *notify.Message) { m.MainPID = 12 }},
	{name: "mainpid plus", payload: "MAINPID=+12", want: func(m *notify.Message) { m.MainPID = 12 }},
	{name: "mainpid hex", payload: "MAINPID=0x10", want: func(m *notify.Message) { m.MainPID = 16 }},
	{name: "mainpid octal", payload: "MAINPID=010", want: func(m *notify.Message) { m.MainPID = 8 }},
	{name: "mainpid bad octal", payload: "MAINPID=08", problems: []string{"MAINPID="}},
	{name: "mainpid 0b", payload: "MAINPID=0b101", want: func(m *notify.Message) { m.MainPID = 5 }},
	{name: "mainpid 0o", payload: "MAINPID=0O17", want: func(m *notify.Message) { m.MainPID = 15 }},
	{name: "mainpid 0x alone", payload: "MAINPID=0x", problems: []string{"MAINPID="}},
	{name: "mainpid first wins", payload: "MAINPID=5\nMAINPID=6", want: func(m *notify.Message) { m.MainPID = 5 }},
	{name: "mainpidfdid", payload: "MAINPID=42\nMAINPIDFDID=77",
		want: func(m *notify.Message) { m.MainPID, m.MainPIDFDID, m.HasMainPIDFDID = 42, 77, true }},
	{name: "mainpidfdid invalid refuses", payload: "MAINPID=42\nMAINPIDFDID=x", problems: []string{"MAINPIDFDID= in notification message, refusing"}},
	{name: "mainpidfdid alone", payload: "MAINPIDFDID=77"},
	{name: "mainpidfd", payload: "MAINPIDFD=1\nMAINPID=42",
		want: func(m *notify.Message) { m.MainPIDFD, m.MainPID = true, 42 }},

	// NOTIFYACCESS=.
	{name: "notifyaccess all", payload: "NOTIFYACCESS=all", want: func(m *notify.Message) { m.NotifyAccess = "all" }},
	{name: "notifyaccess none", payload: "NOTIFYACCESS=none", want: func(m *notify.Message) { m.NotifyAccess = "none" }},
	{name: "notifyaccess exec", payload: "NOTIFYACCESS=exec", want: func(m *notify.Message) { m.NotifyAccess = "exec" }},
	{name: "notifyaccess main", payload: "NOTIFYACCESS=main", want: func(m *notify.Message) { m.NotifyAccess = "main" }},
	{name: "notifyaccess invalid", payload: "NOTIFYACCESS=ALL", problems: []string{"NOTIFYACCESS="}},
	{name: "notifyaccess empty", payload: "NOTIFYACCESS=", problems: []string{"NOTIFYACCESS="}},

	// ERRNO=.
	{name: "errno number", payload: "ERRNO=5", want: func(m *notify.Message) { m.Errno, m.HasErrno = 5, true }},
	{name: "errno name", payload: "ERRNO=EIO", want: func(m *notify.Message) { m.Errno, m.HasErrno = 5, true }},
	{name: "errno alias", payload: "ERRNO=EWOULDBLOCK", want: func(m *notify.Message) { m.Errno, m.HasErrno = 11, true }},
	{name: "errno highest name", payload: "ERRNO=EHWPOISON", want: func(m *notify.Message) { m.Errno, m.HasErrno = 133, true }},
	{name: "errno zero", payload: "ERRNO=0", want: func(m *notify.Message) { m.HasErrno = true }},
	{name: "errno max", payload: "ERRNO=4095", want: func(m *notify.Message) { m.Errno, m.HasErrno = 4095, true }},
	{name: "errno too big", payload: "ERRNO=4096", problems: []string{"ERRNO="}},
	{name: "errno negative", payload: "ERRNO=-1", problems: []string{"ERRNO="}},
	{name: "errno lower case", payload: "ERRNO=eio", problems: []string{"ERRNO="}},
	{name: "errno unknown name", payload: "ERRNO=EFOO", problems: []string{"ERRNO="}},
	{name: "errno leading space", payload: "ERRNO= 7", want: func(m *notify.Message) { m.Errno, m.HasErrno = 7, true }},

	// BUSERROR=, VARLINKERROR=.
	{name: "buserror", payload: "BUSERROR=org.freedesktop.DBus.Error.Failed",
		want: func(m *notify.Message) { m.BusError = ptr("org.freedesktop.DBus.Error.Failed") }},
	{name: "buserror clear", payload: "BUSERROR=", want: func(m *notify.Message) { m.BusError = ptr("") }},
	{name: "buserror quote", payload: `BUSERROR=a"b`, problems: []string{"BUSERROR="}},
	{name: "buserror non-ascii", payload: "BUSERROR=é", problems: []string{"BUSERROR="}},
	{name: "varlinkerror", payload: "VARLINKERROR=io.systemd.Foo",
		want: func(m *notify.Message) { m.VarlinkError = ptr("io.systemd.Foo") }},
	{name: "varlinkerror backslash", payload: `VARLINKERROR=a\\b`, problems: []string{"VARLINKERROR="}},

	// Timeouts and watchdog.
	{name: "extend timeout", payload: "EXTEND_TIMEOUT_USEC=5000000",
		want: func(m *notify.Message) { m.ExtendTimeoutUsec, m.HasExtendTimeout = 5000000, true }},
	{name: "extend timeout invalid", payload: "EXTEND_TIMEOUT_USEC=5s", problems: []string{"EXTEND_TIMEOUT_USEC="}},
	{name: "watchdog", payload: "WATCHDOG=1", want: func(m *notify.Message) { m.Watchdog = true }},
	{name: "watchdog trigger", payload: "WATCHDOG=trigger", want: func(m *notify.Message) { m.WatchdogTrigger = true }},
	{name: "watchdog first wins", payload: "WATCHDOG=trigger\nWATCHDOG=1", want: func(m *notify.Message) { m.WatchdogTrigger = true }},
	{name: "watchdog invalid", payload: "WATCHDOG=2\nWATCHDOG=1", problems: []string{"WATCHDOG= field is invalid"}},
	{name: "watchdog usec", payload: "WATCHDOG_USEC=20000000",
		want: func(m *notify.Message) { m.WatchdogUsec, m.HasWatchdogUsec = 20000000, true }},
	{name: "watchdog usec invalid", payload: "WATCHDOG_USEC=", problems: []string{"WATCHDOG_USEC="}},
	{name: "restart reset", payload: "RESTART_RESET=1", want: func(m *notify.Message) { m.RestartReset = true }},

	// BARRIER=1.
	{name: "barrier", payload: "BARRIER=1", want: func(m *notify.Message) { m.Barrier = true }},
	{name: "barrier with more", payload: "BARRIER=1\nREADY=1", want: func(m *notify.Message) { m.Barrier, m.Ready = true, true }},

	// Fd store.
	{name: "fdstore", payload: "FDSTORE=1", want: func(m *notify.Message) { m.FDStore = true }},
	{name: "fdstore named", payload: "FDSTORE=1\nFDNAME=db",
		want: func(m *notify.Message) { m.FDStore, m.FDName, m.HasFDName, m.FDNameValid = true, "db", true, true }},
	{name: "fdstore empty name", payload: "FDSTORE=1\nFDNAME=",
		want: func(m *notify.Message) { m.FDStore, m.HasFDName, m.FDNameValid = true, true, true }},
	{name: "fdstore invalid name", payload: "FDSTORE=1\nFDNAME=a:b",
		want:     func(m *notify.Message) { m.FDStore, m.FDName, m.HasFDName = true, "a:b", true },
		problems: []string{"FDNAME= name is invalid"}},
	{name: "fdname first wins", payload: "FDNAME=a\nFDNAME=b\nFDSTORE=1",
		want: func(m *notify.Message) { m.FDStore, m.FDName, m.HasFDName, m.FDNameValid = true, "a", true, true }},
	{name: "fdname without store", payload: "FDNAME=a:b",
		want: func(m *notify.Message) { m.FDName, m.HasFDName = "a:b", true }},
	{name: "fdname 255", payload: "FDSTORE=1\nFDNAME=" + strings.Repeat("n", 255),
		want: func(m *notify.Message) {
			m.FDStore, m.FDName, m.HasFDName, m.FDNameValid = true, strings.Repeat("n", 255), true, true
		}},
	{name: "fdname 256", payload: "FDSTORE=1\nFDNAME=" + strings.Repeat("n", 256),
		want:     func(m *notify.Message) { m.FDStore, m.FDName, m.HasFDName = true, strings.Repeat("n", 256), true },
		problems: []string{"FDNAME= name is invalid"}},
	{name: "fdstoreremove", payload: "FDSTOREREMOVE=1\nFDNAME=db",
		want: func(m *notify.Message) {
			m.FDStoreRemove, m.FDName, m.HasFDName, m.FDNameValid = true, "db", true, true
		}},
	{name: "fdstoreremove without name", payload: "FDSTOREREMOVE=1",
		want: func(m *notify.Message) { m.FDStoreRemove = true }, problems: []string{"no valid file descriptor name"}},
	{name: "fdstoreremove invalid name", payload: "FDSTOREREMOVE=1\nFDNAME=\x7f",
		want:     func(m *notify.Message) { m.FDStoreRemove, m.FDName, m.HasFDName = true, "\x7f", true },
		problems: []string{"no valid file descriptor name"}},
	{name: "remove and store", payload: "FDSTORE=1\nFDSTOREREMOVE=1\nFDNAME=x:y",
		want: func(m *notify.Message) {
			m.FDStore, m.FDStoreRemove, m.FDName, m.HasFDName = true, true, "x:y", true
		}, problems: []string{"no valid file descriptor name"}},
	{name: "fdpoll 0", payload: "FDSTORE=1\nFDPOLL=0", want: func(m *notify.Message) { m.FDStore, m.FDPoll = true, false }},
	{name: "fdpoll 1", payload: "FDSTORE=1\nFDPOLL=1", want: func(m *notify.Message) { m.FDStore = true }},
	{name: "fdpoll no", payload: "FDPOLL=no"},
	{name: "fdpoll 0 anywhere", payload: "FDPOLL=1\nFDPOLL=0", want: func(m *notify.Message) { m.FDPoll = false }},

	// Everything at once.
	{name: "kitchen sink", payload: "READY=1\nSTATUS=Serving\nMAINPID=99\nERRNO=0\nWATCHDOG=1\nFDSTORE=1\nFDNAME=db\nFDPOLL=0\nX_OTHER=1\n",
		want: func(m *notify.Message) {
			m.Ready, m.Status, m.MainPID, m.HasErrno, m.Watchdog = true, ptr("Serving"), 99, true, true
			m.FDStore, m.FDName, m.HasFDName, m.FDNameValid, m.FDPoll = true, "db", true, true, false
		}},
	{name: "problems in order", payload: "WATCHDOG=x\nMAINPID=x\nSTATUS=\xff",
		want:     func(m *notify.Message) { m.Status = ptr("") },
		problems: []string{"MAINPID=", "UTF-8", "WATCHDOG="}},
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := notify.Parse([]byte(tt.payload))
			if tt.drop != "" {
				var de *notify.DropError
				if !errors.As(err, &de) {
					t.Fatalf("Parse(%q) = %v, %v; want a *DropError", tt.payload, got, err)
				}
				if !strings.Contains(de.Reason, tt.drop) || de.PID != 0 || de.FDs != 0 {
					t.Fatalf("Parse(%q): DropError %+v, want reason containing %q", tt.payload, de, tt.drop)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.payload, err)
			}
			if tt.fields != nil && !equalFields(got.Fields, tt.fields) {
				t.Errorf("Fields = %q, want %q", got.Fields, tt.fields)
			}
			if tt.ignored != nil && !equalStrings(got.Ignored, tt.ignored) {
				t.Errorf("Ignored = %q, want %q", got.Ignored, tt.ignored)
			}
			if len(got.Problems) != len(tt.problems) {
				t.Errorf("Problems = %q, want %d containing %q", got.Problems, len(tt.problems), tt.problems)
			} else {
				for i, p := range tt.problems {
					if !strings.Contains(got.Problems[i], p) {
						t.Errorf("Problems[%d] = %q, want it to contain %q", i, got.Problems[i], p)
					}
				}
			}
			want := &notify.Message{FDPoll: true}
			if tt.want != nil {
				tt.want(want)
			}
			if d := diffTyped(want, got); d != "" {
				t.Errorf("Parse(%q) typed view mismatch (-want +got):\n%s", tt.payload, d)
			}
		})
	}
}

func equalFields(a, b []notify.Field) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

func equalStrings(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// diffTyped compares the typed view of two Messages (everything but
// Fields, Ignored and Problems), one line per differing field.
func diffTyped(want, got *notify.Message) string {
	var b strings.Builder
	wv, gv := reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()
	for i := range wv.NumField() {
		name := wv.Type().Field(i).Name
		switch name {
		case "Fields", "Ignored", "Problems":
			continue
		}
		w, g := wv.Field(i).Interface(), gv.Field(i).Interface()
		if !reflect.DeepEqual(w, g) {
			fmt.Fprintf(&b, "%s:\n\t-%s\n\t+%s\n", name, show(w), show(g))
		}
	}
	return b.String()
}

func show(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "nil"
		}
		return fmt.Sprintf("&%#v", rv.Elem().Interface())
	}
	return fmt.Sprintf("%#v", v)
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	// The longest payload Receive accepts parses, one status of 4089 bytes.
	long := "STATUS=" + strings.Repeat("x", notify.BufferMax-len("STATUS="))
	m, err := notify.Parse([]byte(long))
	if err != nil || m.Status == nil || len(*m.Status) != notify.BufferMax-len("STATUS=") {
		t.Fatalf("Parse(4096 bytes) = %v, %v", m, err)
	}
	// Parse itself has no size limit; systemd's STATUS_TEXT_MAX is checked.
	huge := "STATUS=" + strings.Repeat("x", 16*1024+1)
	m, err = notify.Parse([]byte(huge))
	if err != nil || m.Status == nil || *m.Status != "" || len(m.Problems) != 1 || !strings.Contains(m.Problems[0], "overly long") {
		t.Fatalf("Parse(16 KiB + 1 status) = %+v, %v", m, err)
	}
}

func TestMessageDurations(t *testing.T) {
	t.Parallel()
	m, err := notify.Parse([]byte("EXTEND_TIMEOUT_USEC=1500000\nWATCHDOG_USEC=18446744073709551615"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ExtendTimeout(); got != 1500*time.Millisecond {
		t.Errorf("ExtendTimeout() = %v, want 1.5s", got)
	}
	if got := m.WatchdogTimeout(); got != math.MaxInt64 {
		t.Errorf("WatchdogTimeout() for USEC_INFINITY = %v, want the largest Duration", got)
	}
}

// TestFDNameValid checks that Parse applies systemd's fdname_is_valid()
// (sdnotify.ValidFDName) to FDNAME=, including to bytes that reach the value
// only through backslash escapes. A NUL byte cannot: Parse drops the message.
func TestFDNameValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fdname string
		valid  bool
	}{
		{"empty", "", true},
		{"simple", "db", true},
		{"space", "with space", true},
		{"punctuation", "~!@#$%^&*()_+{}|\"<>?`-=[]\\;',./", true},
		{"longest", strings.Repeat("a", sdnotify.MaxFDNameLen), true},
		{"too long", strings.Repeat("a", sdnotify.MaxFDNameLen+1), false},
		{"colon", "a:b", false},
		{"only colon", ":", false},
		{"tab", "tab\t", false},
		{"newline", "nl\n", false},
		{"carriage return", "cr\r", false},
		{"DEL", "del\x7f", false},
		{"high byte", "high\x80", false},
		{"UTF-8", "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			payload := "FDSTORE=1\nFDNAME=" + escapeLine(tt.fdname)
			m, err := notify.Parse([]byte(payload))
			if err != nil {
				t.Fatalf("Parse(%q): %v", payload, err)
			}
			if m.FDName != tt.fdname || m.FDNameValid != tt.valid {
				t.Errorf("Parse(%q): FDName %q, FDNameValid %v; want %q, %v", payload, m.FDName, m.FDNameValid, tt.fdname, tt.valid)
			}
			want := notify.DefaultFDName
			if tt.valid {
				want = tt.fdname
			}
			if got := m.StoreName(); got != want {
				t.Errorf("Parse(%q).StoreName() = %q, want %q", payload, got, want)
			}
		})
	}
}

func TestBarrierValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		files   int
		ok      bool
		reason  string
	}{
		{"valid", "BARRIER=1", 1, true, ""},
		{"valid with newline", "BARRIER=1\n", 1, true, ""},
		{"no fd", "BARRIER=1", 0, false, "incorrect number of fds"},
		{"two fds", "BARRIER=1", 2, false, "incorrect number of fds"},
		{"extra field", "BARRIER=1\nREADY=1", 1, false, "extra notification messages"},
		{"extra ignored line", "BARRIER=1\nhello", 1, false, "extra notification messages"},
		{"duplicate", "BARRIER=1\nBARRIER=1", 1, false, "extra notification messages"},
		{"not a barrier", "READY=1", 1, false, "no BARRIER=1"},
		{"barrier 0", "BARRIER=0", 1, false, "no BARRIER=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := notify.Parse([]byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			for range tt.files {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				w.Close()
				m.Files = append(m.Files, r)
			}
			t.Cleanup(func() { m.Close() })
			ok, reason := m.BarrierValid()
			if ok != tt.ok || !strings.Contains(reason, tt.reason) {
				t.Errorf("BarrierValid() = %v, %q; want %v, %q", ok, reason, tt.ok, tt.reason)
			}
		})
	}
}

func TestStoreName(t *testing.T) {
	t.Parallel()
	for payload, want := range map[string]string{
		"FDSTORE=1":               notify.DefaultFDName,
		"FDSTORE=1\nFDNAME=db":    "db",
		"FDSTORE=1\nFDNAME=":      "",
		"FDSTORE=1\nFDNAME=a:b":   notify.DefaultFDName,
		"FDSTORE=1\nFDNAME=a\tb":  notify.DefaultFDName,
		"FDSTORE=1\nFDNAME=x y z": "x y z",
	} {
		m, err := notify.Parse([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.StoreName(); got != want {
			t.Errorf("Parse(%q).StoreName() = %q, want %q", payload, got, want)
		}
	}
}

func TestMessageCloseAndTake(t *testing.T) {
	t.Parallel()
	r1, w1, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	r3, w3, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w3.Close()

	m := &notify.Message{Files: []*os.File{r1, r2}, PIDFD: r3}
	taken := m.TakeFiles()
	if len(taken) != 2 || m.Files != nil {
		t.Fatalf("TakeFiles() = %v, left %v", taken, m.Files)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m.PIDFD != nil {
		t.Error("Close left PIDFD set")
	}
	if _, err := r3.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("PIDFD not closed by Close: Stat() = %v", err)
	}
	for _, f := range taken {
		if _, err := f.Stat(); err != nil {
			t.Errorf("taken file closed by Close: %v", err)
		}
		f.Close()
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}

	m = &notify.Message{PIDFD: r3}
	if f := m.TakePIDFD(); f != r3 || m.PIDFD != nil {
		t.Errorf("TakePIDFD() = %v, left %v", f, m.PIDFD)
	}
}

func TestMessageString(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 100)
	m, err := notify.Parse([]byte("READY=1\nSTATUS=" + long + "\nFDNAME=a b\nX_EVIL=line1\\\nline2\nstray"))
	if err != nil {
		t.Fatal(err)
	}
	m.PID, m.UID, m.GID = 42, 1000, 100
	s := m.String()
	for _, want := range []string{"pid=42 uid=1000 gid=100 fds=0", " READY=1 ", `STATUS="éé`, "…", `FDNAME="a b"`, `X_EVIL="line1\nline2"`, "ignored=1"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %s\nwant it to contain %s", s, want)
		}
	}
	if strings.ContainsAny(s, "\n\r") {
		t.Errorf("String() = %q spans lines", s)
	}
	if strings.Count(s, "é") > 40 {
		t.Errorf("String() = %s: STATUS not truncated", s)
	}
	if !utf8.ValidString(s) {
		t.Errorf("String() = %q is not valid UTF-8", s)
	}
}

func TestDropErrorMessage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  notify.DropError
		want string
	}{
		{notify.DropError{Reason: "got x, ignoring"}, "notify: got x, ignoring"},
		{notify.DropError{Reason: "got x, ignoring", PID: 7}, "notify: got x, ignoring (PID 7)"},
		{notify.DropError{Reason: "got x, ignoring", PID: 7, FDs: 2}, "notify: got x, ignoring (PID 7, 2 fds closed)"},
		{notify.DropError{Reason: "got x, ignoring", FDs: 2}, "notify: got x, ignoring (2 fds closed)"},
		{notify.DropError{Reason: "got x, ignoring", PID: 7, FDs: 1}, "notify: got x, ignoring (PID 7, 1 fd closed)"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// escapeLine makes s one line that splitLines turns back into s.
func escapeLine(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '\n' || c == '\r' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add([]byte(tt.payload))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := notify.Parse(payload)
		if err != nil {
			var de *notify.DropError
			if !errors.As(err, &de) || de.PID != 0 || de.FDs != 0 || de.Reason == "" {
				t.Fatalf("Parse(%q) error %v is not a bare *DropError", payload, err)
			}
			return
		}
		for _, f := range m.Fields {
			if strings.Contains(f.Key, "=") {
				t.Fatalf("key %q contains '='", f.Key)
			}
		}
		for _, l := range m.Ignored {
			if l == "" || strings.Contains(l, "=") {
				t.Fatalf("ignored line %q is empty or has '='", l)
			}
		}
		if m.FDNameValid != (m.HasFDName && sdnotify.ValidFDName(m.FDName) == nil) {
			t.Fatalf("FDNameValid %v with FDName %q (HasFDName %v), want HasFDName && sdnotify.ValidFDName", m.FDNameValid, m.FDName, m.HasFDName)
		}
		if !m.HasFDName && m.FDName != "" {
			t.Fatalf("FDName %q without HasFDName", m.FDName)
		}
		if m.Status != nil && !utf8.ValidString(*m.Status) {
			t.Fatalf("Status %q is not UTF-8", *m.Status)
		}
		if m.MainPID < 0 || m.MainPID > math.MaxInt32 || m.Errno < 0 || m.Errno > 4095 {
			t.Fatalf("MainPID %d, Errno %d out of range", m.MainPID, m.Errno)
		}
		switch m.NotifyAccess {
		case "", "none", "main", "exec", "all":
		default:
			t.Fatalf("NotifyAccess %q", m.NotifyAccess)
		}
		for _, p := range []*string{m.BusError, m.VarlinkError} {
			if p != nil && strings.ContainsFunc(*p, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
				t.Fatalf("unsafe error name %q", *p)
			}
		}
		for _, p := range m.Problems {
			if p == "" || strings.ContainsAny(p, "\n\r") {
				t.Fatalf("problem %q is empty or spans lines", p)
			}
		}
		if s := m.String(); strings.ContainsAny(s, "\n\r") {
			t.Fatalf("String() = %q spans lines", s)
		}

		// Escaping the lines and parsing them again gives the same Message.
		var lines []string
		for _, f := range m.Fields {
			lines = append(lines, escapeLine(f.Key+"="+f.Value))
		}
		for _, l := range m.Ignored {
			lines = append(lines, escapeLine(l))
		}
		again, err := notify.Parse([]byte(strings.Join(lines, "\n")))
		if err != nil {
			t.Fatalf("re-parsing %q: %v", lines, err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("round trip of %q changed the message:\n%+v\n%+v", payload, m, again)
		}
	})
}
