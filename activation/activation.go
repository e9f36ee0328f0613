package activation

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The environment variables of the protocol.
const (
	envFDs     = "LISTEN_FDS"
	envPID     = "LISTEN_PID"
	envPIDFDID = "LISTEN_PIDFDID"
	envNames   = "LISTEN_FDNAMES"
)

const (
	// listenFDsStart is the first passed descriptor (SD_LISTEN_FDS_START).
	listenFDsStart = 3

	// maxFDs bounds LISTEN_FDS, to reject nonsense before touching
	// descriptors.
	maxFDs = 1 << 16
)

// ErrNotForUs is returned by [Receive] when the environment lists fds that
// are not meant for this process: $LISTEN_PID is another process's PID (the
// variables were inherited from a parent), $LISTEN_PIDFDID does not match
// this process, or $LISTEN_PID is missing. libsystemd treats these cases as
// "no fds passed"; callers that want that can check errors.Is and carry on
// with an empty set. The descriptors are not touched.
var ErrNotForUs = errors.New("activation: the passed file descriptors are not for this process")

// ErrAlreadyReceived is returned by [Receive] when an earlier call in this
// process already took ownership of the passed descriptors and left the
// environment in place (Config.UnsetEnv false). Wrapping the same descriptors
// in a second set of *os.File values would let one of them close a
// descriptor the other still uses.
var ErrAlreadyReceived = errors.New("activation: the passed file descriptors were already received by an earlier call")

// Config holds the options of [Receive]. A nil *Config means the defaults.
type Config struct {
	// UnsetEnv makes Receive unset LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES
	// and LISTEN_PIDFDID before it returns, whatever the outcome (as
	// sd_listen_fds with unset_environment does), so that child processes
	// do not inherit them. By default the environment is left as it is.
	UnsetEnv bool
}

// Files is the set of descriptors passed to the process, in $LISTEN_FDS
// order. The caller owns the files. A Files is safe for concurrent use: its
// methods only read it. The methods of a nil *Files behave as for an empty
// set.
type Files struct {
	files []*os.File
}

// FilesOf makes a set of files a program already holds, each named by its
// Name, as Receive would return them: for a test that plays the service
// manager, or a wrapper that passes fds its own way. The set takes no
// ownership beyond what Files does: the caller owns the files.
func FilesOf(files ...*os.File) *Files { return &Files{files: slices.Clone(files)} }

// All returns every file, in $LISTEN_FDS order (descriptor 3 first). Each
// file's Name is its fd name. The returned slice is a copy.
func (f *Files) All() []*os.File {
	if f == nil {
		return nil
	}
	return slices.Clone(f.files)
}

// Named returns the files called name, in $LISTEN_FDS order, or nil if
// there are none. Names are not unique: an fd store can hold several entries
// of one name.
func (f *Files) Named(name string) []*os.File {
	if f == nil {
		return nil
	}
	var out []*os.File
	for _, file := range f.files {
		if file.Name() == name {
			out = append(out, file)
		}
	}
	return out
}

// Names returns the name of every file, in $LISTEN_FDS order (so it may hold
// duplicates).
func (f *Files) Names() []string {
	if f == nil {
		return nil
	}
	names := make([]string, len(f.files))
	for i, file := range f.files {
		names[i] = file.Name()
	}
	return names
}

// Len returns the number of files.
func (f *Files) Len() int {
	if f == nil {
		return 0
	}
	return len(f.files)
}

