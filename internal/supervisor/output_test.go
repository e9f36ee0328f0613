//go:build linux

package supervisor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/cli"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

// shUnit is a unit running a shell script written to DIR/name.sh.
func shUnit(t *testing.T, dir, name, script, extra string) string {
	t.Helper()
	path := filepath.Join(dir, name+".sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "[Service]\nExecStart=/bin/sh " + path + "\n" + extra
}

func logs(t *testing.T, d *luodtest.Daemon, name string, n int) []control.LogLine {
	t.Helper()
	var rep control.LogLines
	d.MustCall(control.MethodGetLogs, control.LogsParams{Name: name, Lines: n}, &rep)
	return rep.Lines
}

func waitLine(t *testing.T, d *luodtest.Daemon, name, text string) []control.LogLine {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ls := logs(t, d, name, 0)
		for _, l := range ls {
			if l.Message == text {
				return ls
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not write %q within 30s; its last lines: %+v", name, text, ls[max(0, len(ls)-5):])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOutputCaptured runs a unit whose output is hostile (a priority
// prefix, a very long line, binary junk, a flood) next to a quiet one.
func TestOutputCaptured(t *testing.T) {
	dir := t.TempDir()
	const noisy = `echo "hello stdout"
echo "hello stderr" >&2
echo "<3>an error"
head -c 10000 /dev/zero | tr '\0' x; echo
printf 'bin \377\376\001 junk\n'
i=0
while [ $i -lt 3000 ]; do echo "flood $i"; i=$((i+1)); done
echo done-flooding
sleep 2.5
echo after the pause
exec sleep 1000
`
	const quiet = "echo quiet says hi\nexec sleep 1000\n"
	d := luodtest.Start(t, map[string]string{
		"noisy.service": shUnit(t, dir, "noisy", noisy, "LogRateLimitIntervalSec=2s\nLogRateLimitBurst=50\n"),
		"quiet.service": shUnit(t, dir, "quiet", quiet, ""),
	})
	d.WaitUnit("noisy.service", "active", active)
	ls := waitLine(t, d, "noisy.service", "done-flooding")
	// luod answers during the flood.
	var m control.Manager
	if err := d.CallWithin(5*time.Second, control.MethodGetManager, nil, &m); err != nil {
		t.Fatalf("GetManager during the flood: %v", err)
	}
	// The ring keeps the last 1000 lines.
	if len(ls) != 1000 {
		t.Errorf("kept %d lines, want 1000", len(ls))
	}
	if last := ls[len(ls)-1]; last.Message != "done-flooding" || last.Stream != "stdout" || last.Priority != 6 {
		t.Errorf("last line %+v", last)
	}
	// The newest lines, in order (the stderr line may come anywhere: the
	// streams are two pipes, read apart).
	for i, want := len(ls)-2, 2999; i >= 0 && want > 2010; i-- {
		if ls[i].Stream == "stderr" {
			continue
		}
		if ls[i].Message != fmt.Sprintf("flood %d", want) {
			t.Errorf("kept line %d is %q, want flood %d", i, ls[i].Message, want)
			break
		}
		want--
	}
	if got := logs(t, d, "noisy.service", 3); len(got) != 3 || got[2].Message != "done-flooding" || got[0].Message != "flood 2998" {
		t.Errorf("last 3 lines %+v", got)
	}

	log := strings.ReplaceAll(d.Log(), " prog=luod", "")
	for _, want := range []string{
		`level=INFO msg="hello stdout" unit=noisy.service stream=stdout priority=6`,
		`level=INFO msg="hello stderr" unit=noisy.service stream=stderr priority=6`,
		`level=ERROR msg="an error" unit=noisy.service stream=stdout priority=3`,
		"msg=\"bin \uFFFD\\x01 junk\" unit=noisy.service",
		"msg=" + strings.Repeat("x", 4096) + " unit=noisy.service",
		"msg=" + strings.Repeat("x", 10000-2*4096) + " unit=noisy.service",
		`msg="quiet says hi" unit=quiet.service stream=stdout`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("luod's log lacks %.120q", want)
		}
	}
	// The flood is rate limited in the log: 50 lines per 2s; once an
	// interval is over, one message says how many were dropped. Every
	// line is either logged or counted.
	d.WaitLog(`msg="after the pause" prog=luod unit=noisy.service`)
	log = strings.ReplaceAll(d.Log(), " prog=luod", "")
	logged := regexp.MustCompile(`unit=noisy.service stream=std`).FindAllString(log, -1)
	if len(logged) == 0 || len(logged) > 100 {
		t.Errorf("%d lines of noisy.service logged, want at most 2x50 (LogRateLimitBurst=50)", len(logged))
	}
	suppressed := 0
	for _, m := range regexp.MustCompile(`msg="log lines suppressed by the rate limit" lines=(\d+) unit=noisy.service`).FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[1])
		suppressed += n
	}
	const total = 7 + 3000 + 2 // hello x2, error, 3 pieces of the long line, junk; flood; done, after
	if len(logged)+suppressed != total {
		t.Errorf("%d lines logged and %d suppressed, want %d in all", len(logged), suppressed, total)
	}

	// The quiet unit got its line and none of the other's.
	q := logs(t, d, "quiet.service", 0)
	if len(q) != 1 || q[0].Message != "quiet says hi" {
		t.Errorf("quiet.service lines %+v", q)
	}
	if u := d.Unit("quiet.service"); !active(u) {
		t.Errorf("quiet.service %+v", u)
	}

	// GetUnit carries the last 10 lines.
	var ur control.UnitReply
	d.MustCall(control.MethodGetUnit, control.UnitName{Name: "noisy.service"}, &ur)
	if n := len(ur.Unit.Log); n != control.StatusLogLines || ur.Unit.Log[n-1].Message != "after the pause" {
		t.Errorf("GetUnit log %+v", ur.Unit.Log)
	}

	// The pipes go with the unit: luod's fd count drops by two when it
	// stops, and is back after a start and a stop.
	before := luodtest.FDs(t, d.PID())
	d.MustCall(control.MethodStopUnit, control.UnitName{Name: "noisy.service"}, nil)
	stopped := luodtest.FDs(t, d.PID())
	if stopped != before-2 {
		t.Errorf("fds: %d with noisy.service running, %d stopped; want 2 fewer", before, stopped)
	}
	shUnit(t, dir, "noisy", "echo second run\nexec sleep 1000\n", "")
	d.MustCall(control.MethodStartUnit, control.UnitName{Name: "noisy.service"}, nil)
	waitLine(t, d, "noisy.service", "second run")
	d.MustCall(control.MethodStopUnit, control.UnitName{Name: "noisy.service"}, nil)
	if got := luodtest.FDs(t, d.PID()); got != stopped {
		t.Errorf("fds after a start and stop: %d, want %d", got, stopped)
	}
}

// TestOutputSettings checks StandardOutput=null and StandardError=null.
func TestOutputSettings(t *testing.T) {
	dir := t.TempDir()
	const script = "echo to stdout\necho to stderr >&2\nexec sleep 1000\n"
	d := luodtest.Start(t, map[string]string{
		"noerr.service": shUnit(t, dir, "noerr", script, "StandardError=null\n"),
		"none.service":  shUnit(t, dir, "none", script+"\n", "StandardOutput=null\n"),
	})
	waitLine(t, d, "noerr.service", "to stdout")
	d.WaitUnit("none.service", "active", active)
	time.Sleep(300 * time.Millisecond)
	if ls := logs(t, d, "noerr.service", 0); len(ls) != 1 {
		t.Errorf("noerr.service lines %+v, want stdout's only", ls)
	}
	if ls := logs(t, d, "none.service", 0); len(ls) != 0 {
		t.Errorf("none.service lines %+v, want none", ls)
	}
}

// TestOutputFollow follows a unit's lines, and the follow ends when the
// unit is removed.
func TestOutputFollow(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "say")
	// The unit echoes what is written to a FIFO.
	script := fmt.Sprintf("echo first\nwhile :; do read -r l < %s && echo \"$l\"; done\n", ctl)
	if err := syscall.Mkfifo(ctl, 0o600); err != nil {
		t.Fatal(err)
	}
	d := luodtest.Start(t, map[string]string{"echo.service": shUnit(t, dir, "echo", script, "")})
	waitLine(t, d, "echo.service", "first")
	base := luodtest.FDs(t, d.PID())

	c, err := control.Dial(context.Background(), d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan control.LogLines, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.CallMore(context.Background(), control.MethodGetLogs, control.LogsParams{Name: "echo.service", Lines: 5, Follow: true},
			func(raw json.RawMessage) error {
				var r control.LogLines
				if err := json.Unmarshal(raw, &r); err != nil {
					return err
				}
				got <- r
				return nil
			})
	}()
	if r := <-got; len(r.Lines) != 1 || r.Lines[0].Message != "first" {
		t.Fatalf("first reply %+v, want the line so far", r)
	}
	if err := os.WriteFile(ctl, []byte("written after the follow began\n"), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if len(r.Lines) != 1 || r.Lines[0].Message != "written after the follow began" {
			t.Errorf("followed %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no line followed")
	}
	// Removed by a daemon-reload: the follow ends.
	d.MustCall(control.MethodStopUnit, control.UnitName{Name: "echo.service"}, nil)
	os.Remove(filepath.Join(d.Units, "echo.service"))
	d.MustCall(control.MethodReload, nil, nil)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the follow did not end when the unit was removed")
	}
	c.Close()
	if got := luodtest.FDs(t, d.PID()); got != base-2 {
		t.Errorf("luod's fds after the unit's removal: %d, want %d (without its two pipes)", got, base-2)
	}
}

