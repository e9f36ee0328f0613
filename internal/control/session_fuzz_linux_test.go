package control_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/liveupdate/luo/internal/control"
)

// This file fuzzes the server with whole client sessions: the fuzzer's
// bytes, repeated one to four times, are what a client writes on a
// connection, in chunks, and the session ends in one of three ways (see
// sessionModes). Each session runs
// against a fresh Server with a stub handler that takes every reply path,
// and checks that
//
//   - no panic escapes (it would crash the test binary);
//   - an orderly session gets exactly the replies the model
//     (expectSession) allows, in order, each a well-formed Varlink reply,
//     then end of file; a session cut short gets a prefix of them;
//   - another client is answered while the session is in progress, and
//     the server still answers a new connection afterwards;
//   - a call whose handler waits for the client to hang up is cancelled
//     when it does;
//   - once the client is gone, the server holds no more goroutines and
//     fds than it did before the session, and once the server is closed,
//     none more than before it was started.

// The ways a session ends, chosen by the fuzzer's cut argument (cut%3).
const (
	// sessionOrderly writes everything, shuts down the writing side and
	// reads every reply until the server hangs up.
	sessionOrderly = iota
	// sessionHangUp writes the first bytes (cut/3 modulo the length + 1),
	// never reads, and closes the connection.
	sessionHangUp
	// sessionHangUpReading is sessionHangUp reading replies meanwhile.
	sessionHangUpReading
	sessionModes
)

const (
	// stubPatience is how long the stub's StopUnit waits for its context
	// to end: much longer than a hangup may take to cancel it.
	stubPatience = 3 * time.Second
	// settleTimeout is how long the process may take to drop what a
	// session or a server held.
	settleTimeout = time.Second
	// repliesTimeout is how long after an orderly client shut down its
	// writing side the server may take to send the last reply and hang up.
	repliesTimeout = 2 * time.Second
	// bigReplySize is the size of the stub's DumpFDStore reply, larger
	// than a socket's buffer.
	bigReplySize = 256 << 10
)

var bigName = strings.Repeat("x", bigReplySize)

// stub is a Handler that takes every reply path of the Server, chosen by
// the method, and records what it saw that it should not have.
type stub struct {
	waiting chan struct{} // StopUnit waits for the hangup
	dumps   atomic.Int32  // DumpFDStore calls

	mu         sync.Mutex
	violations []string
}

func newStub() *stub { return &stub{waiting: make(chan struct{}, 1)} }

func (st *stub) violate(format string, args ...any) {
	st.mu.Lock()
	st.violations = append(st.violations, fmt.Sprintf(format, args...))
	st.mu.Unlock()
}

func (st *stub) handle(ctx context.Context, call *control.Call) {
	switch call.Method() {
	case control.MethodGetManager:
		_ = call.Reply(control.Manager{Version: "stub", PID: 1})
	case control.MethodGetUnit: // parameters, and an error reply
		var p control.UnitName
		if call.Params(&p) != nil {
			return
		}
		if p.Name != "a.service" {
			_ = call.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
			return
		}
		_ = call.Reply(control.UnitReply{Unit: control.Unit{Name: p.Name, ActiveState: "active"}})
	case control.MethodListUnits: // replies twice
		_ = call.Reply(control.Units{Units: []control.Unit{}})
		if err := call.Reply(control.Units{}); err == nil {
			st.violate("a second Reply succeeded")
		}
	case control.MethodStartUnit: // slow
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
		}
		_ = call.Reply(nil)
	case control.MethodStopUnit: // waits for the client to hang up
		if !call.Oneway() { // a oneway call's context lasts as long as the server
			select {
			case st.waiting <- struct{}{}:
			default:
			}
			select {
			case <-ctx.Done():
			case <-time.After(stubPatience):
				st.violate("StopUnit: context not cancelled after %v", stubPatience)
			}
		}
		_ = call.Reply(nil)
	case control.MethodRestartUnit: // two goroutines race to reply
		var ok atomic.Int32
		var wg sync.WaitGroup
		wg.Go(func() {
			if call.Reply(nil) == nil {
				ok.Add(1)
			}
		})
		wg.Go(func() {
			if call.ReplyError(control.ErrUnitBusy, nil) == nil {
				ok.Add(1)
			}
		})
		wg.Wait()
		if ok.Load() > 1 {
			st.violate("RestartUnit: both final replies succeeded")
		}
	case control.MethodCleanUnit: // a reply that cannot be encoded
		if call.Reply(map[string]any{"f": func() {}}) == nil {
			st.violate("CleanUnit: an unencodable reply succeeded")
		}
	case control.MethodDumpFDStore: // a reply larger than the socket buffer
		name := bigName
		if st.dumps.Add(1) > 4 { // the session may have thousands
			name = "small"
		}
		_ = call.Reply(control.FDStore{Unit: name})
	case control.MethodReload: // returns without replying
	case control.MethodReboot: // panics
		panic("stub: reboot")
	case control.MethodRunUpdate: // streams with "more"
		var p control.UpdateParams
		if call.Params(&p) != nil {
			return
		}
		for _, phase := range []string{"load", "stop", "preserve"} {
			if call.ReplyMore(control.Progress{Phase: phase}) != nil {
				return
			}
		}
		_ = call.Reply(control.Progress{Phase: "done", Done: true})
	case control.MethodPowerOff: // streams, then fails
		if call.ReplyMore(control.Progress{Phase: "stop"}) != nil {
			return
		}
		_ = call.ReplyError(control.ErrNotSupported, map[string]string{"message": "stub"})
	case control.MethodGetUpdateReport: // replies after returning, which it must not
		returned := make(chan struct{})
		defer close(returned)
		go func() {
			<-returned
			_ = call.Reply(nil)
		}()
	default:
		_ = call.Reply(nil)
	}
}

