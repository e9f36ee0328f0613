package cli

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// table lays out rows in columns two spaces apart, like systemctl's.
type table struct {
	rows [][]string
}

// row adds a row; empty cells print as "-".
func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	t.rows = append(t.rows, cells)
}

// write prints the table, with no trailing spaces.
func (t *table) write(w io.Writer) {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		b.Reset()
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// fields prints "label: value" lines with the labels right-aligned, like
// systemctl status.
type fields struct {
	w     io.Writer
	width int
}

func (f fields) line(label, format string, args ...any) {
	fmt.Fprintf(f.w, "%*s: %s\n", f.width, label, fmt.Sprintf(format, args...))
}

// timestamp formats t like systemd: "Tue 2026-08-04 10:00:00 UTC".
func (a *app) timestamp(t time.Time) string {
	return t.In(a.env.location()).Format("Mon 2006-01-02 15:04:05 MST")
}

// since formats t as "Tue 2026-08-04 10:00:00 UTC; 3min 2s ago".
func (a *app) since(t time.Time) string {
	return a.timestamp(t) + "; " + ago(a.env.now().Sub(t))
}

// ago formats how long ago something was, as systemd's
// format_timestamp_relative does.
func ago(d time.Duration) string {
	const (
		day   = 24 * time.Hour
		week  = 7 * day
		month = 2629800 * time.Second  // systemd's USEC_PER_MONTH
		year  = 31557600 * time.Second // USEC_PER_YEAR
	)
	switch {
	case d < 0:
		return "in the future"
	case d >= year:
		return fmt.Sprintf("%d years %d months ago", d/year, d%year/month)
	case d >= month:
		return fmt.Sprintf("%d months %d days ago", d/month, d%month/day)
	case d >= week:
		return fmt.Sprintf("%d weeks %d days ago", d/week, d%week/day)
	case d >= 2*day:
		return fmt.Sprintf("%d days ago", d/day)
	case d >= 25*time.Hour:
		return fmt.Sprintf("1 day %dh ago", (d-day)/time.Hour)
	case d >= 6*time.Hour:
		return fmt.Sprintf("%dh ago", d/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dmin ago", d/time.Hour, d%time.Hour/time.Minute)
	case d >= 5*time.Minute:
		return fmt.Sprintf("%dmin ago", d/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dmin %ds ago", d/time.Minute, d%time.Minute/time.Second)
	case d >= time.Second:
		return fmt.Sprintf("%ds ago", d/time.Second)
	case d >= time.Millisecond:
		return fmt.Sprintf("%dms ago", d/time.Millisecond)
	case d > 0:
		return fmt.Sprintf("%dus ago", d/time.Microsecond)
	}
	return "now"
}

// humanBytes formats a size in powers of 1024: "512B", "4.0K", "1.5M".
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	const units = "KMGTPE"
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%c", v, units[i])
}

// seconds formats a duration as "1.234s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.3fs", d.Seconds())
}

// plural returns "1 unit" or "2 units".
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
