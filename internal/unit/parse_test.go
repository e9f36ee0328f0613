package unit

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// defaultUnit is what service() parses to.
func defaultUnit(name string) *Unit {
	return &Unit{
		Name:                    name,
		ExecStart:               []Command{{Path: "/bin/true", Argv: []string{"/bin/true"}}},
		RestartSec:              DefaultRestartSec,
		TimeoutStartSec:         DefaultTimeout,
		TimeoutStopSec:          DefaultTimeout,
		KillSignal:              DefaultKillSignal,
		StartLimitIntervalSec:   10 * time.Second,
		StartLimitBurst:         5,
		LogRateLimitIntervalSec: 30 * time.Second,
		LogRateLimitBurst:       10000,
		PreserveMaxBytes:        NoLimit,
		StandardError:           outputUnset,
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	u := mustParse(t, "x.service", service())
	if d := diff(defaultUnit("x.service"), u); d != "" {
		t.Error(d)
	}
	if u.EffectiveNotifyAccess() != NotifyAccessNone || u.EffectiveFileDescriptorStoreMax() != 0 || !u.StartLimitEnabled() {
		t.Errorf("effective values of a default unit: %v, %d, %v", u.EffectiveNotifyAccess(), u.EffectiveFileDescriptorStoreMax(), u.StartLimitEnabled())
	}
}

// TestParseKeys checks every supported key with valid values: each case's
// lines go into [Service] after ExecStart=/bin/true, and want edits the
// default unit into the expected one.
func TestParseKeys(t *testing.T) {
	t.Parallel()
	cmd := func(path string, argv ...string) Command { return Command{Path: path, Argv: argv} }
	tests := []struct {
		name string
		in   []string
		unit string // default "x.service"
		want func(u *Unit)
	}{
		{"Type=simple", []string{"Type=simple"}, "", func(u *Unit) {}},
		{"Type=notify", []string{"Type=notify"}, "", func(u *Unit) { u.Type = TypeNotify }},
		{"Type=oneshot", []string{"Type=oneshot"}, "", func(u *Unit) { u.Type = TypeOneshot }},
		{"Type= resets", []string{"Type=notify", "Type="}, "", func(u *Unit) {}},
		{"Type last wins", []string{"Type=oneshot", "Type=notify"}, "", func(u *Unit) { u.Type = TypeNotify }},

		{"ExecStart reset", []string{"ExecStart=", "ExecStart=/bin/echo hi"}, "", func(u *Unit) {
			u.ExecStart = []Command{cmd("/bin/echo", "/bin/echo", "hi")}
		}},
		{"ExecStart oneshot list", []string{"Type=oneshot", "ExecStart=-/bin/a", "ExecStart=@b c d"}, "", func(u *Unit) {
			u.Type = TypeOneshot
			u.ExecStart = append(u.ExecStart, Command{Path: "/bin/a", Argv: []string{"/bin/a"}, IgnoreFailure: true}, cmd("b", "c", "d"))
		}},
		{"ExecStart continuation", []string{"ExecStart=", "ExecStart=/bin/echo \\", "  a \\", "  'b c'"}, "", func(u *Unit) {
			u.ExecStart = []Command{cmd("/bin/echo", "/bin/echo", "a", "b c")}
		}},
		{"ExecStart specifiers", []string{"ExecStart=", "ExecStart=/bin/%p --instance=%i %%"}, "web@blue.service", func(u *Unit) {
			u.ExecStart = []Command{cmd("/bin/web", "/bin/web", "--instance=blue", "%")}
		}},

		{"RemainAfterExit=yes", []string{"RemainAfterExit=yes"}, "", func(u *Unit) { u.RemainAfterExit = true }},
		{"RemainAfterExit=on", []string{"RemainAfterExit=on"}, "", func(u *Unit) { u.RemainAfterExit = true }},
		{"RemainAfterExit=1", []string{"RemainAfterExit=1"}, "", func(u *Unit) { u.RemainAfterExit = true }},
		{"RemainAfterExit=false", []string{"RemainAfterExit=true", "RemainAfterExit=false"}, "", func(u *Unit) {}},
		{"RemainAfterExit= resets", []string{"RemainAfterExit=yes", "RemainAfterExit="}, "", func(u *Unit) {}},

		{"Environment words", []string{`Environment=A=1 "B=2 3" 'C=x"y' D=a\tb`}, "", func(u *Unit) {
			u.Environment = []string{"A=1", "B=2 3", `C=x"y`, "D=a\tb"}
		}},
		{"Environment replace keeps position", []string{"Environment=A=1 B=2", "Environment=C=3 A=4"}, "", func(u *Unit) {
			u.Environment = []string{"A=4", "B=2", "C=3"}
		}},
		{"Environment reset", []string{"Environment=A=1", "Environment=", "Environment=B=2"}, "", func(u *Unit) {
			u.Environment = []string{"B=2"}
		}},
		{"Environment empty value", []string{"Environment=A= B=\"\""}, "", func(u *Unit) { u.Environment = []string{"A=", "B="} }},
		{"Environment specifiers", []string{"Environment=UNIT=%n DIR=%t/%p"}, "", func(u *Unit) {
			u.Environment = []string{"UNIT=x.service", "DIR=/run/x"}
		}},
		{"Environment dollar kept", []string{"Environment=A=$B"}, "", func(u *Unit) { u.Environment = []string{"A=$B"} }},

		{"EnvironmentFile", []string{"EnvironmentFile=/etc/a", "EnvironmentFile=-/etc//b/"}, "", func(u *Unit) {
			u.EnvironmentFiles = []EnvironmentFile{{Path: "/etc/a"}, {Path: "/etc/b", Optional: true}}
		}},
		{"EnvironmentFile reset", []string{"EnvironmentFile=/etc/a", "EnvironmentFile="}, "", func(u *Unit) {}},
		{"EnvironmentFile specifier", []string{"EnvironmentFile=%E/default/%p"}, "", func(u *Unit) {
			u.EnvironmentFiles = []EnvironmentFile{{Path: "/etc/default/x"}}
		}},

		{"WorkingDirectory", []string{"WorkingDirectory=/srv/./x/"}, "", func(u *Unit) { u.WorkingDirectory = "/srv/x" }},
		{"WorkingDirectory optional", []string{"WorkingDirectory=-/srv"}, "", func(u *Unit) {
			u.WorkingDirectory, u.WorkingDirectoryOptional = "/srv", true
		}},
		{"WorkingDirectory home", []string{"WorkingDirectory=~"}, "", func(u *Unit) { u.WorkingDirectory = "~" }},
		{"WorkingDirectory reset", []string{"WorkingDirectory=-/srv", "WorkingDirectory="}, "", func(u *Unit) {}},
		{"WorkingDirectory specifier", []string{"WorkingDirectory=%S/%i"}, "a@b.service", func(u *Unit) { u.WorkingDirectory = "/var/lib/b" }},

		{"User and Group names", []string{"User=counter", "Group=daemon"}, "", func(u *Unit) { u.User, u.Group = "counter", "daemon" }},
		{"User and Group ids", []string{"User=1000", "Group=0"}, "", func(u *Unit) { u.User, u.Group = "1000", "0" }},
		{"User specifier", []string{"User=%i"}, "w@alice.service", func(u *Unit) { u.User = "alice" }},
		{"User reset", []string{"User=a", "User="}, "", func(u *Unit) {}},

		{"Restart=no", []string{"Restart=no"}, "", func(u *Unit) {}},
		{"Restart=on-failure", []string{"Restart=on-failure"}, "", func(u *Unit) { u.Restart = RestartOnFailure }},
		{"Restart=always", []string{"Restart=always"}, "", func(u *Unit) { u.Restart = RestartAlways }},
		{"Restart= resets", []string{"Restart=always", "Restart="}, "", func(u *Unit) {}},

		{"RestartSec bare", []string{"RestartSec=5"}, "", func(u *Unit) { u.RestartSec = 5 * time.Second }},
		{"RestartSec composite", []string{"RestartSec=1min 30s"}, "", func(u *Unit) { u.RestartSec = 90 * time.Second }},
		{"RestartSec ms", []string{"RestartSec=250ms"}, "", func(u *Unit) { u.RestartSec = 250 * time.Millisecond }},
		{"RestartSec zero", []string{"RestartSec=0"}, "", func(u *Unit) { u.RestartSec = 0 }},
		{"RestartSec reset", []string{"RestartSec=3", "RestartSec="}, "", func(u *Unit) {}},

		{"TimeoutStartSec", []string{"TimeoutStartSec=2min"}, "", func(u *Unit) { u.TimeoutStartSec = 2 * time.Minute }},
		{"TimeoutStopSec", []string{"TimeoutStopSec=5s"}, "", func(u *Unit) { u.TimeoutStopSec = 5 * time.Second }},
		{"TimeoutStartSec infinity", []string{"TimeoutStartSec=infinity"}, "", func(u *Unit) { u.TimeoutStartSec = 0 }},
		{"TimeoutStopSec zero", []string{"TimeoutStopSec=0"}, "", func(u *Unit) { u.TimeoutStopSec = 0 }},
		{"TimeoutSec both", []string{"TimeoutSec=10"}, "", func(u *Unit) { u.TimeoutStartSec, u.TimeoutStopSec = 10*time.Second, 10*time.Second }},
		{"TimeoutSec then TimeoutStopSec", []string{"TimeoutSec=10", "TimeoutStopSec=20"}, "", func(u *Unit) {
			u.TimeoutStartSec, u.TimeoutStopSec = 10*time.Second, 20*time.Second
		}},
		{"TimeoutStartSec then TimeoutSec", []string{"TimeoutStartSec=20", "TimeoutSec=10"}, "", func(u *Unit) {
			u.TimeoutStartSec, u.TimeoutStopSec = 10*time.Second, 10*time.Second
		}},
		{"TimeoutSec reset", []string{"TimeoutSec=1", "TimeoutSec="}, "", func(u *Unit) {}},

		{"KillSignal name", []string{"KillSignal=SIGINT"}, "", func(u *Unit) { u.KillSignal = syscall.SIGINT }},
		{"KillSignal short", []string{"KillSignal=HUP"}, "", func(u *Unit) { u.KillSignal = syscall.SIGHUP }},
		{"KillSignal number", []string{"KillSignal=9"}, "", func(u *Unit) { u.KillSignal = syscall.SIGKILL }},
		{"KillSignal reset", []string{"KillSignal=9", "KillSignal="}, "", func(u *Unit) {}},

		{"NotifyAccess=none", []string{"NotifyAccess=none"}, "", func(u *Unit) { u.NotifyAccessExplicit = true }},
		{"NotifyAccess=main", []string{"NotifyAccess=main"}, "", func(u *Unit) { u.NotifyAccess, u.NotifyAccessExplicit = NotifyAccessMain, true }},
		{"NotifyAccess=exec", []string{"NotifyAccess=exec"}, "", func(u *Unit) { u.NotifyAccess, u.NotifyAccessExplicit = NotifyAccessExec, true }},
		{"NotifyAccess=all", []string{"NotifyAccess=all"}, "", func(u *Unit) { u.NotifyAccess, u.NotifyAccessExplicit = NotifyAccessAll, true }},
		{"NotifyAccess= resets", []string{"NotifyAccess=all", "NotifyAccess="}, "", func(u *Unit) {}},

		{"StandardOutput=journal", []string{"StandardOutput=journal"}, "", func(u *Unit) {}},
		{"StandardOutput=null", []string{"StandardOutput=null"}, "", func(u *Unit) { u.StandardOutput = OutputNull }},
		{"StandardOutput=inherit", []string{"StandardOutput=inherit"}, "", func(u *Unit) { u.StandardOutput = OutputInherit }},
		{"StandardOutput= resets", []string{"StandardOutput=null", "StandardOutput="}, "", func(u *Unit) {}},
		{"StandardError=null", []string{"StandardError=null"}, "", func(u *Unit) { u.StandardError = OutputNull }},
		{"StandardError=journal", []string{"StandardError=journal"}, "", func(u *Unit) { u.StandardError = OutputJournal }},
		{"StandardError=inherit", []string{"StandardError=null", "StandardError=inherit"}, "", func(u *Unit) {}},
		{"StandardError= resets", []string{"StandardError=null", "StandardError="}, "", func(u *Unit) {}},

		{"FileDescriptorStoreMax", []string{"FileDescriptorStoreMax=16"}, "", func(u *Unit) { u.FileDescriptorStoreMax = 16 }},
		{"FileDescriptorStoreMax zero", []string{"FileDescriptorStoreMax=0"}, "", func(u *Unit) {}},
		{"FileDescriptorStoreMax max", []string{"FileDescriptorStoreMax=4294967295"}, "", func(u *Unit) { u.FileDescriptorStoreMax = 4294967295 }},
		{"FileDescriptorStoreMax reset", []string{"FileDescriptorStoreMax=3", "FileDescriptorStoreMax="}, "", func(u *Unit) {}},

		{"Preserve=restart", []string{"FileDescriptorStorePreserve=restart"}, "", func(u *Unit) {}},
		{"Preserve=no", []string{"FileDescriptorStorePreserve=no"}, "", func(u *Unit) { u.FileDescriptorStorePreserve = PreserveNo }},
		{"Preserve=yes", []string{"FileDescriptorStoreMax=1", "FileDescriptorStorePreserve=yes"}, "", func(u *Unit) {
			u.FileDescriptorStoreMax, u.FileDescriptorStorePreserve = 1, PreserveYes
		}},
		{"Preserve=on-success", []string{"FileDescriptorStoreMax=1", "FileDescriptorStorePreserve=on-success"}, "", func(u *Unit) {
			u.FileDescriptorStoreMax, u.FileDescriptorStorePreserve = 1, PreserveOnSuccess
		}},
		{"Preserve=true", []string{"FileDescriptorStoreMax=1", "FileDescriptorStorePreserve=true"}, "", func(u *Unit) {
			u.FileDescriptorStoreMax, u.FileDescriptorStorePreserve = 1, PreserveYes
		}},
		{"Preserve=0", []string{"FileDescriptorStorePreserve=0"}, "", func(u *Unit) { u.FileDescriptorStorePreserve = PreserveNo }},
		{"Preserve reset", []string{"FileDescriptorStorePreserve=no", "FileDescriptorStorePreserve="}, "", func(u *Unit) {}},

		{"LUOSession", []string{"FileDescriptorStorePreserve=yes", "LUOSession=state  cache\tjournal"}, "", func(u *Unit) {
			u.FileDescriptorStorePreserve = PreserveYes
			u.LUOSessions = []string{"state", "cache", "journal"}
		}},
		{"LUOSession repeated", []string{"FileDescriptorStorePreserve=yes", "LUOSession=a", "LUOSession=b"}, "", func(u *Unit) {
			u.FileDescriptorStorePreserve = PreserveYes
			u.LUOSessions = []string{"a", "b"}
		}},
		{"LUOSession reset", []string{"LUOSession=a", "LUOSession=", "LUOSession=b", "FileDescriptorStorePreserve=yes"}, "", func(u *Unit) {
			u.FileDescriptorStorePreserve = PreserveYes
			u.LUOSessions = []string{"b"}
		}},
		{"LUOSession duplicate", []string{"FileDescriptorStorePreserve=yes", "LUOSession=a b a", "LUOSession=b"}, "", func(u *Unit) {
			u.FileDescriptorStorePreserve = PreserveYes
			u.LUOSessions = []string{"a", "b"}
		}},

		// The lines after "[Unit]" go into [Unit].
		{"StartLimitIntervalSec", []string{"[Unit]", "StartLimitIntervalSec=30s"}, "", func(u *Unit) { u.StartLimitIntervalSec = 30 * time.Second }},
		{"StartLimitIntervalSec composite", []string{"[Unit]", "StartLimitIntervalSec=1min 30s"}, "", func(u *Unit) { u.StartLimitIntervalSec = 90 * time.Second }},
		{"StartLimitIntervalSec bare", []string{"[Unit]", "StartLimitIntervalSec=2"}, "", func(u *Unit) { u.StartLimitIntervalSec = 2 * time.Second }},
		{"StartLimitIntervalSec zero", []string{"[Unit]", "StartLimitIntervalSec=0"}, "", func(u *Unit) { u.StartLimitIntervalSec = 0 }},
		{"StartLimitIntervalSec infinity", []string{"[Unit]", "StartLimitIntervalSec=infinity"}, "", func(u *Unit) { u.StartLimitIntervalSec = Infinity }},
		{"StartLimitIntervalSec reset", []string{"[Unit]", "StartLimitIntervalSec=0", "StartLimitIntervalSec="}, "", func(u *Unit) {}},
		{"StartLimitBurst", []string{"[Unit]", "StartLimitBurst=20"}, "", func(u *Unit) { u.StartLimitBurst = 20 }},
		{"StartLimitBurst zero", []string{"[Unit]", "StartLimitBurst=0"}, "", func(u *Unit) { u.StartLimitBurst = 0 }},
		{"StartLimitBurst max", []string{"[Unit]", "StartLimitBurst=4294967295"}, "", func(u *Unit) { u.StartLimitBurst = 4294967295 }},
		{"StartLimitBurst reset", []string{"[Unit]", "StartLimitBurst=1", "StartLimitBurst="}, "", func(u *Unit) {}},
		{"StartLimitInterval in Unit", []string{"[Unit]", "StartLimitInterval=5"}, "", func(u *Unit) { u.StartLimitIntervalSec = 5 * time.Second }},
		{"StartLimitInterval in Service", []string{"StartLimitInterval=20", "StartLimitBurst=3"}, "", func(u *Unit) {
			u.StartLimitIntervalSec, u.StartLimitBurst = 20*time.Second, 3
		}},
		{"StartLimit last wins", []string{"StartLimitInterval=20", "StartLimitBurst=3", "[Unit]", "StartLimitIntervalSec=30", "StartLimitBurst=4", "[Service]", "StartLimitBurst=2"}, "", func(u *Unit) {
			u.StartLimitIntervalSec, u.StartLimitBurst = 30*time.Second, 2
		}},

		{"LogRateLimitIntervalSec", []string{"LogRateLimitIntervalSec=5s"}, "", func(u *Unit) { u.LogRateLimitIntervalSec = 5 * time.Second }},
		{"LogRateLimitIntervalSec ms", []string{"LogRateLimitIntervalSec=250ms"}, "", func(u *Unit) { u.LogRateLimitIntervalSec = 250 * time.Millisecond }},
		{"LogRateLimitIntervalSec infinity", []string{"LogRateLimitIntervalSec=infinity"}, "", func(u *Unit) { u.LogRateLimitIntervalSec = Infinity }},
		{"LogRateLimitIntervalSec zero is the default", []string{"LogRateLimitIntervalSec=5s", "LogRateLimitIntervalSec=0"}, "", func(u *Unit) {}},
		{"LogRateLimitIntervalSec reset", []string{"LogRateLimitIntervalSec=5s", "LogRateLimitIntervalSec="}, "", func(u *Unit) {}},
		{"LogRateLimitBurst", []string{"LogRateLimitBurst=100"}, "", func(u *Unit) { u.LogRateLimitBurst = 100 }},
		{"LogRateLimitBurst zero is the default", []string{"LogRateLimitBurst=100", "LogRateLimitBurst=0"}, "", func(u *Unit) {}},
		{"LogRateLimitBurst reset", []string{"LogRateLimitBurst=100", "LogRateLimitBurst="}, "", func(u *Unit) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := tt.unit
			if name == "" {
				name = "x.service"
			}
			u := mustParse(t, name, service(tt.in...))
			want := defaultUnit(name)
			tt.want(want)
			want.Warnings = u.Warnings // checked in TestParseWarnings
			if d := diff(want, u); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestParseDescription(t *testing.T) {
	t.Parallel()
	u := mustParse(t, "db@main.service", "[Unit]\nDescription=Database %i (100%%) \\\n  on %t\nDocumentation=man:db(8)\n"+service())
	if want := "Database main (100%)    on /run"; u.Description != want {
		t.Errorf("Description = %q, want %q", u.Description, want)
	}
	if len(u.Warnings) != 0 {
		t.Errorf("warnings: %v", u.Warnings)
	}
}

// TestParseInvalid checks that an invalid value of every key fails the
// unit, with an error naming the file, line, section and key.
func TestParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string // goes to line 3, after [Service] and ExecStart=/bin/true
		err  string // the error after "x.service:3: [Service] "
	}{
		{"Type=forking", "Type=forking: not supported by luod (want simple, notify or oneshot): unsupported operation"},
		{"Type=exec", "Type=exec: not supported by luod"},
		{"Type=Simple", "Type=Simple: invalid value (want simple, notify or oneshot)"},
		{"StandardOutput=tty", "StandardOutput=tty: not supported by luod (want journal, inherit or null): unsupported operation"},
		{"StandardOutput=file:/var/log/x", "StandardOutput=file:/var/log/x: not supported by luod (want journal, inherit or null)"},
		{"StandardError=fd:foo", "StandardError=fd:foo: not supported by luod"},
		{"StandardError=Journal", "StandardError=Journal: invalid value (want journal, inherit or null)"},
		{"ExecStart=/bin/a 'b", "ExecStart=/bin/a 'b: unbalanced quoting"},
		{"ExecStart=bin/a", `ExecStart=bin/a: executable "bin/a" is neither an absolute path nor a file name`},
		{"ExecStart=/bin/a ; /bin/b", `";" separating commands is not supported by luod`},
		{"ExecStart=+/bin/a", `prefix '+' is not supported by luod`},
		{"ExecStart=/bin/%H", "ExecStart=/bin/%H: specifier %H is not supported by luod"},
		{"RemainAfterExit=maybe", "RemainAfterExit=maybe: invalid boolean (want yes or no)"},
		{"Environment=A", `Environment=A: invalid assignment "A"`},
		{"Environment=1A=b", `invalid assignment "1A=b"`},
		{"Environment=A-B=c", `invalid assignment "A-B=c"`},
		{`Environment="A=b`, "invalid escape sequence or unbalanced quoting"},
		{`Environment=A=\q`, "invalid escape sequence or unbalanced quoting"},
		{"Environment=A=%z", "specifier %z is not supported"},
		{"EnvironmentFile=etc/a", "EnvironmentFile=etc/a: not an absolute path"},
		{"EnvironmentFile=-etc/a", "not an absolute path"},
		{"EnvironmentFile=/etc/../a", "not normalized"},
		{"WorkingDirectory=srv", "WorkingDirectory=srv: not an absolute path (want an absolute path or ~)"},
		{"WorkingDirectory=-~/x", "not an absolute path"},
		{"User=a:b", `User=a:b: invalid user or group (name has a ":" or "/")`},
		{"Group=65535", "Group=65535: invalid user or group"},
		{"Restart=sometimes", "Restart=sometimes: invalid value (want no, on-failure or always)"},
		{"Restart=on-abnormal", "Restart=on-abnormal: not supported by luod (want no, on-failure or always)"},
		{"RestartSec=5x", "RestartSec=5x: invalid time span (want a time span like 100ms, 5s or 1min 30s)"},
		{"RestartSec=infinity", "RestartSec=infinity: must be finite"},
		{"RestartSec=-1", "RestartSec=-1: time span out of range"},
		{"TimeoutStartSec=soon", "TimeoutStartSec=soon: invalid time span"},
		{"TimeoutStopSec=1000y", "TimeoutStopSec=1000y: time span out of range"},
		{"TimeoutSec=1..2", "TimeoutSec=1..2: invalid time span"},
		{"KillSignal=SIGFOO", "KillSignal=SIGFOO: unknown signal"},
		{"KillSignal=0", "KillSignal=0: signal number out of range"},
		{"NotifyAccess=some", "NotifyAccess=some: invalid value (want none, main, exec or all)"},
		{"FileDescriptorStoreMax=-1", "FileDescriptorStoreMax=-1: invalid number"},
		{"FileDescriptorStoreMax=4294967296", "FileDescriptorStoreMax=4294967296: number out of range"},
		{"FileDescriptorStoreMax=0x10", "invalid number"},
		{"FileDescriptorStorePreserve=always", "FileDescriptorStorePreserve=always: invalid value (want no, yes, restart or on-success)"},
		{"LUOSession=a:b", `LUOSession=a:b: invalid session name "a:b"`},
		{`LUOSession=ok "quoted"`, `invalid session name "\"quoted\""`},
		{"LUOSession=" + strings.Repeat("x", 256), "256 bytes long, at most 255 are allowed"},
		{"StartLimitInterval=5x", "StartLimitInterval=5x: invalid time span (want a time span like 10s or 1min 30s, 0 or infinity)"},
		{"StartLimitInterval=-1", "StartLimitInterval=-1: time span out of range"},
		{"StartLimitBurst=-1", "StartLimitBurst=-1: invalid number (want a non-negative decimal integer)"},
		{"StartLimitBurst=4294967296", "StartLimitBurst=4294967296: number out of range (at most 4294967295)"},
		{"LogRateLimitIntervalSec=soon", "LogRateLimitIntervalSec=soon: invalid time span"},
		{"LogRateLimitIntervalSec=18446744073709551616us", "LogRateLimitIntervalSec=18446744073709551616us: time span out of range"},
		{"LogRateLimitIntervalSec=300y", "LogRateLimitIntervalSec=300y: time span out of range"},
		{"LogRateLimitIntervalSec=infinity 5s", "invalid time span"},
		{"LogRateLimitBurst=99999999999999999999", "LogRateLimitBurst=99999999999999999999: number out of range"},
		{"LogRateLimitBurst=1e3", "LogRateLimitBurst=1e3: invalid number"},
	}
	for _, tt := range tests {
		_, err := Parse("x.service", strings.NewReader(service(tt.line)))
		if err == nil {
			t.Errorf("%s: no error", tt.line)
			continue
		}
		prefix := "x.service:3: [Service] "
		if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: error\n%s\nwant %q followed by something containing %q", tt.line, err, prefix, tt.err)
		}
		key, value, _ := strings.Cut(tt.line, "=")
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 3 || pe.Section != "Service" || pe.Key != key || pe.Value != value {
			t.Errorf("%s: error %#v is not a ParseError for line 3", tt.line, pe)
		}
	}
}

func TestParseErrorFormat(t *testing.T) {
	t.Parallel()
	in := "[Unit]\nDescription=x\n\n[Service]\nExecStart=/usr/bin/counter\nType=notify\nRestart=sometimes\n"
	_, err := Parse("counter.service", strings.NewReader(in))
	want := "counter.service:7: [Service] Restart=sometimes: invalid value (want no, on-failure or always)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	pe := &ParseError{File: "f", Line: 2, Section: "S", Key: "K", Value: "a\nb", Err: errors.New("bad")}
	if got := pe.Error(); got != `f:2: [S] K="a\nb": bad` {
		t.Errorf("ParseError with a newline in the value = %q", got)
	}
	if got := (&ParseError{File: "f", Err: errors.New("bad")}).Error(); got != "f: bad" {
		t.Errorf("ParseError without a location = %q", got)
	}
}

// TestParseMultipleErrors checks that every problem is reported, each with
// its line.
func TestParseMultipleErrors(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/broken.service")
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"testdata/broken.service:5: [Service] Type=forking: not supported by luod (want simple, notify or oneshot): unsupported operation",
		`testdata/broken.service:6: [Service] ExecStart=relative/path/daemon: executable "relative/path/daemon" is neither an absolute path nor a file name`,
		"testdata/broken.service:7: [Service] Restart=sometimes: invalid value (want no, on-failure or always)",
		"testdata/broken.service:9: [Service] FileDescriptorStoreMax=-1: invalid number (want a non-negative decimal integer)",
	}
	if d := diff(want, strings.Split(err.Error(), "\n")); d != "" {
		t.Error(d)
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Error("error does not wrap errors.ErrUnsupported")
	}
}

func TestParseUnitLevelErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, err string
	}{
		{"x.service", "[Service]\nType=simple\n", "x.service: [Service] ExecStart: no ExecStart= command (a service needs one)"},
		{"x.service", "[Service]\nExecStart=/bin/true\nExecStart=", "x.service: [Service] ExecStart: no ExecStart= command"},
		{"x.service", "", "x.service: [Service] ExecStart: no ExecStart= command"},
		{"x.service", "[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n", "x.service:3: [Service] ExecStart=/bin/b: more than one ExecStart= command, which only Type=oneshot allows (Type=simple)"},
		{"x.service", "[Service]\nType=notify\nExecStart=/bin/a\n\nExecStart=/bin/b\nExecStart=/bin/c\n", "x.service:5: [Service] ExecStart=/bin/b: more than one ExecStart= command"},
		{"x.service", "[Service]\nType=oneshot\nExecStart=/bin/a\nRestart=always\n", "x.service:4: [Service] Restart=always: not allowed with Type=oneshot (want no or on-failure)"},
		{"x.socket", service(), `x.socket: "x.socket": unit name must end in .service`},
		{"t@.service", service(), `t@.service: "t@.service": is a template`},
		{"a b.service", service(), `a b.service: "a b.service": unit name has an invalid character ' '`},
		{"x.service", "[Service]\nExecStart=/bin/true\nA=\x00\n", "x.service:3: file contains a NUL byte"},
		{"x.service", "[Service]\nExecStart=/bin/true\nBroken\n", `x.service:3: syntax error: line without "=" (want Key=Value, or a [Section] header)`},
		{"x.service", "[Service]\nExecStart=/bin/true\nBroken", `x.service:3: syntax error: line without "="`},
		{"x.service", "[Service\nExecStart=/bin/true\n", `x.service:1: syntax error: section header without "]"`},
		{"x.service", "[Service] x\n", "x.service:1: syntax error: text after the section header"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.name, strings.NewReader(tt.in))
		if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
			t.Errorf("Parse(%q, %q) error = %v\nwant one starting with %s", tt.name, tt.in, err, tt.err)
		}
	}
	big := strings.NewReader(service() + "# " + strings.Repeat("x\n", MaxFileSize))
	if _, err := Parse("x.service", big); !errors.Is(err, ErrFileTooLarge) || err.Error() != "x.service: file too large (more than 2097152 bytes)" {
		t.Errorf("Parse(big file) = %v", err)
	}
}

