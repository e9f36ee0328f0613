package unit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// ExecSearchPath is where a command given by bare name ("ExecStart=sleep
// 10") is looked up at start time: systemd's fixed default PATH, not the
// manager's $PATH. See [Command.LookPath].
const ExecSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"

// A Command is one command line of ExecStart=, split into words.
type Command struct {
	// Path is the executable: an absolute, simplified path
	// ("/usr/bin/sleep"), or a bare file name ("sleep") that the
	// supervisor resolves in ExecSearchPath when it starts the command
	// (see LookPath). It is never empty.
	Path string
	// Argv is the argument vector, Argv[0] included, after unquoting,
	// unescaping and specifier expansion. Environment variable
	// references ($VAR, ${VAR}) are still in it: see Expand. Without the
	// "@" prefix Argv[0] is the path as written (before simplification);
	// with it, Argv[0] is the second word of the command line. Argv is
	// never empty when the Command comes from Parse.
	Argv []string
	// IgnoreFailure is the "-" prefix: the command's exit status, and its
	// failure to start because the executable does not exist, do not fail
	// the unit.
	IgnoreFailure bool
	// NoEnvExpand is the ":" prefix: Expand leaves $VAR and ${VAR} alone.
	NoEnvExpand bool
}

// parseCommand parses one non-empty ExecStart= value as systemd's
// config_parse_exec() does, expanding specifiers in every word with
// expand. It returns the warnings systemd logs for unknown escape sequences
// (they are kept verbatim).
//
// Differences from systemd: the prefixes "+", "!", "!!" and "|" are
// refused, as is an unquoted ";" separating several commands in one line
// (systemd deprecates it); "\;" is still a literal ";" argument.
func parseCommand(value string, expand func(string) (string, error)) (Command, []string, error) {
	var c Command
	var warnings []string
	if strings.IndexByte(value, 0) >= 0 {
		return c, nil, errors.New("command line contains a NUL byte")
	}
	first, p, found, warn, err := extractWordWarn(value, extractUnquote|extractCUnescape)
	if err != nil {
		return c, nil, err
	}
	if !found {
		return c, nil, errors.New("empty command line")
	}
	if warn != "" {
		warnings = append(warnings, warn)
	}
	if first == ";" {
		return c, nil, errSemicolon
	}
	separateArgv0 := false
	f := first
prefixes:
	for f != "" {
		switch f[0] {
		case '-':
			if c.IgnoreFailure {
				break prefixes
			}
			c.IgnoreFailure = true
		case '@':
			if separateArgv0 {
				break prefixes
			}
			separateArgv0 = true
		case ':':
			if c.NoEnvExpand {
				break prefixes
			}
			c.NoEnvExpand = true
		case '+', '!', '|':
			return c, nil, fmt.Errorf("command prefix %q is not supported by luod (supported: \"-\", \"@\", \":\"): %w", f[0], errors.ErrUnsupported)
		default:
			break prefixes
		}
		f = f[1:]
	}
	path, err := expand(f)
	switch {
	case err != nil:
		return c, nil, err
	case path == "":
		return c, nil, errors.New("empty executable path")
	case !stringIsSafe(path):
		return c, nil, fmt.Errorf("executable path %s contains special characters", quote(path))
	case strings.HasSuffix(path, "/"):
		return c, nil, fmt.Errorf("executable path %s is a directory", quote(path))
	case strings.HasPrefix(path, "/") && !pathIsValid(path):
		return c, nil, fmt.Errorf("executable path %s is too long", quote(path))
	case !strings.HasPrefix(path, "/") && !filenameIsValid(path):
		return c, nil, fmt.Errorf("executable %s is neither an absolute path nor a file name", quote(path))
	}
	if !separateArgv0 {
		c.Argv = append(c.Argv, path)
	}
	c.Path = pathSimplify(path)
	if c.Path == "/" {
		return c, nil, fmt.Errorf("executable path %s is a directory", quote(path)) // "/.", which systemd lets fail at exec time
	}

	for p != "" {
		if p[0] == ';' && (len(p) == 1 || isWhitespace(p[1])) {
			return c, nil, errSemicolon
		}
		if strings.HasPrefix(p, `\;`) && (len(p) == 2 || isWhitespace(p[2])) {
			c.Argv = append(c.Argv, ";")
			p = strings.TrimLeft(p[2:], whitespace)
			continue
		}
		word, rest, found, warn, err := extractWordWarn(p, extractUnquote|extractCUnescape)
		if err != nil {
			return c, nil, err
		}
		if !found {
			break
		}
		if warn != "" {
			warnings = append(warnings, warn)
		}
		w, err := expand(word)
		if err != nil {
			return c, nil, err
		}
		c.Argv = append(c.Argv, w)
		p = rest
	}
	if len(c.Argv) == 0 {
		return c, nil, errors.New(`no argv[0] after the "@" prefix`)
	}
	return c, warnings, nil
}

