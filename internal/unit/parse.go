package unit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	sdunit "github.com/coreos/go-systemd/v22/unit"
)

// Limits on the size of unit files.
const (
	// MaxLineLength is systemd's LONG_LINE_MAX, the limit on the length of
	// a line: a line has fewer than MaxLineLength bytes before its newline
	// (so, with the newline, at most MaxLineLength), and the lines of a
	// value continued with backslashes add up to at most MaxLineLength
	// bytes.
	MaxLineLength = 1 << 20
	// MaxFileSize is the largest unit file Parse and Load accept: room for
	// one line of MaxLineLength and as much again. systemd reads unit
	// files line by line and puts no limit on their size; luod reads a
	// file whole before parsing it, and parsing takes up to about a
	// hundred bytes of memory per byte of the file (for a file made of
	// nothing but tiny assignments), so a bound is needed for a huge file
	// to fail instead of exhausting memory.
	MaxFileSize = 2 * MaxLineLength
)

// MaxDiagnostics is the most warnings a Unit keeps, and the most errors
// Parse and Load return for a file, not counting a last one that says how
// many more there were: a file with more problems than that is wrong
// throughout, and listing every one would flood the log.
const MaxDiagnostics = 100

var (
	// ErrFileTooLarge is wrapped by the error for a file larger than
	// MaxFileSize.
	ErrFileTooLarge = errors.New("file too large")
	// ErrLineTooLong is wrapped by the error for a line longer than
	// MaxLineLength.
	ErrLineTooLong = errors.New("line too long")
)

func errFileTooLarge(file string) error {
	return &ParseError{File: file, Err: fmt.Errorf("%w (more than %d bytes)", ErrFileTooLarge, MaxFileSize)}
}

// Parse reads a unit file from r and returns the unit named name
// ("counter.service"). The name must be a valid service unit name; it is
// what the %n, %p, %i… specifiers expand to. The unit's Path is empty.
//
// A file that cannot be loaded gives a nil *Unit and an error made of one
// *ParseError per problem. Problems that do not prevent loading are in the
// unit's Warnings.
func Parse(name string, r io.Reader) (*Unit, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return parse(name, "", data)
}

// option is one assignment, with its line (0 if unknown).
type option struct {
	section, key, value string
	line                int
}

type parser struct {
	u    *Unit
	file string
	spec *specifiers
	errs []error

	execOpts    []option // the assignment of each ExecStart command
	execFailed  bool     // an ExecStart= value was invalid
	preserve    option   // the last FileDescriptorStorePreserve= assignment
	preserveSet bool
	restart     option         // the last Restart= assignment
	notify      option         // the last NotifyAccess= assignment
	luoLines    []int          // line of each LUOSession name
	envIndex    map[string]int // position of each name in Environment
	luoSeen     map[string]bool

	// moreWarnings and moreErrors count the problems beyond MaxDiagnostics.
	moreWarnings, moreErrors int
}

