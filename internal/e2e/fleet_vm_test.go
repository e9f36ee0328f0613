//go:build !vmguest

package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/liveupdate/luo/internal/etcdtest"
	"github.com/liveupdate/luo/internal/fleet"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// fleetUnits: a counter with 1 MiB of state, and gate.service, which does
// not become READY in a boot whose command line has luotest.unready.
var fleetUnits = map[string]string{
	"counter.service": `[Service]
Type=notify
ExecStart=/vmtest/bin/counter -size 1048576
FileDescriptorStoreMax=4
FileDescriptorStorePreserve=yes
`,
	"gate.service": `[Service]
Type=notify
ExecStart=/vmtest/bin/testsvc -status up -unready-on luotest.unready
`,
}

// fleetEtcdPort is where the guest reaches the host's etcd (vm.HostIP).
const fleetEtcdPort = 2379

// TestVMFleetRollback: one VM host of a fleet whose etcd runs on the
// host, reached only through QEMU's restricted user network (one forward
// to 127.0.0.1). 7.2 -> 7.3: the slot is taken before the units stop and
// held across the kexec; the 7.3 boot's gate.service never becomes READY,
// so luod rolls back into 7.2 by itself, with every store, and keeps the
// slot (rolled-back). An operator releases it; 7.2 -> 7.3 again, healthy:
// the slot is given back from the new kernel. The guest side is
// TestFleet; etcd's history is checked here.
func TestVMFleetRollback(t *testing.T) {
	srv := etcdtest.Start(t)
	k72, k73 := vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")
	cfg := luodConfig([]string{k72, k73, k72, k73}, fleetUnits, "-test.run", "^TestFleet$")
	cfg.Binaries["bin/testsvc"] = "github.com/liveupdate/luo/internal/luodtest/testsvc"
	cfg.HostForward = []vm.Forward{{GuestPort: fleetEtcdPort, Host: srv.Endpoint}}
	cfg.Init = append(cfg.Init, "--fleet-endpoints", fmt.Sprintf("%s:%d", vm.HostIP, fleetEtcdPort),
		"--fleet-group", "vm", "--fleet-host", "vm1", "--kernels", "/nonexistent/vmlinuz-*")
	cli := srv.Client(t)
	vmtest.Run(t, cfg)
	if t.Failed() {
		return
	}

	// etcd saw: taken for the failing update, kept through its kexec and
	// the rollback's (rolled-back), released by hand, taken again,
	// released from the new kernel.
	var got []string
	for _, r := range semaphoreHistory(t, cli, "vm") {
		var hs []string
		for _, h := range r.Holders {
			hs = append(hs, h.Host+" "+h.State)
			t.Logf("etcd: %s %s since %s, %s to %s: %s", h.Host, h.State, h.Since.Format(time.RFC3339Nano), h.Kind, h.To, h.Reason)
		}
		got = append(got, "["+strings.Join(hs, ",")+"]")
	}
	want := "[vm1 updating] [vm1 rolled-back] [] [vm1 updating] []"
	if strings.Join(got, " ") != want {
		t.Errorf("the semaphore's history in etcd: %s, want %s", strings.Join(got, " "), want)
	}
}

// semaphoreHistory is every version of group's semaphore, oldest first.
func semaphoreHistory(t *testing.T, c *clientv3.Client, group string) []fleet.Semaphore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, fleet.Key(group))
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("the semaphore of group %s: %v (never written)", group, err)
	}
	last := resp.Kvs[0].ModRevision
	var out []fleet.Semaphore
	for wr := range c.Watch(ctx, fleet.Key(group), clientv3.WithRev(1)) {
		for _, ev := range wr.Events {
			var s fleet.Semaphore
			if err := json.Unmarshal(ev.Kv.Value, &s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
			if ev.Kv.ModRevision == last {
				return out
			}
		}
	}
	t.Fatal("watch ended early")
	return nil
}