// TestOutputAcrossReexec re-executes luod twice while a unit writes as fast
// as it can: the unit never sees its pipes break (it would die of SIGPIPE
// or fail on EPIPE), and what it writes after the re-exec is captured.
func TestOutputAcrossReexec(t *testing.T) {
	dir := t.TempDir()
	const script = `i=0
while :; do
	echo "tick $i" || exit 7
	echo "etick $i" >&2 || exit 8
	i=$((i+1))
done
`
	d := luodtest.Start(t, map[string]string{
		"writer.service": shUnit(t, dir, "writer", script, "LogRateLimitBurst=20\n"),
	})
	before := d.WaitUnit("writer.service", "active", active)
	tick := func() int {
		ls := logs(t, d, "writer.service", 1)
		if len(ls) == 0 {
			return -1
		}
		var n int
		fmt.Sscanf(strings.TrimPrefix(ls[0].Message, "e"), "tick %d", &n)
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); tick() < 100; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("writer.service wrote nothing")
		}
	}
	for i := 1; i <= 2; i++ {
		last := tick()
		if err := d.Call(control.MethodReexec, nil, nil); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var m control.Manager
			if err := d.Call(control.MethodGetManager, nil, &m); err == nil && m.Reexecs == i {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("luod did not come back from re-exec %d: %v", i, err)
			}
		}
		// Lines written after the re-exec are captured, from both pipes
		// (each read by a goroutine of its own, so either may be ahead).
		newer := func() map[string]bool {
			seen := map[string]bool{}
			for _, l := range logs(t, d, "writer.service", 0) {
				var n int
				if _, err := fmt.Sscanf(strings.TrimPrefix(l.Message, "e"), "tick %d", &n); err == nil && n > last+100 {
					seen[l.Stream] = true
				}
			}
			return seen
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			seen := newer()
			if seen["stdout"] && seen["stderr"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after re-exec %d: lines more than 100 ticks after %d from %v only", i, last, seen)
			}
		}
	}
	u := d.Unit("writer.service")
	if !active(u) || u.MainPID != before.MainPID || u.Restarts != 0 || u.Result != "" {
		t.Errorf("writer.service after the re-execs: %+v; before: pid %d", u, before.MainPID)
	}
}

