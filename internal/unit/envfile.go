package unit

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ReadEnvironmentFile reads the KEY=VALUE lines of an EnvironmentFile= as
// systemd does: comments (# ;) and blank lines skipped, an optional
// "export ", values in single or double quotes unquoted, a backslash at
// the end of a line continuing it. It refuses anything but a regular file
// before opening it, so that a FIFO (or a device that never ends) cannot
// block the caller, and a file over MaxFileSize; lines may be up to
// MaxLineLength long.
func ReadEnvironmentFile(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, statError(path, err)
	}
	if err := checkEnvironmentFile(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := checkEnvironmentFile(path, fi); err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(io.LimitReader(f, MaxFileSize))
	sc.Buffer(nil, MaxLineLength+1)
	var cont string
	for sc.Scan() {
		line := cont + sc.Text()
		cont = ""
		if strings.HasSuffix(line, "\\") {
			cont = strings.TrimSuffix(line, "\\")
			continue
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s: invalid line %s", path, quote(line))
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		out = append(out, k+"="+v)
	}
	return out, sc.Err()
}

// checkEnvironmentFile refuses an environment file that is not a regular
// file, or too large.
func checkEnvironmentFile(path string, fi fs.FileInfo) error {
	switch m := fi.Mode(); {
	case !m.IsRegular():
		return fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, fileKind(m))
	case fi.Size() > MaxFileSize:
		return errFileTooLarge(path)
	}
	return nil
}