// TestParseWarnings checks the exact warnings and their lines, with
// continuation lines, comments, repeated keys and sections.
func TestParseWarnings(t *testing.T) {
	t.Parallel()
	in := `# line 1
[Unit]
Description=Warnings \
  galore
After=network.target
Wants=a.service \
      b.service
After=other.target
X-Custom=ignored silently
ConditionPathExists=/etc/x

[Service]
; comment
ExecStart=/bin/echo '\w' \
  "\d"
Frobnicate=1
WantedBy=multi-user.target
LimitNOFILE=1024
FileDescriptorStorePreserve=yes
LUOSession=a b
LUOSession=a
Frobnicate=2

[X-Vendor]
Anything=goes

[Install]
WantedBy=multi-user.target
Alias=w.service
Description=misplaced

[Socket]
ListenStream=80
[Service]
ExecStartPre=/bin/true
`
	u := mustParse(t, "w.service", in)
	var got []string
	for _, w := range u.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		"w.service:5: [Unit] After: not supported by luod, ignored",
		"w.service:6: [Unit] Wants: not supported by luod, ignored",
		"w.service:8: [Unit] After: not supported by luod, ignored",
		"w.service:10: [Unit] ConditionPathExists: not supported by luod, ignored",
		`w.service:14: [Service] ExecStart: ignoring unknown escape sequences in "\\w"`,
		`w.service:14: [Service] ExecStart: ignoring unknown escape sequences in "\\d"`,
		"w.service:16: [Service] Frobnicate: unknown key, ignored",
		"w.service:17: [Service] WantedBy: unknown key in this section, ignored (WantedBy= belongs in the [Install] section)",
		"w.service:18: [Service] LimitNOFILE: not supported by luod, ignored",
		`w.service:21: [Service] LUOSession: duplicate session name "a", ignored`,
		"w.service:22: [Service] Frobnicate: unknown key, ignored",
		"w.service:28: [Install] WantedBy: not supported by luod, ignored",
		"w.service:29: [Install] Alias: not supported by luod, ignored",
		"w.service:30: [Install] Description: unknown key in this section, ignored (Description= belongs in the [Unit] section)",
		"w.service:32: [Socket]: unknown section, ignored",
		"w.service:35: [Service] ExecStartPre: not supported by luod, ignored",
	}
	if d := diff(want, got); d != "" {
		t.Errorf("warnings:\n%s\n%s", strings.Join(got, "\n"), d)
	}
	if u.Description != "Warnings    galore" {
		t.Errorf("Description = %q", u.Description)
	}
	if d := diff([]string{"/bin/echo", `\w`, `\d`}, u.ExecStart[0].Argv); d != "" {
		t.Errorf("ExecStart: %s", d)
	}
	// FileDescriptorStoreMax=0 but two sessions: the store is not disabled,
	// so FileDescriptorStorePreserve=yes draws no warning.
	if u.EffectiveFileDescriptorStoreMax() != 2 {
		t.Errorf("EffectiveFileDescriptorStoreMax = %d", u.EffectiveFileDescriptorStoreMax())
	}
	w := u.Warnings[0]
	if w.File != "w.service" || w.Line != 5 || w.Section != "Unit" || w.Key != "After" {
		t.Errorf("first warning = %#v", w)
	}
}