// outcome is what a call got: the number of replies with "continues",
// then the final reply's error ("" for success).
type outcome struct {
	continues int
	err       string
}

func (o outcome) String() string { return fmt.Sprintf("%d+%q", o.continues, o.err) }

// expectation is what one message must get.
type expectation struct {
	msg      string    // the message, for failure messages
	outcomes []outcome // the acceptable ones; none for a call without reply
	last     bool      // the server closes the connection after it
	blocks   bool      // the handler waits for the client to hang up
}

// blocks reports whether a call of exps keeps the connection busy until
// the client hangs up.
func blocks(exps []expectation) bool {
	return slices.ContainsFunc(exps, func(e expectation) bool { return e.blocks })
}

var (
	success        = outcome{}
	invalidParam   = outcome{err: control.VarlinkInvalidParameter}
	notImplemented = outcome{err: control.VarlinkMethodNotImplemented}
	protocolError  = outcome{err: control.Interface + ".ProtocolError"}
	stubOutcomes   = map[string][]outcome{ // of the methods of io.luo.Manager with the stub
		control.MethodGetUnit:         {success, invalidParam, {err: control.Interface + "." + control.ErrNoSuchUnit}},
		control.MethodRestartUnit:     {success, {err: control.Interface + "." + control.ErrUnitBusy}},
		control.MethodCleanUnit:       {notImplemented},
		control.MethodReload:          {notImplemented},
		control.MethodReboot:          {{err: control.Interface + ".InternalError"}},
		control.MethodGetUpdateReport: {success, notImplemented},
	}
)

// expectSession is the model: what the server must answer, in order, to
// the bytes a client sent before shutting down its writing side. It
// follows the wire format and the Server's documentation, independently
// of the server's code: NUL-terminated messages of at most
// MaxMessageSize bytes, each a JSON object with a method of the form
// interface.Method and parameters that are an object or null.
func expectSession(data []byte) []expectation {
	var exps []expectation
	for len(data) > 0 {
		i := bytes.IndexByte(data, 0)
		if i < 0 { // an unterminated message: no reply, unless already too large
			if len(data) > control.MaxMessageSize {
				exps = append(exps, expectation{msg: clip(data), outcomes: []outcome{protocolError}, last: true})
			}
			break
		}
		if i+1 > control.MaxMessageSize {
			exps = append(exps, expectation{msg: clip(data[:i]), outcomes: []outcome{protocolError}, last: true})
			break
		}
		e := expectCall(data[:i])
		exps = append(exps, e)
		if e.last {
			break
		}
		data = data[i+1:]
	}
	return exps
}