func parse(name, path string, data []byte) (*Unit, error) {
	file := name
	if path != "" {
		file = path
	}
	if len(data) > MaxFileSize {
		return nil, errFileTooLarge(file)
	}
	if err := checkUnitName(name); err != nil {
		return nil, &ParseError{File: file, Err: fmt.Errorf("%q: %w", name, err)}
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, &ParseError{File: file, Line: 1 + bytes.Count(data[:i], []byte{'\n'}), Err: errors.New("file contains a NUL byte")}
	}
	// systemd skips a byte order mark at the start of the file.
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	if err := checkLines(file, data); err != nil {
		return nil, err
	}
	opts, scanned, err := readOptions(file, data)
	if err != nil {
		return nil, err
	}

	u := &Unit{
		Name:                    name,
		Path:                    path,
		RestartSec:              DefaultRestartSec,
		TimeoutStartSec:         DefaultTimeout,
		TimeoutStopSec:          DefaultTimeout,
		KillSignal:              DefaultKillSignal,
		StartLimitIntervalSec:   DefaultStartLimitIntervalSec,
		StartLimitBurst:         DefaultStartLimitBurst,
		LogRateLimitIntervalSec: DefaultLogRateLimitIntervalSec,
		LogRateLimitBurst:       DefaultLogRateLimitBurst,
		PreserveMaxBytes:        NoLimit,
		StandardError:           outputUnset,
	}
	p := &parser{u: u, file: file, spec: newSpecifiers(name)}
	if scanned.strayLine > 0 {
		p.warn(option{line: scanned.strayLine}, "text before the first section, ignored")
	}
	for _, s := range scanned.sections {
		switch {
		case !stringIsSafe(s.name):
			// systemd's config_parse() refuses these too.
			p.fail(option{section: s.name, line: s.line}, errors.New("invalid section name (want no control characters, quotes or backslash)"))
		case !knownSection(s.name) && !strings.HasPrefix(s.name, "X-"):
			p.warn(option{section: s.name, line: s.line}, "unknown section, ignored")
		}
	}
	for _, o := range opts {
		p.option(o)
	}
	p.finish()
	if len(p.errs) > 0 {
		if p.moreErrors > 0 {
			p.errs = append(p.errs, &ParseError{File: file, Err: fmt.Errorf("%d more errors not shown", p.moreErrors)})
		}
		return nil, errors.Join(p.errs...)
	}
	sort.SliceStable(u.Warnings, func(i, j int) bool { return u.Warnings[i].Line < u.Warnings[j].Line })
	if p.moreWarnings > 0 {
		u.Warnings = append(u.Warnings, Warning{File: file, Message: fmt.Sprintf("%d more warnings not shown", p.moreWarnings)})
	}
	return u, nil
}

// LUOSection is luod's own section of a unit file. systemd ignores
// sections whose names begin with "X-", so a unit file that sets luod's
// own settings there still loads under systemd without a warning.
const LUOSection = "X-LUO"

func knownSection(s string) bool {
	return s == "Unit" || s == "Service" || s == "Install" || s == LUOSection
}

// readOptions parses data with go-systemd and finds the line of every
// option and section header with scan.
//
// go-systemd refuses lines of 2048 bytes and more (its SYSTEMD_LINE_MAX,
// the LINE_MAX systemd once read lines with; systemd now reads lines of up
// to LONG_LINE_MAX, a megabyte, which checkLines has checked). scan reads
// the same syntax as go-systemd without that limit, and FuzzParse checks on
// random input, long lines included, that both find the same options; so
// where go-systemd stops only because of a long line, the options scan
// found are used instead.
func readOptions(file string, data []byte) ([]option, scanResult, error) {
	sdOpts, sdErr := sdunit.DeserializeOptions(bytes.NewReader(data))
	res, scanErr := scan(data)
	scanned := res.options
	if errors.Is(sdErr, sdunit.ErrLineTooLong) && scanErr == nil {
		sdOpts, sdErr = res.unitOptions(), nil
	}
	if sdErr != nil {
		e := &ParseError{File: file, Err: fmt.Errorf("syntax error: %w", sdErr)}
		if scanErr != nil {
			// The same error, with a clearer message.
			e.Line, e.Err = scanErr.line, errors.New("syntax error: "+scanErr.msg)
		}
		return nil, scanResult{}, e
	}
	linesKnown := scanErr == nil && len(scanned) == len(sdOpts)
	for i := 0; linesKnown && i < len(sdOpts); i++ {
		o, s := sdOpts[i], scanned[i]
		linesKnown = o.Section == s.section && o.Name == s.name && o.Value == s.value
	}
	opts := make([]option, len(sdOpts))
	for i, o := range sdOpts {
		opts[i] = option{section: o.Section, key: o.Name, value: joinContinuations(o.Value)}
		if linesKnown {
			opts[i].line = scanned[i].line
		}
	}
	if !linesKnown {
		// Cannot happen as long as scan mirrors go-systemd (FuzzParse
		// checks it); fall back to sections without lines.
		res = scanResult{}
		seen := map[string]bool{}
		for _, o := range sdOpts {
			if !seen[o.Section] {
				seen[o.Section] = true
				res.sections = append(res.sections, scannedSection{name: o.Section})
			}
		}
	}
	return opts, res, nil
}

