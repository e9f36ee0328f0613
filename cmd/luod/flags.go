//go:build linux

package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// options are luod's command line.
type options struct {
	units, runtimeDir, logFormat, logLevel, logTarget, device string
	version                                                   bool
}

// flagSet declares luod's options, GNU-style like luoctl's (--units DIR,
// --units=DIR; -h and --help print them). runtime is the old name of
// --runtime-dir, hidden.
func flagSet(o *options) *pflag.FlagSet {
	fs := pflag.NewFlagSet("luod", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringVar(&o.units, "units", "/etc/luod/system:/run/luod/system", "directories of *.service unit files, colon-separated, first wins")
	fs.StringVar(&o.runtimeDir, "runtime-dir", "/run/luod", "directory of the notify and control sockets")
	fs.StringVar(&o.runtimeDir, "runtime", "/run/luod", "old name of --runtime-dir")
	fs.MarkHidden("runtime")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logTarget, "log-target", "auto", "where the log goes: journal, stderr, or auto (the journal when its socket exists)")
	fs.StringVar(&o.device, "device", "/dev/liveupdate", "LUO device")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	return fs
}

// parseArgs parses luod's arguments. The single-dash spellings of luod's
// first releases (-units DIR, -log-level=debug: Go's flag package) keep
// working: a single dash followed by the name of a long option is read as
// two.
func parseArgs(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flagSet(o)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: luod [OPTION]...\n\nluod, the live update service manager.\n\n%s", fs.FlagUsages())
	}
	norm := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			norm = append(norm, args[i:]...)
			break
		}
		if name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "="); len(a) > 2 && a[0] == '-' && a[1] != '-' && fs.Lookup(name) != nil {
			a = "-" + a
		}
		norm = append(norm, a)
	}
	if err := fs.Parse(norm); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see luod --help)", fs.Arg(0))
	}
	return o, nil
}
