//go:build !linux

package interop

import "syscall"

func qemuSysProcAttr() *syscall.SysProcAttr { return nil }
