package unit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func noExpand(s string) (string, error) { return s, nil }

// Cases ported from TEST(config_parse_exec) in systemd's
// src/test/test-load-fragment.c; the ";" separator cases are errors in luod.
func TestParseCommand(t *testing.T) {
	t.Parallel()
	long := "/bin/echo " + strings.Repeat("x", 4000)
	tests := []struct {
		name string
		in   string
		want Command
		warn bool
		err  string // substring of the error; "" for success
	}{
		{name: "basic", in: "/RValue r1", want: Command{Path: "/RValue", Argv: []string{"/RValue", "r1"}}},
		{name: "slashes", in: "/RValue///slashes r1///",
			want: Command{Path: "/RValue/slashes", Argv: []string{"/RValue///slashes", "r1///"}}},
		{name: "trailing slash", in: "/RValue/ argv0 r1", err: "is a directory"},
		{name: "honour argv0", in: "@/RValue///slashes2 ///argv0 r1",
			want: Command{Path: "/RValue/slashes2", Argv: []string{"///argv0", "r1"}}},
		{name: "honour argv0, no args", in: "@/RValue", err: "no argv[0]"},
		{name: "ignore and argv0", in: "-@/RValue///slashes3 argv0a r1",
			want: Command{Path: "/RValue/slashes3", Argv: []string{"argv0a", "r1"}, IgnoreFailure: true}},
		{name: "argv0 and ignore", in: "@-/RValue///slashes4 argv0b r1",
			want: Command{Path: "/RValue/slashes4", Argv: []string{"argv0b", "r1"}, IgnoreFailure: true}},
		{name: "ignore twice", in: "--/RValue argv0 r1", err: "neither an absolute path nor a file name"},
		{name: "ignore twice (2)", in: "-@-/RValue argv0 r1", err: "neither an absolute path nor a file name"},
		{name: "semicolon", in: "-@/RValue argv0 r1 ; /goo/goo boo", err: `";" separating commands`},
		{name: "trailing semicolon", in: "-@/RValue argv0 r1 ;", err: `";" separating commands`},
		{name: "leading semicolon", in: "; /bin/true", err: `";" separating commands`},
		{name: "semicolon in single quotes", in: "-@/RValue argv0 r1 ';'",
			want: Command{Path: "/RValue", Argv: []string{"argv0", "r1", ";"}, IgnoreFailure: true}},
		{name: "escaped semicolon", in: `/bin/find \;`, want: Command{Path: "/bin/find", Argv: []string{"/bin/find", ";"}}},
		{name: "escaped semicolon, following arg", in: `/sbin/find \; /x`,
			want: Command{Path: "/sbin/find", Argv: []string{"/sbin/find", ";", "/x"}}},
		{name: "escaped semicolon in a word", in: `/sbin/find \;x`,
			want: Command{Path: "/sbin/find", Argv: []string{"/sbin/find", `\;x`}}, warn: true},
		{name: "encoded semicolon", in: `/bin/find \073`, want: Command{Path: "/bin/find", Argv: []string{"/bin/find", ";"}}},
		{name: "quoted semicolon", in: `/bin/find ";"`, want: Command{Path: "/bin/find", Argv: []string{"/bin/find", ";"}}},
		{name: "quoted semicolon, following arg", in: `/sbin/find ";" /x`,
			want: Command{Path: "/sbin/find", Argv: []string{"/sbin/find", ";", "/x"}}},
		{name: "spaces in the file name", in: `"/PATH WITH SPACES/daemon" -1 -2`,
			want: Command{Path: "/PATH WITH SPACES/daemon", Argv: []string{"/PATH WITH SPACES/daemon", "-1", "-2"}}},
		{name: "spaces in the file name, no args", in: `"/PATH WITH SPACES/daemon -1 -2"`,
			want: Command{Path: "/PATH WITH SPACES/daemon -1 -2", Argv: []string{"/PATH WITH SPACES/daemon -1 -2"}}},
		{name: "everything quoted", in: `"/PATH WITH SPACES/daemon" "-1" '-2'`,
			want: Command{Path: "/PATH WITH SPACES/daemon", Argv: []string{"/PATH WITH SPACES/daemon", "-1", "-2"}}},
		{name: "escaped spaces", in: `"/PATH\sWITH\sSPACES/daemon" '-1 -2'`,
			want: Command{Path: "/PATH WITH SPACES/daemon", Argv: []string{"/PATH WITH SPACES/daemon", "-1 -2"}}},
		{name: "escaped spaces (2)", in: `"/PATH\x20WITH\x20SPACES/daemon" "-1 -2"`,
			want: Command{Path: "/PATH WITH SPACES/daemon", Argv: []string{"/PATH WITH SPACES/daemon", "-1 -2"}}},
		{name: `invalid \a`, in: `/path\a`, err: "special characters"},
		{name: `invalid \b`, in: `/path\b`, err: "special characters"},
		{name: `invalid \f`, in: `/path\f`, err: "special characters"},
		{name: `invalid \n`, in: `/path\n`, err: "special characters"},
		{name: `invalid \r`, in: `/path\r`, err: "special characters"},
		{name: `invalid \t`, in: `/path\t`, err: "special characters"},
		{name: `invalid \v`, in: `/path\v`, err: "special characters"},
		{name: `invalid \\`, in: `/path\\`, err: "special characters"},
		{name: `invalid \'`, in: `/path\'`, err: "special characters"},
		{name: `invalid \"`, in: `/path\"`, err: "special characters"},
		{name: `invalid \x`, in: `/path\x`, err: "special characters"},
		{name: `valid \s`, in: `/path\s`, want: Command{Path: "/path ", Argv: []string{"/path "}}},
		{name: "quoted backslashes", in: `/bin/grep '\w+\K'`,
			want: Command{Path: "/bin/grep", Argv: []string{"/bin/grep", `\w+\K`}}, warn: true},
		{name: "trailing backslash", in: `/path\`, err: "special characters"},
		{name: "missing ending '", in: "/path 'foo", err: "unbalanced quoting"},
		{name: "missing ending ' with trailing backslash", in: `/path 'foo\`, err: "unbalanced quoting"},
		{name: "space between modifiers", in: "- /path", err: "empty executable path"},
		{name: "only modifiers", in: "-", err: "empty executable path"},
		{name: "long arg", in: long, want: Command{Path: "/bin/echo", Argv: []string{"/bin/echo", strings.Repeat("x", 4000)}}},

		// luod's own cases.
		{name: "bare name", in: "sleep 10", want: Command{Path: "sleep", Argv: []string{"sleep", "10"}}},
		{name: "relative path", in: "bin/sleep 10", err: "neither an absolute path nor a file name"},
		{name: "dot", in: ". x", err: "neither an absolute path nor a file name"},
		{name: "no env expansion", in: ":/bin/echo $HOME", want: Command{Path: "/bin/echo", Argv: []string{"/bin/echo", "$HOME"}, NoEnvExpand: true}},
		{name: "all prefixes", in: ":@-/bin/sh sh -c true",
			want: Command{Path: "/bin/sh", Argv: []string{"sh", "-c", "true"}, IgnoreFailure: true, NoEnvExpand: true}},
		{name: "plus prefix", in: "+/bin/true", err: `prefix '+' is not supported`},
		{name: "bang prefix", in: "!/bin/true", err: `prefix '!' is not supported`},
		{name: "double bang prefix", in: "!!/bin/true", err: `prefix '!' is not supported`},
		{name: "pipe prefix", in: "|echo hi", err: `prefix '|' is not supported`},
		{name: "variables kept", in: `/bin/echo $FOO ${BAR}x "$$"`,
			want: Command{Path: "/bin/echo", Argv: []string{"/bin/echo", "$FOO", "${BAR}x", "$$"}}},
		{name: "empty argument", in: `/bin/echo "" x`, want: Command{Path: "/bin/echo", Argv: []string{"/bin/echo", "", "x"}}},
		{name: "empty path", in: `"" x`, err: "empty executable path"},
		{name: "whitespace", in: "  /bin/echo \t a\n b  ", want: Command{Path: "/bin/echo", Argv: []string{"/bin/echo", "a", "b"}}},
		{name: "dot components", in: "/usr/./bin/../bin/x", want: Command{Path: "/usr/bin/../bin/x", Argv: []string{"/usr/./bin/../bin/x"}}},
		{name: "root directory", in: "/. x", err: "is a directory"},
		{name: "NUL", in: "/bin/echo a\x00b", err: "NUL"},
		{name: "too long component", in: "/" + strings.Repeat("a", 256), err: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, warnings, err := parseCommand(tt.in, noExpand)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseCommand(%q) error = %v, want one containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCommand(%q): %v", tt.in, err)
			}
			if d := diff(tt.want, got); d != "" {
				t.Errorf("parseCommand(%q): %s", tt.in, d)
			}
			if (len(warnings) > 0) != tt.warn {
				t.Errorf("parseCommand(%q) warnings = %q, want some: %v", tt.in, warnings, tt.warn)
			}
		})
	}
}