// expectCall is what one message (without its NUL) must get.
func expectCall(msg []byte) expectation {
	e := expectation{msg: clip(msg)}
	var m struct {
		Method     string          `json:"method"`
		Parameters json.RawMessage `json:"parameters"`
		More       bool            `json:"more"`
		Oneway     bool            `json:"oneway"`
		Upgrade    bool            `json:"upgrade"`
	}
	trimmed := bytes.TrimLeft(msg, " \t\r\n")
	dot := -1
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(msg, &m) == nil {
		dot = strings.LastIndexByte(m.Method, '.')
	}
	params := bytes.TrimLeft(m.Parameters, " \t\r\n")
	if dot <= 0 || dot == len(m.Method)-1 ||
		len(params) > 0 && params[0] != '{' && string(m.Parameters) != "null" {
		e.outcomes, e.last = []outcome{protocolError}, true
		return e
	}
	iface, name := m.Method[:dot], m.Method[dot+1:]
	more := m.More && !m.Oneway
	switch {
	case m.Upgrade:
		e.outcomes = []outcome{invalidParam}
	case iface == control.ServiceInterface && name == "GetInfo":
		e.outcomes = []outcome{success, invalidParam}
	case iface == control.ServiceInterface && name == "GetInterfaceDescription":
		e.outcomes = []outcome{success, invalidParam, {err: control.VarlinkInterfaceNotFound}}
	case iface == control.ServiceInterface:
		e.outcomes = []outcome{{err: control.VarlinkMethodNotFound}}
	case iface != control.Interface:
		e.outcomes = []outcome{{err: control.VarlinkInterfaceNotFound}}
	case !slices.Contains(control.ManagerMethods, name):
		e.outcomes = []outcome{{err: control.VarlinkMethodNotFound}}
	case name == control.MethodReboot:
		e.outcomes, e.last = stubOutcomes[name], true
	case name == control.MethodRunUpdate && more:
		e.outcomes = []outcome{{continues: 3}, invalidParam}
	case name == control.MethodRunUpdate:
		e.outcomes = []outcome{{err: control.VarlinkExpectedMore}, invalidParam}
	case name == control.MethodPowerOff && more:
		e.outcomes = []outcome{{continues: 1, err: control.Interface + "." + control.ErrNotSupported}}
	case name == control.MethodPowerOff:
		e.outcomes = []outcome{{err: control.VarlinkExpectedMore}}
	case name == control.MethodStopUnit:
		e.outcomes, e.blocks = []outcome{success}, !m.Oneway
	case stubOutcomes[name] != nil:
		e.outcomes = stubOutcomes[name]
	default:
		e.outcomes = []outcome{success}
	}
	if m.Oneway {
		e.outcomes = nil
	}
	return e
}

