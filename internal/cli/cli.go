package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/version"
)

// Exit statuses of luoctl; see the package documentation.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitNoSuchUnit  = 3
	ExitUpdate      = 4
	ExitUnreachable = 5
	ExitPermission  = 6
)

// SocketEnv is the environment variable that overrides the default socket
// path, control.DefaultSocket; --socket overrides both.
const SocketEnv = "LUOD_SOCKET"

// Default timeouts, per kind of command.
const (
	queryTimeout  = 30 * time.Second // status, list, fdstore, sessions, reload, version, update report, logs, fleet
	jobTimeout    = 5 * time.Minute  // start, stop, restart, clean, daemon-reexec, poweroff, reboot
	planTimeout   = time.Minute      // update plan
	updateTimeout = 30 * time.Minute // update run
)

// pollInterval is how often daemon-reexec asks whether luod is back.
const pollInterval = 100 * time.Millisecond

// Env is the world luoctl runs in. Its zero value is the process's: its
// standard output and error, its environment and the local clock.
type Env struct {
	Stdout io.Writer // nil: os.Stdout
	Stderr io.Writer // nil: os.Stderr
	// Getenv reads the environment; nil: os.Getenv.
	Getenv func(string) string
	// Now is the clock used for "3min ago"; nil: time.Now.
	Now func() time.Time
	// Location is the time zone for timestamps; nil: time.Local.
	Location *time.Location
	// Release is the running kernel's release; nil: uname -r.
	Release func() string
}

// Main runs luoctl with args (without the program name) until it is done
// or interrupted (SIGINT, SIGTERM), prints any error to stderr as
// "luoctl: <message>", and returns the exit status.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return (&Env{}).Main(ctx, args)
}

// Run runs luoctl with args (without the program name) in the process's
// environment. Its error, if any, is for the caller to print; [ExitCode]
// maps it to the exit status.
func Run(ctx context.Context, args []string) error {
	return (&Env{}).Run(ctx, args)
}

// Command returns luoctl's command tree, to generate its manual pages and
// shell completions from (internal/cli/mangen, make install); it does not
// run.
func Command() *cobra.Command {
	return (&app{env: &Env{}, out: io.Discard}).rootCommand()
}

// Main is like the package's [Main] in e, with ctx.
func (e *Env) Main(ctx context.Context, args []string) int {
	err := e.Run(ctx, args)
	if err != nil {
		fmt.Fprintf(e.stderr(), "luoctl: %v\n", err)
	}
	return ExitCode(err)
}

// Run is like the package's [Run] in e.
func (e *Env) Run(ctx context.Context, args []string) error {
	a := &app{env: e, out: e.stdout()}
	root := a.rootCommand()
	root.SetArgs(append([]string{}, args...)) // never nil: cobra would read os.Args
	root.SetOut(e.stdout())
	root.SetErr(e.stderr())
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && !a.ran {
		// cobra rejected the command line before running anything.
		path := root.CommandPath()
		if cmd != nil {
			path = cmd.CommandPath()
		}
		return &usageError{err: err, help: path + " --help"}
	}
	return err
}

func (e *Env) stdout() io.Writer {
	if e.Stdout != nil {
		return e.Stdout
	}
	return os.Stdout
}

func (e *Env) stderr() io.Writer {
	if e.Stderr != nil {
		return e.Stderr
	}
	return os.Stderr
}

func (e *Env) getenv(k string) string {
	if e.Getenv != nil {
		return e.Getenv(k)
	}
	return os.Getenv(k)
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Env) release() string {
	if e.Release != nil {
		return e.Release()
	}
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (e *Env) location() *time.Location {
	if e.Location != nil {
		return e.Location
	}
	return time.Local
}

// usageError is a bad command line.
type usageError struct {
	err  error
	help string // the command line that explains usage
}

func (e *usageError) Error() string {
	return fmt.Sprintf("%s\nSee '%s'.", strings.TrimSpace(e.err.Error()), e.help)
}

func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usage error found while running a command.
func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...), help: cmd.CommandPath() + " --help"}
}

// exitError carries an exit status for an error that is not luod's, such
// as a plan that is not OK.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode returns the exit status for an error of [Run]: 0 for nil, and
// otherwise the status of the documented class the error belongs to.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	var ue *usageError
	var de *control.DialError
	var re *control.RemoteError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &de):
		if errors.Is(de.Err, os.ErrPermission) {
			return ExitPermission
		}
		return ExitUnreachable
	case errors.As(err, &re):
		switch re.Name {
		case control.ErrNoSuchUnit:
			return ExitNoSuchUnit
		case control.ErrUpdateFailed, control.ErrUpdateInProgress:
			return ExitUpdate
		case control.VarlinkPermissionDenied:
			return ExitPermission
		}
	}
	return ExitFailure
}

