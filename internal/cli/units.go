package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/liveupdate/luo/internal/control"
)

// labelWidth aligns the labels of status blocks ("LUO sessions" is the
// longest).
const labelWidth = 12

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status [UNIT...]",
		Short: "Show luod's state and its units, or the state of units",
		Long: `Without arguments, show luod's state and a list of its units. With units, show
each like systemctl status: load state, active state and since when, main PID,
the last STATUS=, the fd store and LUO sessions, warnings, and the last 10
lines the unit wrote (see logs). With --json and
no UNIT, luod's state only (the units are in list --json).`,
		ValidArgsFunction: a.completeUnits,
		RunE: a.runE(queryTimeout, func(ctx context.Context, cmd *cobra.Command, args []string) error {
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if len(args) == 0 {
				return a.managerStatus(ctx, c)
			}
			var replies []control.UnitReply
			err = forUnits(ctx, c, args, control.MethodGetUnit, func(name string) any { return control.UnitName{Name: name} },
				func(raw control.UnitReply) { replies = append(replies, raw) })
			if a.json {
				if jerr := a.printJSON(nonNil(replies)); jerr != nil {
					return jerr
				}
				return err
			}
			for i, r := range replies {
				if i > 0 {
					fmt.Fprintln(a.out)
				}
				a.printUnit(r.Unit)
			}
			return err
		}),
	}
}

// forUnits calls method for each unit name, collecting replies. Error
// replies (such as NoSuchUnit) do not stop it: they are joined into the
// returned error. Other errors (the connection) stop it at once.
func forUnits[R any](ctx context.Context, c *control.Client, names []string, method string, params func(string) any, add func(R)) error {
	var errs []error
	for _, name := range names {
		var r R
		if err := c.Call(ctx, method, params(name), &r); err != nil {
			if !isRemote(err) {
				return errors.Join(append(errs, err)...)
			}
			errs = append(errs, err)
			continue
		}
		add(r)
	}
	return errors.Join(errs...)
}

// nonNil makes a nil slice print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// managerStatus prints luod's state and its units.
func (a *app) managerStatus(ctx context.Context, c *control.Client) error {
	var m control.Manager
	if err := c.Call(ctx, control.MethodGetManager, nil, &m); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(m) // the units are in list --json
	}
	var us control.Units
	if err := c.Call(ctx, control.MethodListUnits, nil, &us); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "luod %s\n", m.Version)
	f := fields{a.out, labelWidth}
	state := "running"
	if m.Updating {
		state = "updating"
	}
	f.line("State", "%s", state)
	if m.PID1 {
		f.line("PID", "%d (init)", m.PID)
	} else {
		f.line("PID", "%d", m.PID)
	}
	if !m.Started.IsZero() {
		f.line("Started", "%s", a.since(m.Started))
	}
	f.line("Reexecs", "%d", m.Reexecs)
	f.line("Unit dir", "%s", orDash(m.UnitDir))
	f.line("Notify", "%s", orDash(m.NotifySocket))
	f.line("Units", "%d", m.Units)
	f.line("Live updates", "%d since the last cold boot", m.LiveUpdates)
	f.line("LUO", "%s", luoStatus(m.LUO))
	fmt.Fprintln(a.out)
	a.printUnitTable(us.Units)
	return nil
}

// luoStatus says whether live update would work.
func luoStatus(s control.LUOStatus) string {
	var problems []string
	if !s.Device {
		problems = append(problems, "no /dev/liveupdate")
	}
	if !s.Cmdline {
		problems = append(problems, "no liveupdate=on on the kernel command line")
	}
	if s.Problem != "" {
		problems = append(problems, s.Problem)
	}
	if len(problems) == 0 {
		return fmt.Sprintf("ready (kernel %s)", orDash(s.Release))
	}
	return fmt.Sprintf("not ready (kernel %s): %s", orDash(s.Release), strings.Join(problems, "; "))
}

