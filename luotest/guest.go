package luotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// A VM is the running stage of a VM, as the function given to [Run] sees
// it. Its methods drive luod through luoctl and fail the test (t.Fatal) when
// luod does not answer or refuses; call them from the test's goroutine. A VM
// is valid only during that call.
type VM struct {
	t      *testing.T
	stage  int
	stages int
}

// Stage returns the number of the running stage, from 1: stage N runs
// Config.Kernels[N-1] after N-1 live updates.
func (v *VM) Stage() int { return v.stage }

// Stages returns the number of stages, len(Config.Kernels).
func (v *VM) Stages() int { return v.stages }

// Release returns the release of the running kernel, as uname -r prints it
// ("7.3.0", say).
func (v *VM) Release() string { return vm.Release() }

// A Unit is the state of a unit as luod reports it: a few fields of
// "luoctl --json status UNIT".
type Unit struct {
	Name string `json:"name"`
	// ActiveState is inactive, activating, active, deactivating or failed.
	ActiveState string `json:"active_state"`
	// SubState is, for an active service, running (or exited).
	SubState string `json:"sub_state"`
	// Status is the last STATUS= the service sent.
	Status string `json:"status"`
	// MainPID is the service's main process, 0 when it has none.
	MainPID int `json:"main_pid"`
	// Result is why the unit last stopped or failed: success, exit-code,
	// signal, timeout, ...
	Result string `json:"result"`
	// Restarts counts the automatic restarts (Restart=) of the unit.
	Restarts int `json:"restarts"`
	// FDStoreCount is the number of fds in the unit's fd store.
	FDStoreCount int `json:"fdstore_count"`
}

// An FD is one entry of a unit's fd store, as "luoctl --json fdstore UNIT"
// reports it.
type FD struct {
	// Name is the fd's FDNAME=.
	Name string `json:"fdname"`
	// Type is "memfd", "luo-session", "sock", "reg", ...
	Type string `json:"type"`
	// Size is the size in bytes of a memfd or regular file.
	Size int64 `json:"size"`
	// Survives is "yes" when the fd crosses a kernel live update, else "no".
	Survives string `json:"survives_kexec"`
	// Why says how it survives, or why not.
	Why string `json:"why"`
}

// Luoctl runs luoctl with args and returns its standard output. A non-zero
// exit is an error holding luoctl's standard error; it does not fail the
// test. Use "--json" for output to decode.
func (v *VM) Luoctl(args ...string) ([]byte, error) {
	cmd := exec.Command(BinDir+"/luoctl", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("luoctl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// Unit returns the state of the unit name, waiting up to a minute for luod
// to answer (it may still be starting).
func (v *VM) Unit(name string) Unit {
	v.t.Helper()
	var u Unit
	v.poll(name+": luod answers", time.Minute, func() error {
		var err error
		u, err = v.unit(name)
		return err
	})
	return u
}

// unit asks luod for the state of the unit name once.
func (v *VM) unit(name string) (Unit, error) {
	out, err := v.Luoctl("--json", "status", name)
	if err != nil {
		return Unit{}, err
	}
	var replies []struct {
		Unit Unit `json:"unit"`
	}
	if err := json.Unmarshal(out, &replies); err != nil || len(replies) != 1 {
		return Unit{}, fmt.Errorf("luoctl --json status %s: unexpected output %q", name, out)
	}
	return replies[0].Unit, nil
}

// liveUpdates returns how many live updates luod has seen since the VM
// booted, waiting up to a minute for luod to answer.
func (v *VM) liveUpdates() int {
	v.t.Helper()
	var status struct { // the GetManager reply
		LiveUpdates *int `json:"live_updates"`
	}
	v.poll("luod answers", time.Minute, func() error {
		out, err := v.Luoctl("--json", "status")
		if err != nil {
			return err
		}
		if err := json.Unmarshal(out, &status); err != nil || status.LiveUpdates == nil {
			return fmt.Errorf("luoctl --json status: unexpected output %q", out)
		}
		return nil
	})
	return *status.LiveUpdates
}

// WaitActive waits up to two minutes for the unit name to be active (for a
// Type=notify service: until it sent READY=1) and returns its state. It
// fails the test if the unit fails or does not get there in time.
func (v *VM) WaitActive(name string) Unit {
	v.t.Helper()
	var u Unit
	v.poll(name+" active", 2*time.Minute, func() error {
		var err error
		if u, err = v.unit(name); err != nil {
			return err
		}
		switch u.ActiveState {
		case "active":
			return nil
		case "failed":
			v.t.Fatalf("luotest: %s failed: result %q, status %q (its output is on the VM's console)", name, u.Result, u.Status)
		}
		return fmt.Errorf("%s/%s, result %q, status %q", u.ActiveState, u.SubState, u.Result, u.Status)
	})
	return u
}

// Restart restarts the unit name with "luoctl restart", as an operator
// would: luod stops the service, keeps its fd store and starts it again.
// It waits for the unit to be active again and returns its state.
func (v *VM) Restart(name string) Unit {
	v.t.Helper()
	if _, err := v.Luoctl("restart", name); err != nil {
		v.t.Fatal(err)
	}
	return v.WaitActive(name)
}

// FDStore returns the entries of the fd store of the unit name.
func (v *VM) FDStore(name string) []FD {
	v.t.Helper()
	out, err := v.Luoctl("--json", "fdstore", name)
	if err != nil {
		v.t.Fatal(err)
	}
	var stores []struct {
		Entries []FD `json:"entries"`
	}
	if err := json.Unmarshal(out, &stores); err != nil || len(stores) != 1 {
		v.t.Fatalf("luoctl --json fdstore %s: unexpected output %q", name, out)
	}
	return stores[0].Entries
}

// LiveUpdate live updates the VM into the next stage's kernel with
// "luoctl update run", as an operator would, and does not return: the test
// ends with the kexec, and runs again in the next stage. [Run] calls it
// after the function of every stage but the last; call it yourself to end
// a stage early. It fails the test in the last stage, when luod refuses
// the update (its plan would lose an fd that a unit preserves, say) or when
// the kexec does not happen.
func (v *VM) LiveUpdate() {
	v.t.Helper()
	kernel, initrd, cmdline, err := vm.NextBoot()
	if err != nil {
		v.t.Fatalf("luotest: no live update from stage %d/%d: %v", v.stage, v.stages, err)
	}
	vmtest.ExpectKexec(v.t)
	v.t.Logf("luotest: luoctl update run --kernel %s (stage %d/%d to %d)", kernel, v.stage, v.stages, v.stage+1)
	if out, err := v.Luoctl("update", "run", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline); err != nil {
		v.t.Log(string(out))
		v.t.Fatal(err)
	}
	time.Sleep(time.Minute) // the kexec ends this process
	v.t.Fatal("luotest: still running a minute after luoctl update run said it reboots")
}

// poll calls fn until it returns nil, and fails the test if it has not
// after timeout.
func (v *VM) poll(what string, timeout time.Duration, fn func() error) {
	v.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("luotest: %s: %v (after %v)", what, err, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