// app is one run of luoctl: its flags and output.
type app struct {
	env *Env
	out io.Writer

	socket  string
	json    bool
	timeout time.Duration
	ran     bool // a command's RunE started
}

const rootLong = `luoctl controls luod, the live update manager: its units and their fd
stores, and live updates of the kernel that carry the fd stores across a kexec.

It talks to luod over its root-only Varlink socket: --socket, or $LUOD_SOCKET,
or /run/luod/io.luo.Manager.

Output is made for people. With --json, luoctl prints luod's replies as
indented JSON instead, objects of the io.luo.Manager Varlink interface whose
optional fields are left out when empty: commands taking UNIT... print an
array of replies, one per unit, and update run prints one reply per line as
progress arrives. See docs/luoctl-json.md.

--timeout bounds a command; 0 means no limit. The defaults: 30s for queries,
5m for start, stop, restart, clean, daemon-reexec, poweroff and reboot, 1m for
update plan, 30m for update run, none for logs -f.

Exit status:
  0  success
  1  failure: an error reply from luod, a timeout, a lost connection
  2  usage error: unknown command or flag, bad arguments
  3  a unit does not exist
  4  the update plan is not OK, or the update was refused or failed
  5  luod cannot be reached: no socket, or connection refused
  6  permission denied: luod's control socket is root-only`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "luoctl",
		Short:         "Control luod, its units, fd stores and kernel live updates",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version.String(),
		RunE: func(*cobra.Command, []string) error {
			return errors.New("missing command")
		},
	}
	root.SetVersionTemplate("luoctl {{.Version}}\n")
	socket := a.env.getenv(SocketEnv)
	if socket == "" {
		socket = control.DefaultSocket
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.socket, "socket", socket, "luod's control socket; $"+SocketEnv+" sets the default")
	pf.BoolVar(&a.json, "json", false, "print luod's replies as JSON, for scripts")
	pf.DurationVar(&a.timeout, "timeout", 0, "give up after this long, 0 for never (default: per command, see 'luoctl --help')")

	root.AddCommand(
		a.statusCommand(),
		a.listCommand(),
		a.jobCommand("start", control.MethodStartUnit, "Start units and wait until they are up"),
		a.jobCommand("stop", control.MethodStopUnit, "Stop units and wait until they are down"),
		a.jobCommand("restart", control.MethodRestartUnit, "Restart units and wait until they are up"),
		a.fdstoreCommand(),
		a.cleanCommand(),
		a.resetFailedCommand(),
		a.reloadCommand(),
		a.reexecCommand(),
		a.sessionsCommand(),
		a.logsCommand(),
		a.powerCommand("poweroff", control.MethodPowerOff, "Stop every unit and power off (luod as PID 1)"),
		a.powerCommand("reboot", control.MethodReboot, "Stop every unit and reboot (luod as PID 1)"),
		a.updateCommand(),
		a.fleetCommand(),
		a.versionCommand(),
	)
	return root
}

// runE wraps a command's body: it marks that the command line was
// accepted, applies the timeout (def unless --timeout is given), and
// explains a timeout.
func (a *app) runE(def time.Duration, f func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		d := def
		if fl := cmd.Flag("timeout"); fl != nil && fl.Changed {
			d = a.timeout
		}
		ctx := cmd.Context()
		if d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		err := f(ctx, cmd, args)
		if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return fmt.Errorf("gave up after %v (see --timeout): %w", d, err)
		}
		return err
	}
}

// dial connects to luod.
func (a *app) dial(ctx context.Context) (*control.Client, error) {
	return control.Dial(ctx, a.socket)
}

// call connects, calls one method and disconnects.
func (a *app) call(ctx context.Context, method string, params, reply any) error {
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, method, params, reply)
}

// args returns a validator for between min and max (-1: any number)
// positional arguments named what.
func args(min, max int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < min:
			return fmt.Errorf("%s needs %s", cmd.CommandPath(), what)
		case max >= 0 && len(args) > max:
			if max == 0 {
				return fmt.Errorf("%s takes no arguments", cmd.CommandPath())
			}
			return fmt.Errorf("%s takes at most %d arguments", cmd.CommandPath(), max)
		}
		return nil
	}
}

// completeUnits completes unit names from luod's list.
func (a *app) completeUnits(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var us control.Units
	if a.call(ctx, control.MethodListUnits, nil, &us) != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, 0, len(us.Units))
	for _, u := range us.Units {
		names = append(names, u.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// isRemote reports whether err is an error reply from luod, after which
// the connection is still usable.
func isRemote(err error) bool {
	var re *control.RemoteError
	return errors.As(err, &re)
}
