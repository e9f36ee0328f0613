package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/kimage"
)

// DefaultKernels is where `luoctl update needed` looks for a newer kernel.
const DefaultKernels = "/boot/vmlinuz-*"

// Needed is what `luoctl update needed --json` prints.
type Needed struct {
	Needed bool   `json:"needed"`
	Reason string `json:"reason"`
	// Kernel is the image to update into: the staged one, or the newest
	// one found; Release its release, Running the running kernel's.
	Kernel  string `json:"kernel,omitempty"`
	Release string `json:"release,omitempty"`
	Running string `json:"running"`
	Staged  bool   `json:"staged"`
}

// errNotNeeded is `luoctl update needed`'s answer "no": exit status 1.
var errNotNeeded = errors.New("no update needed")

func (a *app) neededCommand() *cobra.Command {
	var globs []string
	cmd := &cobra.Command{
		Use:   "needed [--kernels GLOB]...",
		Short: "Exit 0 when an update is waiting: a staged one, or a newer kernel",
		Long: `Say whether a live update is waiting, for kured's --reboot-sentinel-command
and the like: an update staged with 'luoctl update stage' whose kernel is still
loaded, or a kernel image under --kernels (default ` + DefaultKernels + `) whose
release, read from its boot header, is newer than the running kernel's (versions
compared as sort -V does).

Exit status: 0 an update is waiting (what is printed), 1 none, 5 luod
unreachable, 6 permission denied. With 'luoctl update run --staged' as the
reboot command, the work is done by the host's luod, not by the caller.`,
		Args: args(0, 0, ""),
		RunE: a.runE(queryTimeout, func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			n, err := a.needed(ctx, globs)
			if err != nil {
				return err
			}
			if a.json {
				if err := a.printJSON(n); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(a.out, n.Reason)
			}
			if !n.Needed {
				return &exitError{code: ExitFailure, err: errNotNeeded}
			}
			return nil
		}),
	}
	cmd.Flags().StringArrayVar(&globs, "kernels", []string{DefaultKernels}, "kernel images to compare with the running kernel (a glob; may repeat)")
	return cmd
}

// needed asks luod for a staged update, then looks for a newer kernel.
func (a *app) needed(ctx context.Context, globs []string) (Needed, error) {
	n := Needed{Running: a.env.release()}
	var st control.Staged
	err := a.call(ctx, control.MethodGetStagedUpdate, nil, &st)
	var re *control.RemoteError
	switch {
	case err == nil && st.Loaded:
		n.Needed, n.Staged, n.Kernel = true, true, st.Kernel
		n.Reason = "staged update waiting: " + st.Kernel
		return n, nil
	case err == nil, errors.As(err, &re) && re.Name == control.ErrNotStaged:
		// Nothing staged (or its kernel was unloaded): look on disk.
	default:
		return n, err
	}
	for _, g := range globs {
		paths, err := filepath.Glob(g)
		if err != nil {
			return n, &usageError{err: fmt.Errorf("--kernels %q: %w", g, err), help: "luoctl update needed --help"}
		}
		for _, p := range paths {
			img, err := kimage.Open(p)
			if err != nil {
				continue // not a kernel image (a link, a config, ...)
			}
			best := n.Release
			if best == "" {
				best = n.Running
			}
			if compareVersions(img.Release, best) > 0 {
				n.Kernel, n.Release = p, img.Release
			}
		}
	}
	if n.Kernel != "" {
		n.Needed = true
		n.Reason = fmt.Sprintf("newer kernel: %s (%s, running %s)", n.Kernel, n.Release, n.Running)
		return n, nil
	}
	n.Reason = "no update needed: nothing staged, no kernel newer than " + n.Running
	return n, nil
}

// compareVersions compares two kernel releases as sort -V does: runs of
// digits by value, other runs byte by byte, so 7.10 > 7.9 and
// 6.1.0-21-amd64 > 6.1.0-18-amd64.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		ra, na := versionRun(a)
		rb, nb := versionRun(b)
		var c int
		if isDigit(ra[0]) && isDigit(rb[0]) {
			x, _ := strconv.ParseUint(ra, 10, 64)
			y, _ := strconv.ParseUint(rb, 10, 64)
			switch {
			case x < y:
				c = -1
			case x > y:
				c = 1
			}
		} else if ra < rb {
			c = -1
		} else if ra > rb {
			c = 1
		}
		if c != 0 {
			return c
		}
		a, b = a[na:], b[nb:]
	}
	switch {
	case a == b:
		return 0
	case a == "":
		return -1
	}
	return 1
}

// versionRun is the leading run of digits, or of other bytes, of s.
func versionRun(s string) (string, int) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
