//go:build !vmguest

package e2e_test

import "testing"

// benchSystemd stands in for the systemd baseline (branch sdbench,
// bench_systemd_vm_test.go) until it is merged; this file goes then.
func benchSystemd(t *testing.T, rounds int, early bool) (cmdToReady, down []float64) {
	t.Skip("systemd baseline not merged yet (branch sdbench)")
	return nil, nil
}
