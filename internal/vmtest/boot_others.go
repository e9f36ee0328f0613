//go:build !linux

package vmtest

import "syscall"

func qemuSysProcAttr() *syscall.SysProcAttr { return nil }
