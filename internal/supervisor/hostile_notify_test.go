//go:build linux

package supervisor_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

// A send is one datagram of a case.
type send struct {
	payload string
	kinds   string // the fds it carries: "-" for none, see testsvc's rawFiles
}

// notifyCase is one hostile datagram from the actor, after setup.
type notifyCase struct {
	name  string
	setup []send // sent first, each answered ok
	send
	child  bool   // sent by a child of the actor's main process
	answer string // what the sender must be answered: "" for ok, else a part of its error
	stored []string
	status *string // the actor's status afterwards, when set
	// log are the parts of the line luod must log for the case (@PID@ is
	// the actor's main pid); lines, when set, how many such lines.
	log   []string
	lines int
	// eof are the peers (rawI, I the fd's index) that must see
	// end-of-file: luod closed every copy it got.
	eof []string
}

// memfds is n times "memfd" in rawFiles's syntax.
func memfds(n int) string { return "memfd*" + strconv.Itoa(n) }

// fill stores n memfds in the actor's store, one datagram each, named
// fillI.
func fill(n int) []send {
	var s []send
	for i := range n {
		s = append(s, send{fmt.Sprintf("FDSTORE=1\nFDNAME=fill%d", i), "memfd"})
	}
	return s
}

func fillNames(n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("fill%d", i))
	}
	return s
}

func repeat(name string, n int) []string {
	var s []string
	for range n {
		s = append(s, name)
	}
	return s
}

const (
	unitActor   = "unit=" + actorUnit
	extraFDs    = "got extra auxiliary fds with notification message, closing them"
	storeFull   = "cannot store more fds than FileDescriptorStoreMax=8, closing remaining"
	badName     = "passed FDNAME= name is invalid, ignoring"
	badRemove   = "FDSTOREREMOVE=1 requested, but no valid file descriptor name passed, ignoring"
	notAllowed  = "got notification message, but reception only permitted for main PID"
	debugNotify = `msg=notification`
)