// TestParseSettingWarnings checks the warnings about settings that have no
// effect, or the wrong one, given the others.
func TestParseSettingWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lines []string
		warn  string // "" for none
	}{
		{[]string{"FileDescriptorStorePreserve=yes"}, "x.service:3: [Service] FileDescriptorStorePreserve: has no effect: the fd store is disabled (FileDescriptorStoreMax=0)"},
		{[]string{"FileDescriptorStorePreserve=on-success"}, "has no effect"},
		{[]string{"FileDescriptorStoreMax=0", "FileDescriptorStorePreserve=yes"}, "has no effect"},
		{[]string{"FileDescriptorStorePreserve=no"}, ""},
		{[]string{"FileDescriptorStorePreserve=restart"}, ""},
		{[]string{"FileDescriptorStoreMax=1", "FileDescriptorStorePreserve=yes"}, ""},
		{[]string{"FileDescriptorStorePreserve=yes", "LUOSession=s"}, ""},
		{[]string{"FileDescriptorStoreMax=2"}, ""},
		{[]string{"LUOSession=s"}, "x.service:3: [Service] LUOSession: the sessions are not preserved across a live update unless FileDescriptorStorePreserve=yes or on-success (it is restart)"},
		{[]string{"FileDescriptorStorePreserve=no", "LUOSession=s"}, "(it is no)"},
		{[]string{"FileDescriptorStorePreserve=on-success", "LUOSession=s"}, ""},
		{[]string{"Type=notify", "NotifyAccess=none"}, "x.service:4: [Service] NotifyAccess: with Type=notify the service can never report READY=1, so it cannot start"},
		{[]string{"Type=notify", "NotifyAccess=none", "NotifyAccess=main"}, ""},
		{[]string{"Type=simple", "NotifyAccess=none"}, ""},
		{[]string{"StartLimitInterval=20"}, "x.service:3: [Service] StartLimitInterval: deprecated, use [Unit] StartLimitIntervalSec= instead"},
		{[]string{"StartLimitBurst=3"}, "x.service:3: [Service] StartLimitBurst: deprecated, use [Unit] StartLimitBurst= instead"},
		{[]string{"[Unit]", "StartLimitInterval=20"}, "x.service:4: [Unit] StartLimitInterval: deprecated, use StartLimitIntervalSec= instead"},
		{[]string{"[Unit]", "StartLimitIntervalSec=20", "StartLimitBurst=3"}, ""},
		{[]string{"[Unit]", "StartLimitAction=reboot"}, "x.service:4: [Unit] StartLimitAction: not supported by luod, ignored (a unit that hits the start limit fails, as with StartLimitAction=none)"},
		{[]string{"StartLimitAction=reboot"}, "x.service:3: [Service] StartLimitAction: not supported by luod, ignored (a unit that hits the start limit fails"},
		{[]string{"[Unit]", "FailureAction=reboot"}, "x.service:4: [Unit] FailureAction: not supported by luod, ignored"},
		{[]string{"LogRateLimitIntervalSec=0"}, "x.service:3: [Service] LogRateLimitIntervalSec: 0 does not turn rate limiting off: as in systemd, it means the default, 30s"},
		{[]string{"LogRateLimitBurst=0"}, "x.service:3: [Service] LogRateLimitBurst: 0 does not turn rate limiting off: as in systemd, it means the default, 10000"},
		{[]string{"LogRateLimitIntervalSec=1s", "LogRateLimitBurst=1"}, ""},
	}
	for _, tt := range tests {
		u := mustParse(t, "x.service", service(tt.lines...))
		var got []string
		for _, w := range u.Warnings {
			got = append(got, w.String())
		}
		all := strings.Join(got, "\n")
		if tt.warn == "" && len(got) > 0 || tt.warn != "" && (len(got) != 1 || !strings.Contains(all, tt.warn)) {
			t.Errorf("%q: warnings %q, want %q", tt.lines, got, tt.warn)
		}
	}
}

func TestEffectiveNotifyAccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lines []string
		want  NotifyAccess
	}{
		{nil, NotifyAccessNone},
		{[]string{"Type=notify"}, NotifyAccessMain},
		{[]string{"Type=oneshot"}, NotifyAccessNone},
		{[]string{"FileDescriptorStoreMax=1"}, NotifyAccessMain},
		{[]string{"FileDescriptorStorePreserve=yes", "LUOSession=s"}, NotifyAccessMain},
		{[]string{"Type=notify", "NotifyAccess=none"}, NotifyAccessNone},
		{[]string{"Type=notify", "NotifyAccess=all"}, NotifyAccessAll},
		{[]string{"NotifyAccess=exec"}, NotifyAccessExec},
		{[]string{"Type=notify", "NotifyAccess=none", "NotifyAccess="}, NotifyAccessMain},
	}
	for _, tt := range tests {
		u := mustParse(t, "x.service", service(tt.lines...))
		if got := u.EffectiveNotifyAccess(); got != tt.want {
			t.Errorf("%q: EffectiveNotifyAccess = %v, want %v", tt.lines, got, tt.want)
		}
	}
}

func TestEffectiveFileDescriptorStoreMax(t *testing.T) {
	t.Parallel()
	tests := []struct {
		max      uint
		sessions []string
		want     uint
	}{
		{0, nil, 0},
		{5, nil, 5},
		{0, []string{"a", "b"}, 2},
		{1, []string{"a", "b", "c"}, 3},
		{8, []string{"a", "b"}, 8},
	}
	for _, tt := range tests {
		u := &Unit{FileDescriptorStoreMax: tt.max, LUOSessions: tt.sessions}
		if got := u.EffectiveFileDescriptorStoreMax(); got != tt.want {
			t.Errorf("max %d, sessions %q: got %d, want %d", tt.max, tt.sessions, got, tt.want)
		}
	}
}