// printUnit prints one unit like systemctl status.
func (a *app) printUnit(u control.Unit) {
	mark := "*"
	switch u.ActiveState {
	case "failed":
		mark = "x"
	case "inactive", "":
		mark = "o"
	}
	if u.Description != "" {
		fmt.Fprintf(a.out, "%s %s - %s\n", mark, u.Name, u.Description)
	} else {
		fmt.Fprintf(a.out, "%s %s\n", mark, u.Name)
	}
	f := fields{a.out, labelWidth}

	var loaded []string
	if u.Path != "" {
		loaded = append(loaded, u.Path)
	}
	if u.LoadError != "" {
		loaded = append(loaded, u.LoadError)
	}
	if len(loaded) > 0 {
		f.line("Loaded", "%s (%s)", u.LoadState, strings.Join(loaded, "; "))
	} else {
		f.line("Loaded", "%s", u.LoadState)
	}

	active := fmt.Sprintf("%s (%s)", u.ActiveState, u.SubState)
	if u.ActiveState == "failed" && u.Result != "" && u.Result != "success" {
		active = fmt.Sprintf("failed (Result: %s)", u.Result)
	}
	if !u.Since.IsZero() {
		active += " since " + a.since(u.Since)
	}
	f.line("Active", "%s", active)
	switch {
	case u.ExitSignal != "":
		f.line("Exit", "signal %s", u.ExitSignal)
	case u.ExitCode != 0:
		f.line("Exit", "status %d", u.ExitCode)
	}
	if u.MainPID > 0 {
		f.line("Main PID", "%d", u.MainPID)
	}
	if u.Status != "" {
		f.line("Status", "%s", strconv.Quote(u.Status))
	}
	if u.Errno != 0 {
		f.line("Error", "%d (%v)", u.Errno, syscall.Errno(u.Errno))
	}
	if u.FDStoreMax > 0 || u.FDStoreCount > 0 || u.FDStoreRefused > 0 {
		store := fmt.Sprintf("%d/%d", u.FDStoreCount, u.FDStoreMax)
		if u.FDStorePreserve != "" {
			store += " (preserve=" + u.FDStorePreserve + ")"
		}
		if r := u.FDStoreLastRefused; u.FDStoreRefused > 0 && r != nil {
			store += fmt.Sprintf(", %d refused: %s, last fdname=%s at %s", u.FDStoreRefused, r.Reason, r.FDName,
				r.Time.In(a.env.location()).Format("2006-01-02 15:04:05 MST"))
		}
		f.line("FD Store", "%s", store)
	}
	if len(u.LUOSessions) > 0 {
		f.line("LUO sessions", "%s", strings.Join(u.LUOSessions, ", "))
	}
	if u.Restarts > 0 {
		f.line("Restarts", "%d", u.Restarts)
	}
	for _, w := range u.Warnings {
		f.line("Warning", "%s", w)
	}
	if u.CGroup != "" {
		f.line("CGroup", "%s", u.CGroup)
		for _, line := range processTree(u.Processes) {
			fmt.Fprintf(a.out, "%*s%s\n", labelWidth+2, "", line)
		}
	}
	if len(u.Log) > 0 {
		fmt.Fprintln(a.out)
		a.printLogLines(u.Name, u.Log)
	}
}

// processTree draws processes as systemctl status does: each under its
// parent, with branch lines.
func processTree(ps []control.Process) []string {
	in := map[int]bool{}
	children := map[int][]control.Process{}
	for _, p := range ps {
		in[p.PID] = true
	}
	var roots []control.Process
	for _, p := range ps {
		if in[p.PPID] && p.PPID != p.PID {
			children[p.PPID] = append(children[p.PPID], p)
		} else {
			roots = append(roots, p)
		}
	}
	var lines []string
	var draw func(p control.Process, prefix string, last bool)
	draw = func(p control.Process, prefix string, last bool) {
		branch, next := "├─", "│ "
		if last {
			branch, next = "└─", "  "
		}
		lines = append(lines, fmt.Sprintf("%s%s%d %s", prefix, branch, p.PID, p.Command))
		kids := children[p.PID]
		for i, c := range kids {
			draw(c, prefix+next, i == len(kids)-1)
		}
	}
	for i, r := range roots {
		draw(r, "", i == len(roots)-1)
	}
	return lines
}

func (a *app) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List units",
		Args:  args(0, 0, ""),
		RunE: a.runE(queryTimeout, func(ctx context.Context, _ *cobra.Command, _ []string) error {
			var us control.Units
			if err := a.call(ctx, control.MethodListUnits, nil, &us); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(us)
			}
			a.printUnitTable(us.Units)
			return nil
		}),
	}
}

// printUnitTable prints units like systemctl list-units.
func (a *app) printUnitTable(units []control.Unit) {
	t := &table{}
	t.row("UNIT", "LOAD", "ACTIVE", "SUB", "FDSTORE", "DESCRIPTION")
	for _, u := range units {
		t.row(u.Name, u.LoadState, u.ActiveState, u.SubState, fmt.Sprintf("%d/%d", u.FDStoreCount, u.FDStoreMax), u.Description)
	}
	t.write(a.out)
	fmt.Fprintf(a.out, "\n%s listed.\n", plural(len(units), "unit", "units"))
}

// jobCommand is start, stop or restart.
func (a *app) jobCommand(name, method, short string) *cobra.Command {
	var noBlock bool
	cmd := &cobra.Command{
		Use:   name + " UNIT...",
		Short: short,
		Long: short + `. Units are handled one after the other; an error does not
stop the others. Prints nothing unless --json is given.`,
		Args:              args(1, -1, "at least one UNIT"),
		ValidArgsFunction: a.completeUnits,
		RunE: a.runE(jobTimeout, func(ctx context.Context, _ *cobra.Command, args []string) error {
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var replies []control.UnitReply
			err = forUnits(ctx, c, args, method, func(n string) any { return control.UnitName{Name: n, NoBlock: noBlock} },
				func(r control.UnitReply) { replies = append(replies, r) })
			if a.json {
				if jerr := a.printJSON(nonNil(replies)); jerr != nil {
					return jerr
				}
			}
			return err
		}),
	}
	cmd.Flags().BoolVar(&noBlock, "no-block", false, "return once the job is queued, without waiting for it")
	return cmd
}

