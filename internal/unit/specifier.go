package unit

import (
	"errors"
	"fmt"
	"strings"
)

// specifiers expands the %-specifiers of systemd.unit(5) for one unit.
// luod is a system manager running as root, so the user specifiers describe
// root, as in systemd ("not influenced by the User= setting").
type specifiers struct {
	name     string // "foo@bar.service"
	prefix   string // "foo"
	instance string // "bar", "" when not instantiated
}

func newSpecifiers(name string) *specifiers {
	base := strings.TrimSuffix(name, serviceSuffix)
	sp := &specifiers{name: name, prefix: base}
	if at := strings.IndexByte(base, '@'); at >= 0 {
		sp.prefix, sp.instance = base[:at], base[at+1:]
	}
	return sp
}

// specifierTable documents what expand supports, for the package doc and
// the tests.
var specifierTable = map[byte]string{
	'n': "full unit name",
	'N': "unit name without the .service suffix",
	'p': "prefix (before '@')",
	'P': "unescaped prefix",
	'i': "instance (after '@'), empty if none",
	'I': "unescaped instance",
	'j': "final '-'-separated component of the prefix",
	'J': "unescaped final component of the prefix",
	'f': "unescaped instance, or else prefix, as an absolute path",
	't': "/run",
	'S': "/var/lib",
	'C': "/var/cache",
	'L': "/var/log",
	'E': "/etc",
	'T': "/tmp",
	'V': "/var/tmp",
	'h': "/root",
	's': "/bin/sh",
	'u': "root",
	'U': "0",
	'g': "root",
	'G': "0",
}

// expand replaces the specifiers in s, as systemd's specifier_printf(): "%%"
// is a '%', a '%' at the end is kept, a '%' before a character that cannot
// be a specifier is kept with it, and an unknown specifier is an error.
func (sp *specifiers) expand(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			b.WriteByte('%')
			break
		}
		i++
		c = s[i]
		if c == '%' {
			b.WriteByte('%')
			continue
		}
		if !isAlnum(c) {
			b.WriteByte('%')
			b.WriteByte(c)
			continue
		}
		v, err := sp.lookup(c)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func (sp *specifiers) lookup(c byte) (string, error) {
	switch c {
	case 'n':
		return sp.name, nil
	case 'N':
		return strings.TrimSuffix(sp.name, serviceSuffix), nil
	case 'p':
		return sp.prefix, nil
	case 'P':
		return sp.unescape(c, sp.prefix)
	case 'i':
		return sp.instance, nil
	case 'I':
		return sp.unescape(c, sp.instance)
	case 'j':
		return lastComponent(sp.prefix), nil
	case 'J':
		return sp.unescape(c, lastComponent(sp.prefix))
	case 'f':
		x := sp.prefix
		if sp.instance != "" {
			x = sp.instance
		}
		return sp.pathUnescape(c, x)
	case 't':
		return "/run", nil
	case 'S':
		return "/var/lib", nil
	case 'C':
		return "/var/cache", nil
	case 'L':
		return "/var/log", nil
	case 'E':
		return "/etc", nil
	case 'T':
		return "/tmp", nil
	case 'V':
		return "/var/tmp", nil
	case 'h':
		return "/root", nil
	case 's':
		return "/bin/sh", nil
	case 'u', 'g':
		return "root", nil
	case 'U', 'G':
		return "0", nil
	}
	return "", fmt.Errorf("specifier %%%c is not supported by luod: %w", c, errors.ErrUnsupported)
}

func lastComponent(prefix string) string {
	if i := strings.LastIndexByte(prefix, '-'); i >= 0 {
		return prefix[i+1:]
	}
	return prefix
}

func (sp *specifiers) unescape(c byte, s string) (string, error) {
	u, err := unitNameUnescape(s)
	if err != nil {
		return "", fmt.Errorf("specifier %%%c: cannot unescape %q: %w", c, s, err)
	}
	return u, nil
}

// pathUnescape is systemd's unit_name_path_unescape().
func (sp *specifiers) pathUnescape(c byte, s string) (string, error) {
	if s == "-" {
		return "/", nil
	}
	u, err := sp.unescape(c, s)
	if err != nil {
		return "", err
	}
	if s == "" || strings.HasPrefix(u, "/") || strings.HasSuffix(u, "/") || !pathIsNormalized("/"+u) {
		return "", fmt.Errorf("specifier %%%c: %q is not an escaped path", c, s)
	}
	return "/" + u, nil
}

// unitNameUnescape is systemd's unit_name_unescape(): '-' becomes '/' and
// \xNN becomes the byte NN.
func unitNameUnescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '-':
			b.WriteByte('/')
		case '\\':
			if i+3 >= len(s) || s[i+1] != 'x' {
				return "", errors.New(`invalid \x escape`)
			}
			v, ok := unhexN(s[i+2 : i+4])
			if !ok || v == 0 {
				return "", errors.New(`invalid \x escape`)
			}
			b.WriteByte(byte(v))
			i += 3
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
