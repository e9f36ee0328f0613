//go:build linux

package supervisor_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

// The hostile-input suite: what a service, a unit file or a control client
// may send luod, as one who wants to crash it, block its loop, make it
// leak fds or hurt another unit. Every case checks that luod answers a
// control call within a few seconds, that its fd count comes back to where
// it was (plus what the case legitimately stored), what the hostile service
// sees afterwards, that a bystander unit keeps its process, state and
// store, and the line luod logs for the case.
//
// Each test runs one luod (startHostile) for all its cases, which do not
// interfere; the flood and the cases that show bugs have their own.

// answerWithin is how soon luod must answer a control call after a case.
const answerWithin = 3 * time.Second

// hostileEnv is a luod with actor.service, the hostile service (a testsvc
// driven through its ctl socket: FileDescriptorStoreMax=8,
// FileDescriptorStorePreserve=yes), and bystander.service, a testsvc with
// two stored fds that nothing may touch.
type hostileEnv struct {
	d         *luodtest.Daemon
	actorCtl  string
	bystander control.Unit
	byStore   []string
}

const (
	actorMax      = 8
	actorUnit     = "actor.service"
	bystanderUnit = "bystander.service"
)

func startHostile(t *testing.T) *hostileEnv {
	if testing.Short() {
		t.Skip("the hostile-input suite takes a while; not in -short")
	}
	d := luodtest.Start(t, map[string]string{
		actorUnit: svc("-ctl @DIR@/actor.ctl -report @DIR@/actor.report") +
			fmt.Sprintf("FileDescriptorStoreMax=%d\nFileDescriptorStorePreserve=yes\n", actorMax),
		bystanderUnit: svc("-store keep=memfd:kept -store sock=socket") + "FileDescriptorStoreMax=4\n",
	})
	h := &hostileEnv{d: d, actorCtl: filepath.Join(d.Dir, "actor.ctl")}
	d.WaitUnit(actorUnit, "active", active)
	h.bystander = d.WaitUnit(bystanderUnit, "active", active)
	h.byStore = storeNames(t, d, bystanderUnit)
	if want := []string{"keep", "sock"}; !slices.Equal(h.byStore, want) {
		t.Fatalf("bystander store %q, want %q", h.byStore, want)
	}
	return h
}

// storeNames returns the names in a unit's store, in order.
func storeNames(t *testing.T, d *luodtest.Daemon, unit string) []string {
	t.Helper()
	names := []string{}
	for _, e := range d.FDStore(unit).Entries {
		names = append(names, e.Name)
	}
	return names
}

// before is what a case starts from.
type before struct {
	fds   int      // luod's open fds
	store []string // the actor's store
	actor control.Unit
	log   int // length of luod's log
}

func (h *hostileEnv) before(t *testing.T) before {
	t.Helper()
	return before{
		fds:   luodtest.FDs(t, h.d.PID()),
		store: storeNames(t, h.d, actorUnit),
		actor: h.d.Unit(actorUnit),
		log:   len(h.d.Log()),
	}
}

// after checks what every case must leave: luod answers, the actor still
// runs as the same process, its store is b.store plus stored, luod holds
// exactly as many more fds as the stores gained, and the bystander is
// untouched.
func (h *hostileEnv) after(t *testing.T, b before, stored []string) {
	t.Helper()
	answers(t, h.d)
	store := storeNames(t, h.d, actorUnit)
	if want := append(slices.Clone(b.store), stored...); !slices.Equal(store, want) {
		t.Errorf("actor's store is %q, want %q", store, want)
	}
	if a := h.d.Unit(actorUnit); a.MainPID != b.actor.MainPID || a.ActiveState != "active" {
		t.Errorf("actor: pid %d %s, was pid %d active", a.MainPID, a.ActiveState, b.actor.MainPID)
	}
	h.bystanderUntouched(t)
	want := b.fds + len(store) - len(b.store)
	if got := fdsBecome(t, h.d.PID(), want); got != want {
		t.Errorf("luod has %d fds, want %d (%d before, the store went from %d to %d entries)", got, want, b.fds, len(b.store), len(store))
	}
}

// bystanderUntouched checks that the bystander keeps its process, state
// and store.
func (h *hostileEnv) bystanderUntouched(t *testing.T) {
	t.Helper()
	u := h.d.Unit(bystanderUnit)
	if u.MainPID != h.bystander.MainPID || u.ActiveState != "active" || u.SubState != "running" || u.Restarts != 0 {
		t.Errorf("bystander changed: pid %d %s/%s, %d restarts; was pid %d active/running", u.MainPID, u.ActiveState, u.SubState, u.Restarts, h.bystander.MainPID)
	}
	if s := storeNames(t, h.d, bystanderUnit); !slices.Equal(s, h.byStore) {
		t.Errorf("bystander's store %q, was %q", s, h.byStore)
	}
}

