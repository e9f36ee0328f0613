// Command luo-demo is the live update demo (make demo): see package
// internal/demo. With -guest it is the demo's driver inside the VM.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/liveupdate/luo/internal/demo"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == demo.GuestFlag {
		err = demo.Guest()
	} else {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		err = demo.Run(ctx, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "luo-demo:", err)
		os.Exit(1)
	}
}
