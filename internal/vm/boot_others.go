//go:build !linux

package vm

import "syscall"

func qemuSysProcAttr() *syscall.SysProcAttr { return nil }
