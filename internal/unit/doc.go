// Package unit is the unit model of luod: it loads service units written in
// systemd's unit file syntax (systemd.unit(5), systemd.service(5),
// systemd.exec(5)), typically from /etc/luod/system, and turns them into a
// typed, validated [Unit] with systemd's semantics and defaults.
//
// # Who should import it
//
// luod's supervisor, which runs what a Unit describes, and luoctl, which
// shows and checks unit files. Services do not: they talk to the manager
// through package sdnotify and package activation.
//
// # Requirements
//
// None: the package is pure Go, needs no privileges, and builds on every
// Unix system (signal names come from golang.org/x/sys/unix). [Load],
// [LoadDir] and [Command.LookPath] read the file system; nothing else does
// any I/O. Nothing is resolved at load time: users, groups, environment
// files and executables given by bare name are the supervisor's job at start
// time.
//
// # Syntax
//
// Files are parsed with github.com/coreos/go-systemd/v22/unit, which handles
// sections, "#" and ";" comments and lines continued with a trailing
// backslash. That parser gives no line numbers; this package finds them by
// walking the bytes the same way, so every [Warning] and [ParseError] names
// the line of its key. Comment lines inside a continued value are skipped as
// in systemd, with two differences that come from go-systemd: a comment line
// that does not itself end in a backslash also ends the value (systemd goes
// on with the next line), and a line ending in an escaped backslash ("\\")
// is continued.
// Drop-in directories (name.service.d/*.conf) are not read.
//
// As in systemd (LONG_LINE_MAX), a line has at most [MaxLineLength] bytes
// with its newline, and the lines of a continued value add up to at most
// [MaxLineLength]; a longer line is an error wrapping [ErrLineTooLong].
// go-systemd refuses lines of 2048 bytes and more; for a file it stops on
// for that reason alone, the options found by the walk that numbers the
// lines, which reads the same syntax, are used instead. systemd puts no
// limit on the size of a file; here it is at most [MaxFileSize] bytes
// ([ErrFileTooLarge]). Files may not contain NUL bytes, and, as systemd
// requires, every line but comments must be valid UTF-8 and section names
// may not contain control characters, quotes or backslashes. A byte order
// mark at the start of a file is skipped. A section given twice is one
// section, its keys applying in file order.
//
// As in systemd, a key given twice takes its last value, list settings
// accumulate, and an empty assignment ("Environment=") resets a setting to
// its default (an empty list). Keys and sections starting with "X-" are
// ignored silently.
//
// # Diagnostics
//
// Keys and sections systemd does not know, and keys systemd knows but luod
// does not implement (After=, Wants=, WantedBy=, ExecStartPre=,
// LimitNOFILE=, …), give a [Warning] and are ignored: the unit still loads,
// as under systemd. An invalid value makes the unit fail to load, unlike
// systemd, which ignores most invalid lines; the error says where and why:
//
//	counter.service:7: [Service] Restart=sometimes: invalid value (want no, on-failure or always)
//
// Values systemd accepts but luod does not implement (Type=forking,
// Restart=on-abnormal, the "+" command prefix, …) are errors too, wrapping
// [errors.ErrUnsupported].
//
// Messages quote keys, values and words that contain control characters or
// invalid UTF-8, and cut them after 200 bytes, so that what a unit file
// holds cannot flood or garble a log. A file gives at most
// [MaxDiagnostics] warnings and errors, and then the number of the others.
//
// # Settings
//
//	[Unit]
//	Description=                  text, specifiers expanded
//	Documentation=                accepted and ignored
//	StartLimitIntervalSec=        time span, default 10s; 0: no start limit; infinity: never resets
//	StartLimitBurst=              number, default 5; 0: no start limit
//	[Service]
//	Type=                         simple (default), notify, oneshot
//	ExecStart=                    a command line; exactly one, or one or more with Type=oneshot
//	RemainAfterExit=              boolean, default no
//	Environment=                  NAME=VALUE words, quoted and escaped as in ExecStart=
//	EnvironmentFile=              absolute path, "-" prefix: optional
//	WorkingDirectory=             absolute path or "~", "-" prefix: optional
//	User=, Group=                 name or numeric id, default root
//	Restart=                      no (default), on-failure, always (not with Type=oneshot)
//	RestartSec=                   time span, default 100ms
//	TimeoutStartSec=, TimeoutStopSec=, TimeoutSec= (both)
//	                              time span, default 90s; 0 or infinity: no timeout
//	KillSignal=                   SIGTERM (default), TERM, 15, RTMIN+3, …
//	NotifyAccess=                 none, main, exec, all; see [Unit.EffectiveNotifyAccess]
//	FileDescriptorStoreMax=       number, default 0 (no store)
//	FileDescriptorStorePreserve=  no, restart (default), yes, on-success, or a boolean
//	LUOSession=                   session names, whitespace-separated
//	LogRateLimitIntervalSec=      time span, default 30s; 0: the default; infinity: never resets
//	LogRateLimitBurst=            number, default 10000; 0: the default
//	StandardOutput=               journal (default), inherit, null; see [Output]
//	StandardError=                journal, inherit (default: as StandardOutput=), null
//
// and in luod's own section, [X-LUO], which systemd ignores:
//
//	PreserveMaxBytes=             size (4096, 512M, 1.5G), infinity or empty: no limit (default)
//
// The deprecated spellings of the start limit, StartLimitInterval= in
// [Unit] and StartLimitInterval= and StartLimitBurst= in [Service], are
// accepted with a warning. Unlike StartLimitIntervalSec=0,
// LogRateLimitIntervalSec=0 does not turn the limit off: systemd does not
// pass a unit's 0 on to journald, so journald's default applies, as it does
// here, with a warning; see [Unit.LogRateLimitIntervalSec]. Numbers are
// decimal and fit in 32 bits.
//
// Booleans are 1, yes, y, true, t, on and 0, no, n, false, f, off, in any
// case. Time spans are as in systemd.time(7): a bare number is seconds,
// units may be combined ("1min 30s", "1h30m", "1.5s", "100 ms"), and the
// units are us, ms, s, min (or m), h, d, w, M (30.44 days) and y, with their
// long forms.
//
// LUOSession= names follow systemd's rules: printable ASCII without ':',
// quotes, backslash or space, at most 255 bytes; a duplicate is a warning.
// Each name takes one slot of FileDescriptorStoreMax=, however many LUO
// sessions luod holds under it (after a live update, the incoming one and
// a fresh outgoing one, where systemd holds one), so the store has at least
// as many slots as there are names: see
// [Unit.EffectiveFileDescriptorStoreMax]. Sessions are only preserved across
// a live update with FileDescriptorStorePreserve=yes or on-success; without
// it the unit loads with a warning.
//
// # Command lines
//
// ExecStart= is split as systemd does (systemd.service(5), "Command
// lines"): words are separated by whitespace; single and double quotes may
// start anywhere in a word and group whitespace; backslash escapes are
// decoded inside and outside quotes (\a \b \f \n \r \t \v \\ \" \' \s for a
// space, \xNN, \NNN in octal, \uNNNN, \UNNNNNNNN); an unknown escape is kept
// verbatim with a warning; "\;" alone is a literal ";". Environment
// variables ($VAR as a whole word, ${VAR} anywhere, $$) are kept in the
// words and substituted at start time by [Command.Expand].
//
// The first word may carry the prefixes "-" (ignore failure), "@" (the
// second word is argv[0]) and ":" (no environment variable substitution),
// in any order. The prefixes "+", "!", "!!" and "|", and a ";" separating
// several commands on one line, are not supported. The executable is an
// absolute path or, as systemd allows since version 239, a bare file name
// looked up in the fixed [ExecSearchPath] when the command starts.
//
// # Specifiers
//
// Description=, ExecStart=, Environment=, EnvironmentFile=,
// WorkingDirectory=, User= and Group= expand these specifiers of
// systemd.unit(5) (luod is a system manager running as root):
//
//	%n  full unit name              worker@a-b.service
//	%N  name without the suffix     worker@a-b
//	%p  prefix                      worker
//	%P  unescaped prefix
//	%i  instance ("" if none)       a-b
//	%I  unescaped instance          a/b
//	%j  last "-" component of the prefix, %J unescaped
//	%f  unescaped instance (or prefix) as a path: /a/b
//	%t  /run       %S  /var/lib    %C  /var/cache   %L  /var/log
//	%E  /etc       %T  /tmp        %V  /var/tmp
//	%h  /root      %s  /bin/sh     %u, %g  root     %U, %G  0
//	%%  a literal %
//
// Other specifiers (%H, %m, %b, %v, %a, %o, %d, …) depend on the host and
// are refused: the unit fails to load with an error naming the specifier.
// As in systemd, a "%" at the end of a value or before a character that is
// not a letter or digit is kept as is.
package unit
