package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/liveupdate/luo/internal/control"
)

func (a *app) updateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Plan, run and report kernel live updates",
		Long: `A live update stops the units, preserves their fd stores into LUO sessions,
kexecs into a new kernel and gives every unit its fds back. A soft update
(--no-kexec) re-executes luod instead, keeping the kernel.

Check what would happen first with 'luoctl update plan': it changes nothing and
lists every fd with its fate. 'luoctl update run' takes the same flags.

'luoctl update stage' does the slow half of a kexec update ahead, while every
unit keeps running: the plan with its checks and trial preservation, and
loading the next kernel. 'luoctl update run --staged' then only stops the
units, preserves their stores and reboots; 'luoctl update status' shows what
is staged and whether the plan changed since; 'luoctl update unstage' drops it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return fmt.Errorf("%s needs a command: plan, stage, status, run, unstage or report", cmd.CommandPath())
		},
	}
	cmd.AddCommand(a.planCommand(), a.stageCommand(), a.stagedCommand(), a.runCommand(), a.unstageCommand(), a.reportCommand(), a.neededCommand())
	return cmd
}

// updateFlags are the flags of update plan and update run.
type updateFlags struct {
	kernel, initrd, cmdline string
	reuseCmdline, allowLoss bool
	noKexec, restartUnits   bool
	staged                  bool
	stopTimeout             time.Duration
	// The health gate and the fleet slot.
	healthTimeout, slotWait                         time.Duration
	rollbackKernel, rollbackInitrd, rollbackCmdline string
}

func (f *updateFlags) register(cmd *cobra.Command) {
	f.registerTarget(cmd)
	fs := cmd.Flags()
	fs.BoolVar(&f.allowLoss, "allow-loss", false, "go ahead although some fds will be lost")
	fs.BoolVar(&f.noKexec, "no-kexec", false, "soft update: re-execute luod, keep the kernel")
	fs.BoolVar(&f.restartUnits, "restart-units", false, "soft update: also stop and start the units")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", 0, "how long each unit may take to stop (default: its TimeoutStopSec=)")
	fs.BoolVar(&f.staged, "staged", false, "the update staged with 'luoctl update stage': its kernel, initrd and command line")
	fs.DurationVar(&f.healthTimeout, "health-timeout", 0, "health gate: every unit that was active must be READY this long after the update, else a kexec rolls back (default: luod's --health-timeout)")
	fs.StringVar(&f.rollbackKernel, "rollback-kernel", "", "the kernel to roll back to (default: the running kernel's image, found under luod's --kernels)")
	fs.StringVar(&f.rollbackInitrd, "rollback-initrd", "", "the initrd of the rollback kernel")
	fs.StringVar(&f.rollbackCmdline, "rollback-cmdline", "", "the rollback kernel's command line (default: this kernel's)")
	fs.DurationVar(&f.slotWait, "slot-wait", 0, "in a fleet, wait this long for a free update slot (default: fail at once when all are held)")
}

// registerTarget registers the flags that name the next kernel.
func (f *updateFlags) registerTarget(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.kernel, "kernel", "", "the kernel image to kexec into")
	fs.StringVar(&f.initrd, "initrd", "", "the initrd for the new kernel")
	fs.StringVar(&f.cmdline, "cmdline", "", "the new kernel's command line (appended to this one's with --reuse-cmdline)")
	fs.BoolVar(&f.reuseCmdline, "reuse-cmdline", false, "start from this kernel's command line")
}

// params checks the flags' combination and returns the call's parameters.
func (f *updateFlags) params(cmd *cobra.Command) (control.UpdateParams, error) {
	switch {
	case f.staged && (f.kernel != "" || f.initrd != "" || f.cmdline != "" || f.reuseCmdline || f.noKexec || f.restartUnits):
		return control.UpdateParams{}, usagef(cmd, "--staged uses what was staged: --kernel, --initrd, --cmdline, --reuse-cmdline, --no-kexec and --restart-units do not apply")
	case f.noKexec && (f.kernel != "" || f.initrd != "" || f.cmdline != "" || f.reuseCmdline):
		return control.UpdateParams{}, usagef(cmd, "--no-kexec keeps the kernel: --kernel, --initrd, --cmdline and --reuse-cmdline do not apply")
	case !f.noKexec && !f.staged && f.kernel == "":
		return control.UpdateParams{}, usagef(cmd, "--kernel is required (or --staged, or --no-kexec for a soft update)")
	case !f.noKexec && f.restartUnits:
		return control.UpdateParams{}, usagef(cmd, "--restart-units only applies to a soft update (--no-kexec)")
	case f.stopTimeout < 0 || f.healthTimeout < 0 || f.slotWait < 0:
		return control.UpdateParams{}, usagef(cmd, "--stop-timeout, --health-timeout and --slot-wait must not be negative")
	case f.rollbackKernel == "" && (f.rollbackInitrd != "" || f.rollbackCmdline != ""):
		return control.UpdateParams{}, usagef(cmd, "--rollback-initrd and --rollback-cmdline need --rollback-kernel")
	case f.rollbackKernel != "" && (f.healthTimeout == 0 || f.noKexec):
		return control.UpdateParams{}, usagef(cmd, "--rollback-kernel is used by the health gate of a kexec: give --health-timeout too")
	}
	p := control.UpdateParams{
		Kernel:       f.kernel,
		Initrd:       f.initrd,
		Cmdline:      f.cmdline,
		ReuseCmdline: f.reuseCmdline,
		AllowLoss:    f.allowLoss,
		NoKexec:      f.noKexec,
		RestartUnits: f.restartUnits,
		Staged:       f.staged,
	}
	if f.stopTimeout > 0 {
		p.StopTimeout = f.stopTimeout.String()
	}
	if f.healthTimeout > 0 {
		p.HealthTimeout = f.healthTimeout.String()
	}
	if f.slotWait > 0 {
		p.SlotWait = f.slotWait.String()
	}
	p.RollbackKernel, p.RollbackInitrd, p.RollbackCmdline = f.rollbackKernel, f.rollbackInitrd, f.rollbackCmdline
	return p, nil
}

func (a *app) planCommand() *cobra.Command {
	var f updateFlags
	cmd := &cobra.Command{
		Use:   "plan --kernel FILE [--initrd FILE] [--cmdline S] [--reuse-cmdline] [--allow-loss] | --staged | --no-kexec",
		Short: "Show what an update would do, changing nothing",
		Long: `Show what an update would do, changing nothing: the kernel-side checks, then
