package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/liveupdate/luo/internal/control"
)

func (a *app) fleetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Show and free the fleet's update slots (luod --fleet-endpoints)",
		Long: `In a fleet, luod takes one of its group's update slots in etcd before it
stops any unit for an update, and gives it back once the units are all READY
again. A host whose update fails after the point of no return, or that never
comes back, keeps its slot: with every slot held the rollout stops there.
'luoctl fleet status' shows who holds the slots, since when and for which
kernel; 'luoctl fleet release HOST' frees one by hand once the host is dealt
with. Exits with status 1 when luod has no fleet settings or etcd cannot be
reached.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return fmt.Errorf("%s needs a command: status or release", cmd.CommandPath())
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show who holds the fleet's update slots",
		Args:  args(0, 0, ""),
		RunE: a.runE(queryTimeout, func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			var f control.Fleet
			if err := a.call(ctx, control.MethodGetFleet, nil, &f); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(f)
			}
			fmt.Fprintf(a.out, "Fleet group %q on %s (key %s, revision %d), this host: %s\n",
				f.Group, strings.Join(f.Endpoints, ","), f.Key, f.Revision, f.Host)
			fmt.Fprintf(a.out, "Slots: %d of %d held\n", len(f.Holders), f.Max)
			if len(f.Holders) == 0 {
				return nil
			}
			fmt.Fprintln(a.out)
			t := &table{}
			t.row("HOST", "STATE", "SINCE", "KIND", "FROM", "TO", "REASON")
			for _, h := range f.Holders {
				t.row(h.Host, h.State, h.Since.In(a.env.location()).Format(time.RFC3339), h.Kind, orDash(h.From), orDash(h.To), h.Reason)
			}
			t.write(a.out)
			return nil
		}),
	}
	release := &cobra.Command{
		Use:   "release HOST",
		Short: "Free the update slot a host holds",
		Args:  args(1, 1, "HOST"),
		RunE: a.runE(queryTimeout, func(ctx context.Context, cmd *cobra.Command, args []string) error {
			var r control.FleetReleased
			if err := a.call(ctx, control.MethodReleaseFleet, control.FleetHost{Host: args[0]}, &r); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(r)
			}
			if r.Released {
				fmt.Fprintf(a.out, "Released the slot of %s.\n", args[0])
			} else {
				fmt.Fprintf(a.out, "%s holds no slot.\n", args[0])
			}
			return nil
		}),
	}
	cmd.AddCommand(status, release)
	return cmd
}
