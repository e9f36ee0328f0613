// Command luoctl controls luod, the live update manager: its units, their fd
// stores, and kernel live updates. See 'luoctl --help' and package
// internal/cli, where all of it lives.
package main

import (
	"os"

	"github.com/liveupdate/luo/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