func TestEnumStrings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		got, want string
	}{
		{TypeSimple.String(), "simple"}, {TypeNotify.String(), "notify"}, {TypeOneshot.String(), "oneshot"},
		{Type(9).String(), "Type(9)"},
		{RestartNo.String(), "no"}, {RestartOnFailure.String(), "on-failure"}, {RestartAlways.String(), "always"},
		{RestartPolicy(-1).String(), "RestartPolicy(-1)"},
		{NotifyAccessNone.String(), "none"}, {NotifyAccessMain.String(), "main"},
		{NotifyAccessExec.String(), "exec"}, {NotifyAccessAll.String(), "all"},
		{NotifyAccess(4).String(), "NotifyAccess(4)"},
		{PreserveRestart.String(), "restart"}, {PreserveNo.String(), "no"},
		{PreserveYes.String(), "yes"}, {PreserveOnSuccess.String(), "on-success"},
		{Preserve(4).String(), "Preserve(4)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
	var zero Preserve
	if zero != PreserveRestart {
		t.Error("the zero Preserve is not the default, PreserveRestart")
	}
}

func TestWarningString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		w    Warning
		want string
	}{
		{Warning{File: "a.service", Line: 3, Section: "Service", Key: "Foo", Message: "m"}, "a.service:3: [Service] Foo: m"},
		{Warning{File: "a.service", Line: 9, Section: "Socket", Message: "m"}, "a.service:9: [Socket]: m"},
		{Warning{File: "a.service", Message: "m"}, "a.service: m"},
	}
	for _, tt := range tests {
		if got := tt.w.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestParseLongLines checks lines at systemd's limit of 1 MiB, with the
// newline, and past it, and lines longer than go-systemd's 2048 bytes.
func TestParseLongLines(t *testing.T) {
	t.Parallel()
	x := func(n int) string { return strings.Repeat("x", n) }
	// A line of MaxLineLength bytes with its newline.
	env := "Environment=A=" + x(MaxLineLength-len("Environment=A=")-1)
	u := mustParse(t, "x.service", service(env, "Frobnicate=1", "Type=notify"))
	if len(u.Environment) != 1 || len(u.Environment[0]) != MaxLineLength-len("Environment=")-1 || u.Type != TypeNotify {
		t.Errorf("Environment of %d bytes, Type=%v", len(u.Environment[0]), u.Type)
	}
	if len(u.Warnings) != 1 || u.Warnings[0].String() != "x.service:4: [Service] Frobnicate: unknown key, ignored" {
		t.Errorf("warnings after the long line: %v", u.Warnings)
	}

	// Lines longer than go-systemd's limit, continued, with their lines.
	arg := x(100_000)
	u = mustParse(t, "x.service", "[Service]\nExecStart=\nExecStart=/bin/echo "+arg+" \\\n  "+arg+"\n\nFrobnicate=1\n")
	if d := diff([]string{"/bin/echo", arg, arg}, u.ExecStart[0].Argv); d != "" {
		t.Errorf("ExecStart: %.200s", d)
	}
	if len(u.Warnings) != 1 || u.Warnings[0].Line != 6 {
		t.Errorf("warnings after the long lines: %v", u.Warnings)
	}

	// A line of MaxLineLength+1 bytes with its newline.
	_, err := Parse("x.service", strings.NewReader(service(env+"x", "Type=notify")))
	var pe *ParseError
	want := "x.service:3: line too long (1048576 bytes, at most 1048575 before the newline)"
	if !errors.Is(err, ErrLineTooLong) || !errors.As(err, &pe) || pe.Line != 3 || err.Error() != want {
		t.Errorf("Parse(line too long) = %.200v, want %s", err, want)
	}
}

// TestParseDiagnosticsLimit checks that a file with many problems gives
// MaxDiagnostics of them and a count of the others.
func TestParseDiagnosticsLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line       string
		n          int
		warn, errs int    // how many of each, with the count of the rest
		last       string // the last warning or error
	}{
		{"Frobnicate=1", MaxDiagnostics, MaxDiagnostics, 0, ""},
		{"Frobnicate=1", 250, MaxDiagnostics + 1, 0, "x.service: 150 more warnings not shown"},
		{"Restart=sometimes", MaxDiagnostics, 0, MaxDiagnostics, "x.service:102: [Service] Restart=sometimes: invalid value (want no, on-failure or always)"},
		{"Restart=sometimes", 250, 0, MaxDiagnostics + 1, "x.service: 150 more errors not shown"},
	}
	for _, tt := range tests {
		lines := make([]string, tt.n)
		for i := range lines {
			lines[i] = tt.line
		}
		u, err := Parse("x.service", strings.NewReader(service(lines...)))
		var got []string
		if err != nil {
			got = strings.Split(err.Error(), "\n")
		} else {
			for _, w := range u.Warnings {
				got = append(got, w.String())
			}
		}
		if len(got) != tt.warn+tt.errs || (err != nil) != (tt.errs > 0) {
			t.Errorf("%d × %s: %d warnings or errors (error %v), want %d warnings and %d errors", tt.n, tt.line, len(got), err != nil, tt.warn, tt.errs)
			continue
		}
		if tt.last != "" && got[len(got)-1] != tt.last {
			t.Errorf("%d × %s: last is %q, want %q", tt.n, tt.line, got[len(got)-1], tt.last)
		}
		key, _, _ := strings.Cut(tt.line, "=")
		if w := "x.service:3: [Service] " + key; !strings.HasPrefix(got[0], w) {
			t.Errorf("%d × %s: first is %q, want it to start with %q", tt.n, tt.line, got[0], w)
		}
	}
}

