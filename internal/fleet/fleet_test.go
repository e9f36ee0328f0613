package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/etcdtest"
	"github.com/liveupdate/luo/internal/fleet"
	"github.com/liveupdate/luo/internal/update"
)

func open(t *testing.T, srv *etcdtest.Server, host string, slots int) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Open(fleet.Config{Endpoints: []string{srv.Endpoint}, Group: "g", Host: host, Slots: slots, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

var kexecTo73 = update.SlotUse{Kind: update.Kexec, From: "7.2.13", To: "/boot/vmlinuz-7.3.4"}

// TestSlots: one slot; a second host is refused with who holds it, a host
// taking its own slot again keeps its first Since, Keep records why, a
// release frees it, and a waiting host gets it as soon as it is free.
func TestSlots(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := open(t, srv, "a", 1), open(t, srv, "b", 1)
	ctx := context.Background()

	st, err := a.Status(ctx)
	if err != nil || st.Revision != 0 || len(st.Holders) != 0 || st.Max != 1 {
		t.Fatalf("status of a new group: %+v, %v", st, err)
	}
	sa, err := a.Take(ctx, kexecTo73, 0)
	if err != nil || sa.Host != "a" || sa.Group != "g" {
		t.Fatalf("a takes: %+v, %v", sa, err)
	}
	_, err = b.Take(ctx, update.SlotUse{Kind: update.Soft}, 0)
	var busy *update.BusyError
	if !errors.As(err, &busy) || busy.Max != 1 || len(busy.Holders) != 1 || !strings.Contains(busy.Holders[0], "a (updating since") ||
		!strings.Contains(err.Error(), "/boot/vmlinuz-7.3.4") {
		t.Fatalf("b takes while a holds: %v", err)
	}
	again, err := a.Take(ctx, kexecTo73, 0)
	if err != nil || !again.Since.Equal(sa.Since) {
		t.Errorf("a takes again: %+v, %v; want since %v", again, err, sa.Since)
	}
	if err := a.Keep(ctx, sa, update.SlotFailed, "web.service not READY within 10s"); err != nil {
		t.Fatal(err)
	}
	st, _ = b.Status(ctx)
	if h := st.Holds("a"); h == nil || h.State != update.SlotFailed || h.Reason != "web.service not READY within 10s" || h.To != kexecTo73.To || h.From != "7.2.13" {
		t.Errorf("a after Keep: %+v", st.Holders)
	}

	// Kept after a failed update, a's slot is not taken again until it is
	// released.
	var kept *update.KeptError
	if _, err := a.Take(ctx, kexecTo73, 0); !errors.As(err, &kept) || !strings.Contains(err.Error(), "luoctl fleet release a") ||
		!strings.Contains(err.Error(), "web.service not READY within 10s") {
		t.Errorf("a takes its kept slot again: %v", err)
	}

	// b waits; a's release lets it in at once.
	got := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := b.Take(ctx, update.SlotUse{Kind: update.Soft}, 20*time.Second)
		got <- err
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("b got a slot while a held it: %v", err)
	default:
	}
	if ok, err := b.ReleaseHost(ctx, "a"); !ok || err != nil {
		t.Fatalf("release a: %v, %v", ok, err)
	}
	if err := <-got; err != nil || time.Since(start) > 10*time.Second {
		t.Fatalf("b waiting: %v after %v", err, time.Since(start))
	}
	if ok, err := a.ReleaseHost(ctx, "a"); ok || err != nil {
		t.Errorf("release a again: %v, %v; want false", ok, err)
	}
	// Keep on a slot released by hand leaves it released.
	if err := a.Keep(ctx, sa, update.SlotFailed, "late"); err != nil {
		t.Fatal(err)
	}
	st, _ = a.Status(ctx)
	if st.Holds("a") != nil || st.Holds("b") == nil || len(st.Holders) != 1 {
		t.Errorf("holders %+v", st.Holders)
	}
	// A wait that runs out says who holds the slot.
	if _, err := a.Take(ctx, kexecTo73, 200*time.Millisecond); !errors.As(err, &busy) {
		t.Errorf("a waiting 200ms: %v", err)
	}
}

// TestSlotsContended: 8 hosts, 2 slots, each taking and releasing 5 times
// at once: etcd's history of the key never shows more than 2 holders, and
// every take is there.
func TestSlotsContended(t *testing.T) {
	srv := etcdtest.Start(t)
	const hosts, rounds, slots = 8, 5, 2
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for i := range hosts {
		f := open(t, srv, fmt.Sprintf("h%d", i), slots)
		wg.Go(func() {
			for range rounds {
				s, err := f.Take(context.Background(), update.SlotUse{Kind: update.Soft}, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(5 * time.Millisecond)
				inside.Add(-1)
				if err := f.Release(context.Background(), s); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if most.Load() > slots {
		t.Errorf("%d hosts inside at once, %d slots", most.Load(), slots)
	}
	takes, peak := 0, 0
	seen := map[string]bool{}
	for _, r := range history(t, srv.Client(t), "g", 1) {
		now := map[string]bool{}
		for _, h := range r.holders {
			now[h.Host] = true
			if !seen[h.Host] {
				takes++
			}
		}
		peak = max(peak, len(r.holders))
		seen = now
	}
	if takes != hosts*rounds || peak > slots {
		t.Errorf("etcd history: %d takes (want %d), at most %d holders (want <= %d)", takes, hosts*rounds, peak, slots)
	}
}

// TestUnreachable: with etcd down, Take fails within its timeout with a
// clear error instead of hanging, and works again once etcd is back.
func TestUnreachable(t *testing.T) {
	srv := etcdtest.Start(t)
	f := open(t, srv, "a", 1)
	srv.Stop(t)
	start := time.Now()
	_, err := f.Take(context.Background(), kexecTo73, 0)
	if err == nil || !strings.Contains(err.Error(), "etcd") || time.Since(start) > 10*time.Second {
		t.Fatalf("take with etcd down: %v after %v", err, time.Since(start))
	}
	srv.Restart(t)
	if _, err := f.Take(context.Background(), kexecTo73, 0); err != nil {
		t.Fatalf("take after etcd is back: %v", err)
	}
}

// TestOpenRefusesBadSettings: every setting is checked before any etcd
// request.
func TestOpenRefusesBadSettings(t *testing.T) {
	good := fleet.Config{Endpoints: []string{"127.0.0.1:1"}, Group: "g", Host: "h", Slots: 1}
	for name, mod := range map[string]func(*fleet.Config){
		"no endpoints": func(c *fleet.Config) { c.Endpoints = nil },
		"group slash":  func(c *fleet.Config) { c.Group = "a/b" },
		"empty host":   func(c *fleet.Config) { c.Host = "" },
		"zero slots":   func(c *fleet.Config) { c.Slots = 0 },
		"missing CA":   func(c *fleet.Config) { c.CACert = "/nonexistent/ca.pem" },
	} {
		c := good
		mod(&c)
		if f, err := fleet.Open(c); !errors.Is(err, fleet.ErrConfig) {
			t.Errorf("%s: %v, %v", name, f, err)
		}
	}
	f, err := fleet.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestTLS: with the CA and a client certificate, the slots work over TLS;
// without the client certificate, or trusting another CA, etcd is not
// reached and Take says so.
func TestTLS(t *testing.T) {
	srv := etcdtest.StartTLS(t)
	good := fleet.Config{Endpoints: []string{srv.URL()}, Group: "g", Host: "a", Slots: 1, Timeout: 3 * time.Second,
		CACert: srv.TLS.CA, Cert: srv.TLS.Cert, Key: srv.TLS.Key}
	f, err := fleet.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Take(context.Background(), kexecTo73, 0); err != nil {
		t.Fatalf("take over TLS: %v", err)
	}
	other := etcdtest.StartTLS(t) // another CA
	for name, c := range map[string]fleet.Config{
		"no client certificate": {Endpoints: good.Endpoints, Group: "g", Host: "b", Slots: 1, Timeout: 2 * time.Second, CACert: srv.TLS.CA},
		"another CA":            {Endpoints: good.Endpoints, Group: "g", Host: "b", Slots: 1, Timeout: 2 * time.Second, CACert: other.TLS.CA, Cert: other.TLS.Cert, Key: other.TLS.Key},
	} {
		f, err := fleet.Open(c)
		if err != nil {
			t.Fatalf("%s: open: %v", name, err)
		}
		if _, err := f.Take(context.Background(), kexecTo73, 0); err == nil || !strings.Contains(err.Error(), "etcd") {
			t.Errorf("%s: take: %v", name, err)
		}
		f.Close()
	}
	st, err := f.Status(context.Background())
	if err != nil || len(st.Holders) != 1 || st.Holders[0].Host != "a" {
		t.Errorf("status over TLS: %+v, %v", st, err)
	}
}
