//go:build linux && !vmguest

package keep_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
	"github.com/liveupdate/luo/keep"
)

func TestWithoutManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	var logs strings.Builder
	st, err := keep.Open(&keep.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Notifier() != nil || st.Mode() != keep.ModeNone || !strings.Contains(logs.String(), "no service manager") {
		t.Errorf("notifier %v, mode %v, logs %q", st.Notifier(), st.Mode(), logs.String())
	}
	r, err := st.Region("state", 8192)
	if err != nil {
		t.Fatal(err)
	}
	if r.Origin != keep.Fresh || r.Size != 8192 {
		t.Errorf("region %+v", r)
	}
	b, err := r.Bytes()
	if err != nil || len(b) != 8192 {
		t.Fatalf("Bytes: %d, %v", len(b), err)
	}
	copy(b, "hello")
	again, err := st.Region("state", 8192)
	if err != nil || again != r {
		t.Fatalf("second Region call: %v, %v", again, err)
	}
	if _, err := st.Region("state", 4096); !errors.Is(err, keep.ErrSizeChanged) {
		t.Errorf("resize: %v", err)
	}
	for _, bad := range []string{"", "a:b", "bad\x01", keep.IndexName} {
		if _, err := st.Region(bad, 10); err == nil {
			t.Errorf("Region(%q) succeeded", bad)
		}
	}
	if _, err := st.Region("zero", 0); err == nil {
		t.Error("a zero-sized region was accepted")
	}
	if err := st.Remove("state"); err != nil {
		t.Fatal(err)
	}
	if got := st.Regions(); len(got) != 0 {
		t.Errorf("regions after Remove: %v", got)
	}
	if err := st.Remove("state"); !errors.Is(err, keep.ErrNotFound) {
		t.Error("second Remove succeeded")
	}
}

func TestBadConfig(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if _, err := keep.Open(&keep.Config{Session: "a:b"}); !errors.Is(err, keep.ErrBadName) {
		t.Error("invalid Session name accepted")
	}
	if _, err := keep.Open(&keep.Config{SessionName: strings.Repeat("x", 64)}); !errors.Is(err, keep.ErrBadName) {
		t.Error("64-byte SessionName accepted")
	}
}

func counterUnit(args string) string {
	return "[Service]\nType=notify\nExecStart=@BIN@/counter " + args + "\nFileDescriptorStoreMax=4\nFileDescriptorStorePreserve=yes\n"
}

func status(t *testing.T, d *luodtest.Daemon, name string) string {
	t.Helper()
	return d.WaitUnit(name, "active with a status", func(u control.Unit) bool { return u.ActiveState == "active" && u.Status != "" }).Status
}

// TestRestartUnderLuod: the example service keeps its region across
// restarts under luod, in fd-store mode and, without LUO, in session mode
// (which falls back to the fd store).
func TestRestartUnderLuod(t *testing.T) {
	d := luodtest.Start(t, map[string]string{
		"store.service":   counterUnit("-size 65536"),
		"session.service": counterUnit("-size 65536 -session s"),
		"socket.service":  counterUnit("-size 65536 -hold-socket"),
	})
	for _, name := range []string{"store.service", "session.service", "socket.service"} {
		if s := status(t, d, name); !strings.HasPrefix(s, "generation=1 origin=fresh verified=fresh") {
			t.Errorf("%s first start: %q", name, s)
		}
		for gen := 2; gen <= 3; gen++ {
			d.MustCall(control.MethodRestartUnit, control.UnitName{Name: name}, nil)
			want := "generation=" + string(rune('0'+gen)) + " origin=fdstore verified=ok live_updates=0"
			if s := status(t, d, name); !strings.HasPrefix(s, want) {
				t.Errorf("%s restart: %q, want %q...", name, s, want)
			}
		}
	}
	if s := status(t, d, "session.service"); !strings.Contains(s, "mode=fd-store") {
		t.Errorf("session mode without LUO should fall back to the fd store: %q", s)
	}
	if n := d.Unit("store.service").FDStoreCount; n != 2 {
		t.Errorf("store.service holds %d fds, want 2 (region and index)", n)
	}
	if n := d.Unit("socket.service").FDStoreCount; n != 3 {
		t.Errorf("socket.service holds %d fds, want 3 (region, index and the socket kept once)", n)
	}
}

// TestStoreTooSmall: a store too small for the region and the index makes
// the service fail at start with a message that names the setting, and
// luod has nothing to drop.
func TestStoreTooSmall(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"small.service": strings.Replace(counterUnit("-size 65536"), "FileDescriptorStoreMax=4", "FileDescriptorStoreMax=1", 1)})
	d.WaitLog("FileDescriptorStoreMax=1 allows 1")
	if strings.Contains(d.Log(), "cannot store more fds") {
		t.Error("luod dropped an fd keep should have kept back")
	}
}

// TestSizeChangeRefused: a kept region does not silently change size.
func TestSizeChangeRefused(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"c.service": counterUnit("-size 65536")})
	status(t, d, "c.service")
	d.WriteUnit("c.service", counterUnit("-size 4096"))
	d.MustCall(control.MethodReload, nil, nil)
	d.Call(control.MethodRestartUnit, control.UnitName{Name: "c.service"}, nil)
	u := d.WaitUnit("c.service", "failed", func(u control.Unit) bool { return u.ActiveState == "failed" })
	if u.FDStoreCount != 2 {
		t.Errorf("the store lost the region: %+v", u)
	}
	d.WaitLog("was kept with 65536 bytes, not 4096")
}