func (p *parser) warn(o option, format string, args ...any) {
	if len(p.u.Warnings) >= MaxDiagnostics {
		p.moreWarnings++
		return
	}
	p.u.Warnings = append(p.u.Warnings, Warning{
		File: p.file, Line: o.line, Section: o.section, Key: o.key,
		Message: fmt.Sprintf(format, args...),
	})
}

func (p *parser) fail(o option, err error) {
	if len(p.errs) >= MaxDiagnostics {
		p.moreErrors++
		return
	}
	p.errs = append(p.errs, &ParseError{
		File: p.file, Line: o.line, Section: o.section, Key: o.key, Value: o.value, Err: err,
	})
}

func (p *parser) failf(o option, format string, args ...any) {
	p.fail(o, fmt.Errorf(format, args...))
}

// expand expands specifiers, reporting a failure against o.
func (p *parser) expand(o option, s string) (string, bool) {
	v, err := p.spec.expand(s)
	if err != nil {
		p.fail(o, err)
		return "", false
	}
	return v, true
}

// handlers implement the keys luod supports. An empty value resets the
// setting to its default (lists become empty), as systemd does for most
// settings.
var handlers = map[string]func(*parser, option){
	"Unit.Description":                    (*parser).description,
	"Unit.Documentation":                  func(*parser, option) {}, // informational only
	"Unit.StartLimitIntervalSec":          (*parser).startLimitInterval,
	"Unit.StartLimitInterval":             (*parser).startLimitInterval,
	"Unit.StartLimitBurst":                (*parser).startLimitBurst,
	"Service.StartLimitInterval":          (*parser).startLimitInterval,
	"Service.StartLimitBurst":             (*parser).startLimitBurst,
	"Service.Type":                        (*parser).serviceType,
	"Service.ExecStart":                   (*parser).execStart,
	"Service.RemainAfterExit":             (*parser).remainAfterExit,
	"Service.Environment":                 (*parser).environment,
	"Service.EnvironmentFile":             (*parser).environmentFile,
	"Service.WorkingDirectory":            (*parser).workingDirectory,
	"Service.User":                        (*parser).userGroup,
	"Service.Group":                       (*parser).userGroup,
	"Service.Restart":                     (*parser).restartPolicy,
	"Service.RestartSec":                  (*parser).restartSec,
	"Service.TimeoutSec":                  (*parser).timeout,
	"Service.TimeoutStartSec":             (*parser).timeout,
	"Service.TimeoutStopSec":              (*parser).timeout,
	"Service.KillSignal":                  (*parser).killSignal,
	"Service.NotifyAccess":                (*parser).notifyAccess,
	"Service.FileDescriptorStoreMax":      (*parser).fdStoreMax,
	"Service.FileDescriptorStorePreserve": (*parser).fdStorePreserve,
	"Service.LUOSession":                  (*parser).luoSession,
	"Service.LogRateLimitIntervalSec":     (*parser).logRateLimitInterval,
	"Service.LogRateLimitBurst":           (*parser).logRateLimitBurst,
	LUOSection + ".PreserveMaxBytes":      (*parser).preserveMaxBytes,
	"Service.StandardOutput":              (*parser).standardOutput,
	"Service.StandardError":               (*parser).standardError,
}

// deprecated maps the old spellings of keys, which systemd still accepts,
// to the current ones; using one draws a warning.
var deprecated = map[string]string{
	"Unit.StartLimitInterval":    "StartLimitIntervalSec=",
	"Service.StartLimitInterval": "[Unit] StartLimitIntervalSec=",
	"Service.StartLimitBurst":    "[Unit] StartLimitBurst=",
}

