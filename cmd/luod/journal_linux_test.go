//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/luodtest"
)

// parseJournal parses one datagram of journald's native protocol: fields
// KEY=value\n, or KEY\n, a little-endian 64-bit length, the value and \n.
// A field given twice is an error.
func parseJournal(b []byte) (map[string]string, error) {
	m := map[string]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("no newline after %q", b)
		}
		key, value := string(b[:nl]), ""
		if k, v, ok := strings.Cut(key, "="); ok {
			key, value = k, v
			b = b[nl+1:]
		} else {
			b = b[nl+1:]
			if len(b) < 8 {
				return nil, fmt.Errorf("%s: short length", key)
			}
			n := binary.LittleEndian.Uint64(b)
			b = b[8:]
			if uint64(len(b)) < n+1 || b[n] != '\n' {
				return nil, fmt.Errorf("%s: bad binary value", key)
			}
			value, b = string(b[:n]), b[n+1:]
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("field %s given twice", key)
		}
		m[key] = value
	}
	return m, nil
}

func TestParseJournal(t *testing.T) {
	t.Parallel()
	b := appendField(appendField(nil, "MESSAGE", "hi"), "CMD", "two\nlines")
	m, err := parseJournal(b)
	if err != nil || m["MESSAGE"] != "hi" || m["CMD"] != "two\nlines" {
		t.Fatalf("parseJournal(%q) = %q, %v", b, m, err)
	}
	if !bytes.Contains(b, []byte("CMD\n\x09\x00\x00\x00\x00\x00\x00\x00two\nlines\n")) {
		t.Errorf("binary form %q", b)
	}
	for _, bad := range []string{"A=1", "A\n\x01", "A\n\x05\x00\x00\x00\x00\x00\x00\x00ab\n", "A=1\nA=2\n"} {
		if _, err := parseJournal([]byte(bad)); err == nil {
			t.Errorf("parseJournal(%q) accepted", bad)
		}
	}
}

// journal is a socket speaking journald's native protocol at
// journalSocket, which collects what it receives.
type journal struct {
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []map[string]string
	errs []error
}

func (j *journal) serve() {
	buf, oob := make([]byte, 1<<20), make([]byte, 1024)
	for {
		n, oobn, _, _, err := j.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		data := buf[:n]
		// A message too large for a datagram comes as a memfd.
		if scms, _ := unix.ParseSocketControlMessage(oob[:oobn]); len(scms) > 0 {
			if fds, err := unix.ParseUnixRights(&scms[0]); err == nil && len(fds) == 1 {
				f := os.NewFile(uintptr(fds[0]), "memfd")
				data, err = io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
				f.Close()
			}
		}
		m, err := parseJournal(data)
		j.mu.Lock()
		if err != nil {
			j.errs = append(j.errs, fmt.Errorf("%w in %q", err, data))
		} else {
			j.msgs = append(j.msgs, m)
		}
		j.mu.Unlock()
	}
}

// wait returns the first message for which match holds (30 s at most).
func (j *journal) wait(t *testing.T, what string, match func(map[string]string) bool) map[string]string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		j.mu.Lock()
		for _, m := range j.msgs {
			if match(m) {
				j.mu.Unlock()
				return m
			}
		}
		j.mu.Unlock()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	t.Fatalf("no %s in the journal within 30s; got %d messages, errors %v", what, len(j.msgs), j.errs)
	return nil
}

// privateRun gives the calling goroutine's thread a mount namespace of its
// own with an empty /run, so that a socket at journalSocket is this test's
// only: luod started from this thread logs to it. The thread is never
// unlocked, so it ends with the test.
func privateRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace")
	}
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Skipf("unshare(CLONE_NEWNS): %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private: %v", err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		t.Skipf("mount tmpfs on /run: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(journalSocket), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestJournal runs luod with a journal socket: its own messages and a
// unit's output arrive there in the native protocol, with structured
// fields.
func TestJournal(t *testing.T) {
	privateRun(t)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: journalSocket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	j := &journal{conn: conn}
	go j.serve()
	t.Cleanup(func() { conn.Close() })

	dir := t.TempDir()
	script := filepath.Join(dir, "talk.sh")
	if err := os.WriteFile(script, []byte("echo '<4>warning from the unit'\necho plain from the unit >&2\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The second argument has a newline: luod's "process started" message
	// then has a field in the binary form.
	d := luodtest.Start(t, map[string]string{"talk.service": "[Service]\nExecStart=/bin/sh " + script + " \"two\\nlines\"\n"})

	// A unit's line, as journald records a service's stdout.
	m := j.wait(t, "line of talk.service", func(m map[string]string) bool { return m["MESSAGE"] == "warning from the unit" })
	want := map[string]string{"MESSAGE": "warning from the unit", "PRIORITY": "4", "SYSLOG_IDENTIFIER": "talk", "UNIT": "talk.service", "LUOD_STREAM": "stdout"}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("the unit's line: %q\nwant %q", m, want)
	}
	m = j.wait(t, "stderr line of talk.service", func(m map[string]string) bool { return m["MESSAGE"] == "plain from the unit" })
	if m["PRIORITY"] != "6" || m["LUOD_STREAM"] != "stderr" || m["SYSLOG_IDENTIFIER"] != "talk" {
		t.Errorf("the unit's stderr line: %q", m)
	}

	// luod's own messages: about the unit, with its fields.
	m = j.wait(t, "luod's process started", func(m map[string]string) bool { return m["MESSAGE"] == "process started" })
	if m["UNIT"] != "talk.service" || m["SYSLOG_IDENTIFIER"] != "luod" || m["PRIORITY"] != "6" ||
		!strings.HasSuffix(m["CMD"], "talk.sh two\nlines") || m["PID"] == "" || m["FDS"] != "0" {
		t.Errorf("luod's message: %q", m)
	}
	m = j.wait(t, "luod's unit state", func(m map[string]string) bool { return m["MESSAGE"] == "unit state" && m["STATE"] == "active" })
	if m["UNIT"] != "talk.service" || m["SUB"] != "running" {
		t.Errorf("luod's message: %q", m)
	}
	if strings.Contains(d.Log(), "process started") {
		t.Errorf("luod logged to stderr too:\n%s", d.Log())
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := errors.Join(j.errs...); err != nil {
		t.Errorf("malformed datagrams: %v", err)
	}
}

// TestLogTargetJournalNeedsSocket: --log-target=journal refuses to start
// without a journal rather than log nowhere.
func TestLogTargetJournalNeedsSocket(t *testing.T) {
	privateRun(t) // an empty /run: no journal
	_, err := logger(&options{logTarget: "journal", logFormat: "text"}, 0)
	if err == nil || !strings.Contains(err.Error(), journalSocket) {
		t.Errorf("logger(--log-target=journal) without a journal: %v", err)
	}
	if _, err := logger(&options{logTarget: "syslog", logFormat: "text"}, 0); err == nil {
		t.Error("logger(--log-target=syslog) accepted")
	}
}