var errSemicolon = fmt.Errorf(`";" separating commands is not supported by luod (use one ExecStart= line per command, with Type=oneshot; write "\;" for a literal ";"): %w`, errors.ErrUnsupported)

// Expand returns Argv with environment variables substituted from env
// ("KEY=VALUE" entries; when a key appears more than once the last one
// wins), following systemd's rules (systemd.service(5), "Command lines"):
//
//   - a word that is exactly $NAME is replaced by the value of NAME split
//     into words at whitespace (quotes in the value group words; escapes
//     are not decoded), and by nothing when NAME is unset or empty;
//   - ${NAME} anywhere in a word is replaced by the value as is, by the
//     empty string when NAME is unset;
//   - $$ is a literal $; anything else ($NAME inside a word, ${NAME:-x})
//     is left as written.
//
// With NoEnvExpand, Expand returns a copy of Argv. Expand never modifies c.
func (c Command) Expand(env []string) []string {
	if c.NoEnvExpand {
		return slices.Clone(c.Argv)
	}
	out := make([]string, 0, len(c.Argv))
	for _, w := range c.Argv {
		if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") && !strings.HasPrefix(w, "$$") {
			name := w[1:]
			if !envNameIsValid(name) {
				continue
			}
			if v, ok := envLookup(env, name); ok {
				words, _ := splitWords(v, extractRelax|extractUnquote) // cannot fail with extractRelax
				out = append(out, words...)
			}
			continue
		}
		out = append(out, replaceEnv(w, env))
	}
	return out
}

// envLookup returns the value of the last assignment of name in env.
func envLookup(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name); ok && strings.HasPrefix(v, "=") {
			return v[1:], true
		}
	}
	return "", false
}

// replaceEnv is systemd's replace_env() without flags: ${NAME} becomes the
// value of NAME and $$ becomes $.
func replaceEnv(format string, env []string) string {
	if !strings.Contains(format, "$") {
		return format
	}
	const (
		word = iota
		curly
		variable
	)
	state := word
	var b strings.Builder
	start := 0 // start of the text not yet copied to b
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch state {
		case word:
			if c == '$' {
				state = curly
			}
		case curly:
			switch c {
			case '{':
				b.WriteString(format[start : i-1])
				start = i - 1
				state = variable
			case '$':
				b.WriteString(format[start:i])
				start = i + 1
				state = word
			default:
				state = word
			}
		case variable:
			switch c {
			case '}':
				if name := format[start+2 : i]; envNameIsValid(name) {
					v, _ := envLookup(env, name)
					b.WriteString(v)
				}
				start = i + 1
				state = word
			case ':':
				state = word // ${NAME:-default} is not supported here, as in systemd
			}
		}
	}
	b.WriteString(format[start:])
	return b.String()
}

// LookPath returns the executable c runs: Path itself when it is absolute,
// otherwise the first regular file named Path with an execute bit in the
// directories of ExecSearchPath. It reads the file system.
func (c Command) LookPath() (string, error) {
	if strings.HasPrefix(c.Path, "/") {
		return c.Path, nil
	}
	if !filenameIsValid(c.Path) {
		return "", fmt.Errorf("executable %q is neither an absolute path nor a file name", c.Path)
	}
	for _, dir := range strings.Split(ExecSearchPath, ":") {
		p := dir + "/" + c.Path
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in %s: %w", c.Path, ExecSearchPath, fs.ErrNotExist)
}