// unsupportedHints say what luod does instead of what a key systemd knows
// asks for.
var unsupportedHints = map[string]string{
	"Unit.StartLimitAction":    " (a unit that hits the start limit fails, as with StartLimitAction=none)",
	"Service.StartLimitAction": " (a unit that hits the start limit fails, as with StartLimitAction=none)",
}

func (p *parser) option(o option) {
	if !knownSection(o.section) {
		return // warned about once, at the section header
	}
	id := o.section + "." + o.key
	if now, ok := deprecated[id]; ok {
		p.warn(o, "deprecated, use %s instead", now)
	}
	if h, ok := handlers[id]; ok {
		h(p, o)
		return
	}
	switch {
	case strings.HasPrefix(o.key, "X-"):
		// Extension keys are for other programs, as in systemd.
	case isSystemdKey(o.section, o.key):
		p.warn(o, "not supported by luod, ignored%s", unsupportedHints[id])
	case sectionOf(o.key, o.section) != "":
		p.warn(o, "unknown key in this section, ignored (%s= belongs in the [%s] section)", o.key, sectionOf(o.key, o.section))
	default:
		p.warn(o, "unknown key, ignored")
	}
}

func (p *parser) description(o option) {
	if v, ok := p.expand(o, o.value); ok {
		p.u.Description = v
	}
}

// enum parses a value of one of names, returning its index; def is the
// index for an empty value. unsupported lists systemd's other values.
func (p *parser) enum(o option, names []string, def int, unsupported ...string) (int, bool) {
	if o.value == "" {
		return def, true
	}
	if i := slices.Index(names, o.value); i >= 0 {
		return i, true
	}
	want := "want " + orList(names)
	if slices.Contains(unsupported, o.value) {
		p.fail(o, fmt.Errorf("not supported by luod (%s): %w", want, errors.ErrUnsupported))
	} else {
		p.failf(o, "invalid value (%s)", want)
	}
	return 0, false
}

