//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

// main says that luod needs Linux and exits 1. The command's doc comment is
// in main.go.
func main() {
	fmt.Fprintf(os.Stderr, "luod: a Linux service manager; it does not run on %s\n", runtime.GOOS)
	os.Exit(1)
}