every fd of every unit's store with its fate (preserve, session, inherit, drop,
lost) and why, and the totals. Exits with status 4 when the plan is not OK: a
check failed, or fds would be lost without --allow-loss.`,
		Args: args(0, 0, ""),
		RunE: a.runE(planTimeout, func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			params, err := f.params(cmd)
			if err != nil {
				return err
			}
			var p control.Plan
			if err := a.call(ctx, control.MethodPlanUpdate, params, &p); err != nil {
				return err
			}
			if a.json {
				if err := a.printJSON(p); err != nil {
					return err
				}
			} else {
				a.printPlan(p)
			}
			if !p.OK {
				return &exitError{code: ExitUpdate, err: errors.New("the update plan is not OK")}
			}
			return nil
		}),
	}
	f.register(cmd)
	return cmd
}

// printPlan prints a plan: what, checks, fates, totals, verdict.
func (a *app) printPlan(p control.Plan) {
	if p.Kind == "soft" {
		fmt.Fprintln(a.out, "Soft update: re-execute luod, keep the kernel")
	} else {
		fmt.Fprintf(a.out, "Kexec update into %s\n", orDash(p.Kernel))
		if p.Initrd != "" {
			fmt.Fprintf(a.out, "  initrd:  %s\n", p.Initrd)
		}
		if p.Cmdline != "" {
			fmt.Fprintf(a.out, "  cmdline: %s\n", p.Cmdline)
		}
	}

	failed := a.printChecks("\nChecks:", p.Checks)

	fmt.Fprintln(a.out)
	t := &table{}
	t.row("UNIT", "FDNAME", "TYPE", "FATE", "SIZE", "REASON")
	for _, u := range p.Units {
		if len(u.Entries) == 0 {
			t.row(u.Name, "", "", "", "", "fd store empty")
			continue
		}
		for _, e := range u.Entries {
			size := ""
			if e.Bytes > 0 {
				size = humanBytes(e.Bytes)
			}
			t.row(u.Name, e.Name, e.Type, e.Fate, size, e.Reason)
		}
	}
	t.write(a.out)

	carried := []string{fmt.Sprintf("%s (%s)", plural(p.Memfds, "memfd", "memfds"), humanBytes(p.TotalBytes)),
		plural(p.Sessions, "session", "sessions")}
	if p.Others > 0 {
		carried = append(carried, plural(p.Others, "other fd", "other fds"))
	}
	verb := "carried"
	if p.Kind == "soft" {
		verb = "inherited"
	}
	fmt.Fprintf(a.out, "\nTotal: %s %s; %s\n", strings.Join(carried, ", "), verb, plural(p.Lost, "fd lost", "fds lost"))
	if p.OK {
		fmt.Fprintln(a.out, "Plan: OK")
		return
	}
	var why []string
	if failed > 0 {
		why = append(why, plural(failed, "check", "checks")+" failed")
	}
	if p.Lost > 0 {
		why = append(why, plural(p.Lost, "fd", "fds")+" would be lost (--allow-loss accepts that)")
	}
	if len(why) == 0 {
		why = append(why, "luod says so")
	}
	fmt.Fprintf(a.out, "Plan: NOT OK: %s\n", strings.Join(why, ", "))
}

// printChecks prints a plan's checks under header, one per line, and
// returns how many failed.
func (a *app) printChecks(header string, checks []control.Check) (failed int) {
	if len(checks) == 0 {
		return 0
	}
	fmt.Fprintln(a.out, header)
	for _, c := range checks {
		mark := "OK  "
		if !c.OK {
			mark = "FAIL"
			failed++
		}
		line := fmt.Sprintf("  %s  %s", mark, c.Name)
		if c.Detail != "" {
			line += ": " + c.Detail
		}
		fmt.Fprintln(a.out, line)
	}
	return failed
}

// Phases of RunUpdate after which the connection drops on success.
const (
	phaseReboot = "reboot" // the machine kexecs into the new kernel
	phaseExec   = "exec"   // soft update: luod re-executes itself
)

func (a *app) runCommand() *cobra.Command {
	var f updateFlags
	cmd := &cobra.Command{
		Use:   "run --kernel FILE [--initrd FILE] [--cmdline S] [--reuse-cmdline] [--allow-loss] | --staged | --no-kexec [--restart-units]",
		Short: "Run an update, printing each phase as it happens",
		Long: `Run an update, printing each phase as it happens. luod refuses when the plan
