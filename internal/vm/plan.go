package vm

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Fixed places in the guest.
const (
	// DiskDir is where the guest mounts the test disk, read-only.
	DiskDir = "/vmtest"
	// PlanPath is the plan's path in the guest.
	PlanPath = DiskDir + "/plan.json"
	// ResultsPort is the serial port that carries the test binary's output.
	ResultsPort = "/dev/ttyS1"

	// stageParam is the kernel command-line parameter naming the stage.
	stageParam = "vmtest.stage="
)

// A Plan tells the guest what to run in each stage. [Build] writes it to the
// disk as JSON and the guest reads it with [ReadPlan].
type Plan struct {
	// Stages describes each boot; Stages[i] is stage i+1.
	Stages []PlanStage `json:"stages"`
	// Cmdline is the kernel command line of every stage, without the
	// vmtest.stage= parameter that [Plan.StageCmdline] adds.
	Cmdline string `json:"cmdline"`
	// Initrd is the guest path of the initrd to kexec with.
	Initrd string `json:"initrd"`
	// Test is the argv vminit starts the test binary with.
	Test []string `json:"test"`
	// Init, if set, is the argv vminit execs as PID 1 instead of starting
	// Test itself.
	Init []string `json:"init,omitempty"`
	// Driver: start Test first, then exec Init (see Config.Driver).
	Driver bool `json:"driver,omitempty"`
	// Delay is Config.DriverDelay.
	Delay time.Duration `json:"driver_delay,omitempty"`
	// Results is the guest path of the results serial port.
	Results string `json:"results"`
	// Deadline, if set, is when the host kills the VM. vmtest.GuestMain
	// makes the guest tests time out (and dump their goroutines) shortly
	// before.
	Deadline time.Time `json:"deadline,omitzero"`
}

// A PlanStage is one boot of a [Plan].
type PlanStage struct {
	// Kernel is the guest path of the kernel this stage boots.
	Kernel string `json:"kernel"`
	// Release is that kernel's release string, as read from its image on the
	// host; uname(2) in the stage should report the same.
	Release string `json:"release"`
}

// StageCmdline returns the full kernel command line of stage n (1-based).
func (p *Plan) StageCmdline(n int) string {
	return strings.TrimSpace(p.Cmdline + " " + stageParam + strconv.Itoa(n))
}

// ReadPlan reads the plan of the running VM from [PlanPath]. It works only in
// the guest, once vminit has mounted the disk.
func ReadPlan() (*Plan, error) {
	b, err := os.ReadFile(PlanPath)
	if err != nil {
		return nil, fmt.Errorf("vm: read plan: %w", err)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("vm: parse %s: %w", PlanPath, err)
	}
	if len(p.Stages) == 0 {
		return nil, fmt.Errorf("vm: %s has no stages", PlanPath)
	}
	return &p, nil
}

// stageFromCmdline returns the value of vmtest.stage= in a kernel command
// line, or 0 if there is none.
func stageFromCmdline(cmdline string) int {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, stageParam); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return 0
			}
			return n
		}
	}
	return 0
}
