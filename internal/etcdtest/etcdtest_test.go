package etcdtest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/liveupdate/luo/internal/etcdtest"
)

// TestClientAgainstServer proves that the etcd client this module requires
// works against the etcd server the machines install (Debian's etcd-server),
// for every call a fleet semaphore makes: Put and Get by prefix, a
// compare-and-swap on ModRevision, reads and watches of past revisions,
// leases kept alive, sessions and mutexes, and a server that goes away and
// comes back with its data.
func TestClientAgainstServer(t *testing.T) {
	start := time.Now()
	srv := etcdtest.Start(t)
	t.Logf("etcd server %s at %s (%s), up in %v", srv.Version, srv.Endpoint, srv.URL(), time.Since(start).Round(time.Millisecond))
	if srv.Version == "" || !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("Version %q, URL %q: want a version and a loopback URL", srv.Version, srv.URL())
	}
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Put/Get with prefix.
	first, err := c.Put(ctx, "fleet/a", "1")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	for _, kv := range [][2]string{{"fleet/b", "2"}, {"fleetx", "not under fleet/"}} {
		if _, err := c.Put(ctx, kv[0], kv[1]); err != nil {
			t.Fatalf("Put %s: %v", kv[0], err)
		}
	}
	got, err := c.Get(ctx, "fleet/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("Get prefix: %v", err)
	}
	if s := kvs(got); s != "fleet/a=1 fleet/b=2" {
		t.Fatalf("Get fleet/ with prefix = %q, want %q", s, "fleet/a=1 fleet/b=2")
	}

	// Compare-and-swap on ModRevision: once it succeeds, the same
	// revision is stale and the swap fails.
	rev := got.Kvs[0].ModRevision
	cas := func(val string) bool {
		t.Helper()
		resp, err := c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision("fleet/a"), "=", rev)).
			Then(clientv3.OpPut("fleet/a", val)).
			Else(clientv3.OpGet("fleet/a")).
			Commit()
		if err != nil {
			t.Fatalf("Txn: %v", err)
		}
		return resp.Succeeded
	}
	if !cas("3") {
		t.Fatal("CAS on the current ModRevision failed")
	}
	if cas("4") {
		t.Fatal("CAS on a stale ModRevision succeeded")
	}

	// History: the old revision still reads the old value.
	old, err := c.Get(ctx, "fleet/a", clientv3.WithRev(rev))
	if err != nil {
		t.Fatalf("Get WithRev(%d): %v", rev, err)
	}
	if s := kvs(old); s != "fleet/a=1" {
		t.Fatalf("Get fleet/a at revision %d = %q, want fleet/a=1", rev, s)
	}

	// Watch from an old revision replays the events since, in order.
	if _, err := c.Delete(ctx, "fleet/b"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	want := []string{"PUT fleet/a=1", "PUT fleet/b=2", "PUT fleet/a=3", "DELETE fleet/b="}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	var events []string
	for wr := range c.Watch(wctx, "fleet/", clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision)) {
		if err := wr.Err(); err != nil {
			t.Fatalf("Watch: %v", err)
		}
		for _, ev := range wr.Events {
			events = append(events, fmt.Sprintf("%s %s=%s", ev.Type, ev.Kv.Key, ev.Kv.Value))
		}
		if len(events) >= len(want) {
			break
		}
	}
	wcancel()
	if strings.Join(events, ", ") != strings.Join(want, ", ") {
		t.Fatalf("Watch from revision %d: %q, want %q", first.Header.Revision, events, want)
	}

	// A lease, kept alive, holds its key.
	lease, err := c.Grant(ctx, 5)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	if _, err := c.Put(ctx, "fleet/holder", "me", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatalf("Put WithLease: %v", err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	alive, err := c.KeepAlive(kctx, lease.ID)
	if err != nil {
		t.Fatalf("KeepAlive: %v", err)
	}
	select {
	case ka, ok := <-alive:
		if !ok || ka.TTL <= 0 {
			t.Fatalf("KeepAlive: response %v, channel open %v", ka, ok)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("KeepAlive: no response in 10 s")
	}
	kcancel()
	if _, err := c.Revoke(ctx, lease.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if held, err := c.Get(ctx, "fleet/holder"); err != nil || len(held.Kvs) != 0 {
		t.Fatalf("after Revoke, Get fleet/holder = %v, %v: want no key", held, err)
	}

	// Sessions and mutexes: one holder at a time.
	s1, err := concurrency.NewSession(c, concurrency.WithTTL(5))
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	defer s1.Close()
	s2, err := concurrency.NewSession(c, concurrency.WithTTL(5))
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	defer s2.Close()
	m1, m2 := concurrency.NewMutex(s1, "fleet-lock/"), concurrency.NewMutex(s2, "fleet-lock/")
	if err := m1.Lock(ctx); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := m2.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
		t.Fatalf("TryLock of a held mutex: %v, want ErrLocked", err)
	}
	if err := m1.Unlock(ctx); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if err := m2.Lock(ctx); err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	if err := m2.Unlock(ctx); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	s1.Close()
	s2.Close()

	// Stop: calls fail. Restart: the same data, and the same client
	// reconnects.
	before, err := c.Get(ctx, "fleet/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	srv.Stop(t)
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = c.Get(dctx, "fleet/a")
	dcancel()
	if err == nil {
		t.Fatal("Get from a stopped etcd succeeded")
	}
	t.Logf("Get while stopped: %v", err)
	restarted := time.Now()
	srv.Restart(t)
	t.Logf("restarted in %v", time.Since(restarted).Round(time.Millisecond))
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	after, err := c.Get(rctx, "fleet/", clientv3.WithPrefix())
	rcancel()
	if err != nil {
		t.Fatalf("Get after Restart, same client: %v", err)
	}
	if kvs(after) != kvs(before) || after.Header.Revision != before.Header.Revision {
		t.Fatalf("after Restart: %q at revision %d, want %q at revision %d",
			kvs(after), after.Header.Revision, kvs(before), before.Header.Revision)
	}
	if _, err := srv.Client(t).Put(ctx, "fleet/c", "5"); err != nil {
		t.Fatalf("Put after Restart, new client: %v", err)
	}
}

// kvs formats a Get's keys and values as "k=v k=v".
func kvs(r *clientv3.GetResponse) string {
	var s []string
	for _, kv := range r.Kvs {
		s = append(s, fmt.Sprintf("%s=%s", kv.Key, kv.Value))
	}
	return strings.Join(s, " ")
}