func clip(b []byte) string {
	if len(b) > 120 {
		return fmt.Sprintf("%q... (%d bytes)", b[:120], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// reply is one reply as the client read it.
type reply struct {
	continues bool
	err       string
}

// readReplies reads replies from r until it fails, checking that each is
// a well-formed Varlink reply; it returns them and the error that ended
// the reading.
func readReplies(r io.Reader) ([]reply, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var replies []reply
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			if len(msg) > 0 && errors.Is(err, io.EOF) {
				err = fmt.Errorf("reply %d: %q... not terminated by NUL", len(replies)+1, clip(msg))
			}
			return replies, err
		}
		msg = msg[:len(msg)-1]
		var m struct {
			Parameters json.RawMessage `json:"parameters"`
			Continues  bool            `json:"continues"`
			Error      string          `json:"error"`
		}
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		switch {
		case !utf8.Valid(msg):
			err = errors.New("not valid UTF-8")
		case dec.Decode(&m) != nil || dec.More():
			err = errors.New("not a reply object")
		case len(m.Parameters) == 0 || m.Parameters[0] != '{':
			err = errors.New(`"parameters" missing or not an object`)
		case m.Continues && m.Error != "":
			err = errors.New(`"continues" on an error`)
		}
		if err != nil {
			return replies, fmt.Errorf("reply %d %s: %w", len(replies)+1, clip(msg), err)
		}
		replies = append(replies, reply{continues: m.Continues, err: m.Error})
	}
}

// matchReplies checks replies against the model. Unless complete, the
// replies may stop early.
func matchReplies(exps []expectation, replies []reply, complete bool) error {
	i := 0
	for _, e := range exps {
		if len(e.outcomes) > 0 {
			var got outcome
			for i < len(replies) && replies[i].continues {
				got.continues++
				i++
			}
			if i == len(replies) {
				if complete {
					return fmt.Errorf("no final reply to %s (got %d continues)", e.msg, got.continues)
				}
				return nil
			}
			got.err = replies[i].err
			i++
			if !slices.Contains(e.outcomes, got) {
				return fmt.Errorf("reply to %s: %v, want one of %v", e.msg, got, e.outcomes)
			}
		}
		if e.last {
			break
		}
	}
	if i < len(replies) {
		return fmt.Errorf("%d replies more than the %d calls warrant: %+v", len(replies)-i, len(exps), replies[i:])
	}
	return nil
}

// writeChunks writes data to c in up to 32 chunks whose sizes come from
// split (one write when 0), until deadline. It returns how much it wrote.
func writeChunks(c net.Conn, data []byte, split uint64, deadline time.Time) (int, error) {
	_ = c.SetWriteDeadline(deadline)
	if split == 0 {
		return c.Write(data)
	}
	rng := rand.New(rand.NewPCG(split, split>>32))
	written := 0
	for chunk := 0; written < len(data); chunk++ {
		n := len(data) - written
		if chunk < 31 {
			n = min(n, 1+rng.IntN([]int{8, 512, 64 << 10}[rng.IntN(3)]))
		}
		m, err := c.Write(data[written : written+n])
		written += m
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// logBuffer keeps a server's log lines, for a failure message.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if i := strings.Index(line, "\ngoroutine "); i >= 0 {
		line = line[:i] // a panic's stack
	}
	l.mu.Lock()
	if len(l.lines) < 50 {
		l.lines = append(l.lines, line)
	}
	l.mu.Unlock()
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// runSession plays one session against a fresh Server (see the comment at
// the top of this file).
func runSession(t *testing.T, data []byte, split uint64, cut uint32) {
	mode := cut % sessionModes
	sent := data
	if mode != sessionOrderly {
		sent = data[:uint64(cut/sessionModes)%uint64(len(data)+1)]
	}

	before := currentUsage()
	dir, err := os.MkdirTemp("", "luofz")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sock")
	st := newStub()
	var logs logBuffer
	s, err := control.Listen(path, st.handle, logs.logf)
	if err != nil {
		t.Fatal(err)
	}
	writeTimeout := 5 * time.Second // never reached when the client reads
	if mode == sessionHangUp {
		writeTimeout = 100 * time.Millisecond // the client never reads
	}
	control.SetTimeouts(s, writeTimeout, time.Second)
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	closed := false
	closeServer := func() {
		if closed {
			return
		}
		closed = true
		s.Close()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(settleTimeout):
			t.Errorf("Serve did not return %v after Close:\n%s", settleTimeout, usageDump())
		}
	}
	defer closeServer()
	defer func() {
		if t.Failed() {
			t.Logf("session %s, split %d, mode %d\nserver log:\n%s", clip(data), split, mode, &logs)
		}
	}()

	// A client that is connected all along, and must be answered at any
	// time.
	other, err := control.Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	callOther := func(when string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := other.Call(ctx, control.MethodGetManager, nil, nil); err != nil {
			t.Errorf("another client, %s: %v", when, err)
		}
	}
	callOther("before the session")
	serving := currentUsage()

	// The session.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var replies []reply
	var readErr error
	readDone := make(chan struct{})
	if mode == sessionHangUp {
		close(readDone)
	} else {
		go func() {
			defer close(readDone)
			replies, readErr = readReplies(c)
		}()
	}
	written, _ := writeChunks(c, sent, split, time.Now().Add(time.Second))
	exps := expectSession(sent[:written])
	if blocks(exps) {
		// Call while the session's connection is certainly busy.
		select {
		case <-st.waiting:
		case <-time.After(time.Second): // still busy with calls before it
		}
	}
	callOther("during the session")
	if mode == sessionOrderly {
		_ = c.(*net.UnixConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(repliesTimeout))
	} else {
		c.Close()
	}
	<-readDone
	c.Close()
	if mode != sessionHangUp {
		complete := mode == sessionOrderly
		if complete && !errors.Is(readErr, io.EOF) && !errors.Is(readErr, syscall.ECONNRESET) {
			t.Errorf("reading replies: %v; want them all, then end of file", readErr)
		}
		if !complete && readErr != nil && !errors.Is(readErr, net.ErrClosed) &&
			!errors.Is(readErr, io.EOF) && !errors.Is(readErr, syscall.ECONNRESET) {
			t.Errorf("reading replies: %v", readErr)
		}
		if err := matchReplies(exps, replies, complete); err != nil {
			t.Errorf("after writing %d of %d bytes: %v", written, len(sent), err)
		}
	}

	// The server still serves, on a new connection and the old one.
	fresh, err := control.Dial(context.Background(), path)
	if err != nil {
		t.Fatalf("a new client after the session: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	var info control.Info
	if err := fresh.Call(ctx, control.ServiceInterface+".GetInfo", nil, &info); err != nil || info.Product != "luod" {
		t.Errorf("a new client after the session: GetInfo = %+v, %v", info, err)
	}
	cancel()
	fresh.Close()
	callOther("after the session")

	// With the session's client gone, so is everything that served it.
	if u, ok := settle(serving, settleTimeout); !ok {
		t.Errorf("the server holds %v %v after the client left, %v before the session:\n%s", u, settleTimeout, serving, usageDump())
	}
	other.Close()
	closeServer()
	if u, ok := settle(before, settleTimeout); !ok {
		t.Errorf("%v %v after the server closed, %v before it started:\n%s", u, settleTimeout, before, usageDump())
	}
	st.mu.Lock()
	for _, v := range st.violations {
		t.Errorf("handler: %s", v)
	}
	st.mu.Unlock()
}

// sessionSeeds are the seeds of FuzzServerSession: realistic calls and
// the calls of the wire tests, alone and pipelined, and hostile streams.
func sessionSeeds() []string {
	call := func(s string) string { return s + "\x00" }
	return []string{
		// Realistic calls, each taking another reply path of the stub.
		call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"x"}}`),
		call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"a.service","no_block":true}}`),
		call(`{"method":"io.luo.Manager.GetManager"}`),
		call(`{"method":"io.luo.Manager.ListUnits","parameters":{}}`),
		call(`{"method":"io.luo.Manager.StartUnit","parameters":{"name":"a.service"}}`),
		call(`{"method":"io.luo.Manager.StopUnit","parameters":{"name":"a.service"}}`),
		call(`{"method":"io.luo.Manager.RestartUnit","parameters":{"name":"a.service"}}`),
		call(`{"method":"io.luo.Manager.CleanUnit","parameters":{"name":"a.service","what":["fdstore"]}}`),
		call(`{"method":"io.luo.Manager.DumpFDStore","parameters":{"name":"a.service"}}`),
		call(`{"method":"io.luo.Manager.Reload"}`),
		call(`{"method":"io.luo.Manager.Reboot"}`),
		call(`{"method":"io.luo.Manager.RunUpdate","parameters":{"kernel":"/boot/vmlinuz","allow_loss":true},"more":true}`),
		call(`{"method":"io.luo.Manager.RunUpdate","parameters":{"no_kexec":true}}`),
		call(`{"method":"io.luo.Manager.PowerOff","more":true}`),
		call(`{"method":"io.luo.Manager.GetUpdateReport"}`),
		call(`{"method":"io.luo.Manager.PlanUpdate","parameters":{"kernel":"k","initrd":"i","cmdline":"c","reuse_cmdline":true,"stop_timeout":"5s"}}`),
		call(`{"method":"org.varlink.service.GetInfo"}`),
		call(`{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"io.luo.Manager"}}`),
		call(`{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"org.example"}}`),
		call(`{"method":"org.varlink.service.Frobnicate"}`),
		call(`{"method":"org.example.Foo.Bar"}`),
		call(`{"method":"io.luo.Manager.Frobnicate"}`),
		call(`{"method":"io.luo.Manager.GetManager","upgrade":true}`),
		// From TestWire.
		call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"b"}}`) +
			call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"c"},"oneway":true}`) +
			call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"d"}}`),
		call(`{"method":"io.luo.Manager.StartUnit","parameters":{"name":"a.service","force":true}}`),
		call("\x01\x02garbage"),
		call(`{"method":`),
		call(`{"parameters":{}}`),
		call(`{"method":"io.luo.Manager.Reboot"}`) + call(`{"method":"io.luo.Manager.GetManager"}`),
		// Unknown fields, wrong types, null, more and oneway together.
		call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"x","bogus":[1,{"a":null}]},"future":{"x":1}}`),
		call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":7}}`),
		call(`{"method":"io.luo.Manager.GetUnit","parameters":null}`),
		call(`{"method":"io.luo.Manager.RunUpdate","parameters":{},"more":true,"oneway":true}`),
		call(`{"method":"io.luo.Manager.Reboot","oneway":true}`) + call(`{"method":"io.luo.Manager.GetManager"}`),
		call(`{"method":"io.luo.Manager.StopUnit","oneway":true,"parameters":{"name":"a"}}`),
		// Huge numbers, invalid UTF-8, control characters, duplicate keys.
		call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"x","no_block":1e999999}}`),
		call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"x"},"more":123456789012345678901234567890}`),
		call("{\"method\":\"io.luo.Manager.GetUnit\",\"parameters\":{\"name\":\"\xff\xfe\xc0\xaf\"}}"),
		call("{\"method\":\"io.luo.Manager.GetUnit\xff\"}"),
		call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"\u0000\ud800\"\u2028"}}`),
		call(`{"method":"a.B","method":"io.luo.Manager.GetManager","METHOD":"io.luo.Manager.Reload"}`),
		// NUL-only streams, empty and unterminated messages.
		"\x00",
		strings.Repeat("\x00", 1000),
		"",
		`{"method":"io.luo.Manager.GetManager"}`,
		" \t\r\n" + call(`{"method":"io.luo.Manager.GetManager"}`),
		// Deep nesting, in the envelope and in the parameters.
		call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"x","n":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`),
		call(strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)),
		call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"x"}}`) + strings.Repeat("[", 1<<16),
		// Many calls pipelined in one write.
		strings.Repeat(call(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"x"}}`), 500),
		strings.Repeat(call(`{"method":"io.luo.Manager.RunUpdate","parameters":{},"more":true}`)+call(`{"method":"io.luo.Manager.Reload","oneway":true}`), 100),
		strings.Repeat(call(`{"method":"io.luo.Manager.DumpFDStore"}`), 8),
	}
}

