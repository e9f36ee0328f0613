package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/version"
)

func (a *app) reloadCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "daemon-reload",
		Short: "Make luod reread the unit files",
		Long: `Make luod reread the unit files. Prints how many units loaded, and the units
that failed to load; those do not make the command fail.`,
		Args: args(0, 0, ""),
		RunE: a.runE(queryTimeout, func(ctx context.Context, _ *cobra.Command, _ []string) error {
			var r control.ReloadReply
			if err := a.call(ctx, control.MethodReload, nil, &r); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(r)
			}
			fmt.Fprintf(a.out, "Loaded %s.\n", plural(len(r.Loaded), "unit", "units"))
			for _, e := range r.Errors {
				fmt.Fprintf(a.out, "Error: %s\n", e)
			}
			for _, w := range r.Warnings {
				fmt.Fprintf(a.out, "Warning: %s\n", w)
			}
			return nil
		}),
	}
}

func (a *app) reexecCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "daemon-reexec",
		Short: "Make luod re-execute itself, keeping every unit and fd store",
		Long: `Make luod re-execute itself, keeping every unit and fd store, then wait until
the new luod answers (its re-exec counter went up) and print its PID.`,
		Args: args(0, 0, ""),
		RunE: a.runE(jobTimeout, func(ctx context.Context, _ *cobra.Command, _ []string) error {
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			var before control.Manager
			if err := c.Call(ctx, control.MethodGetManager, nil, &before); err != nil {
				c.Close()
				return err
			}
			err = c.Call(ctx, control.MethodReexec, nil, nil)
			c.Close()
			// luod may exec before its reply is out: a dropped
			// connection is expected.
			if err != nil && !errors.Is(err, control.ErrDisconnected) {
				return err
			}
			m, err := a.waitReexec(ctx, before.Reexecs)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(m)
			}
			fmt.Fprintf(a.out, "luod re-executed: PID %d, %s since it started.\n", m.PID, plural(m.Reexecs, "re-exec", "re-execs"))
			return nil
		}),
	}
}

// waitReexec polls luod until its Reexecs counter exceeds before.
func (a *app) waitReexec(ctx context.Context, before int) (control.Manager, error) {
	var last error
	for {
		m, err := a.getManager(ctx)
		if err == nil && m.Reexecs > before {
			return m, nil
		}
		if err == nil {
			err = fmt.Errorf("luod still reports %d re-execs", m.Reexecs)
		}
		var de *control.DialError
		if errors.As(err, &de) && errors.Is(err, os.ErrPermission) {
			return m, err
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			last = err
		}
		select {
		case <-ctx.Done():
			return m, fmt.Errorf("waiting for luod to come back after its re-exec: %w (last: %v)", ctx.Err(), last)
		case <-time.After(pollInterval):
		}
	}
}

func (a *app) getManager(ctx context.Context) (control.Manager, error) {
	var m control.Manager
	err := a.call(ctx, control.MethodGetManager, nil, &m)
	return m, err
}

func (a *app) sessionsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "sessions",
		Short: "List the LUO sessions luod knows of",
		Long: `List the LUO (Live Update Orchestrator) sessions luod knows of: its own, which
carry the preserved fd stores across a kexec, and those held in fd stores.`,
		Args: args(0, 0, ""),
		RunE: a.runE(queryTimeout, func(ctx context.Context, _ *cobra.Command, _ []string) error {
			var r control.Sessions
			if err := a.call(ctx, control.MethodListSessions, nil, &r); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(r)
			}
			t := &table{}
			t.row("NAME", "UNIT", "FDNAME", "DIRECTION", "OWNER")
			for _, s := range r.Sessions {
				t.row(s.Name, s.Unit, s.FDName, s.Direction, s.Owner)
			}
			t.write(a.out)
			fmt.Fprintf(a.out, "\n%s listed.\n", plural(len(r.Sessions), "session", "sessions"))
			return nil
		}),
	}
}

// powerCommand is poweroff or reboot.
func (a *app) powerCommand(name, method, short string) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		Args:  args(0, 0, ""),
		RunE: a.runE(jobTimeout, func(ctx context.Context, _ *cobra.Command, _ []string) error {
			err := a.call(ctx, method, nil, nil)
			if errors.Is(err, control.ErrDisconnected) {
				return nil // luod went down before replying
			}
			return err
		}),
	}
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of luoctl and luod",
		Args:  args(0, 0, ""),
		RunE: a.runE(queryTimeout, func(ctx context.Context, _ *cobra.Command, _ []string) error {
			mine := version.String()
			m, err := a.getManager(ctx)
			if a.json {
				v := struct {
					Luoctl string `json:"luoctl"`
					Luod   string `json:"luod,omitempty"`
				}{mine, m.Version}
				if jerr := a.printJSON(v); jerr != nil {
					return jerr
				}
				return err
			}
			fmt.Fprintf(a.out, "luoctl %s\n", mine)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "luod %s\n", strings.TrimSpace(m.Version))
			return nil
		}),
	}
}
