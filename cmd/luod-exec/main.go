//go:build linux

// Command luod-exec is the exec shim luod runs in each service's process
// between the fork and the exec of the service (see package
// internal/execshim): luod-exec PATH ARGV0 [ARGS...]. It is installed next
// to luod; without it luod uses its own binary ("luod --exec-shim"), which
// starts slower.
package main

import (
	"os"

	"github.com/liveupdate/luo/internal/execshim"
)

func main() { os.Exit(execshim.Run(os.Args[1:])) }