// TestOversizeSessions plays the sessions too large to be fuzzing seeds:
// messages at the size limit, just over it, far over it, and over it
// without a NUL.
func TestOversizeSessions(t *testing.T) {
	// Not parallel: it counts the process's goroutines and fds.
	for _, s := range []string{
		nameOfSize(control.MaxMessageSize),
		nameOfSize(control.MaxMessageSize + 1),
		nameOfSize(4 * control.MaxMessageSize),
		strings.Repeat("y", control.MaxMessageSize+1),
		nameOfSize(control.MaxMessageSize) + strings.Repeat("\x00", 100) + nameOfSize(control.MaxMessageSize),
	} {
		for mode := range uint32(sessionModes) {
			runSession(t, []byte(s), uint64(mode), 3*uint32(len(s)-10)+mode)
		}
	}
}

// nameOfSize is a GetUnit call of size bytes, its NUL included.
func nameOfSize(size int) string {
	const head, tail = `{"method":"io.luo.Manager.GetUnit","parameters":{"name":"`, "\"}}\x00"
	return head + strings.Repeat("x", size-len(head)-len(tail)) + tail
}

// FuzzServerSession fuzzes the server with whole client sessions; see the
// comment at the top of this file.
func FuzzServerSession(f *testing.F) {
	for i, s := range sessionSeeds() {
		// Each seed orderly in one write, cut short in chunks, and all
		// sent before hanging up without reading.
		f.Add([]byte(s), uint64(0), uint32(sessionOrderly), uint8(0))
		f.Add([]byte(s), uint64(i+1), uint32(3*(len(s)/2)+sessionHangUp+i%2), uint8(0))
		f.Add([]byte(s), uint64(0), uint32(3*len(s)+sessionHangUp), uint8(0))
	}
	// Open what the runtime opens once, such as the netpoller's fds, so
	// that the first session does not count it.
	s, err := control.Listen(filepath.Join(f.TempDir(), "sock"), newStub().handle, nil)
	if err != nil {
		f.Fatal(err)
	}
	go s.Serve(context.Background())
	if c, err := control.Dial(context.Background(), s.Addr().String()); err == nil {
		_ = c.Call(context.Background(), control.MethodGetManager, nil, nil)
		c.Close()
	}
	s.Close()
	f.Fuzz(func(t *testing.T, data []byte, split uint64, cut uint32, repeat uint8) {
		runSession(t, bytes.Repeat(data, 1+int(repeat%4)), split, cut)
	})
}
