//go:build !vmguest

package e2e_test

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/luodtest"
)

// hostModelUnits are the units of TestModelHost. The host has no
// /dev/liveupdate (and luodtest points luod at a device that does not
// exist), so neither session mode can really be tested here: luod hands
// out no LUOSession= session ("no LUO device"), and keep cannot create its
// own; in both, keep falls back to fd-store mode, as its docs say. The
// session units run anyway, for that fall-back (with the session modes'
// FileDescriptorStoreMax=3); the real session modes run in TestVMModel.
var hostModelUnits = []modelUnit{
	{name: "fdstore.service", mode: modeFDStore},
	{name: "luosession.service", mode: modeLUOSession, noLUO: true},
	{name: "ownsession.service", mode: modeOwn, noLUO: true},
}

// TestModelHost runs a seeded random sequence of starts, stops, SIGKILLs
// (Restart=on-failure), restarts, daemon-reexecs and soft updates with and
// without --restart-units against luod on the host, checking after every
// step that each unit's counter advanced its generation by exactly one
// per start and kept it otherwise, verified its region, reports the
// origin and mode it must, that its fd store holds the region and
// keep.index within FileDescriptorStoreMax=, and that luod logged no
// dropped fd. LUO_SEED=n (or random) and LUO_STEPS=n change the sequence.
func TestModelHost(t *testing.T) {
	seed := modelSeed(t, 1)
	n := envInt(t, "LUO_STEPS", 160)
	if testing.Short() {
		n = min(n, 40)
	}
	files := map[string]string{}
	for _, u := range hostModelUnits {
		files[u.name] = u.file("@BIN@/counter")
	}
	d := luodtest.Start(t, files)
	h := &hostLuod{d: d}
	steps := generate(seed, hostModelUnits, n, 0)
	r := newRunner(t, seed, h, hostModelUnits, n, 20*time.Second,
		"LUO_SEED="+itoa(seed)+" LUO_STEPS="+itoa(uint64(n))+" go test -count=1 -run '^TestModelHost$' -v ./internal/e2e")
	t.Logf("model: seed %d, %d steps, units %s", seed, n, unitNames(hostModelUnits))
	start := time.Now()
	r.settle(-1, "boot", nil)
	r.logState()
	for i, s := range steps {
		r.run(i, s)
	}
	t.Logf("model: seed %d: %d steps in %v", seed, n, time.Since(start).Round(time.Millisecond))
}

// hostLuod is luod on the host, started by luodtest.
type hostLuod struct {
	d      *luodtest.Daemon
	logOff int
}

func (h *hostLuod) call(method string, params, reply any) error {
	return h.d.Call(method, params, reply)
}

func (h *hostLuod) luoctl(args ...string) (string, int) {
	cmd := exec.Command(filepath.Join(h.d.Bin, "luoctl"), append([]string{"--socket", h.d.Socket}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}

func (h *hostLuod) newLog() string {
	log := h.d.Log()
	s := log[h.logOff:]
	h.logOff = len(log)
	return s
}
