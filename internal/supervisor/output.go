package supervisor

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// A unit's captured output (StandardOutput=journal): what its processes
// write to stdout and stderr, line by line. Each line goes to the unit's
// recent lines (luoctl status, luoctl logs) and, within the unit's log
// rate limit, to luod's log. The pipes are read off the loop (see
// output_linux.go); nothing here blocks on a reader of the lines.

// Limits of the captured output.
const (
	// maxLineBytes bounds a line; a longer one is split.
	maxLineBytes = 4096
	// recentLines and recentBytes bound a unit's recent lines: the oldest
	// go first.
	recentLines = 1000
	recentBytes = 256 << 10
	// followQueue is how many lines wait for a slow follower before it
	// loses some (see follower.lost).
	followQueue = 256
	// defaultPriority is the syslog priority of a line without a prefix
	// (systemd's SyslogLevel=info).
	defaultPriority = 6
)

// Keys of the attributes of a captured line in luod's log: a record with
// LogKeyStream is a line the unit LogKeyUnit wrote, at the level of its
// syslog priority (see PriorityLevel), with the priority as LogKeyPriority.
const (
	LogKeyUnit     = "unit"
	LogKeyStream   = "stream"
	LogKeyPriority = "priority"
)

// Line is one line a unit wrote to stdout or stderr.
type Line struct {
	Time     time.Time
	Stream   string // "stdout" or "stderr"
	Priority int    // syslog priority, 0 (emerg) to 7 (debug)
	Text     string // valid UTF-8, without the newline or priority prefix
}

// PriorityLevel returns the slog level of a syslog priority: the levels of
// package slog for err, warning, info and debug, and the ones between and
// above them for notice (LevelInfo+1) and crit, alert and emerg
// (LevelError+1 to +3), as github.com/systemd/slog-journal names them.
func PriorityLevel(p int) slog.Level {
	switch {
	case p <= 3:
		return slog.LevelError + slog.Level(3-max(p, 0))
	case p == 4:
		return slog.LevelWarn
	case p == 5:
		return slog.LevelInfo + 1
	case p == 6:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// parsePriority strips a syslog priority prefix ("<3>", or with a
// facility, "<27>") from a line, as SyslogLevelPrefix=yes does.
func parsePriority(b []byte) (int, []byte) {
	if len(b) < 3 || b[0] != '<' {
		return defaultPriority, b
	}
	end := bytes.IndexByte(b[:min(len(b), 5)], '>')
	if end < 2 {
		return defaultPriority, b
	}
	n, err := strconv.Atoi(string(b[1:end]))
	if err != nil || n < 0 || n > 191 || b[1] == '+' {
		return defaultPriority, b
	}
	return n & 7, b[end+1:]
}

// newLine makes a Line of raw bytes: priority prefix stripped, a trailing
// CR dropped, invalid UTF-8 replaced.
func newLine(at time.Time, stream string, raw []byte) Line {
	prio, b := parsePriority(raw)
	b = bytes.TrimSuffix(b, []byte{'\r'})
	return Line{Time: at, Stream: stream, Priority: prio, Text: strings.ToValidUTF8(string(b), "\uFFFD")}
}

// splitter cuts a stream into lines of at most maxLineBytes. Not safe for
// concurrent use.
type splitter struct {
	pending []byte
}

// write feeds b, calling emit for each complete line.
func (s *splitter) write(b []byte, emit func([]byte)) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		room := maxLineBytes - len(s.pending)
		if len(chunk) > room {
			// Too long: cut at a rune boundary when there is one near.
			cut := room
			for k := cut; k > 0 && k > cut-utf8.UTFMax; k-- {
				if utf8.RuneStart(chunk[k]) {
					cut = k
					break
				}
			}
			s.pending = append(s.pending, chunk[:cut]...)
			emit(s.pending)
			s.pending = s.pending[:0]
			b = b[cut:]
			continue
		}
		s.pending = append(s.pending, chunk...)
		if i < 0 {
			return
		}
		emit(s.pending)
		s.pending = s.pending[:0]
		b = b[i+1:]
	}
}

