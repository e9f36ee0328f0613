//go:build !vmguest

package e2e_test

import (
	"testing"

	"github.com/liveupdate/luo/internal/vmtest"
)

// quotaUnits: two counters with 1 MiB of state each; big.service may only
// carry 64 KiB across a kexec.
var quotaUnits = map[string]string{
	"mem.service": `[Service]
Type=notify
ExecStart=/vmtest/bin/counter -size 1048576
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes
`,
	"big.service": `[Service]
Type=notify
ExecStart=/vmtest/bin/counter -size 1048576
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes

[X-LUO]
PreserveMaxBytes=64K
`,
}

// TestVMQuotaAndMetrics: on the LUO kernel, an update is refused for a
// unit over its [X-LUO] PreserveMaxBytes= (nothing stopped, nothing
// loaded), then goes through with --allow-loss 7.2 -> 7.3: that unit's
// state is reported lost, the other's carried; and the metrics luod
// serves on 127.0.0.1 in the new kernel show the previous kernel's
// update, its refusal included. The guest side is TestQuota.
func TestVMQuotaAndMetrics(t *testing.T) {
	cfg := luodConfig([]string{vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")}, quotaUnits, "-test.run", "^TestQuota$")
	cfg.Init = append(cfg.Init, "--metrics-listen", quotaMetricsAddr, "--metrics-textfile", "/run/luod/metrics.prom")
	vmtest.Run(t, cfg)
}
