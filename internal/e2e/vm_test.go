//go:build !vmguest

package e2e_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/liveupdate/luo/internal/kimage/kimagetest"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// units are the services of the VM: the example counter in each way keep
// can carry state, and one that also holds a socket (lost at a kexec).
var units = map[string]string{
	"mem.service": `[Unit]
Description=counter, plain memfds in the fd store
[Service]
Type=notify
ExecStart=/vmtest/bin/counter -size 1048576
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes
`,
	"own.service": `[Unit]
Description=counter, in its own LUO session
[Service]
Type=notify
ExecStart=/vmtest/bin/counter -size 1048576 -session own
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes
`,
	"luos.service": `[Unit]
Description=counter, in a LUOSession= session
[Service]
Type=notify
ExecStart=/vmtest/bin/counter -size 1048576 -session state
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes
LUOSession=state
`,
	// Sized exactly as keep's docs say: one region, keep.index and the
	// session. After a kexec luod holds two sessions under the name.
	"tight.service": `[Unit]
Description=counter, in a LUOSession= session, FileDescriptorStoreMax= as keep's docs size it
[Service]
Type=notify
ExecStart=/vmtest/bin/counter -size 1048576 -session state
FileDescriptorStoreMax=3
FileDescriptorStorePreserve=yes
LUOSession=state
`,
	"sock.service": `[Unit]
Description=counter that also stores a socket
[Service]
Type=notify
ExecStart=/vmtest/bin/counter -size 65536 -hold-socket
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes
`,
}

func config(t *testing.T, kernels []string, run string) vm.Config {
	cfg := luodConfig(kernels, units, "-test.run", run)
	cfg.Binaries["bin/testsvc"] = "github.com/liveupdate/luo/internal/luodtest/testsvc"
	return cfg
}

// TestVMLiveUpdate: ten consecutive live updates, alternating 7.2 and 7.3
// (upgrade, rollback, ...), with every service's state verified after each.
func TestVMLiveUpdate(t *testing.T) {
	k72, k73 := vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")
	var kernels []string
	n := 11 // ten live updates
	if v, err := strconv.Atoi(os.Getenv("LUO_E2E_STAGES")); err == nil && v > 1 {
		n = v
	}
	for i := range n {
		kernels = append(kernels, []string{k72, k73}[i%2])
	}
	vmtest.Run(t, config(t, kernels, "^TestLiveUpdate$"))
}

// TestVMFaults: the abort paths of an update, a next kernel that speaks
// other LUO formats, an operator's kexec image across a plan, and what
// luod does with a corrupt or future manifest and a unit file that
// vanished. luod is the test build with fault injection (-tags luodfault);
// every other suite runs the production build.
func TestVMFaults(t *testing.T) {
	k72, k73 := vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")
	cfg := config(t, []string{k72, k73, k72, k73}, "^TestFaults$")
	cfg.BuildTags = []string{"luodfault"}
	// The 7.3 kernel with its memfd and LUO formats changed: it would
	// lose every memfd (EIO on /dev/liveupdate) and panic at boot.
	cfg.Files["images/memfd-v9.bzImage"] = readFile(t, kimagetest.Image(t, k73, map[string]string{"memfd-v2": "memfd-v9"}))
	cfg.Files["images/luo-v9.bzImage"] = readFile(t, kimagetest.Image(t, k73, map[string]string{"luo-v5": "luo-v9"}))
	vmtest.Run(t, cfg)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