// flush emits what is left, if anything: a last line without a newline.
func (s *splitter) flush(emit func([]byte)) {
	if len(s.pending) > 0 {
		emit(s.pending)
		s.pending = s.pending[:0]
	}
}

// output is a unit's captured output. Safe for concurrent use: the pipe
// readers add lines, control calls read them, the loop changes the limits
// and the readers.
type output struct {
	unit string
	log  *slog.Logger

	mu     sync.Mutex
	recent []Line // oldest first
	bytes  int    // of the texts in recent
	limit  logLimit
	// followers get every line as it comes (luoctl logs -f).
	followers map[*follower]struct{}
	// removed is set when the unit is gone: followers end.
	removed bool
	// readers are the pipes being read (see output_linux.go).
	readers map[*reader]struct{}
}

func newOutput(unit string, log *slog.Logger) *output {
	return &output{unit: unit, log: log, followers: map[*follower]struct{}{}, readers: map[*reader]struct{}{}}
}

// setLimit sets the log rate limit (LogRateLimitIntervalSec=,
// LogRateLimitBurst=).
func (o *output) setLimit(interval time.Duration, burst int) {
	o.mu.Lock()
	o.limit.interval, o.limit.burst = interval, burst
	o.mu.Unlock()
}

// add takes one line: into the recent lines and to the followers always,
// into the log within the rate limit.
func (o *output) add(l Line) {
	level := PriorityLevel(l.Priority)
	enabled := o.log.Enabled(context.Background(), level)
	o.mu.Lock()
	o.recent = append(o.recent, l)
	o.bytes += len(l.Text)
	drop := 0
	for len(o.recent)-drop > recentLines || o.bytes > recentBytes {
		o.bytes -= len(o.recent[drop].Text)
		o.recent[drop] = Line{}
		drop++
	}
	if drop > 0 {
		o.recent = o.recent[drop:]
	}
	for f := range o.followers {
		f.send(l)
	}
	ok, dropped := true, 0
	if enabled {
		// A line not logged does not count against the limit.
		ok, dropped = o.limit.allow(l.Time)
	}
	o.mu.Unlock()
	if dropped > 0 {
		o.log.Warn("log lines suppressed by the rate limit", "lines", dropped, LogKeyUnit, o.unit)
	}
	if ok && enabled {
		o.log.Log(context.Background(), level, l.Text, LogKeyUnit, o.unit, LogKeyStream, l.Stream, LogKeyPriority, l.Priority)
	}
}

// last returns the last n recent lines (all for n < 0).
func (o *output) last(n int) []Line {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n < 0 || n > len(o.recent) {
		n = len(o.recent)
	}
	return append([]Line(nil), o.recent[len(o.recent)-n:]...)
}

// follow returns the last n recent lines and a follower that gets every
// line added after them, or nil when the unit is gone. The caller must
// call unfollow.
func (o *output) follow(n int) ([]Line, *follower) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n < 0 || n > len(o.recent) {
		n = len(o.recent)
	}
	lines := append([]Line(nil), o.recent[len(o.recent)-n:]...)
	if o.removed {
		return lines, nil
	}
	f := &follower{ch: make(chan Line, followQueue), gone: make(chan struct{})}
	o.followers[f] = struct{}{}
	return lines, f
}

// unfollow stops f.
func (o *output) unfollow(f *follower) {
	o.mu.Lock()
	delete(o.followers, f)
	o.mu.Unlock()
}

// remove ends the followers: the unit is gone.
func (o *output) remove() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.removed = true
	for f := range o.followers {
		close(f.gone)
		delete(o.followers, f)
	}
}

// follower gets the lines of a unit as they come. A follower that does not
// keep up loses lines rather than hold up the unit's reader.
type follower struct {
	ch   chan Line
	gone chan struct{} // closed when the unit is removed
	// lost counts the lines dropped because ch was full.
	lost atomic.Int64
}

// send queues l without blocking. Called with the output's lock held.
func (f *follower) send(l Line) {
	select {
	case f.ch <- l:
	default:
		f.lost.Add(1)
	}
}
