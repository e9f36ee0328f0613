// Command mangen writes luoctl's manual pages, one per command (luoctl.1,
// luoctl-update-run.1, ...), generated from its command tree, into the
// directory given as its argument. make install runs it; it is not
// installed.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra/doc"

	"github.com/liveupdate/luo/internal/cli"
	"github.com/liveupdate/luo/internal/version"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mangen DIR")
		os.Exit(2)
	}
	root := cli.Command()
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{Title: "LUOCTL", Section: "1", Source: "luo " + version.String(), Manual: "luo manual"}
	if err := os.MkdirAll(os.Args[1], 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
	if err := doc.GenManTree(root, header, os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
}
