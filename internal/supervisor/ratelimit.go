package supervisor

import (
	"context"
	"log/slog"
	"time"
)

// Log rate limiting, as journald applies LogRateLimitIntervalSec= and
// LogRateLimitBurst= to a service: within each interval at most burst
// lines; the rest are dropped and counted, and the count is logged when
// the next interval begins. luod applies it to every line a service's
// input makes it log, so that no service can flood luod's log.

// Defaults of the limits, as journald's (RateLimitIntervalSec=30s,
// RateLimitBurst=10000).
const (
	defaultLogRateLimitInterval = 30 * time.Second
	defaultLogRateLimitBurst    = 10000
)

// logLimit is the rate limit of one source of log lines. Its zero value
// uses the defaults. Not safe for concurrent use (the loop owns it).
type logLimit struct {
	interval time.Duration // 0: the default; negative: no limit
	burst    int           // 0: the default

	start      time.Time // of the current interval
	n          int       // lines in the current interval
	suppressed int       // lines dropped in the current interval
}

// allow reports whether a line may be logged at now. When a new interval
// begins after lines were dropped, it also returns how many, for the
// caller to log once.
func (l *logLimit) allow(now time.Time) (ok bool, dropped int) {
	interval, burst := l.interval, l.burst
	if interval == 0 {
		interval = defaultLogRateLimitInterval
	}
	if burst == 0 {
		burst = defaultLogRateLimitBurst
	}
	if interval < 0 {
		return true, 0
	}
	if l.start.IsZero() || now.Sub(l.start) >= interval {
		dropped = l.suppressed
		l.start, l.n, l.suppressed = now, 0, 0
	}
	if l.n >= burst {
		l.suppressed++
		return false, dropped
	}
	l.n++
	return true, dropped
}

// say logs a line caused by what the unit's service sent, within the
// unit's log rate limit.
func (u *Unit) say(level slog.Level, msg string, args ...any) {
	u.m.limited(&u.logLimit, level, msg, append([]any{"unit", u.name}, args...)...)
}

// sayAbout logs a line about a datagram from pid within the log limit of
// the unit pid belongs to, or else the strangers' limit.
func (m *Manager) sayAbout(pid int, level slog.Level, msg string, args ...any) {
	if u := m.owner(pid); u != nil {
		u.say(level, msg, append([]any{"pid", pid}, args...)...)
		return
	}
	m.stranger(level, msg, append([]any{"pid", pid}, args...)...)
}

// stranger logs a line caused by a datagram luod could not tie to a unit,
// within one rate limit shared by all such senders.
func (m *Manager) stranger(level slog.Level, msg string, args ...any) {
	m.limited(&m.strangers, level, msg, args...)
}

func (m *Manager) limited(l *logLimit, level slog.Level, msg string, args ...any) {
	if !m.log.Enabled(context.Background(), level) {
		return // not logged: it does not count against the limit
	}
	ok, dropped := l.allow(time.Now())
	if dropped > 0 {
		m.log.Warn("log lines suppressed by the rate limit", append([]any{"lines", dropped}, args[:min(len(args), 2)]...)...)
	}
	if ok {
		m.log.Log(context.Background(), level, msg, args...)
	}
}