is not OK (see 'luoctl update plan'); on a failure before the point of no
return it brings every unit back with its fd store. When the machine reboots
into the new kernel (or luod re-executes itself, with --no-kexec) the
connection drops: that is success, and 'luoctl update report' tells the rest.
With --staged it runs what 'luoctl update stage' prepared: the plan is decided
again with the staging's answers (a loss that appeared since refuses it), and
the kernel is not loaded again; on a failure it stays staged.
Exits with status 4 when the update was refused or failed.`,
		Args: args(0, 0, ""),
		RunE: a.runE(updateTimeout, func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			params, err := f.params(cmd)
			if err != nil {
				return err
			}
			c, err := a.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var first time.Time
			var last control.Progress
			err = c.CallMore(ctx, control.MethodRunUpdate, params, func(raw json.RawMessage) error {
				var p control.Progress
				if err := json.Unmarshal(raw, &p); err != nil {
					return fmt.Errorf("progress from luod: %w", err)
				}
				last = p
				if a.json {
					return a.printJSONLine(raw)
				}
				t := p.Time
				if t.IsZero() {
					t = a.env.now()
				}
				if first.IsZero() {
					first = t
				}
				fmt.Fprintf(a.out, "[%6.3fs] %s: %s\n", t.Sub(first).Seconds(), p.Phase, p.Message)
				return nil
			})
			switch {
			case err == nil:
				return nil
			case errors.Is(err, control.ErrDisconnected) && last.Phase == phaseReboot:
				if !a.json {
					fmt.Fprintln(a.out, "Rebooting into the new kernel; 'luoctl update report' shows the outcome once it is up.")
				}
				return nil
			case errors.Is(err, control.ErrDisconnected) && last.Phase == phaseExec:
				if !a.json {
					fmt.Fprintln(a.out, "luod re-executed itself; 'luoctl update report' shows the outcome.")
				}
				return nil
			case errors.Is(err, control.ErrDisconnected):
				phase := last.Phase
				if phase == "" {
					phase = "(none yet)"
				}
				return fmt.Errorf("lost the connection to luod during phase %s; see 'luoctl status': %w", phase, err)
			}
			return err
		}),
	}
	f.register(cmd)
	return cmd
}

func (a *app) stageCommand() *cobra.Command {
	var f updateFlags
	cmd := &cobra.Command{
		Use:   "stage --kernel FILE [--initrd FILE] [--cmdline S] [--reuse-cmdline] [--allow-loss]",
		Short: "Prepare a kexec update while every unit keeps running",
		Long: `Prepare a kexec update while every unit keeps running: make its plan (the
kernel-side checks and a trial preservation of every memfd) and load the next
kernel. Refused, loading nothing, when the plan is not OK (see 'luoctl update
plan'). 'luoctl update run --staged' then only stops, preserves and reboots.
Staging again replaces what was staged. Exits with status 4 when refused.`,
		Args: args(0, 0, ""),
		RunE: a.runE(planTimeout, func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			if f.kernel == "" {
				return usagef(cmd, "--kernel is required")
			}
			p := control.StageParams{Kernel: f.kernel, Initrd: f.initrd, Cmdline: f.cmdline, ReuseCmdline: f.reuseCmdline, AllowLoss: f.allowLoss}
			st, err := a.stagedCall(ctx, control.MethodStageUpdate, p)
			if err != nil || st == nil {
				return err
			}
			fmt.Fprintln(a.out, "Run it with: luoctl update run --staged")
			return nil
		}),
	}
	f.registerTarget(cmd)
	cmd.Flags().BoolVar(&f.allowLoss, "allow-loss", false, "stage although some fds will be lost")
	return cmd
}

// stagedCall calls method, whose reply is a Staged update, and prints it:
// as JSON (and returns nil), or as text (and returns it for more).
func (a *app) stagedCall(ctx context.Context, method string, params any) (*control.Staged, error) {
	var st control.Staged
	if err := a.call(ctx, method, params, &st); err != nil {
		return nil, err
	}
	if a.json {
		return nil, a.printJSON(st)
	}
	a.printStaged(st)
	return &st, nil
}

func (a *app) stagedCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the staged update and whether its plan still holds",
		Long: `Show the staged update: its kernel, when it was staged, its checks and plan
totals, whether the kernel is still loaded, and what changed in the fd stores
since (entries new, gone, or with another fate).`,
		Args: args(0, 0, ""),
		RunE: a.runE(queryTimeout, func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			st, err := a.stagedCall(ctx, control.MethodGetStagedUpdate, nil)
			if err != nil || st == nil {
				return err
			}
			if !st.Loaded {
				fmt.Fprintln(a.out, "Kernel: NOT LOADED any more (unloaded or replaced outside luod): stage it again")
			}
			switch {
			case st.Replanned:
				fmt.Fprintln(a.out, "Changes: unknown (luod re-executed since): 'luoctl update run --staged' plans again")
			case len(st.Changes) == 0:
				fmt.Fprintln(a.out, "Changes since staging: none, the plan holds")
			default:
				fmt.Fprintf(a.out, "Changes since staging (%d):\n", len(st.Changes))
				for _, c := range st.Changes {
					fmt.Fprintf(a.out, "  %s\n", c)
				}
			}
			return nil
		}),
	}
}

// printStaged prints a staged update: kernel, time, checks, totals.
func (a *app) printStaged(st control.Staged) {
	fmt.Fprintf(a.out, "Staged kexec update into %s\n", st.Kernel)
	if st.Initrd != "" {
		fmt.Fprintf(a.out, "  initrd:  %s\n", st.Initrd)
	}
	if st.Cmdline != "" {
		fmt.Fprintf(a.out, "  cmdline: %s\n", st.Cmdline)
	}
	fmt.Fprintf(a.out, "  staged:  %s (%s ago)\n", st.StagedAt.In(a.env.location()).Format("2006-01-02 15:04:05 MST"),
		seconds(a.env.now().Sub(st.StagedAt)))
	a.printChecks("Checks:", st.Checks)
	fmt.Fprintf(a.out, "Plan when staged: %s (%s) carried, %s; %s\n", plural(st.Memfds, "memfd", "memfds"), humanBytes(st.TotalBytes),
		plural(st.Sessions, "session", "sessions"), plural(st.Lost, "fd lost", "fds lost"))
}

func (a *app) unstageCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "unstage",
		Short: "Drop the staged update and unload its kernel",
		Args:  args(0, 0, ""),
		RunE: a.runE(queryTimeout, func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			if err := a.call(ctx, control.MethodUnstageUpdate, nil, nil); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(struct{}{})
			}
			fmt.Fprintln(a.out, "Unstaged: the kernel is unloaded.")
			return nil
		}),
	}
}

func (a *app) reportCommand() *cobra.Command {
	var kind string
	cmd := &cobra.Command{
		Use:   "report [--kind kexec|soft]",
		Short: "Show the last update: its timeline and each unit's blackout",
		Long: `Show the last update, carried across the kexec (or luod's re-exec, for a soft
update): its timeline (with the offset of each event from the first), each
unit's blackout (from stopped to ready again), the fds handed back and those
lost, and any problems. A soft update does not replace the report of the last
kexec live update: --kind=kexec shows that one.`,
		Args: args(0, 0, ""),
		RunE: a.runE(queryTimeout, func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			if kind != "" && kind != "kexec" && kind != "soft" {
				return usagef(cmd, "--kind must be kexec or soft")
			}
			var r control.Report
			if err := a.call(ctx, control.MethodGetUpdateReport, control.ReportParams{Kind: kind}, &r); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(r)
			}
			a.printReport(r)
			return nil
		}),
	}
	cmd.Flags().StringVar(&kind, "kind", "", "the last update of this kind: kexec or soft")
	return cmd
}

// printReport prints an update report.
func (a *app) printReport(r control.Report) {
	if r.Kind == "soft" {
		fmt.Fprintf(a.out, "Soft update %d: luod re-executed itself, kernel %s kept\n", r.Count, orDash(r.To))
	} else {
		fmt.Fprintf(a.out, "Live update %d (%s): %s -> %s\n", r.Count, orDash(r.Kind), orDash(r.From), orDash(r.To))
	}
	if rb := r.RolledBack; rb != nil {
		fmt.Fprintf(a.out, "Rolled back: the update %s -> %s failed its health gate: %s\n", rb.From, rb.To, rb.Reason)
	}

	var first time.Time
	if len(r.Timeline) > 0 {
		first = r.Timeline[0].Time
		fmt.Fprintln(a.out)
		t := &table{}
		t.row("EVENT", "UNIT", "TIME", "OFFSET")
		for _, e := range r.Timeline {
			t.row(e.Name, e.Unit, e.Time.In(a.env.location()).Format("2006-01-02 15:04:05.000 MST"), "+"+seconds(e.Time.Sub(first)))
		}
		t.write(a.out)
	}

	if len(r.Units) > 0 {
		fmt.Fprintln(a.out)
		offset := func(ts time.Time) string {
			switch {
			case ts.IsZero():
				return ""
			case first.IsZero():
				return ts.In(a.env.location()).Format("15:04:05.000")
			}
			return "+" + seconds(ts.Sub(first))
		}
		t := &table{}
		t.row("UNIT", "STOPPED", "READY", "BLACKOUT", "DELIVERED", "LOST")
		for _, u := range r.Units {
			blackout := ""
			if u.Blackout > 0 {
				blackout = seconds(u.Blackout)
			}
			var lost []string
			for _, e := range u.Lost {
				lost = append(lost, e.Name)
			}
			t.row(u.Name, offset(u.Stopped), offset(u.Ready), blackout, strings.Join(u.Delivered, ","), strings.Join(lost, ","))
		}
		t.write(a.out)
	}

	if len(r.Problems) > 0 {
		fmt.Fprintln(a.out, "\nProblems:")
		for _, p := range r.Problems {
			fmt.Fprintf(a.out, "  %s\n", p)
		}
	}
	for _, k := range r.Also {
		fmt.Fprintf(a.out, "\nThe last %s update has a report too: luoctl update report --kind=%s\n", k, k)
	}
}