func TestParseCommandUnsupported(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"+/bin/true", "/bin/true ; /bin/false"} {
		if _, _, err := parseCommand(in, noExpand); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("parseCommand(%q) = %v, want errors.ErrUnsupported", in, err)
		}
	}
}

func TestParseCommandSpecifiers(t *testing.T) {
	t.Parallel()
	sp := newSpecifiers("web@blue.service")
	got, _, err := parseCommand(`/opt/%p/bin/server --name=%i "--dir=%t/%N" 100%%`, sp.expand)
	if err != nil {
		t.Fatal(err)
	}
	want := Command{Path: "/opt/web/bin/server", Argv: []string{"/opt/web/bin/server", "--name=blue", "--dir=/run/web@blue", "100%"}}
	if d := diff(want, got); d != "" {
		t.Error(d)
	}
	// Specifiers are expanded after unquoting, so a quoted % is still one.
	if _, _, err := parseCommand(`/bin/echo "%H"`, sp.expand); err == nil || !strings.Contains(err.Error(), "%H") {
		t.Errorf("unsupported specifier: err = %v, want one naming %%H", err)
	}
	// The executable may come from a specifier too, and is checked after.
	if _, _, err := parseCommand(`%i`, newSpecifiers("x@a-b.service").expand); err != nil {
		t.Errorf("bare name from a specifier: %v", err)
	}
	if _, _, err := parseCommand(`%I`, newSpecifiers("x@a-b.service").expand); err == nil {
		t.Errorf("relative path from a specifier: no error")
	}
}