var notifyCases = []notifyCase{
	// 1. More fds than the store takes, and more than a datagram can carry.
	{name: "fds beyond FileDescriptorStoreMax in one datagram",
		send:   send{"FDSTORE=1\nFDNAME=burst", memfds(actorMax + 3)},
		stored: repeat("burst", actorMax),
		log:    []string{storeFull, unitActor, "fdname=burst", "closed=3"},
		lines:  1},
	{name: "fds beyond FileDescriptorStoreMax across datagrams",
		setup:  fill(actorMax),
		send:   send{"FDSTORE=1\nFDNAME=over", "memfd,pipe"},
		stored: fillNames(actorMax),
		log:    []string{storeFull, unitActor, "fdname=over", "closed=2"},
		lines:  1,
		eof:    []string{"raw1"}},
	{name: "253 fds (SCM_MAX_FD) in one datagram",
		send:   send{"FDSTORE=1\nFDNAME=max", memfds(252) + ",pipe"},
		stored: repeat("max", actorMax),
		log:    []string{storeFull, unitActor, "fdname=max", "closed=245"},
		lines:  1,
		eof:    []string{"raw252"}},
	{name: "254 fds: the sender gets EINVAL",
		send:   send{"FDSTORE=1\nFDNAME=toomany", memfds(254)},
		answer: "invalid argument"},
	{name: "fds without FDSTORE=1",
		send:  send{"STATUS=here are some fds", "memfd,pipe,socket"},
		log:   []string{extraFDs, "pid=@PID@", "fds=3"},
		lines: 1,
		eof:   []string{"raw1", "raw2"}},
	{name: "FDSTORE=1 without fds",
		send: send{"FDSTORE=1\nFDNAME=nothing", "-"},
		log:  []string{debugNotify, unitActor, "FDSTORE=1 FDNAME=nothing"}},

	// 2. Payloads.
	{name: "empty payload",
		send:  send{"", "pipe"},
		log:   []string{extraFDs, "pid=@PID@", "fds=1"},
		lines: 1,
		eof:   []string{"raw0"}},
	{name: "a single NUL",
		send:  send{"\x00", "pipe"},
		log:   []string{extraFDs, "pid=@PID@", "fds=1"},
		lines: 1,
		eof:   []string{"raw0"}},
	{name: "embedded NUL",
		send:  send{"FDSTORE=1\nFDNAME=nul\x00x", "memfd,pipe"},
		log:   []string{"got notification message with embedded NUL, ignoring (PID @PID@, 2 fds closed)"},
		lines: 1,
		eof:   []string{"raw1"}},
	{name: "4096 bytes, the largest payload",
		send:   send{pad("FDSTORE=1\nFDNAME=limit\nSTATUS=", 4096), "memfd"},
		stored: []string{"limit"},
		status: ptr(strings.Repeat("x", 4096-len("FDSTORE=1\nFDNAME=limit\nSTATUS="))),
		log:    []string{debugNotify, unitActor, "FDNAME=limit"}},
	{name: "4097 bytes, larger than the receive buffer",
		send:  send{pad("FDSTORE=1\nFDNAME=over\nSTATUS=", 4097), "memfd,pipe"},
		log:   []string{"got message with truncated payload data, ignoring (PID @PID@, 2 fds closed)"},
		lines: 1,
		eof:   []string{"raw1"}},
	{name: "64 KiB of newlines",
		send:  send{strings.Repeat("\n", 64<<10), "pipe"},
		log:   []string{"got message with truncated payload data, ignoring (PID @PID@, 1 fd closed)"},
		lines: 1,
		eof:   []string{"raw0"}},
	{name: "4 KiB of newlines and carriage returns",
		send:  send{strings.Repeat("\n\r", 2<<10), "pipe"},
		log:   []string{extraFDs, "pid=@PID@", "fds=1"},
		lines: 1,
		eof:   []string{"raw0"}},
	{name: "invalid UTF-8 in STATUS= (clears it, as in systemd 262)",
		setup:  []send{{"STATUS=valid", "-"}},
		send:   send{"STATUS=\xff\xfe\xc0\x80", "-"},
		status: ptr(""),
		log:    []string{"status message in notification message is not UTF-8 clean, ignoring", unitActor},
		lines:  1},
	{name: "invalid UTF-8 in a key and an FDNAME=",
		send:   send{"\xff\xfe=1\nFDSTORE=1\nFDNAME=caf\xc3", "memfd"},
		stored: []string{"stored"},
		log:    []string{badName, unitActor}},
	{name: "a lone trailing backslash",
		send:  send{"FDSTORE=1\nFDNAME=bs\\", "memfd,pipe"},
		log:   []string{"invalid message: lone backslash at the end, ignoring (PID @PID@, 2 fds closed)"},
		lines: 1,
		eof:   []string{"raw1"}},
	{name: "1,018 X=1 fields in 4094 bytes",
		send:   send{"FDSTORE=1\nFDNAME=many\n" + strings.Repeat("X=1\n", 1018), "memfd"},
		stored: []string{"many"},
		log:    []string{debugNotify, unitActor, "FDNAME=many"}},
	{name: "10,000 X=1 fields",
		send:  send{strings.Repeat("X=1\n", 10000) + "FDSTORE=1\nFDNAME=many", "memfd,pipe"},
		log:   []string{"got message with truncated payload data, ignoring (PID @PID@, 2 fds closed)"},
		lines: 1,
		eof:   []string{"raw1"}},
	{name: "the first FDNAME= wins",
		send:   send{"FDNAME=first\nFDSTORE=1\nFDNAME=second", "memfd"},
		stored: []string{"first"},
		log:    []string{debugNotify, unitActor, "FDNAME=first FDSTORE=1 FDNAME=second"}},

	// 3. FDNAME= with FDSTORE=1, and FDSTOREREMOVE=1.
	{name: "FDNAME= empty (valid, as in systemd)",
		send:   send{"FDSTORE=1\nFDNAME=", "memfd"},
		stored: []string{""},
		log:    []string{debugNotify, unitActor, `FDNAME=\"\"`}},
	{name: "FDNAME=: (colon)",
		send:   send{"FDSTORE=1\nFDNAME=a:b", "memfd"},
		stored: []string{"stored"},
		log:    []string{badName, unitActor}},
	{name: "FDNAME= with a tab",
		send:   send{"FDSTORE=1\nFDNAME=a\tb", "memfd"},
		stored: []string{"stored"},
		log:    []string{badName, unitActor}},
	{name: "FDNAME= with \\x01",
		send:   send{"FDSTORE=1\nFDNAME=a\x01b", "memfd"},
		stored: []string{"stored"},
		log:    []string{badName, unitActor}},
	{name: "FDNAME= with an escaped newline",
		send:   send{"FDSTORE=1\nFDNAME=a\\\nb", "memfd"},
		stored: []string{"stored"},
		log:    []string{badName, unitActor}},
	{name: "FDNAME= with DEL",
		send:   send{"FDSTORE=1\nFDNAME=a\x7fb", "memfd"},
		stored: []string{"stored"},
		log:    []string{badName, unitActor}},
	{name: "FDNAME= non-ASCII",
		send:   send{"FDSTORE=1\nFDNAME=café", "memfd"},
		stored: []string{"stored"},
		log:    []string{badName, unitActor}},
	{name: "FDNAME= of 256 bytes",
		send:   send{"FDSTORE=1\nFDNAME=" + strings.Repeat("n", 256), "memfd"},
		stored: []string{"stored"},
		log:    []string{badName, unitActor}},
	{name: "FDNAME= of 255 bytes (valid)",
		send:   send{"FDSTORE=1\nFDNAME=" + strings.Repeat("n", 255), "memfd"},
		stored: []string{strings.Repeat("n", 255)},
		log:    []string{debugNotify, unitActor, `FDNAME=\"nnnn`}},
	{name: "FDNAME= with a space (valid)",
		send:   send{"FDSTORE=1\nFDNAME=a b", "memfd"},
		stored: []string{"a b"},
		log:    []string{debugNotify, unitActor, `FDNAME=\"a b\"`}},
	{name: "FDSTOREREMOVE=1 without FDNAME=",
		setup:  []send{{"FDSTORE=1\nFDNAME=kept", "memfd"}},
		send:   send{"FDSTOREREMOVE=1", "-"},
		stored: []string{"kept"},
		log:    []string{badRemove, unitActor}},
	{name: "FDSTOREREMOVE=1 with an invalid FDNAME=",
		setup:  []send{{"FDSTORE=1\nFDNAME=stored", "memfd"}},
		send:   send{"FDSTOREREMOVE=1\nFDNAME=stored:", "-"},
		stored: []string{"stored"},
		log:    []string{badRemove, unitActor}},
	{name: "FDSTOREREMOVE=1 of a name not stored",
		setup:  []send{{"FDSTORE=1\nFDNAME=kept", "memfd"}},
		send:   send{"FDSTOREREMOVE=1\nFDNAME=absent", "-"},
		stored: []string{"kept"},
		log:    []string{debugNotify, unitActor, "FDSTOREREMOVE=1 FDNAME=absent"}},
	{name: "FDSTOREREMOVE=1 of a name stored 8 times",
		setup:  []send{{"FDSTORE=1\nFDNAME=dup", memfds(4)}, {"FDSTORE=1\nFDNAME=other", "memfd"}, {"FDSTORE=1\nFDNAME=dup", memfds(3)}},
		send:   send{"FDSTOREREMOVE=1\nFDNAME=dup", "-"},
		stored: []string{"other"},
		log:    []string{"got explicit request to remove fd, closing", unitActor, "fdname=dup"},
		lines:  7},
	{name: "FDSTOREREMOVE=1 with fds",
		setup: []send{{"FDSTORE=1\nFDNAME=gone", "memfd"}},
		send:  send{"FDSTOREREMOVE=1\nFDNAME=gone", "memfd,pipe"},
		log:   []string{extraFDs, "pid=@PID@", "fds=2"},
		lines: 1,
		eof:   []string{"raw1"}},
	{name: "FDSTOREREMOVE=1 and FDSTORE=1: removal wins",
		setup: []send{{"FDSTORE=1\nFDNAME=both", "memfd"}},
		send:  send{"FDSTORE=1\nFDSTOREREMOVE=1\nFDNAME=both", "memfd,pipe"},
		log:   []string{extraFDs, "pid=@PID@", "fds=2"},
		lines: 1,
		eof:   []string{"raw1"}},

	// 4. BARRIER=1.
	{name: "BARRIER=1 with a pipe",
		send: send{"BARRIER=1", "pipe"},
		log:  []string{"received barrier notification message", "pid=@PID@"}, eof: []string{"raw0"}},
	{name: "BARRIER=1 with a memfd",
		send: send{"BARRIER=1", "memfd"},
		log:  []string{"received barrier notification message", "pid=@PID@"}},
	{name: "BARRIER=1 without fds",
		send:  send{"BARRIER=1", "-"},
		log:   []string{"got incorrect number of fds with BARRIER=1, closing them", "pid=@PID@"},
		lines: 1},
	{name: "BARRIER=1 with three fds",
		send:  send{"BARRIER=1", "pipe,pipe,pipe"},
		log:   []string{"got incorrect number of fds with BARRIER=1, closing them", "pid=@PID@"},
		lines: 1,
		eof:   []string{"raw0", "raw1", "raw2"}},
	{name: "BARRIER=1 with FDSTORE=1",
		send:  send{"BARRIER=1\nFDSTORE=1\nFDNAME=sneak", "pipe"},
		log:   []string{"extra notification messages sent with BARRIER=1, ignoring everything", "pid=@PID@"},
		lines: 1,
		eof:   []string{"raw0"}},
	{name: "BARRIER=1 twice",
		send:  send{"BARRIER=1\nBARRIER=1", "pipe"},
		log:   []string{"extra notification messages sent with BARRIER=1, ignoring everything", "pid=@PID@"},
		lines: 1,
		eof:   []string{"raw0"}},

	// 5. From a process of the unit other than its main process.
	{name: "FDSTORE=1 from a child of the main process",
		send:  send{"FDSTORE=1\nFDNAME=child", "memfd"},
		child: true,
		log:   []string{notAllowed, unitActor},
		lines: 1},
}