// orList formats "a, b or c".
func orList(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func (p *parser) serviceType(o option) {
	if i, ok := p.enum(o, typeNames, int(TypeSimple), "exec", "forking", "dbus", "notify-reload", "idle"); ok {
		p.u.Type = Type(i)
	}
}

func (p *parser) restartPolicy(o option) {
	p.restart = o
	if i, ok := p.enum(o, restartNames, int(RestartNo), "on-success", "on-abnormal", "on-watchdog", "on-abort"); ok {
		p.u.Restart = RestartPolicy(i)
	}
}

// capturedOutputs are the values of StandardOutput= and StandardError=
// that send the stream to the journal or syslog in systemd: luod captures
// them as it does journal.
var capturedOutputs = []string{"journal+console", "kmsg", "kmsg+console", "syslog", "syslog+console"}

// unsupportedOutputs are systemd's other values, which luod refuses (the
// ones with an argument are matched by their prefix).
var unsupportedOutputs = []string{"tty", "socket", "file:", "append:", "truncate:", "fd:"}

// output parses a value of StandardOutput= or StandardError=; inherit is
// what "inherit" gives.
func (p *parser) output(o option, inherit Output) (Output, bool) {
	switch {
	case o.value == "":
		return OutputJournal, true
	case o.value == "inherit":
		return inherit, true
	case slices.Contains(capturedOutputs, o.value):
		p.warn(o, "luod captures %s as journal: each line goes to luod's log with the unit's name", o.value)
		return OutputJournal, true
	}
	if i := slices.Index(outputNames, o.value); i >= 0 {
		return Output(i), true
	}
	want := "want journal, inherit or null"
	for _, u := range unsupportedOutputs {
		if o.value == u || strings.HasSuffix(u, ":") && strings.HasPrefix(o.value, u) {
			p.fail(o, fmt.Errorf("not supported by luod (%s): %w", want, errors.ErrUnsupported))
			return 0, false
		}
	}
	p.failf(o, "invalid value (%s)", want)
	return 0, false
}

func (p *parser) standardOutput(o option) {
	if v, ok := p.output(o, OutputInherit); ok {
		p.u.StandardOutput = v
	}
}

func (p *parser) standardError(o option) {
	if o.value == "" {
		p.u.StandardError = outputUnset
		return
	}
	if v, ok := p.output(o, outputUnset); ok {
		p.u.StandardError = v
	}
}

func (p *parser) notifyAccess(o option) {
	p.notify = o
	if o.value == "" {
		p.u.NotifyAccess, p.u.NotifyAccessExplicit = NotifyAccessNone, false
		return
	}
	if i, ok := p.enum(o, notifyAccessNames, 0); ok {
		p.u.NotifyAccess, p.u.NotifyAccessExplicit = NotifyAccess(i), true
	}
}

// fdStorePreserve parses FileDescriptorStorePreserve=, which, like every
// ExecPreserveMode setting of systemd, also takes a boolean.
func (p *parser) fdStorePreserve(o option) {
	p.preserve, p.preserveSet = o, o.value != ""
	if o.value == "" {
		p.u.FileDescriptorStorePreserve = PreserveRestart
		return
	}
	if i := slices.Index(preserveNames, o.value); i >= 0 {
		p.u.FileDescriptorStorePreserve = Preserve(i)
		return
	}
	b, err := parseBoolean(o.value)
	if err != nil {
		p.failf(o, "invalid value (want no, yes, restart or on-success)")
		return
	}
	p.u.FileDescriptorStorePreserve = PreserveNo
	if b {
		p.u.FileDescriptorStorePreserve = PreserveYes
	}
}

func (p *parser) remainAfterExit(o option) {
	if o.value == "" {
		p.u.RemainAfterExit = false
		return
	}
	b, err := parseBoolean(o.value)
	if err != nil {
		p.fail(o, err)
		return
	}
	p.u.RemainAfterExit = b
}

func (p *parser) execStart(o option) {
	if o.value == "" {
		p.u.ExecStart, p.execOpts, p.execFailed = nil, nil, false
		return
	}
	c, warnings, err := parseCommand(o.value, p.spec.expand)
	if err != nil {
		p.fail(o, err)
		p.execFailed = true
		return
	}
	for _, w := range warnings {
		p.warn(o, "%s", w)
	}
	p.u.ExecStart = append(p.u.ExecStart, c)
	p.execOpts = append(p.execOpts, o)
}

// environment parses Environment= as systemd's config_parse_environ():
// words with quotes and C escapes, specifiers expanded in each.
func (p *parser) environment(o option) {
	if o.value == "" {
		p.u.Environment, p.envIndex = nil, nil
		return
	}
	words, err := splitWords(o.value, extractUnquote|extractCUnescape)
	if err != nil {
		p.fail(o, err)
		return
	}
	for _, w := range words {
		a, ok := p.expand(o, w)
		if !ok {
			return
		}
		if !envAssignmentIsValid(a) {
			p.failf(o, "invalid assignment %s (want NAME=VALUE, NAME made of letters, digits and _, not starting with a digit)", quote(a))
			return
		}
		name, _, _ := strings.Cut(a, "=")
		if i, ok := p.envIndex[name]; ok {
			p.u.Environment[i] = a
			continue
		}
		if p.envIndex == nil {
			p.envIndex = make(map[string]int)
		}
		p.envIndex[name] = len(p.u.Environment)
		p.u.Environment = append(p.u.Environment, a)
	}
}

func (p *parser) environmentFile(o option) {
	if o.value == "" {
		p.u.EnvironmentFiles = nil
		return
	}
	v, optional := strings.CutPrefix(o.value, "-")
	v, ok := p.expand(o, v)
	if !ok {
		return
	}
	path, err := absolutePath(v)
	if err != nil {
		p.fail(o, err)
		return
	}
	p.u.EnvironmentFiles = append(p.u.EnvironmentFiles, EnvironmentFile{Path: path, Optional: optional})
}

func (p *parser) workingDirectory(o option) {
	if o.value == "" {
		p.u.WorkingDirectory, p.u.WorkingDirectoryOptional = "", false
		return
	}
	v, optional := strings.CutPrefix(o.value, "-")
	if v != "~" {
		var ok bool
		if v, ok = p.expand(o, v); !ok {
			return
		}
		var err error
		if v, err = absolutePath(v); err != nil {
			p.fail(o, fmt.Errorf("%w (want an absolute path or ~)", err))
			return
		}
	}
	p.u.WorkingDirectory, p.u.WorkingDirectoryOptional = v, optional
}

func (p *parser) userGroup(o option) {
	field := &p.u.User
	if o.key == "Group" {
		field = &p.u.Group
	}
	if o.value == "" {
		*field = ""
		return
	}
	v, ok := p.expand(o, o.value)
	if !ok {
		return
	}
	if err := checkUserGroup(v); err != nil {
		p.failf(o, "invalid user or group (%v)", err)
		return
	}
	*field = v
}

func (p *parser) restartSec(o option) {
	if o.value == "" {
		p.u.RestartSec = DefaultRestartSec
		return
	}
	d, err := parseDuration(o.value)
	if err != nil {
		p.failf(o, "%v (want a time span like 100ms, 5s or 1min 30s)", err)
		return
	}
	p.u.RestartSec = d
}

func (p *parser) timeout(o option) {
	d := DefaultTimeout
	if o.value != "" {
		var err error
		if d, err = parseTimeout(o.value); err != nil {
			p.failf(o, "%v (want a time span like 90s or 1min 30s, or infinity)", err)
			return
		}
	}
	if o.key != "TimeoutStopSec" {
		p.u.TimeoutStartSec = d
	}
	if o.key != "TimeoutStartSec" {
		p.u.TimeoutStopSec = d
	}
}

func (p *parser) killSignal(o option) {
	if o.value == "" {
		p.u.KillSignal = DefaultKillSignal
		return
	}
	sig, err := parseSignal(o.value)
	if err != nil {
		p.fail(o, err)
		return
	}
	p.u.KillSignal = sig
}

func (p *parser) fdStoreMax(o option) {
	if o.value == "" {
		p.u.FileDescriptorStoreMax = 0
		return
	}
	n, err := parseUnsigned(o.value)
	if err != nil {
		p.fail(o, err)
		return
	}
	p.u.FileDescriptorStoreMax = n
}

// preserveMaxBytes parses [X-LUO] PreserveMaxBytes=: a size, or infinity
// or empty for no limit.
func (p *parser) preserveMaxBytes(o option) {
	if o.value == "" || o.value == "infinity" {
		p.u.PreserveMaxBytes = NoLimit
		return
	}
	n, err := ParseSize(o.value)
	if err != nil {
		p.failf(o, "%v (want a size like 512M, 1.5G or 4096, or infinity)", err)
		return
	}
	p.u.PreserveMaxBytes = n
}

// interval parses the interval of a rate limit: a time span, 0 or
// infinity, def when empty.
func (p *parser) interval(o option, def time.Duration) (time.Duration, bool) {
	if o.value == "" {
		return def, true
	}
	d, err := parseInterval(o.value)
	if err != nil {
		p.failf(o, "%v (want a time span like 10s or 1min 30s, 0 or infinity)", err)
		return 0, false
	}
	return d, true
}

// burst parses the burst of a rate limit: a number, def when empty.
func (p *parser) burst(o option, def uint) (uint, bool) {
	if o.value == "" {
		return def, true
	}
	n, err := parseUnsigned(o.value)
	if err != nil {
		p.fail(o, err)
		return 0, false
	}
	return n, true
}

func (p *parser) startLimitInterval(o option) {
	if d, ok := p.interval(o, DefaultStartLimitIntervalSec); ok {
		p.u.StartLimitIntervalSec = d
	}
}

func (p *parser) startLimitBurst(o option) {
	if n, ok := p.burst(o, DefaultStartLimitBurst); ok {
		p.u.StartLimitBurst = n
	}
}

// logRateLimitInterval parses LogRateLimitIntervalSec=, where 0 means the
// default: systemd does not pass it on to journald (see Unit).
func (p *parser) logRateLimitInterval(o option) {
	d, ok := p.interval(o, DefaultLogRateLimitIntervalSec)
	if !ok {
		return
	}
	if d == 0 {
		p.warn(o, "0 does not turn rate limiting off: as in systemd, it means the default, %v", DefaultLogRateLimitIntervalSec)
		d = DefaultLogRateLimitIntervalSec
	}
	p.u.LogRateLimitIntervalSec = d
}

// logRateLimitBurst parses LogRateLimitBurst=, where 0 means the default.
func (p *parser) logRateLimitBurst(o option) {
	n, ok := p.burst(o, DefaultLogRateLimitBurst)
	if !ok {
		return
	}
	if n == 0 {
		p.warn(o, "0 does not turn rate limiting off: as in systemd, it means the default, %d", DefaultLogRateLimitBurst)
		n = DefaultLogRateLimitBurst
	}
	p.u.LogRateLimitBurst = n
}

func (p *parser) luoSession(o option) {
	if o.value == "" {
		p.u.LUOSessions, p.luoLines, p.luoSeen = nil, nil, nil
		return
	}
	for _, name := range strings.Fields(o.value) {
		if err := checkLUOSessionName(name); err != nil {
			p.failf(o, "invalid session name %s: %v", quote(name), err)
			continue
		}
		if p.luoSeen[name] {
			p.warn(o, "duplicate session name %s, ignored", quote(name))
			continue
		}
		if p.luoSeen == nil {
			p.luoSeen = make(map[string]bool)
		}
		p.luoSeen[name] = true
		p.u.LUOSessions = append(p.u.LUOSessions, name)
		p.luoLines = append(p.luoLines, o.line)
	}
}

// finish checks the settings that depend on each other.
func (p *parser) finish() {
	u := p.u
	switch {
	case len(u.ExecStart) == 0 && !p.execFailed:
		p.fail(option{section: "Service", key: "ExecStart"}, errors.New("no ExecStart= command (a service needs one)"))
	case len(u.ExecStart) > 1 && u.Type != TypeOneshot:
		p.fail(p.execOpts[1], fmt.Errorf("more than one ExecStart= command, which only Type=oneshot allows (Type=%s)", u.Type))
	}
	if u.Type == TypeOneshot && u.Restart == RestartAlways {
		p.fail(p.restart, errors.New("not allowed with Type=oneshot (want no or on-failure)"))
	}
	if u.Type == TypeNotify && u.NotifyAccessExplicit && u.NotifyAccess == NotifyAccessNone {
		p.warn(p.notify, "with Type=notify the service can never report READY=1, so it cannot start")
	}
	if p.preserveSet && u.EffectiveFileDescriptorStoreMax() == 0 &&
		(u.FileDescriptorStorePreserve == PreserveYes || u.FileDescriptorStorePreserve == PreserveOnSuccess) {
		p.warn(p.preserve, "has no effect: the fd store is disabled (FileDescriptorStoreMax=0)")
	}
	if len(u.LUOSessions) > 0 && u.FileDescriptorStorePreserve != PreserveYes && u.FileDescriptorStorePreserve != PreserveOnSuccess {
		p.warn(option{section: "Service", key: "LUOSession", line: p.luoLines[0]},
			"the sessions are not preserved across a live update unless FileDescriptorStorePreserve=yes or on-success (it is %s)",
			u.FileDescriptorStorePreserve)
	}
}