// Ported from TEST(replace_env_argv) in systemd's src/test/test-env-util.c.
func TestExpand(t *testing.T) {
	t.Parallel()
	env := []string{"FOO=BAR BAR", "BAR=waldo"}
	c := Command{Argv: []string{
		"FOO$FOO",
		"FOO$FOOFOO",
		"FOO${FOO}$FOO",
		"FOO${FOO}",
		"${FOO}",
		"$FOO",
		"$FOO$FOO",
		"${FOO}${BAR}",
		"${FOO",
		"FOO$$${FOO}",
		"$$FOO${FOO}",
		"${FOO:-${BAR}}",
		"${QUUX:-${FOO}}",
		"${FOO:+${BAR}}",
		"${QUUX:+${BAR}}",
		"${FOO:+|${BAR}|}}",
		"${FOO:+|${BAR}{|}",
	}}
	want := []string{
		"FOO$FOO",
		"FOO$FOOFOO",
		"FOOBAR BAR$FOO",
		"FOOBAR BAR",
		"BAR BAR",
		"BAR",
		"BAR",
		"BAR BARwaldo",
		"${FOO",
		"FOO$BAR BAR",
		"$FOOBAR BAR",
		"${FOO:-waldo}",
		"${QUUX:-BAR BAR}",
		"${FOO:+waldo}",
		"${QUUX:+waldo}",
		"${FOO:+|waldo|}}",
		"${FOO:+|waldo{|}",
	}
	if d := diff(want, c.Expand(env)); d != "" {
		t.Error(d)
	}
}

func TestExpandRules(t *testing.T) {
	t.Parallel()
	env := []string{
		"A=one", "A=two", // the last one wins
		"Q=a \"b c\" 'd' e\\ f",
		"EMPTY=",
		"SPACES=   ",
		"BAD",
		"DOLLAR=$B",
	}
	tests := []struct {
		argv []string
		want []string
	}{
		{[]string{"/bin/x", "$A"}, []string{"/bin/x", "two"}},
		{[]string{"$Q"}, []string{"a", "b c", "d", "e f"}},
		{[]string{"${Q}"}, []string{"a \"b c\" 'd' e\\ f"}},
		{[]string{"x", "$EMPTY", "y"}, []string{"x", "y"}},
		{[]string{"x", "$SPACES", "y"}, []string{"x", "y"}},
		{[]string{"[${EMPTY}]"}, []string{"[]"}},
		{[]string{"$UNSET", "${UNSET}"}, []string{""}},
		{[]string{"$", "$1A", "${1A}"}, []string{""}},
		{[]string{"$$", "$$A", "$${A}"}, []string{"$", "$A", "${A}"}},
		{[]string{"$BAD", "${BAD}"}, []string{""}},
		{[]string{"$DOLLAR", "${DOLLAR}"}, []string{"$B", "$B"}},
		{[]string{"a$A", "${A}b", "${A}${A}"}, []string{"a$A", "twob", "twotwo"}},
		{[]string{""}, []string{""}},
	}
	for _, tt := range tests {
		c := Command{Argv: tt.argv}
		got := c.Expand(env)
		if d := diff(tt.want, got); d != "" {
			t.Errorf("Expand(%q): %s", tt.argv, d)
		}
		if d := diff(tt.argv, c.Argv); d != "" {
			t.Errorf("Expand(%q) modified Argv: %s", tt.argv, d)
		}
		c.NoEnvExpand = true
		if d := diff(tt.argv, c.Expand(env)); d != "" {
			t.Errorf("Expand(%q) with NoEnvExpand: %s", tt.argv, d)
		}
	}
	if got := (Command{}).Expand(nil); len(got) != 0 {
		t.Errorf("empty Expand = %q", got)
	}
}

func TestLookPath(t *testing.T) {
	t.Parallel()
	if got, err := (Command{Path: "/no/such/file"}).LookPath(); err != nil || got != "/no/such/file" {
		t.Errorf("absolute LookPath = %q, %v", got, err)
	}
	if _, err := (Command{Path: "luod-test-no-such-command"}).LookPath(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing LookPath error = %v, want ErrNotExist", err)
	}
	// A command every Linux test machine has in the fixed search path.
	for _, name := range []string{"env", "sh", "true"} {
		for _, dir := range strings.Split(ExecSearchPath, ":") {
			if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Mode().IsRegular() {
				got, err := (Command{Path: name}).LookPath()
				if err != nil || !strings.HasSuffix(got, "/"+name) {
					t.Errorf("LookPath(%q) = %q, %v", name, got, err)
				}
				return
			}
		}
	}
	t.Log("no well-known command in ExecSearchPath; bare-name lookup not exercised")
}
