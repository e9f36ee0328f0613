//go:build linux

package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/liveupdate/luo/internal/fleet"
	"github.com/liveupdate/luo/internal/unit"
	"github.com/liveupdate/luo/internal/update"
)

// options are luod's command line.
type options struct {
	units, runtimeDir, logFormat, logLevel, logTarget, device string
	metricsListen, metricsTextfile                            string
	// preserveMax is --preserve-max-bytes, unit.NoLimit for none.
	preserveMax int64
	version     bool
	// The health gate and the fleet: see fleet.Config.
	healthTimeout time.Duration
	kernels       []string
	fleet         fleet.Config
}

// sizeValue is a pflag.Value for a size as unit files write them (512M,
// 1.5G) or infinity.
type sizeValue struct{ n *int64 }

func (v sizeValue) String() string {
	if v.n == nil || *v.n < 0 {
		return "infinity"
	}
	return strconv.FormatInt(*v.n, 10)
}

func (v sizeValue) Set(s string) error {
	if s == "infinity" || s == "" {
		*v.n = unit.NoLimit
		return nil
	}
	n, err := unit.ParseSize(s)
	if err != nil {
		return err
	}
	*v.n = n
	return nil
}

func (v sizeValue) Type() string { return "size" }

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
	o.preserveMax = unit.NoLimit
	fs.Var(sizeValue{&o.preserveMax}, "preserve-max-bytes", "at most this many bytes of memfds (all units together) a kexec live update may pin for the next kernel: 512M, 1.5G, or infinity")
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics on this address's /metrics (host:port; off when empty)")
	fs.StringVar(&o.metricsTextfile, "metrics-textfile", "", "write the metrics to this file after every change, for node_exporter's textfile collector (off when empty)")
	fs.DurationVar(&o.healthTimeout, "health-timeout", 0, "default health gate of an update: after it every unit that was active must be READY within this, else a kexec rolls back (0: none)")
	fs.StringSliceVar(&o.kernels, "kernels", update.DefaultKernels, "where the running kernel's image is looked for, to roll back to (globs)")
	fs.StringSliceVar(&o.fleet.Endpoints, "fleet-endpoints", nil, "etcd endpoints of the fleet whose update slots this host takes (off when empty)")
	fs.StringVar(&o.fleet.Group, "fleet-group", "default", "the fleet group: the hosts sharing its update slots")
	fs.StringVar(&o.fleet.Host, "fleet-host", fleet.DefaultHost(), "this host's name in the fleet")
	fs.IntVar(&o.fleet.Slots, "fleet-slots", 1, "how many hosts of the group may update at once (when luod creates the group's semaphore)")
	fs.DurationVar(&o.fleet.Timeout, "fleet-timeout", 10*time.Second, "how long luod waits for etcd's answer to each request")
	fs.StringVar(&o.fleet.CACert, "fleet-cacert", "", "CA certificate (PEM) to verify etcd with")
	fs.StringVar(&o.fleet.Cert, "fleet-cert", "", "client certificate (PEM) for etcd")
	fs.StringVar(&o.fleet.Key, "fleet-key", "", "client key (PEM) for etcd")
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
