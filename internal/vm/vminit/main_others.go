//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "vminit: runs only as the init of a Linux vmtest VM")
	os.Exit(2)
}