// Close closes every file of the set and returns the errors joined.
// Files already closed by the caller report os.ErrClosed.
func (f *Files) Close() error {
	if f == nil {
		return nil
	}
	var errs []error
	for _, file := range f.files {
		if err := file.Close(); err != nil {
			errs = append(errs, fmt.Errorf("activation: close %s: %w", file.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// received records that Receive took ownership of the passed descriptors.
// The descriptors are process-wide state, so this guard is too.
var received struct {
	sync.Mutex
	done bool
}

// Receive returns the file descriptors passed by the service manager, as
// described in the package documentation. A nil cfg means the defaults.
//
// When $LISTEN_FDS is unset the process was not passed any descriptors:
// Receive returns an empty set and a nil error. It returns an error wrapping
// [ErrNotForUs] when the descriptors are meant for another process, and an
// error (that says which variable is wrong) when the environment is
// malformed: $LISTEN_FDS is not a number between 0 and 65536, the number of
// $LISTEN_FDNAMES entries differs from it, or a descriptor is not open. In
// all these cases no descriptor is changed. The names themselves are taken
// as the manager wrote them (see [ParseNames]).
//
// Receive hands the descriptors out once: a later call returns
// [ErrAlreadyReceived] while the environment still lists them, or an empty
// set if the first call unset it ([Config.UnsetEnv]).
func Receive(cfg *Config) (*Files, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.UnsetEnv {
		defer unsetEnv()
	}
	env, err := parseEnv(os.LookupEnv, self{pid: os.Getpid(), pidFDID: ownPIDFDID})
	if err != nil {
		return nil, err
	}
	if env.n == 0 {
		return &Files{}, nil
	}
	received.Lock()
	defer received.Unlock()
	if received.done {
		return nil, ErrAlreadyReceived
	}
	files, err := claim(env)
	if err != nil {
		return nil, err
	}
	received.done = true
	return &Files{files: files}, nil
}

func unsetEnv() {
	for _, k := range []string{envPID, envFDs, envNames, envPIDFDID} {
		os.Unsetenv(k)
	}
}

// ParseNames splits a $LISTEN_FDNAMES value at ':' into the fd names, so
// that strings.Join(names, ":") gives s back.
//
// It does not check the names themselves, just as libsystemd's
// sd_listen_fds_with_names does not: the manager checked each name when it
// was given one (FDNAME= or FileDescriptorName=, by the rules of systemd's
// fdname_is_valid(), which package sdnotify implements as ValidFDName), so
// a name in $LISTEN_FDNAMES is the fd's name, whatever bytes it holds.
//
// Empty entries are kept, so "a::b" gives three names and "" gives one empty
// name: systemd accepts an empty FDNAME= and then writes such values.
//
// The one error is a NUL byte in s: no environment variable can hold one,
// so s is not a $LISTEN_FDNAMES value.
func ParseNames(s string) ([]string, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return nil, fmt.Errorf("activation: %s %s: NUL byte at offset %d, which no environment variable can hold",
			envNames, quoteShort(s), i)
	}
	return strings.Split(s, ":"), nil
}

// self identifies the calling process, for parseEnv.
type self struct {
	pid int
	// pidFDID returns the inode number of a pidfd for the process, or
	// ok false when the kernel cannot tell (no pidfs).
	pidFDID func() (id uint64, ok bool, err error)
}

// listenEnv is the parsed environment.
type listenEnv struct {
	n     int
	names []string // len n
}

// parseEnv reads and checks the LISTEN_* variables.
func parseEnv(lookup func(string) (string, bool), me self) (listenEnv, error) {
	fds, ok := lookup(envFDs)
	if !ok {
		return listenEnv{}, nil
	}
	pidStr, ok := lookup(envPID)
	if !ok {
		return listenEnv{}, fmt.Errorf("%w: %s=%q is set but %s is not, so the fds cannot be attributed",
			ErrNotForUs, envFDs, fds, envPID)
	}
	pid, err := parseUint(pidStr, 1<<31-1)
	if err != nil || pid == 0 {
		return listenEnv{}, fmt.Errorf("activation: malformed %s=%q: want a positive process ID", envPID, pidStr)
	}
	if int(pid) != me.pid {
		return listenEnv{}, fmt.Errorf("%w: %s=%d, but our PID is %d", ErrNotForUs, envPID, pid, me.pid)
	}
	if idStr, ok := lookup(envPIDFDID); ok {
		want, err := parseUint(idStr, 1<<64-1)
		if err != nil {
			return listenEnv{}, fmt.Errorf("activation: malformed %s=%q: want an inode number", envPIDFDID, idStr)
		}
		got, ok, err := me.pidFDID()
		if err != nil {
			return listenEnv{}, fmt.Errorf("activation: check %s: %w", envPIDFDID, err)
		}
		if ok && got != want {
			return listenEnv{}, fmt.Errorf("%w: %s=%d, but our pidfd inode is %d (same PID %d, different process)",
				ErrNotForUs, envPIDFDID, want, got, me.pid)
		}
	}
	n, err := parseUint(fds, maxFDs)
	if err != nil {
		return listenEnv{}, fmt.Errorf("activation: malformed %s=%q: want a number of fds between 0 and %d", envFDs, fds, maxFDs)
	}
	env := listenEnv{n: int(n)}
	namesStr, ok := lookup(envNames)
	switch {
	case !ok:
		env.names = make([]string, env.n)
		for i := range env.names {
			env.names[i] = "unknown"
		}
	case env.n == 0 && namesStr == "":
		// No fds and no names.
	default:
		names, err := ParseNames(namesStr)
		if err != nil {
			return listenEnv{}, err
		}
		if len(names) != env.n {
			return listenEnv{}, fmt.Errorf("activation: mismatch between %s=%d and %d %s entries (%s)",
				envFDs, env.n, len(names), envNames, quoteShort(namesStr))
		}
		env.names = names
	}
	return env, nil
}

// parseUint parses a decimal number of at most max, digits only (no sign,
// no spaces).
func parseUint(s string, max uint64) (uint64, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if v > max {
		return 0, strconv.ErrRange
	}
	return v, nil
}

// quoteShort quotes s for an error message, eliding the end of long strings.
func quoteShort(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max]) + fmt.Sprintf("...(%d bytes)", len(s))
}