// TestHostileNotify sends the actor's datagrams of notifyCases, each
// checked as the suite's doc says, then restarts the actor: it gets back
// exactly its store.
func TestHostileNotify(t *testing.T) {
	h := startHostile(t)
	for _, c := range notifyCases {
		t.Run(c.name, func(t *testing.T) {
			h.emptyActorStore(t)
			b := h.before(t)
			for _, s := range c.setup {
				mustRaw(t, h.actorCtl, s.payload, s.kinds)
			}
			var ans string
			if c.child {
				cmd := "child-raw " + encode(c.payload) + " " + c.kinds
				ans, _ = luodtest.Ctl(h.actorCtl, cmd)
			} else {
				ans = raw(t, h.actorCtl, c.payload, c.kinds)
			}
			switch {
			case c.answer == "" && ans != "ok":
				t.Fatalf("the sender was answered %q", ans)
			case c.answer != "" && !strings.Contains(ans, c.answer):
				t.Fatalf("the sender was answered %q, want %q", ans, c.answer)
			}
			for _, peer := range c.eof {
				if ans, err := luodtest.Ctl(h.actorCtl, "await-eof "+peer); ans != "ok" {
					t.Errorf("%s: luod kept a copy of the fd: %q %v", peer, ans, err)
				}
			}
			h.after(t, b, c.stored)
			if u := h.d.Unit(actorUnit); c.status != nil && u.Status != *c.status {
				t.Errorf("the actor's status is %s, want %s", short(u.Status), short(*c.status))
			}
			if c.log == nil {
				return
			}
			want := make([]string, len(c.log))
			for i, s := range c.log {
				want[i] = strings.ReplaceAll(s, "@PID@", strconv.Itoa(b.actor.MainPID))
			}
			logLine(t, h.d, b.log, want...)
			if n := logLines(h.d, b.log, want...); c.lines > 0 && n != c.lines {
				t.Errorf("luod logged %d lines with %q, want %d:\n%s", n, want, c.lines, tail(h.d.Log()[b.log:], 20))
			}
		})
	}
	t.Run("unpreservable fds are stored, not carried across a kexec, handed back", func(t *testing.T) {
		h.emptyActorStore(t)
		b := h.before(t)
		kinds := []struct{ kind, typ, why string }{
			{"memfd", "memfd", "memfd, preserved in luod's LUO session"},
			{"pipe", "fifo", "a pipe (only memfds and unlinked tmpfs files are supported)"},
			{"socket", "sock", "a socket (only memfds and unlinked tmpfs files are supported)"},
			{"null", "chr", "a character device (only memfds and unlinked tmpfs files are supported)"},
			{"dir", "dir", "a directory (only memfds and unlinked tmpfs files are supported)"},
			{"eventfd", "anon", "an anonymous inode (eventfd, timerfd, epoll, ...) (only memfds and unlinked tmpfs files are supported)"},
		}
		var names []string
		for _, k := range kinds {
			// FDPOLL=0: the pipe and the socket stay stored when their
			// peers go with the actor's restart.
			mustRaw(t, h.actorCtl, "FDSTORE=1\nFDPOLL=0\nFDNAME="+k.kind, k.kind)
			names = append(names, k.kind)
		}
		mustRaw(t, h.actorCtl, "FDSTORE=1\nFDNAME=bad:name", "memfd")
		names = append(names, "stored")
		h.after(t, b, names)
		fs := h.d.FDStore(actorUnit)
		for i, k := range kinds {
			e := fs.Entries[i]
			survives := "no"
			if k.kind == "memfd" {
				survives = "yes"
			}
			if e.Name != k.kind || e.Type != k.typ || e.Survives != survives || e.Why != k.why || e.Poll {
				t.Errorf("entry %d: %+v, want %s of type %s, survives_kexec %s (%s), not polled", i, e, k.kind, k.typ, survives, k.why)
			}
		}
		first := h.d.ReadReport(filepath.Join(h.d.Dir, "actor.report"), 0)
		h.d.MustCall(control.MethodRestartUnit, control.UnitName{Name: actorUnit}, nil)
		r := h.d.ReadReport(filepath.Join(h.d.Dir, "actor.report"), first.PID)
		if got := strings.Join(r.Names, ","); got != strings.Join(names, ",") || r.Contents["memfd"] != "raw" || r.Err != "" {
			t.Errorf("the restarted actor got %q (%v, %q), want %q", got, r.Contents, r.Err, names)
		}
		wantFDs := map[int]string{3: "/memfd:raw0 (deleted)", 4: "pipe:[", 5: "socket:[", 6: "/dev/null", 7: "/", 8: "anon_inode:[eventfd]", 9: "/memfd:raw0 (deleted)"}
		for fd, want := range wantFDs {
			if !strings.HasPrefix(r.FDs[fd], want) {
				t.Errorf("the restarted actor's fd %d is %q, want %s", fd, r.FDs[fd], want)
			}
		}
		if len(r.FDs) != 3+len(names) {
			t.Errorf("the restarted actor has fds %v, want 0 to %d", r.FDs, 2+len(names))
		}
		h.d.WaitUnit(actorUnit, "active", active)
		h.bystanderUntouched(t)
		if got, want := luodtest.FDs(t, h.d.PID()), b.fds+len(names); got != want {
			t.Errorf("luod has %d fds after the restart, want %d", got, want)
		}
		h.emptyActorStore(t)
	})
}