// TestLuoctlLogs runs luoctl status, logs -n and logs -f against luod.
func TestLuoctlLogs(t *testing.T) {
	dir := t.TempDir()
	say := filepath.Join(dir, "say")
	if err := syscall.Mkfifo(say, 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line $i; done\nsleep 0.3\necho '<3>oops' >&2\nwhile :; do read -r l < %s && echo \"$l\"; done\n", say)
	d := luodtest.Start(t, map[string]string{"talk.service": shUnit(t, dir, "talk", script, "")})
	waitLine(t, d, "talk.service", "oops")
	luoctl := func(ctx context.Context, out *luodtest.SyncBuffer, args ...string) int {
		env := &cli.Env{Stdout: out, Stderr: out, Getenv: func(string) string { return "" }}
		return env.Main(ctx, append([]string{"--socket=" + d.Socket}, args...))
	}
	stamp := `[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d `

	// status: the block, then the last 10 lines.
	var out luodtest.SyncBuffer
	if code := luoctl(context.Background(), &out, "status", "talk.service"); code != 0 {
		t.Fatalf("luoctl status: exit %d\n%s", code, out.String())
	}
	var tail []string
	for i := 4; i <= 12; i++ {
		tail = append(tail, stamp+fmt.Sprintf("talk: line %d", i))
	}
	tail = append(tail, stamp+`talk\[stderr\]: oops`)
	if re := regexp.MustCompile(`(?s)Active: active \(running\).*\n\n` + strings.Join(tail, "\n") + "\n$"); !re.MatchString(out.String()) {
		t.Errorf("luoctl status talk.service:\n%s\nwant the last 10 lines at the end", out.String())
	}

	// logs -n 2
	out = luodtest.SyncBuffer{}
	if code := luoctl(context.Background(), &out, "logs", "talk.service", "-n", "2"); code != 0 {
		t.Fatalf("luoctl logs: exit %d\n%s", code, out.String())
	}
	if re := regexp.MustCompile("^" + strings.Join(tail[len(tail)-2:], "\n") + "\n$"); !re.MatchString(out.String()) {
		t.Errorf("luoctl logs -n 2:\n%s", out.String())
	}

	// logs -f: a line written after it began, then an interrupt.
	out = luodtest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- luoctl(ctx, &out, "logs", "-f", "-n", "1", "talk.service") }()
	waitOut := func(s string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), s); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("luoctl logs -f printed %q, no %q", out.String(), s)
			}
		}
	}
	waitOut("oops")
	if err := os.WriteFile(say, []byte("said after the follow began\n"), 0); err != nil {
		t.Fatal(err)
	}
	waitOut("talk: said after the follow began\n")
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("luoctl logs -f: exit %d after the interrupt\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("luoctl logs -f did not end on its interrupt")
	}
	if strings.Contains(out.String(), "line 11") {
		t.Errorf("luoctl logs -f -n 1 printed more than the last line:\n%s", out.String())
	}
}

