package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/liveupdate/luo/internal/control"
)

func (a *app) logsCommand() *cobra.Command {
	var lines int
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs UNIT",
		Short: "Show the last lines a unit wrote to stdout and stderr",
		Long: `Show the last lines the unit's processes wrote to stdout and stderr, as luod
captured them (StandardOutput=journal, the default): all it keeps (the last
1000, at most 256 KiB; lost when luod re-executes) or the last N with -n. With
-f, then print each line as it comes until the unit is removed or luoctl is
interrupted; without --timeout, -f does not time out. With --json, luod's
GetLogs reply (with -f, one reply per line as they come).`,
		ValidArgsFunction: a.completeUnits,
		Args:              args(1, 1, "a unit"),
		RunE: a.runE(0, func(ctx context.Context, cmd *cobra.Command, args []string) error {
			if lines < 0 {
				return usagef(cmd, "--lines must not be negative")
			}
			if !follow && !cmd.Flag("timeout").Changed {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, queryTimeout)
				defer cancel()
			}
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			params := control.LogsParams{Name: args[0], Lines: lines, Follow: follow}
			if !follow {
				var rep control.LogLines
				if err := c.Call(ctx, control.MethodGetLogs, params, &rep); err != nil {
					return err
				}
				if a.json {
					rep.Lines = nonNil(rep.Lines)
					return a.printJSON(rep)
				}
				a.printLogLines(args[0], rep.Lines)
				return nil
			}
			err = c.CallMore(ctx, control.MethodGetLogs, params, func(raw json.RawMessage) error {
				if a.json {
					return a.printJSONLine(raw)
				}
				var rep control.LogLines
				if err := json.Unmarshal(raw, &rep); err != nil {
					return fmt.Errorf("lines from luod: %w", err)
				}
				a.printLogLines(args[0], rep.Lines)
				return nil
			})
			if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				return nil // interrupted: how -f ends
			}
			return err
		}),
	}
	cmd.Flags().IntVarP(&lines, "lines", "n", 0, "show the last N lines (default: all luod keeps)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "then print each new line as it comes")
	return cmd
}

// printLogLines prints a unit's lines as journalctl does: "Aug 04
// 10:00:00 web: message", with [stderr] after the name for the lines of
// stderr.
func (a *app) printLogLines(unit string, lines []control.LogLine) {
	ident := strings.TrimSuffix(unit, ".service")
	for _, l := range lines {
		who := ident
		switch l.Stream {
		case "stdout":
		case "luod":
			who = "luod"
		default:
			who += "[" + l.Stream + "]"
		}
		fmt.Fprintf(a.out, "%s %s: %s\n", l.Time.In(a.env.location()).Format("Jan 02 15:04:05"), printable(who), printable(l.Message))
	}
}

// printable escapes the control characters of s (as \x1b), so that what a
// service wrote cannot drive the terminal.
func printable(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, `\x%02x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r != '\t' && unicode.IsControl(r) }
