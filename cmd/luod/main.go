//go:build linux

// Command luod is a small service manager with systemd's fd-store
// semantics that carries every service's fd store across its own re-exec
// and across kexec live updates through the kernel's Live Update
// Orchestrator. It runs as PID 1 or under another init.
//
//	luod [--units DIRS] [--runtime-dir DIR] [--log-target auto|journal|stderr] [--log-format text|json]
//	     [--log-level info] [--device PATH] [--preserve-max-bytes SIZE] [--metrics-listen ADDR]
//	     [--metrics-textfile PATH] [--health-timeout D] [--kernels GLOB,...]
//	     [--fleet-endpoints URL,... [--fleet-group G] [--fleet-host H] [--fleet-slots N]
//	      [--fleet-cacert F --fleet-cert F --fleet-key F]]
//	luod --version
//
// See the README and `luoctl --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/liveupdate/luo/internal/fleet"
	"github.com/liveupdate/luo/internal/metrics"
	"github.com/liveupdate/luo/internal/supervisor"
	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/internal/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == supervisor.ShimArg {
		os.Exit(supervisor.RunShim(os.Args[2:]))
	}
	sigs := supervisor.CatchSignals()
	supervisor.PrefetchSelf()
	if err := run(sigs); err != nil {
		fmt.Fprintln(os.Stderr, "luod:", err)
		os.Exit(1)
	}
}

func run(sigs *supervisor.Signals) error {
	o, err := parseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.version {
		fmt.Println("luod", version.String())
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log, err := logger(o, level)
	if err != nil {
		return err
	}

	cfg := supervisor.Config{
		UnitDirs:   strings.Split(o.units, ":"),
		RuntimeDir: o.runtimeDir,
		Logger:     log,
		PID1:       os.Getpid() == 1,
		Signals:    sigs,
	}
	cfg.LiveUpdate.Device = o.device
	cfg.LiveUpdate.Kernel = kernel(o.device, o.runtimeDir, log)
	cfg.LiveUpdate.PreserveMax = update.QuotaOf(o.preserveMax)
	cfg.LiveUpdate.HealthTimeout, cfg.LiveUpdate.Kernels = o.healthTimeout, o.kernels
	if len(o.fleet.Endpoints) > 0 {
		f, err := fleet.Open(o.fleet)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.Fleet = f
	}
	var textfile *metrics.Textfile
	if o.metricsTextfile != "" {
		cfg.Changed = func() { textfile.Changed() }
	}
	if v := os.Getenv(supervisor.StateEnv); v != "" {
		os.Unsetenv(supervisor.StateEnv)
		fd, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", supervisor.StateEnv, v, err)
		}
		cfg.StateFile = os.NewFile(uintptr(fd), "luod-state")
	}
	m, err := supervisor.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if o.metricsListen != "" || o.metricsTextfile != "" {
		reg := metrics.NewRegistry(m.Observe)
		if o.metricsTextfile != "" {
			textfile = metrics.NewTextfile(o.metricsTextfile, reg, time.Second, log)
			go textfile.Run(ctx)
		}
		if o.metricsListen != "" {
			// A metrics address that cannot be used is no reason to
			// leave the units unmanaged (or, as PID 1, panic the
			// kernel): luod runs on without it.
			if l, err := net.Listen("tcp", o.metricsListen); err != nil {
				log.Error("cannot serve metrics", "err", err)
			} else {
				go func() {
					if err := metrics.Serve(ctx, l, reg, log); err != nil {
						log.Error("metrics server stopped", "err", err)
					}
				}()
			}
		}
	}
	// The manager handles SIGTERM and SIGINT itself: it stops the units,
	// then exits (or, as PID 1, powers off or reboots).
	return m.Run(ctx)
}

// logger makes luod's logger: to the journal (--log-target, by default
// when journald's socket exists), else to stderr in --log-format.
func logger(o *options, level slog.Level) (*slog.Logger, error) {
	journal := false
	switch o.logTarget {
	case "auto":
		journal = journalAvailable()
	case "journal":
		if !journalAvailable() {
			return nil, fmt.Errorf("--log-target=journal: no journal socket at %s", journalSocket)
		}
		journal = true
	case "stderr":
	default:
		return nil, fmt.Errorf("--log-target: %q is not auto, journal or stderr", o.logTarget)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch o.logFormat {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", o.logFormat)
	}
	if !journal {
		return slog.New(h).With("prog", "luod"), nil
	}
	jh, err := newJournalHandler(level)
	if err != nil {
		return nil, err
	}
	return slog.New(jh), nil
}