// TestFollowerStopsReading: a client follows a flooding unit's lines and
// never reads. luod goes on answering, another follower gets the lines,
// and the stuck client is cut off (luod's write timeout, 10s).
func TestFollowerStopsReading(t *testing.T) {
	dir := t.TempDir()
	flood := "while :; do echo " + strings.Repeat("f", 200) + "; done\n"
	d := luodtest.Start(t, map[string]string{"flood.service": shUnit(t, dir, "flood", flood, "LogRateLimitBurst=10\n")})
	d.WaitUnit("flood.service", "active", active)
	baseline := luodtest.FDs(t, d.PID())

	stuck, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	stuck.(*net.UnixConn).SetReadBuffer(4096)
	if _, err := stuck.Write([]byte(`{"method":"io.luo.Manager.GetLogs","parameters":{"name":"flood.service","follow":true},"more":true}` + "\x00")); err != nil {
		t.Fatal(err)
	}

	c, err := control.Dial(context.Background(), d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var followed atomic.Int64
	go c.CallMore(ctx, control.MethodGetLogs, control.LogsParams{Name: "flood.service", Lines: 1, Follow: true}, func(raw json.RawMessage) error {
		var r control.LogLines
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		followed.Add(int64(len(r.Lines)))
		return nil
	})

	for start := time.Now(); time.Since(start) < 12*time.Second; time.Sleep(200 * time.Millisecond) {
		var m control.Manager
		if err := d.CallWithin(5*time.Second, control.MethodGetManager, nil, &m); err != nil {
			t.Fatalf("luod did not answer while a follower was stuck: %v", err)
		}
	}
	if n := followed.Load(); n < 1000 {
		t.Errorf("the reading follower got %d lines in 12s", n)
	}
	// The stuck client was cut off: what it reads now ends.
	stuck.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, stuck); err != nil {
		t.Errorf("the stuck client was not disconnected: %v", err)
	}
	cancel()
	c.Close()
	d.MustCall(control.MethodStopUnit, control.UnitName{Name: "flood.service"}, nil)
	if got := luodtest.FDs(t, d.PID()); got != baseline-2 {
		t.Errorf("luod's fds: %d, want %d (at start, without the unit's two pipes)", got, baseline-2)
	}
}
