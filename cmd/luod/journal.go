//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	slogjournal "github.com/systemd/slog-journal"

	"github.com/liveupdate/luo/internal/supervisor"
)

// journalSocket is where systemd-journald takes messages in its native
// protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/).
const journalSocket = "/run/systemd/journal/socket"

// journalAvailable reports whether journald listens on journalSocket.
func journalAvailable() bool {
	fi, err := os.Stat(journalSocket)
	return err == nil && fi.Mode().Type() == os.ModeSocket
}

// journalHandler logs to the journal. luod's own records go through
// slog-journal: MESSAGE=, PRIORITY= from the level, SYSLOG_IDENTIFIER=luod,
// and each attribute as a field of its upper-cased name (unit= is UNIT=,
// as systemd names the unit a message is about; phase= is
// LUOD_UPDATE_PHASE=). A unit's captured line (a record with
// supervisor.LogKeyStream) is sent as the unit's own message, as journald
// records a service's stdout: SYSLOG_IDENTIFIER= the unit's name without
// ".service", UNIT= its name, PRIORITY= the line's, LUOD_STREAM= stdout or
// stderr.
type journalHandler struct {
	own   slog.Handler
	level slog.Leveler
	conn  *net.UnixConn
	addr  *net.UnixAddr
}

func newJournalHandler(level slog.Leveler) (*journalHandler, error) {
	own, err := slogjournal.NewHandler(&slogjournal.Options{Level: level, ReplaceAttr: journalField})
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	// Neither bound nor connected: each message is sent to the socket's
	// path, so a journald that restarts gets the next one.
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", os.NewSyscallError("socket", err))
	}
	f := os.NewFile(uintptr(fd), "journal")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &journalHandler{own: own, level: level, conn: c.(*net.UnixConn), addr: &net.UnixAddr{Name: journalSocket, Net: "unixgram"}}, nil
}

// journalField names an attribute's field: upper case, characters other
// than A-Z, 0-9 and _ as _, never starting with _ (journald's own fields)
// or a digit.
func journalField(_ []string, a slog.Attr) slog.Attr {
	switch a.Key {
	case supervisor.LogKeyUnit:
		a.Key = "UNIT"
		return a
	case "phase":
		a.Key = "LUOD_UPDATE_PHASE"
		return a
	}
	k := []byte(strings.ToUpper(a.Key))
	for i, c := range k {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			k[i] = '_'
		}
	}
	if len(k) == 0 || k[0] == '_' || k[0] >= '0' && k[0] <= '9' {
		k = append([]byte("LUOD_"), k...)
	}
	a.Key = string(k)
	return a
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	var unit, stream string
	prio := -1
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case supervisor.LogKeyUnit:
			unit = a.Value.String()
		case supervisor.LogKeyStream:
			stream = a.Value.String()
		case supervisor.LogKeyPriority:
			prio = int(a.Value.Int64())
		}
		return true
	})
	if stream == "" || unit == "" || prio < 0 {
		return h.own.Handle(ctx, r)
	}
	var b []byte
	b = appendField(b, "MESSAGE", r.Message)
	b = appendField(b, "PRIORITY", strconv.Itoa(prio))
	b = appendField(b, "SYSLOG_IDENTIFIER", strings.TrimSuffix(unit, ".service"))
	b = appendField(b, "UNIT", unit)
	b = appendField(b, "LUOD_STREAM", stream)
	_, err := h.conn.WriteToUnix(b, h.addr)
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil // no journal (any more): as slog-journal does
	}
	return err
}

// WithAttrs applies to luod's own records only: a unit's line carries its
// own fields.
func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.own = h.own.WithAttrs(attrs)
	return &h2
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.own = h.own.WithGroup(name)
	return &h2
}

// appendField appends one field in the native protocol: KEY=value, or,
// for a value with a newline, KEY, a newline, the value's length as a
// little-endian 64-bit number, and the value.
func appendField(b []byte, key, value string) []byte {
	if !strings.Contains(value, "\n") {
		return append(append(append(append(b, key...), '='), value...), '\n')
	}
	b = append(append(b, key...), '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	return append(append(b, value...), '\n')
}
