package interop

import "syscall"

// qemuSysProcAttr makes the kernel kill QEMU if the test process dies
// without cleaning up, such as on a "go test" timeout panic.
func qemuSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
