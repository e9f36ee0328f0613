package control_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
)

// socketPath returns a fresh socket path, short enough for sun_path.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "luoctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "sock")
}

// serve starts a Server with h and returns its socket path. It is closed
// when the test ends.
func serve(t *testing.T, h control.Handler) (string, *control.Server) {
	t.Helper()
	path := socketPath(t)
	s, err := control.Listen(path, h, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	s.SetVersion("test")
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path, s
}

func dial(t *testing.T, path string) *control.Client {
	t.Helper()
	c, err := control.Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a client speaking the wire format by hand.
type rawConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(msg string) {
	c.t.Helper()
	if _, err := c.Write([]byte(msg + "\x00")); err != nil {
		c.t.Fatal(err)
	}
}

// recv reads one reply, or returns "EOF" when the server hung up.
func (c *rawConn) recv() string {
	c.t.Helper()
	s, err := c.r.ReadString(0)
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return "EOF"
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSuffix(s, "\x00")
}

// testHandler is a small io.luo.Manager.
func testHandler(ctx context.Context, call *control.Call) {
	switch call.Method() {
	case control.MethodGetManager:
		_ = call.Reply(control.Manager{Version: "1.0", PID: 1, PID1: true, Reexecs: 2})
	case control.MethodGetUnit, control.MethodStartUnit:
		var p control.UnitName
		if call.Params(&p) != nil {
			return
		}
		if p.Name != "a.service" {
			_ = call.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
			return
		}
		_ = call.Reply(control.UnitReply{Unit: control.Unit{Name: p.Name, ActiveState: "active", SubState: "running"}})
	case control.MethodRunUpdate:
		var p control.UpdateParams
		if call.Params(&p) != nil {
			return
		}
		if p.Kernel == "fail" {
			_ = call.ReplyMore(control.Progress{Phase: "load", Message: "loading"})
			_ = call.ReplyError(control.ErrUpdateFailed, control.UpdateFailure{Phase: "load", Message: "bad image", Restored: true})
			return
		}
		for _, phase := range []string{"load", "stop", "preserve"} {
			if call.ReplyMore(control.Progress{Phase: phase, Message: phase + "ing"}) != nil {
				return
			}
		}
		_ = call.Reply(control.Progress{Phase: "done", Done: true})
	case control.MethodReload:
		// forgets to reply
	case control.MethodReboot:
		panic("boom")
	case control.MethodListUnits:
		<-ctx.Done() // blocks until the client hangs up
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	path, _ := serve(t, testHandler)
	c := dial(t, path)
	ctx := context.Background()

	var m control.Manager
	if err := c.Call(ctx, control.MethodGetManager, nil, &m); err != nil {
		t.Fatal(err)
	}
	if m.Version != "1.0" || m.PID != 1 || !m.PID1 || m.Reexecs != 2 {
		t.Errorf("GetManager = %+v", m)
	}
	var u control.UnitReply
	if err := c.Call(ctx, control.MethodGetUnit, control.UnitName{Name: "a.service"}, &u); err != nil {
		t.Fatal(err)
	}
	if u.Unit.Name != "a.service" || u.Unit.SubState != "running" {
		t.Errorf("GetUnit = %+v", u)
	}
	// Fully qualified names work too.
	if err := c.Call(ctx, control.Interface+".GetUnit", control.UnitName{Name: "a.service"}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestErrorReplies(t *testing.T) {
	t.Parallel()
	path, _ := serve(t, testHandler)
	c := dial(t, path)
	tests := []struct {
		name     string
		method   string
		params   any
		wantName string
		wantText string
	}{
		{"no such unit", control.MethodGetUnit, control.UnitName{Name: "x.service"}, control.ErrNoSuchUnit, `no such unit "x.service"`},
		{"unknown method", "Frobnicate", nil, control.VarlinkMethodNotFound, `luod has no method "io.luo.Manager.Frobnicate" (is luod older than luoctl?)`},
		{"unknown service method", "org.varlink.service.Frobnicate", nil, control.VarlinkMethodNotFound, `luod has no method "org.varlink.service.Frobnicate" (is luod older than luoctl?)`},
		{"unknown interface", "org.example.Foo.Bar", nil, control.VarlinkInterfaceNotFound, `luod has no interface "org.example.Foo"`},
		{"unknown field", control.MethodGetUnit, map[string]any{"name": "a.service", "bogus": true}, control.VarlinkInvalidParameter, `invalid parameter "bogus"`},
		{"wrong type", control.MethodGetUnit, map[string]any{"name": 7}, control.VarlinkInvalidParameter, `invalid parameter "name"`},
		{"missing parameter", control.MethodGetUnit, nil, control.VarlinkInvalidParameter, `invalid parameter "name"`},
		{"no reply", control.MethodReload, nil, control.VarlinkMethodNotImplemented, `luod does not implement "io.luo.Manager.Reload"`},
		{"more without more", control.MethodRunUpdate, nil, control.VarlinkExpectedMore, `the method must be called with more`},
		{"update failed", control.MethodRunUpdate, control.UpdateParams{Kernel: "fail"}, control.VarlinkExpectedMore, `the method must be called with more`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Call(context.Background(), tt.method, tt.params, nil)
			var re *control.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("Call = %v, want a RemoteError", err)
			}
			if re.Name != tt.wantName || err.Error() != tt.wantText {
				t.Errorf("Call = %s %q, want %s %q", re.Name, err, tt.wantName, tt.wantText)
			}
			if !errors.Is(err, &control.RemoteError{Name: tt.wantName}) {
				t.Errorf("errors.Is(%v, %s) = false", err, tt.wantName)
			}
		})
	}
	// The connection survived every error.
	if err := c.Call(context.Background(), control.MethodGetManager, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRemoteErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, params, want string
	}{
		{control.ErrUpdateFailed, `{"phase":"preserve","message":"memfd too large","restored":true}`,
			`update failed in phase "preserve": memfd too large; every unit was restored with its fd store`},
		{control.ErrUpdateFailed, `{"phase":"reboot","message":"kexec failed","restored":false}`,
			`update failed in phase "reboot": kexec failed; units were NOT restored, check 'luoctl status'`},
		{control.ErrJobFailed, `{"unit":{"name":"a.service","active_state":"failed","sub_state":"failed","result":"exit-code","status":"no config"}}`,
			`job for "a.service" failed: unit is failed (failed), result exit-code, status "no config"; see 'luoctl status a.service'`},
		{control.ErrUnitBusy, `{"name":"a.service","message":"it is running"}`, `unit "a.service" is busy: it is running`},
		{control.ErrUpdateInProgress, `{}`, `another update is in progress`},
		{control.ErrNotSupported, `{"message":"luod is not PID 1"}`, `not supported: luod is not PID 1`},
		{control.VarlinkPermissionDenied, `{"message":"luod's control socket is root-only"}`, `permission denied: luod's control socket is root-only`},
		{"org.example.Weird", `{"a":1}`, `luod replied error org.example.Weird {"a":1}`},
		{"org.example.Weird", `{}`, `luod replied error org.example.Weird`},
		{control.ErrNoSuchUnit, `not json`, `no such unit ""`},
	}
	for _, tt := range tests {
		e := &control.RemoteError{Name: tt.name, Params: json.RawMessage(tt.params)}
		if got := e.Error(); got != tt.want {
			t.Errorf("%s %s: Error() = %q, want %q", tt.name, tt.params, got, tt.want)
		}
	}
}

func TestMore(t *testing.T) {
	t.Parallel()
	path, _ := serve(t, testHandler)
	c := dial(t, path)
	var phases []string
	err := c.CallMore(context.Background(), control.MethodRunUpdate, control.UpdateParams{Kernel: "k"}, func(raw json.RawMessage) error {
		var p control.Progress
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		phases = append(phases, p.Phase)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(phases, ","), "load,stop,preserve,done"; got != want {
		t.Errorf("phases %s, want %s", got, want)
	}

	// An error ends a stream.
	phases = nil
	err = c.CallMore(context.Background(), control.MethodRunUpdate, control.UpdateParams{Kernel: "fail"}, func(raw json.RawMessage) error {
		phases = append(phases, string(raw))
		return nil
	})
	if !errors.Is(err, &control.RemoteError{Name: control.ErrUpdateFailed}) || len(phases) != 1 {
		t.Errorf("CallMore = %v after %d replies, want UpdateFailed after 1", err, len(phases))
	}

	// On the wire: continues on all but the last.
	rc := dialRaw(t, path)
	rc.send(`{"method":"io.luo.Manager.RunUpdate","parameters":{},"more":true}`)
	for _, want := range []string{
		`{"parameters":{"phase":"load","message":"loading","time":"0001-01-01T00:00:00Z"},"continues":true}`,
		`{"parameters":{"phase":"stop","message":"stoping","time":"0001-01-01T00:00:00Z"},"continues":true}`,
		`{"parameters":{"phase":"preserve","message":"preserveing","time":"0001-01-01T00:00:00Z"},"continues":true}`,
		`{"parameters":{"phase":"done","message":"","time":"0001-01-01T00:00:00Z","done":true}}`,
	} {
		if got := rc.recv(); got != want {
			t.Errorf("reply %s, want %s", got, want)
		}
	}
}

func TestWire(t *testing.T) {
	t.Parallel()
	path, _ := serve(t, testHandler)
	tests := []struct {
		name  string
		calls []string
		want  []string
	}{
		{
			name:  "error reply",
			calls: []string{`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"b"}}`},
			want:  []string{`{"parameters":{"name":"b"},"error":"io.luo.Manager.NoSuchUnit"}`},
		},
		{
			name: "pipelined calls answered in order, oneway unanswered",
			calls: []string{
				`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"b"}}`,
				`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"c"},"oneway":true}`,
				`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"d"}}`,
			},
			want: []string{
				`{"parameters":{"name":"b"},"error":"io.luo.Manager.NoSuchUnit"}`,
				`{"parameters":{"name":"d"},"error":"io.luo.Manager.NoSuchUnit"}`,
			},
		},
		{
			name:  "unknown field",
			calls: []string{`{"method":"io.luo.Manager.StartUnit","parameters":{"name":"a.service","force":true}}`},
			want:  []string{`{"parameters":{"parameter":"force"},"error":"org.varlink.service.InvalidParameter"}`},
		},
		{
			name:  "GetInfo",
			calls: []string{`{"method":"org.varlink.service.GetInfo"}`},
			want:  []string{`{"parameters":{"vendor":"luo","product":"luod","version":"test","url":"https://github.com/liveupdate/luo","interfaces":["org.varlink.service","io.luo.Manager"]}}`},
		},
		{
			name:  "GetInterfaceDescription of an unknown interface",
			calls: []string{`{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"org.example"}}`},
			want:  []string{`{"parameters":{"interface":"org.example"},"error":"org.varlink.service.InterfaceNotFound"}`},
		},
		{
			name:  "upgrade",
			calls: []string{`{"method":"io.luo.Manager.GetManager","upgrade":true}`},
			want:  []string{`{"parameters":{"parameter":"upgrade"},"error":"org.varlink.service.InvalidParameter"}`},
		},
		{
			name:  "garbage",
			calls: []string{"\x01\x02garbage"},
			want:  []string{`{"parameters":{"message":"message is not a JSON object"},"error":"io.luo.Manager.ProtocolError"}`, "EOF"},
		},
		{
			name:  "malformed JSON",
			calls: []string{`{"method":`},
			want:  []string{`{"parameters":{"message":"malformed call: unexpected end of JSON input"},"error":"io.luo.Manager.ProtocolError"}`, "EOF"},
		},
		{
			name:  "no method",
			calls: []string{`{"parameters":{}}`},
			want:  []string{`{"parameters":{"message":"call without \"method\""},"error":"io.luo.Manager.ProtocolError"}`, "EOF"},
		},
		{
			name:  "panicking handler",
			calls: []string{`{"method":"io.luo.Manager.Reboot"}`, `{"method":"io.luo.Manager.GetManager"}`},
			want:  []string{`{"parameters":{"message":"luod failed handling Reboot: boom"},"error":"io.luo.Manager.InternalError"}`, "EOF"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, path)
			// All calls in one write: the server may hang up after the
			// first, before a second write would reach it.
			c.send(strings.Join(tt.calls, "\x00"))
			for _, want := range tt.want {
				got := c.recv()
				if got != want {
					t.Errorf("reply\n%s\nwant\n%s", got, want)
				}
			}
		})
	}
	// The server still serves.
	if err := dial(t, path).Call(context.Background(), control.MethodGetManager, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestGetInterfaceDescription(t *testing.T) {
	t.Parallel()
	path, s := serve(t, testHandler)
	s.SetVersion("1.2.3")
	c := dial(t, path)
	want, err := os.ReadFile("io.luo.Manager.varlink")
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Description string }
	if err := c.Call(context.Background(), "org.varlink.service.GetInterfaceDescription", map[string]string{"interface": control.Interface}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Description != string(want) {
		t.Errorf("description differs from io.luo.Manager.varlink")
	}
	var info control.Info
	if err := c.Call(context.Background(), "org.varlink.service.GetInfo", nil, &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != "1.2.3" {
		t.Errorf("GetInfo version %q, want 1.2.3", info.Version)
	}
	if err := c.Call(context.Background(), "org.varlink.service.GetInterfaceDescription", map[string]string{"interface": control.ServiceInterface}, &got); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.Description, "interface org.varlink.service\n") {
		t.Errorf("description of org.varlink.service:\n%s", got.Description)
	}
}

func TestOversizedMessage(t *testing.T) {
	t.Parallel()
	path, _ := serve(t, testHandler)
	for _, size := range []int{control.MaxMessageSize, 4 * control.MaxMessageSize} {
		c := dialRaw(t, path)
		go func() {
			// The server stops reading, so this write may fail.
			c.Write([]byte(`{"method":"io.luo.Manager.GetUnit","parameters":{"name":"` + strings.Repeat("x", size) + `"}}` + "\x00"))
		}()
		if got, want := c.recv(), `{"parameters":{"message":"message too large: more than 1048576 bytes"},"error":"io.luo.Manager.ProtocolError"}`; got != want {
			t.Errorf("reply to %d bytes: %s, want %s", size, got, want)
		}
		if got := c.recv(); got != "EOF" {
			t.Errorf("after the error: %s, want EOF", got)
		}
	}
	// Just under the limit is fine.
	c := dial(t, path)
	name := strings.Repeat("x", control.MaxMessageSize-100)
	err := c.Call(context.Background(), control.MethodGetUnit, control.UnitName{Name: name}, nil)
	if !errors.Is(err, &control.RemoteError{Name: control.ErrNoSuchUnit}) {
		t.Errorf("Call with a large name = %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(socketPath(t), "nope")
	_, err := control.Dial(context.Background(), missing)
	var de *control.DialError
	if !errors.As(err, &de) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Dial(missing) = %v, want a DialError for ErrNotExist", err)
	}
	if want := "luod is not running? no socket at " + missing; err.Error() != want {
		t.Errorf("Dial(missing) = %q, want %q", err, want)
	}

	// A socket file nobody listens on.
	stale := socketPath(t)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	_, err = control.Dial(context.Background(), stale)
	if !errors.Is(err, syscall.ECONNREFUSED) || err.Error() != "luod is not running? nothing listens on "+stale {
		t.Errorf("Dial(stale) = %v", err)
	}

	// Listen takes the stale socket over.
	s, err := control.Listen(stale, testHandler, t.Logf)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer s.Close()
	fi, err := os.Stat(stale)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	// But not a live one, nor a file that is not a socket.
	if _, err := control.Listen(stale, testHandler, t.Logf); err == nil || !strings.Contains(err.Error(), "another server is listening") {
		t.Errorf("Listen over a live socket = %v", err)
	}
	regular := filepath.Join(filepath.Dir(stale), "file")
	os.WriteFile(regular, nil, 0o600)
	if _, err := control.Listen(regular, testHandler, t.Logf); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind after Close: %v", err)
	}
}

func TestHandOff(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	s1, err := control.Listen(path, testHandler, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s1.File()
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("socket removed by Close after File: %v", err)
	}
	// The "next luod" adopts it.
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := control.FromListener(l.(*net.UnixListener), func(ctx context.Context, call *control.Call) {
		_ = call.Reply(control.Manager{Reexecs: 3})
	}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s2.Serve(context.Background()) }()
	var m control.Manager
	if err := dial(t, path).Call(context.Background(), control.MethodGetManager, nil, &m); err != nil || m.Reexecs != 3 {
		t.Errorf("GetManager after hand-off = %+v, %v", m, err)
	}
	s2.Close()
	if err := <-done; err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("FromListener's Close removed the socket: %v", err)
	}
}

func TestServeContext(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	started := make(chan struct{})
	s, err := control.Listen(path, func(ctx context.Context, call *control.Call) {
		close(started)
		<-ctx.Done()
		_ = call.Reply(nil)
	}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c := dial(t, path)
	callDone := make(chan error, 1)
	go func() { callDone <- c.Call(context.Background(), control.MethodGetManager, nil, nil) }()
	<-started
	cancel() // cancels the running handler, closes the connection
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	// The handler's reply may or may not beat the closing connection, but
	// the call ends.
	if err := <-callDone; err != nil && !errors.Is(err, control.ErrDisconnected) {
		t.Errorf("Call during shutdown = %v, want nil or ErrDisconnected", err)
	}
}

func TestClientContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	path, _ := serve(t, func(ctx context.Context, call *control.Call) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		_ = call.Reply(nil)
	})
	defer close(release)
	c := dial(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Call(ctx, control.MethodGetManager, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call = %v, want DeadlineExceeded", err)
	}
	// The reply may still come: the client is done.
	if err := c.Call(context.Background(), control.MethodGetManager, nil, nil); err == nil {
		t.Error("Call after a timed out call succeeded")
	}
}

func TestDisconnectMidStream(t *testing.T) {
	t.Parallel()
	// A server that sends one progress reply and vanishes, like luod
	// rebooting into a new kernel.
	path := socketPath(t)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		bufio.NewReader(c).ReadString(0)
		c.Write([]byte(`{"parameters":{"phase":"reboot","message":"bye"},"continues":true}` + "\x00"))
		c.Close()
	}()
	c := dial(t, path)
	var got []string
	err = c.CallMore(context.Background(), control.MethodRunUpdate, nil, func(raw json.RawMessage) error {
		got = append(got, string(raw))
		return nil
	})
	if !errors.Is(err, control.ErrDisconnected) || len(got) != 1 {
		t.Errorf("CallMore = %v after %d replies, want ErrDisconnected after 1", err, len(got))
	}
	if err := c.Call(context.Background(), control.MethodGetManager, nil, nil); !errors.Is(err, control.ErrDisconnected) {
		t.Errorf("Call after the drop = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestNoGoroutineLeak runs many short, aborted and blocked connections and
// checks that every goroutine they started ends.
func TestNoGoroutineLeak(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	settle := func(want int) int {
		deadline := time.Now().Add(5 * time.Second)
		n := runtime.NumGoroutine()
		for n > want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		return n
	}
	before := runtime.NumGoroutine()
	path := socketPath(t)
	s, err := control.Listen(path, testHandler, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	time.Sleep(10 * time.Millisecond)
	serving := runtime.NumGoroutine()

	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			switch i % 4 {
			case 0: // a normal call
				c, err := control.Dial(context.Background(), path)
				if err != nil {
					t.Error(err)
					return
				}
				c.Call(context.Background(), control.MethodGetManager, nil, nil)
				c.Close()
			case 1: // hang up while the handler blocks
				c, err := control.Dial(context.Background(), path)
				if err != nil {
					t.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				c.Call(ctx, control.MethodListUnits, nil, nil)
				cancel()
				c.Close()
			case 2: // hang up halfway through a message
				c, err := net.Dial("unix", path)
				if err != nil {
					t.Error(err)
					return
				}
				c.Write([]byte(`{"method":"io.luo.`))
				c.Close()
			case 3: // garbage
				c, err := net.Dial("unix", path)
				if err != nil {
					t.Error(err)
					return
				}
				c.Write([]byte("\xff\x00"))
				io.Copy(io.Discard, c)
				c.Close()
			}
		})
	}
	wg.Wait()
	if n := settle(serving); n > serving {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the clients left, %d before:\n%s", n, serving, buf[:runtime.Stack(buf, true)])
	}

	// A blocked handler ends when the server closes.
	c := dial(t, path)
	go c.Call(context.Background(), control.MethodListUnits, nil, nil)
	time.Sleep(20 * time.Millisecond)
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n := settle(before); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before the server:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