func TestStartLimitEnabled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		interval time.Duration
		burst    uint
		want     bool
	}{
		{DefaultStartLimitIntervalSec, DefaultStartLimitBurst, true},
		{0, DefaultStartLimitBurst, false},
		{DefaultStartLimitIntervalSec, 0, false},
		{0, 0, false},
		{Infinity, 1, true},
		{time.Microsecond, 4294967295, true},
	}
	for _, tt := range tests {
		u := &Unit{StartLimitIntervalSec: tt.interval, StartLimitBurst: tt.burst}
		if got := u.StartLimitEnabled(); got != tt.want {
			t.Errorf("interval %v, burst %d: StartLimitEnabled = %v, want %v", tt.interval, tt.burst, got, tt.want)
		}
	}
}

// TestParseHostile checks that malformed input gives a clear error naming
// file and line (or a warning, where systemd only warns) and never a
// panic.
func TestParseHostile(t *testing.T) {
	t.Parallel()
	x := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name string
		in   string
		err  string // the whole first error; "" if the unit loads
		warn string // the whole first warning, if it loads
	}{
		{"invalid UTF-8 in a value", "[Unit]\nDescription=caf\xe9\n", `x.service:2: line is not valid UTF-8: "Description=caf\xe9"`, ""},
		{"invalid UTF-8 in a command", "[Service]\nExecStart=/bin/echo \xff\n", `x.service:2: line is not valid UTF-8: "ExecStart=/bin/echo \xff"`, ""},
		{"invalid UTF-8 in a key", service("Fr\xffob=1"), `x.service:3: line is not valid UTF-8: "Fr\xffob=1"`, ""},
		{"invalid UTF-8 in an X- key", service("X-Fr\xffob=1"), `x.service:3: line is not valid UTF-8: "X-Fr\xffob=1"`, ""},
		{"invalid UTF-8 in a continuation", service("Description=a \\", " \xfe"), `x.service:4: line is not valid UTF-8: " \xfe"`, ""},
		{"invalid UTF-8 in a section", service("[S\xff]"), `x.service:3: line is not valid UTF-8: "[S\xff]"`, ""},
		{"invalid UTF-8 before any section", "\xff\n" + service(), `x.service:1: line is not valid UTF-8: "\xff"`, ""},
		{"invalid UTF-8 in a long line", service("Description=" + x(1000) + "\xff"), `x.service:3: line is not valid UTF-8: "Description=` + x(188) + `"… (1013 bytes)`, ""},
		{"invalid UTF-8 in a comment", "[Unit]\n# caf\xe9\n; \xff\nDescription=a \\\n  # \xff \\\n  b\n" + service(), "", ""},
		{"control character in a section", "[Multi\nLine]\n" + service(), `x.service:1: ["Multi\nLine"]: invalid section name (want no control characters, quotes or backslash)`, ""},
		{"backslash in a section", service(`[A\B]`), `x.service:3: [A\B]: invalid section name (want no control characters, quotes or backslash)`, ""},
		{"control character in a key", service("Fr\x1b[2Job=1"), "", `x.service:3: [Service] "Fr\x1b[2Job": unknown key, ignored`},
		{"C1 control in a key", service("Fr\u009bob=1"), "", `x.service:3: [Service] "Fr\u009bob": unknown key, ignored`},
		{"bidirectional override in a key", service("Fr\u202eob=1"), "", `x.service:3: [Service] "Fr\u202eob": unknown key, ignored`},
		{"printable Unicode in a key", service("Frøb=1"), "", `x.service:3: [Service] Frøb: unknown key, ignored`},
		{"control character in a value", "[Unit]\nDescription=\x1b[2J\n" + service(), "", ""},
		{"byte order mark", "\uFEFF[Unit]\nDescription=bom\n" + service(), "", ""},
		{"NUL byte", service("Description=a\x00b"), "x.service:3: file contains a NUL byte", ""},
		{"number out of range", service("FileDescriptorStoreMax=99999999999999999999"), "x.service:3: [Service] FileDescriptorStoreMax=99999999999999999999: number out of range (at most 4294967295)", ""},
		{"negative number", "[Unit]\nStartLimitBurst=-1\n" + service(), "x.service:2: [Unit] StartLimitBurst=-1: invalid number (want a non-negative decimal integer)", ""},
		{"time span out of range", service("TimeoutStopSec=18446744073709551616us"), "x.service:3: [Service] TimeoutStopSec=18446744073709551616us: time span out of range (want a time span like 90s or 1min 30s, or infinity)", ""},
		{"time span past Duration", service("RestartSec=300y"), "x.service:3: [Service] RestartSec=300y: time span out of range (want a time span like 100ms, 5s or 1min 30s)", ""},
		{"long number", service("RestartSec=" + strings.Repeat("9", 5000)), "x.service:3: [Service] RestartSec=" + strings.Repeat("9", 200) + "… (5000 bytes): time span out of range (want a time span like 100ms, 5s or 1min 30s)", ""},
		{"signal out of range", service("KillSignal=99999999999999999999"), "x.service:3: [Service] KillSignal=99999999999999999999: signal number out of range (want 1 to 64)", ""},
		{"long invalid value", service("Environment=" + x(500_000)), "x.service:3: [Service] Environment=" + x(200) + `… (500000 bytes): invalid assignment "` + x(200) + `"… (500000 bytes) (want NAME=VALUE, NAME made of letters, digits and _, not starting with a digit)`, ""},
		{"long executable", "[Service]\nExecStart=bin/" + x(100_000) + "\n", "x.service:2: [Service] ExecStart=bin/" + x(196) + `… (100004 bytes): executable "bin/` + x(196) + `"… (100004 bytes) is neither an absolute path nor a file name`, ""},
		{"long unknown key", service(x(300_000) + "=1"), "", "x.service:3: [Service] " + x(200) + "… (300000 bytes): unknown key, ignored"},
		{"long valid values", "[Unit]\nDescription=" + x(300_000) + "\n" + service("Environment=A="+x(300_000), "User="+x(300_000)), "", ""},
		{"duplicate sections", "[Service]\nExecStart=/bin/true\n[Unit]\nDescription=a\n[Service]\nType=notify\n[Unit]\nDescription=b\n", "", ""},
		{"section header without end", service("[Service"), `x.service:3: syntax error: section header without "]"`, ""},
		{"many sections", strings.Repeat("[Service]\n", 10_000) + service(), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := Parse("x.service", strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil {
					t.Fatalf("no error, want %.400s", tt.err)
				}
				first, _, _ := strings.Cut(err.Error(), "\n")
				if u != nil || first != tt.err {
					t.Errorf("error\n%.400s\nwant\n%.400s", first, tt.err)
				}
				var pe *ParseError
				if !errors.As(err, &pe) || pe.File != "x.service" || pe.Line < 1 {
					t.Errorf("error %#v is not a ParseError with a line", pe)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %.400v", err)
			}
			var first string
			if len(u.Warnings) > 0 {
				first = u.Warnings[0].String()
			}
			if first != tt.warn {
				t.Errorf("first warning %q, want %q", first, tt.warn)
			}
		})
	}

	u := mustParse(t, "x.service", "[Service]\nExecStart=/bin/true\n[Unit]\nDescription=a\n[Service]\nType=notify\n[Unit]\nDescription=b\n")
	if u.Type != TypeNotify || u.Description != "b" {
		t.Errorf("duplicate sections: Type=%v, Description=%q; want them merged, the last value winning", u.Type, u.Description)
	}
	u = mustParse(t, "x.service", "\uFEFF[Unit]\nDescription=bom\n"+service())
	if u.Description != "bom" || len(u.Warnings) != 0 {
		t.Errorf("byte order mark: Description %q, warnings %v", u.Description, u.Warnings)
	}
}