// answers checks that luod answers a control call within answerWithin.
func answers(t *testing.T, d *luodtest.Daemon) {
	t.Helper()
	start := time.Now()
	var m control.Manager
	if err := d.CallWithin(answerWithin, control.MethodGetManager, nil, &m); err != nil {
		t.Fatalf("luod did not answer within %v: %v", answerWithin, err)
	}
	if m.PID != d.PID() {
		t.Fatalf("GetManager answered pid %d, luod is %d", m.PID, d.PID())
	}
	if took := time.Since(start); took > time.Second {
		t.Logf("luod took %v to answer", took)
	}
}

// fdsBecome waits (5 s at most) until process pid has want open fds, and
// returns the count it settled on. A connection luod is still closing
// makes the count wrong for a moment, not for 5 s.
func fdsBecome(t *testing.T, pid, want int) int {
	t.Helper()
	got := -1
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		if got = len(ents); got == want {
			time.Sleep(50 * time.Millisecond) // and stays so
			if ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); len(ents) == want {
				return want
			}
		}
	}
	t.Logf("luod's fds: %v", fdList(t, pid))
	return got
}

// logLine waits (5 s at most) for a line of luod's log after offset off
// that has every one of subs, and returns it.
func logLine(t *testing.T, d *luodtest.Daemon, off int, subs ...string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if l := findLine(d.Log()[off:], subs...); l != "" {
			return l
		}
		if time.Now().After(deadline) {
			t.Errorf("luod logged no line with %q; it logged:\n%s", subs, tail(d.Log()[off:], 40))
			return ""
		}
	}
}

// logLines counts the lines of luod's log after offset off that have every
// one of subs.
func logLines(d *luodtest.Daemon, off int, subs ...string) int {
	n := 0
	for l := range strings.SplitSeq(d.Log()[off:], "\n") {
		if hasAll(l, subs) {
			n++
		}
	}
	return n
}

func findLine(log string, subs ...string) string {
	for l := range strings.SplitSeq(log, "\n") {
		if hasAll(l, subs) {
			return l
		}
	}
	return ""
}

func hasAll(l string, subs []string) bool {
	for _, s := range subs {
		if !strings.Contains(l, s) {
			return false
		}
	}
	return true
}

// tail returns the last n lines of s, each cut at 300 bytes.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + "…"
		}
	}
	return strings.Join(lines, "\n")
}

// raw has a testsvc send one datagram built by hand through its ctl
// socket, and returns its answer: "ok" once luod processed it (a barrier
// followed it), or the sender's error. kinds are the fds it carries (see
// testsvc's rawFiles: "-", "memfd*3,pipe", ...); opts are raw's options.
func raw(t *testing.T, ctl, payload, kinds string, opts ...string) string {
	t.Helper()
	cmd := strings.Join(append([]string{"raw", encode(payload), kinds}, opts...), " ")
	ans, err := luodtest.Ctl(ctl, cmd)
	if err != nil {
		t.Fatalf("ctl %s: %v (answer %q)", filepath.Base(ctl), err, ans)
	}
	return ans
}

// encode encodes a payload for raw and child-raw: base64, or "-" for
// the empty payload.
func encode(payload string) string {
	if payload == "" {
		return "-"
	}
	return base64.StdEncoding.EncodeToString([]byte(payload))
}

// mustRaw is raw that must be answered ok.
func mustRaw(t *testing.T, ctl, payload, kinds string, opts ...string) {
	t.Helper()
	if ans := raw(t, ctl, payload, kinds, opts...); ans != "ok" {
		t.Fatalf("raw %q %s: %s", short(payload), kinds, ans)
	}
}

// ctlOK sends a ctl command that must be answered ok (or "ok ARG", whose
// ARG it returns).
func ctlOK(t *testing.T, ctl, cmd string) string {
	t.Helper()
	ans, err := luodtest.Ctl(ctl, cmd)
	if ans != "ok" && !strings.HasPrefix(ans, "ok ") {
		t.Fatalf("ctl %s %q: %q %v", filepath.Base(ctl), short(cmd), ans, err)
	}
	return strings.TrimPrefix(strings.TrimPrefix(ans, "ok"), " ")
}

// short quotes s, cut to 60 bytes.
func short(s string) string {
	if len(s) > 60 {
		return strconv.Quote(s[:60]) + "…"
	}
	return strconv.Quote(s)
}

// emptyActorStore removes every entry of the actor's store.
func (h *hostileEnv) emptyActorStore(t *testing.T) {
	t.Helper()
	names := storeNames(t, h.d, actorUnit)
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		mustRaw(t, h.actorCtl, "FDSTOREREMOVE=1\nFDNAME="+name, "-")
	}
	if n := h.d.Unit(actorUnit).FDStoreCount; n != 0 {
		t.Fatalf("the actor's store still has %d entries", n)
	}
}