// TestHostileProblemLoggedOnce: each ignored field of a datagram is one
// warning, as in systemd. An invalid FDNAME= with FDSTORE=1, and
// FDSTOREREMOVE=1 without a valid name, are logged twice ("notify: X" from
// the parser's problems, then X again from the store), which halves what
// the per-unit log rate limit lets through.
func TestHostileProblemLoggedOnce(t *testing.T) {
	h := startHostile(t)
	for _, c := range []struct{ payload, kinds, msg string }{
		{"FDSTORE=1\nFDNAME=a:b", "memfd", badName},
		{"FDSTOREREMOVE=1", "-", badRemove},
		{"FDSTOREREMOVE=1\nFDNAME=a:b", "-", badRemove},
	} {
		off := len(h.d.Log())
		mustRaw(t, h.actorCtl, c.payload, c.kinds)
		logLine(t, h.d, off, c.msg)
		if n := logLines(h.d, off, c.msg); n != 1 {
			t.Errorf("%q: luod logged %d lines for one datagram, want 1:\n%s", c.payload, n, tail(h.d.Log()[off:], 10))
		}
	}
}

func ptr[T any](v T) *T { return &v }

// pad fills prefix up to n bytes with x.
func pad(prefix string, n int) string { return prefix + strings.Repeat("x", n-len(prefix)) }
