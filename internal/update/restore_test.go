package update_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/internal/update/updatetest"
	"github.com/liveupdate/luo/memfd"
)

func TestRestoreColdBoot(t *testing.T) {
	k := updatetest.New()
	if _, err := update.Restore(k); !errors.Is(err, update.ErrNoUpdate) {
		t.Errorf("Restore on a cold boot = %v, want ErrNoUpdate", err)
	}
	k.Fail = func(op updatetest.Op) error {
		if op.Name == "open" {
			return &os.PathError{Op: "open", Path: "/dev/liveupdate", Err: syscall.ENOENT}
		}
		return nil
	}
	if _, err := update.Restore(k); !errors.Is(err, update.ErrNoUpdate) {
		t.Errorf("Restore without a device = %v, want ErrNoUpdate", err)
	}
	k.Fail = func(op updatetest.Op) error {
		if op.Name == "open" {
			return syscall.EIO // the kernel could not deserialize what it got
		}
		return nil
	}
	if _, err := update.Restore(k); err == nil || errors.Is(err, update.ErrNoUpdate) {
		t.Errorf("Restore with EIO = %v, want an error that is not ErrNoUpdate", err)
	}
}

// leftBy makes a kernel whose previous boot left luod's session holding
// data at token 0 and a memfd at token 1.
func leftBy(t *testing.T, manifest string) *updatetest.Kernel {
	t.Helper()
	k := updatetest.New()
	files := map[uint64]*os.File{}
	for tok, d := range []string{manifest, "precious"} {
		f, err := memfd.New("x", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.WriteString(d)
		files[uint64(tok)] = f
	}
	if err := k.Incoming(update.SessionName, files); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRestoreUnusableManifest: a manifest this luod cannot read leaves the
// session retrieved and unfinished, with the reason, so nothing more is
// discarded.
func TestRestoreUnusableManifest(t *testing.T) {
	for _, tc := range []struct{ name, manifest, want string }{
		{"garbage", "this is not a manifest", "not valid JSON"},
		{"future", `{"version":99,"kind":"kexec","units":[]}`, "version 99"},
		{"reexec kind", `{"version":2,"kind":"reexec","manager":{"notify_fd":3,"control_fd":4},"units":[]}`, `kind "reexec"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := leftBy(t, tc.manifest)
			r, err := update.Restore(k)
			if err != nil {
				t.Fatal(err)
			}
			if r.Manifest != nil || r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) {
				t.Fatalf("Restore: manifest %v, err %v; want the error ~%q", r.Manifest, r.Err, tc.want)
			}
			if r.Session == nil || !equal(k.Sessions(), []string{"in:luod"}) || !equal(k.Find("luod").Files(), []uint64{0, 1}) {
				t.Errorf("luod's session is not kept whole: %v", k.Sessions())
			}
		})
	}
	k := updatetest.New()
	if err := k.Incoming(update.SessionName, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := update.Restore(k); err != nil || r.Err == nil || !strings.Contains(r.Err.Error(), "retrieve the manifest") {
		t.Errorf("Restore without a manifest: %v, %+v", err, r)
	}
}

// TestRestoreProblems: an entry that cannot be retrieved is a problem of
// its own; the others come back.
func TestRestoreProblems(t *testing.T) {
	k, h := machine(t)
	next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(false)) })
	if next == nil {
		t.Fatal(err)
	}
	next.Fail = func(op updatetest.Op) error {
		switch {
		case op.Name == "retrieve-fd" && op.Token == 2:
			return syscall.EIO
		case op.Name == "retrieve" && op.Session == "cache":
			return syscall.ENOMEM
		}
		return nil
	}
	r := mustRestore(t, next)
	if len(r.Problems) != 2 || !strings.Contains(strings.Join(r.Problems, "\n"), `a.service "two"`) || !strings.Contains(strings.Join(r.Problems, "\n"), `s.service "own"`) {
		t.Errorf("problems %v", r.Problems)
	}
	if e := entry(r.Units, "a.service", "one"); e.File == nil || contents(t, e.File) != "A1" {
		t.Errorf("a.service one: %+v", e)
	}
	if e := entry(r.Units, "a.service", "two"); e.File != nil {
		t.Errorf("a.service two came back despite EIO")
	}
}

// TestOpenThenRetrieve: Open retrieves the manifest and the sessions (which
// need the device) and closes the device; each unit's memfds come back
// only when Retrieve asks for that unit, so a unit can start before the
// next one's are retrieved.
func TestOpenThenRetrieve(t *testing.T) {
	k, h := machine(t)
	next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(false)) })
	if next == nil {
		t.Fatal(err)
	}
	r, err := update.Open(next)
	if err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	if next.DeviceOpen() {
		t.Error("Open left the device open")
	}
	if e := entry(r.Units, "s.service", "own"); e.File == nil {
		t.Error("Open did not retrieve the unit's own session")
	}
	if e := entry(r.Units, "a.service", "one"); e.File != nil {
		t.Error("Open retrieved a memfd")
	}
	for i, u := range r.Units {
		if u.Name != "a.service" {
			continue
		}
		mark := len(next.Ops())
		r.Retrieve(i)
		for _, op := range next.Ops()[mark:] {
			if op.Name != "retrieve-fd" {
				t.Errorf("Retrieve did %s", op)
			}
		}
		if next.DeviceOpen() {
			t.Error("Retrieve opened the device")
		}
	}
	if e := entry(r.Units, "a.service", "one"); e.File == nil || contents(t, e.File) != "A1" {
		t.Errorf("a.service one after Retrieve: %+v", e)
	}
	if e := entry(r.Units, "idle.service", "kept"); e.File != nil {
		t.Error("Retrieve of a.service retrieved idle.service's memfd")
	}
	if len(r.Problems) != 0 {
		t.Errorf("problems %v", r.Problems)
	}
}

func TestCompletion(t *testing.T) {
	k, h := machine(t)
	next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(false)) })
	if next == nil {
		t.Fatal(err)
	}
	r := mustRestore(t, next)
	now := time.Now()
	rep := update.NewReport(r.Manifest, "7.3.4", now)
	if rep.From != "7.2.13" || rep.To != "7.3.4" || rep.Count != 1 || rep.Kind != update.Kexec {
		t.Errorf("report %+v", rep)
	}
	c := update.NewCompletion(r.Session, r.Manifest, rep, []string{"a.service", "s.service"}, now, time.Minute)
	if c.Done() || !c.Waiting("a.service") || c.Waiting("idle.service") {
		t.Fatal("done before any unit is up")
	}
	c.Ready("a.service", now.Add(time.Second))
	c.Ready("idle.service", now) // not pending: ignored
	if c.Done() || !equal(c.Pending(), []string{"s.service"}) {
		t.Fatalf("pending %v", c.Pending())
	}
	c.Failed("s.service", "exit-code")
	if !c.Done() {
		t.Fatal("not done")
	}
	if err := c.Finish(now.Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if !c.Finished() || c.Session() != nil || c.Done() {
		t.Error("state after Finish")
	}
	if got := next.Sessions(); !equal(got, []string{"in:cache"}) {
		t.Errorf("sessions after finish %v, want luod's gone", got)
	}
	rep = rep.Sorted()
	ru := rep.Unit("a.service")
	if ru.Ready.IsZero() || ru.Blackout <= 0 || ru.Stopped.IsZero() {
		t.Errorf("a.service report %+v", ru)
	}
	if !strings.Contains(strings.Join(rep.Problems, "\n"), "s.service failed after the update: exit-code") {
		t.Errorf("problems %v", rep.Problems)
	}
	var names []string
	for _, ev := range rep.Timeline {
		names = append(names, ev.Name+"/"+ev.Unit)
	}
	for _, want := range []string{"requested/", "loaded/", "stop-begin/", "stopped/a.service", "last-stopped/", "preserved/", "reboot/", "kernel-up/", "ready/a.service", "finished/"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("timeline %v lacks %s", names, want)
		}
	}
	for i := 1; i < len(rep.Timeline); i++ {
		if rep.Timeline[i].Time.Before(rep.Timeline[i-1].Time) {
			t.Errorf("Sorted timeline out of order: %v", rep.Timeline)
		}
	}
	if err := c.Finish(now); err != nil || len(rep.Problems) != 1 {
		t.Errorf("a second Finish did something: %v", err)
	}
}

func TestCompletionTimeoutAndResume(t *testing.T) {
	k := leftBy(t, "garbage")
	r, _ := update.Restore(k)
	c := update.NewCompletion(r.Session, &update.Manifest{}, &update.Report{}, []string{"slow.service"}, time.Now(), 0)
	if err := c.Finish(time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(c.Report.Problems, ""), "not up: slow.service") {
		t.Errorf("problems %v", c.Report.Problems)
	}
	if len(k.Sessions()) != 0 {
		t.Errorf("sessions %v", k.Sessions())
	}
	// Save and resume across a re-exec.
	k = leftBy(t, "garbage")
	r, _ = update.Restore(k)
	c = update.NewCompletion(r.Session, &update.Manifest{}, &update.Report{}, []string{"b", "a"}, time.Unix(100, 0), 0)
	st := c.Save(func(f *os.File) int { return 42 })
	if st.SessionFD != 42 || !equal(st.Pending, []string{"a", "b"}) || !st.Deadline.Equal(time.Unix(100, 0)) {
		t.Errorf("saved %+v", st)
	}
	c2 := update.ResumeCompletion(st, r.Session, nil)
	if !equal(c2.Pending(), []string{"a", "b"}) || c2.Report == nil || c2.Session() != r.Session {
		t.Errorf("resumed %+v", c2)
	}
}
