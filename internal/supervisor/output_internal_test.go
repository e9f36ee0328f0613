package supervisor

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestSplitter(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", maxLineBytes)
	euro := strings.Repeat("a", maxLineBytes-1) + "€b" // the rune straddles the limit
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"lines", []string{"a\nb\n"}, []string{"a", "b"}},
		{"across writes", []string{"a", "b\nc", "\n"}, []string{"ab", "c"}},
		{"empty lines", []string{"\n\n"}, []string{"", ""}},
		{"unterminated", []string{"tail"}, []string{"tail"}},
		{"exactly the limit", []string{long + "\n"}, []string{long}},
		{"limit across writes", []string{long[:100], long[100:], "\nx\n"}, []string{long, "x"}},
		{"one over", []string{long + "b\n"}, []string{long, "b"}},
		{"split at a rune", []string{euro + "\n"}, []string{euro[:maxLineBytes-1], "€b"}},
		{"very long", []string{strings.Repeat("z", 3*maxLineBytes+5)}, []string{
			strings.Repeat("z", maxLineBytes), strings.Repeat("z", maxLineBytes), strings.Repeat("z", maxLineBytes), "zzzzz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			emit := func(b []byte) { got = append(got, string(b)) }
			var s splitter
			for _, w := range tt.writes {
				s.write([]byte(w), emit)
			}
			s.flush(emit)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		prio int
		text string
	}{
		{"plain", 6, "plain"},
		{"<3>error", 3, "error"},
		{"<7>", 7, ""},
		{"<27>daemon err", 3, "daemon err"},
		{"<191>max", 7, "max"},
		{"<192>too big", 6, "<192>too big"},
		{"<x>not", 6, "<x>not"},
		{"<+1>sign", 6, "<+1>sign"},
		{"<>empty", 6, "<>empty"},
		{"<3", 6, "<3"},
		{"crlf\r", 6, "crlf"},
		{"bad \xff\xfe utf8", 6, "bad \uFFFD utf8"},
	}
	for _, tt := range tests {
		l := newLine(time.Time{}, "stdout", []byte(tt.in))
		if l.Priority != tt.prio || l.Text != tt.text {
			t.Errorf("newLine(%q) = %d %q, want %d %q", tt.in, l.Priority, l.Text, tt.prio, tt.text)
		}
	}
}

func TestPriorityLevel(t *testing.T) {
	t.Parallel()
	want := []slog.Level{slog.LevelError + 3, slog.LevelError + 2, slog.LevelError + 1, slog.LevelError, slog.LevelWarn, slog.LevelInfo + 1, slog.LevelInfo, slog.LevelDebug}
	for p, w := range want {
		if got := PriorityLevel(p); got != w {
			t.Errorf("PriorityLevel(%d) = %v, want %v", p, got, w)
		}
	}
}

// TestOutputBounded checks the recent lines' bounds and that a follower
// that does not read loses lines rather than block.
func TestOutputBounded(t *testing.T) {
	t.Parallel()
	o := newOutput("x.service", slog.New(slog.DiscardHandler))
	_, f := o.follow(0)
	for i := range 3 * recentLines {
		o.add(Line{Time: time.Now(), Stream: "stdout", Priority: 6, Text: strings.Repeat("a", i%2000)})
	}
	ls := o.last(-1)
	n := 0
	for _, l := range ls {
		n += len(l.Text)
	}
	if len(ls) > recentLines || n > recentBytes || len(ls) == 0 {
		t.Errorf("kept %d lines of %d bytes, want at most %d and %d", len(ls), n, recentLines, recentBytes)
	}
	if len(f.ch) != followQueue || f.lost.Load() != int64(3*recentLines-followQueue) {
		t.Errorf("follower queued %d and lost %d", len(f.ch), f.lost.Load())
	}
	o.remove()
	select {
	case <-f.gone:
	default:
		t.Error("remove did not end the follower")
	}
	if _, f := o.follow(1); f != nil {
		t.Error("follow after remove gave a follower")
	}
}