func (a *app) fdstoreCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "fdstore UNIT...",
		Short: "Show the fd stores of units, like systemd-analyze fdstore",
		Long: `Show the fd stores of units, with systemd-analyze fdstore's columns (DEVNO and
RDEVNO as major:minor) plus SIZE, KEXEC (whether the fd survives a kernel live
update) and WHY.`,
		Args:              args(1, -1, "at least one UNIT"),
		ValidArgsFunction: a.completeUnits,
		RunE: a.runE(queryTimeout, func(ctx context.Context, _ *cobra.Command, args []string) error {
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var stores []control.FDStore
			err = forUnits(ctx, c, args, control.MethodDumpFDStore, func(n string) any { return control.UnitName{Name: n} },
				func(s control.FDStore) { stores = append(stores, s) })
			if a.json {
				if jerr := a.printJSON(nonNil(stores)); jerr != nil {
					return jerr
				}
				return err
			}
			for i, s := range stores {
				if i > 0 {
					fmt.Fprintln(a.out)
				}
				printFDStore(a.out, s)
			}
			return err
		}),
	}
}

// printFDStore prints one unit's fd store.
func printFDStore(w io.Writer, s control.FDStore) {
	head := fmt.Sprintf("%s: %d/%d", s.Unit, len(s.Entries), s.Max)
	if s.Preserve != "" {
		head += ", preserve=" + s.Preserve
	}
	fmt.Fprintln(w, head)
	if len(s.Entries) == 0 {
		fmt.Fprintln(w, "(empty)")
		return
	}
	t := &table{}
	t.row("FDNAME", "TYPE", "DEVNO", "INODE", "RDEVNO", "PATH", "FLAGS", "SIZE", "KEXEC", "WHY")
	for _, e := range s.Entries {
		rdev := "-"
		if e.RDevNo != nil {
			rdev = fmt.Sprintf("%d:%d", e.RDevNo[0], e.RDevNo[1])
		}
		size := "-"
		if e.Size > 0 || e.Type == "reg" || e.Type == "memfd" {
			size = humanBytes(e.Size)
		}
		t.row(e.Name, e.Type, fmt.Sprintf("%d:%d", e.DevNo[0], e.DevNo[1]), strconv.FormatUint(e.Inode, 10),
			rdev, e.Path, e.Flags, size, e.Survives, e.Why)
	}
	t.write(w)
}

func (a *app) cleanCommand() *cobra.Command {
	var what []string
	cmd := &cobra.Command{
		Use:   "clean UNIT...",
		Short: "Drop the resources of stopped units (their fd store)",
		Long: `Drop the resources of stopped units. Only --what=fdstore is supported: it
closes every fd in the unit's store. Prints nothing unless --json is given.`,
		Args:              args(1, -1, "at least one UNIT"),
		ValidArgsFunction: a.completeUnits,
		RunE: a.runE(jobTimeout, func(ctx context.Context, cmd *cobra.Command, args []string) error {
			for _, w := range what {
				if w != "fdstore" {
					return usagef(cmd, "--what=%s: only fdstore is supported", w)
				}
			}
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var replies []control.UnitReply
			err = forUnits(ctx, c, args, control.MethodCleanUnit, func(n string) any { return control.CleanParams{Name: n, What: what} },
				func(r control.UnitReply) { replies = append(replies, r) })
			if a.json {
				if jerr := a.printJSON(nonNil(replies)); jerr != nil {
					return jerr
				}
			}
			return err
		}),
	}
	cmd.Flags().StringSliceVar(&what, "what", []string{"fdstore"}, "what to drop: fdstore")
	return cmd
}

func (a *app) resetFailedCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "reset-failed [UNIT...]",
		Short: "Forget that units failed and how often they were started",
		Long: `Forget that units failed, and the starts that count against their
StartLimitBurst=, so that a unit that hit its start limit can be started
again. Without a UNIT, every unit. Prints nothing unless --json is given.`,
		ValidArgsFunction: a.completeUnits,
		RunE: a.runE(queryTimeout, func(ctx context.Context, _ *cobra.Command, args []string) error {
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			names := args
			if len(names) == 0 {
				names = []string{""}
			}
			var replies []control.Units
			err = forUnits(ctx, c, names, control.MethodResetFailed, func(n string) any { return control.ResetFailedParams{Name: n} },
				func(r control.Units) { replies = append(replies, r) })
			if a.json {
				if jerr := a.printJSON(nonNil(replies)); jerr != nil {
					return jerr
				}
			}
			return err
		}),
	}
}
