//go:build !linux

// Command luod needs Linux: see main.go.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Fprintf(os.Stderr, "luod: a Linux service manager; it does not run on %s\n", runtime.GOOS)
	os.Exit(1)
}
