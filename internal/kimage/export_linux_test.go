//go:build linux && amd64

package kimage

// RunningFormats is Running with the paths of kcore and kallsyms.
var RunningFormats = runningFormats