// TestParsePreserveMaxBytes checks luod's own section: [X-LUO]
// PreserveMaxBytes= with its sizes, its reset, its errors, and that other
// keys there only warn.
func TestParsePreserveMaxBytes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		lines []string
		want  int64
	}{
		{[]string{"PreserveMaxBytes=4096"}, 4096},
		{[]string{"PreserveMaxBytes=4K"}, 4096},
		{[]string{"PreserveMaxBytes=1.5G"}, 3 << 29},
		{[]string{"PreserveMaxBytes=1G 512M"}, 3 << 29},
		{[]string{"PreserveMaxBytes=0"}, 0},
		{[]string{"PreserveMaxBytes=1M", "PreserveMaxBytes="}, NoLimit},
		{[]string{"PreserveMaxBytes=1M", "PreserveMaxBytes=infinity"}, NoLimit},
	} {
		u := mustParse(t, "x.service", service()+"[X-LUO]\n"+strings.Join(tt.lines, "\n")+"\n")
		if u.PreserveMaxBytes != tt.want {
			t.Errorf("%q: PreserveMaxBytes %d, want %d", tt.lines, u.PreserveMaxBytes, tt.want)
		}
		if len(u.Warnings) != 0 {
			t.Errorf("%q: warnings %v", tt.lines, u.Warnings)
		}
	}
	for _, v := range []string{"lots", "-1", "1X", "1.2.3M", ".5K", "99999E", "1M x"} {
		_, err := Parse("x.service", strings.NewReader(service()+"[X-LUO]\nPreserveMaxBytes="+v+"\n"))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Section != "X-LUO" || pe.Key != "PreserveMaxBytes" || pe.Line != 5 || !strings.Contains(err.Error(), "want a size") {
			t.Errorf("PreserveMaxBytes=%s: error %v, want a ParseError on line 5 asking for a size", v, err)
		}
	}
	u := mustParse(t, "x.service", service()+"[X-LUO]\nPreserveMaxByte=1\n")
	if len(u.Warnings) != 1 || !strings.Contains(u.Warnings[0].Message, "unknown key") {
		t.Errorf("an unknown key in [X-LUO]: warnings %v, want one unknown key", u.Warnings)
	}
	u = mustParse(t, "x.service", service()+"[X-Other]\nPreserveMaxBytes=lots\n")
	if u.PreserveMaxBytes != NoLimit || len(u.Warnings) != 0 {
		t.Errorf("another X- section is not luod's: PreserveMaxBytes %d, warnings %v", u.PreserveMaxBytes, u.Warnings)
	}
}

func TestEffectiveStandardError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lines []string
		out   Output
		err   Output
	}{
		{nil, OutputJournal, OutputJournal},
		{[]string{"StandardOutput=null"}, OutputNull, OutputNull},
		{[]string{"StandardOutput=inherit"}, OutputInherit, OutputInherit},
		{[]string{"StandardOutput=null", "StandardError=journal"}, OutputNull, OutputJournal},
		{[]string{"StandardOutput=inherit", "StandardError=null", "StandardError=inherit"}, OutputInherit, OutputInherit},
		{[]string{"StandardOutput=journal", "StandardError=inherit"}, OutputJournal, OutputJournal},
		{[]string{"StandardOutput=syslog+console"}, OutputJournal, OutputJournal},
	}
	for _, tt := range tests {
		u := mustParse(t, "x.service", service(tt.lines...))
		if u.StandardOutput != tt.out || u.EffectiveStandardError() != tt.err {
			t.Errorf("%q: stdout %v, stderr %v; want %v, %v", tt.lines, u.StandardOutput, u.EffectiveStandardError(), tt.out, tt.err)
		}
	}
}
