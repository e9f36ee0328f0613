package control_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
)

// This file has clients that misbehave on purpose, and checks that each
// costs the server only what it must, only as long as it must, and never
// delays the other clients.

// Short server timeouts, so that the tests need not wait for the real ones.
const (
	hostileWriteTimeout  = 300 * time.Millisecond
	hostileRejectTimeout = 300 * time.Millisecond
)

const (
	// hugeSize is the size of the hostile clients' huge message.
	hugeSize = 100 << 20
	// hugeBound is how much of it the server may read, or allocate, before
	// it gives up: its limit, its read buffer and the socket's buffers.
	hugeBound = control.MaxMessageSize + 2<<20
)

// hostileHandler answers GetManager, and streams RunUpdate's progress in
// 64 KiB replies until a reply fails; it sends how the stream ended on
// streamEnded if a test waits for it.
type hostileHandler struct {
	refused       atomic.Int32 // calls of peers other than root
	streamStarted chan struct{}
	streamEnded   chan error
}

func newHostileHandler() *hostileHandler {
	return &hostileHandler{streamStarted: make(chan struct{}, 10), streamEnded: make(chan error, 10)}
}

func (h *hostileHandler) handle(ctx context.Context, call *control.Call) {
	if call.Peer().UID != 0 {
		h.refused.Add(1)
	}
	switch call.Method() {
	case control.MethodRunUpdate:
		select {
		case h.streamStarted <- struct{}{}:
		default:
		}
		msg := strings.Repeat("p", 64<<10)
		var err error
		for range 1000 {
			if err = call.ReplyMore(control.Progress{Phase: "stop", Message: msg}); err != nil {
				break
			}
		}
		if err == nil {
			err = call.Reply(control.Progress{Phase: "done", Done: true})
		}
		select {
		case h.streamEnded <- err:
		default: // nobody is waiting
		}
	default:
		_ = call.Reply(control.Manager{Version: "hostile"})
	}
}

// serveHostile starts a Server with h and the short timeouts. It is
// closed when the test ends, and Serve must then return at once.
func serveHostile(t *testing.T, h control.Handler) (path string) {
	t.Helper()
	path = socketPath(t)
	s, err := control.Listen(path, h, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	control.SetTimeouts(s, hostileWriteTimeout, hostileRejectTimeout)
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(time.Second):
			t.Errorf("Serve did not return a second after Close")
		}
	})
	return path
}

// answered checks that other clients are answered within a second: one
// connected all along, and one connecting now.
func answered(t *testing.T, path string, other *control.Client, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := other.Call(ctx, control.MethodGetManager, nil, nil); err != nil {
		t.Errorf("a connected client, %s: %v", when, err)
	}
	c, err := control.Dial(ctx, path)
	if err != nil {
		t.Errorf("a new client, %s: %v", when, err)
		return
	}
	defer c.Close()
	if err := c.Call(ctx, control.MethodGetManager, nil, nil); err != nil {
		t.Errorf("a new client, %s: %v", when, err)
	}
}

// allocated is how many bytes the process has allocated so far.
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// rawDial connects to path without a Client.
func rawDial(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UnixConn)
}

// writeHuge writes a hugeSize message to c in 1 MiB writes and returns
// how much it wrote before the first error.
func writeHuge(c net.Conn) int64 {
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	var wrote int64
	for range hugeSize >> 20 {
		n, err := c.Write(chunk)
		wrote += int64(n)
		if err != nil {
			return wrote
		}
	}
	n, _ := c.Write([]byte{0})
	return wrote + int64(n)
}

// readUntilEnd reads replies from c until it fails, and says how it ended.
func readUntilEnd(c net.Conn, timeout time.Duration) (replies []string, end string) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(c)
	for {
		s, err := r.ReadString(0)
		if err != nil {
			return replies, endOf(err)
		}
		replies = append(replies, strings.TrimSuffix(s, "\x00"))
	}
}

func endOf(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return err.Error()
}

const (
	getManagerCall = `{"method":"io.luo.Manager.GetManager"}` + "\x00"
	streamCall     = `{"method":"io.luo.Manager.RunUpdate","parameters":{},"more":true}` + "\x00"
	tooLargeReply  = `{"parameters":{"message":"message too large: more than 1048576 bytes"},"error":"io.luo.Manager.ProtocolError"}`
)

// TestHostileClients runs clients with the server's own credentials that
// misbehave. Each leaves its connection in a bad state; meanwhile other
// clients must be answered, and once the server let go of it (on its own,
// or when the client left), the process must hold no more goroutines and
// fds than before it came.
func TestHostileClients(t *testing.T) {
	// Not parallel: it counts the process's goroutines and fds.
	tests := []struct {
		name string
		// misbehave connects and leaves the connection in a bad state;
		// it returns a function that ends it. It may check answered.
		misbehave func(t *testing.T, path string, h *hostileHandler, check func(when string)) (leave func())
		// letGo, if not 0, is how soon the server must let go of the
		// connection on its own, while the client is still connected.
		letGo time.Duration
		slow  bool
	}{{
		name: "connects and sends nothing",
		misbehave: func(t *testing.T, path string, h *hostileHandler, check func(string)) func() {
			c := rawDial(t, path)
			time.Sleep(50 * time.Millisecond)
			check("while a client sends nothing")
			return func() {
				// Privileged clients may take their time: the
				// connection still works.
				c.Write([]byte(getManagerCall))
				if replies, _ := readUntilEnd(c, 50*time.Millisecond); len(replies) != 1 || !strings.Contains(replies[0], `"hostile"`) {
					t.Errorf("a call after idling got %q", replies)
				}
				c.Close()
			}
		},
	}, {
		name: "sends part of a message and stalls",
		misbehave: func(t *testing.T, path string, h *hostileHandler, check func(string)) func() {
			c := rawDial(t, path)
			c.Write([]byte(getManagerCall[:20]))
			time.Sleep(50 * time.Millisecond)
			check("while a client stalls mid-message")
			return func() {
				c.Write([]byte(getManagerCall[20:]))
				if replies, _ := readUntilEnd(c, 50*time.Millisecond); len(replies) != 1 || !strings.Contains(replies[0], `"hostile"`) {
					t.Errorf("the completed call got %q", replies)
				}
				c.Close()
			}
		},
	}, {
		name: "streams a call and never reads the replies",
		misbehave: func(t *testing.T, path string, h *hostileHandler, check func(string)) func() {
			c := rawDial(t, path)
			c.Write([]byte(streamCall))
			time.Sleep(50 * time.Millisecond) // the stream fills the socket's buffer
			check("while a client does not read its stream")
			select {
			case err := <-h.streamEnded:
				t.Fatalf("the stream ended (%v) before the other clients were answered", err)
			default:
			}
			select {
			case err := <-h.streamEnded:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("the stream ended with %v, want the write timeout", err)
				}
			case <-time.After(hostileWriteTimeout + time.Second):
				t.Errorf("the stream still runs %v after the client stopped reading", hostileWriteTimeout+time.Second)
			}
			return func() { c.Close() }
		},
		letGo: hostileWriteTimeout + time.Second,
	}, {
		name: "sends a 100 MiB message",
		misbehave: func(t *testing.T, path string, h *hostileHandler, check func(string)) func() {
			c := rawDial(t, path)
			before := allocated()
			wrote := make(chan int64, 1)
			go func() { wrote <- writeHuge(c) }()
			replies, end := readUntilEnd(c, 5*time.Second)
			if len(replies) != 1 || replies[0] != tooLargeReply || (end != "eof" && end != "reset") {
				t.Errorf("replies %q, then %s; want %s, then the end", replies, end, tooLargeReply)
			}
			if n := <-wrote; n > hugeBound {
				t.Errorf("the server read %d bytes of the message, want at most %d", n, hugeBound)
			}
			if n := allocated() - before; n > 4*hugeBound {
				t.Errorf("the process allocated %d bytes while refusing the message, want at most %d", n, 4*hugeBound)
			}
			check("after a client sent a huge message")
			return func() { c.Close() }
		},
		letGo: time.Second,
	}, {
		name: "opens and closes 1000 connections",
		misbehave: func(t *testing.T, path string, h *hostileHandler, check func(string)) func() {
			for i := range 1000 {
				c, err := net.Dial("unix", path)
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				switch i % 4 {
				case 1:
					c.Write([]byte(getManagerCall[:20]))
				case 2:
					c.Write([]byte(getManagerCall)) // and leave the reply unread
				case 3:
					c.Write([]byte(streamCall))
				}
				c.Close()
				if i%250 == 0 {
					check(fmt.Sprintf("after %d connections", i+1))
				}
			}
			return func() {}
		},
		slow: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.slow && testing.Short() {
				t.Skip("slow")
			}
			h := newHostileHandler()
			path := serveHostile(t, h.handle)
			other := dial(t, path)
			answered(t, path, other, "before")
			before := steadyUsage()
			start := time.Now()
			leave := tt.misbehave(t, path, h, func(when string) { answered(t, path, other, when) })
			if tt.letGo > 0 {
				connected := before
				connected.fds++ // the client's end
				if u, ok := settle(connected, tt.letGo-time.Since(start)); !ok {
					t.Errorf("the server still holds %v %v after the client came, %v before:\n%s", u, tt.letGo, before, usageDump())
				}
			}
			leave()
			if u, ok := settle(before, settleTimeout); !ok {
				t.Errorf("the process holds %v %v after the client left, %v before:\n%s", u, settleTimeout, before, usageDump())
			}
			answered(t, path, other, "after")
		})
	}
}

// TestCloseWithHostileClients checks that Close is not held up by clients
// that stall in every way at once, with the real timeouts.
func TestCloseWithHostileClients(t *testing.T) {
	t.Parallel()
	h := newHostileHandler()
	path := socketPath(t)
	s, err := control.Listen(path, h.handle, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	rawDial(t, path)
	rawDial(t, path).Write([]byte(getManagerCall[:20]))
	rawDial(t, path).Write([]byte(streamCall))
	huge := rawDial(t, path)
	go writeHuge(huge)
	select {
	case <-h.streamStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not start")
	}
	time.Sleep(100 * time.Millisecond) // the stream fills the socket buffer
	start := time.Now()
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatalf("Serve did not return a second after Close")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Serve returned %v after Close", d)
	}
	select {
	case err := <-h.streamEnded:
		if err == nil {
			t.Error("the stream ended without an error")
		}
	default:
		t.Error("the stream still runs after Serve returned")
	}
}

// The unprivileged clients of TestHostileUnprivilegedClients are this test
// binary run as nobody, with these environment variables.
const (
	hostileModeEnv   = "LUO_CONTROL_TEST_HOSTILE"
	hostileSocketEnv = "LUO_CONTROL_TEST_SOCKET"
)

// TestHostileChild is an unprivileged client of
// TestHostileUnprivilegedClients, in a child process. When stdin gives
// it a line it connects, misbehaves as $LUO_CONTROL_TEST_HOSTILE says,
// reads until the server hangs up, and prints a line
//
//	RESULT end=... after=<ms> wrote=<bytes> replies=<n> <first reply>
//
// then keeps its end of the connection open until stdin ends.
func TestHostileChild(t *testing.T) {
	mode := os.Getenv(hostileModeEnv)
	if mode == "" {
		t.Skip("only run as a child of TestHostileUnprivilegedClients")
	}
	stdin := bufio.NewReader(os.Stdin)
	stdin.ReadString('\n')
	c, err := net.Dial("unix", os.Getenv(hostileSocketEnv))
	if err != nil {
		fmt.Printf("RESULT dial: %v\n", err)
		return
	}
	defer c.Close()
	start := time.Now()
	wrote := make(chan int64, 1)
	switch mode {
	case "call":
		n, _ := c.Write([]byte(getManagerCall))
		wrote <- int64(n)
	case "stream":
		n, _ := c.Write([]byte(streamCall))
		wrote <- int64(n)
	case "partial":
		n, _ := c.Write([]byte(getManagerCall[:20]))
		wrote <- int64(n)
	case "idle":
		wrote <- 0
	case "huge":
		go func() { wrote <- writeHuge(c) }()
	}
	replies, end := readUntilEnd(c, 10*time.Second)
	after := time.Since(start)
	first := ""
	if len(replies) > 0 {
		first = replies[0]
	}
	var n int64 = -1
	select {
	case n = <-wrote:
	case <-time.After(5 * time.Second):
	}
	fmt.Printf("RESULT end=%s after=%d wrote=%d replies=%d %s\n", end, after.Milliseconds(), n, len(replies), first)
	io.Copy(io.Discard, stdin)
}

var resultLine = regexp.MustCompile(`^RESULT end=(\S+) after=(\d+) wrote=(-?\d+) replies=(\d+) ?(.*)$`)

// TestHostileUnprivilegedClients runs clients as nobody that misbehave
// after connecting through a socket whose mode lets them. Each must get
// PermissionDenied or nothing, never reach the handler, and cost the
// server a goroutine and an fd for no longer than the reject timeout,
// while other clients are answered.
func TestHostileUnprivilegedClients(t *testing.T) {
	// Not parallel: it counts the process's goroutines and fds.
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	if testing.Short() {
		t.Skip("slow: runs child processes")
	}
	dir, err := os.MkdirTemp("", "luoctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "control.test")
	if err := copyFile(bin, self); err != nil {
		t.Fatal(err)
	}
	h := newHostileHandler()
	path := serveHostile(t, h.handle)
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	other := dial(t, path)
	answered(t, path, other, "before")
	const denied = `{"parameters":{"message":"luod's control socket is root-only"},"error":"org.varlink.service.PermissionDenied"}`

	tests := []struct {
		mode    string
		replies int // 1: PermissionDenied, 0: none
		waits   bool
	}{
		{mode: "call", replies: 1},
		{mode: "stream", replies: 1},
		{mode: "idle", waits: true},
		{mode: "partial", waits: true},
		{mode: "huge"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			cmd := exec.Command(bin, "-test.run=^TestHostileChild$")
			cmd.Env = append(os.Environ(), hostileModeEnv+"="+tt.mode, hostileSocketEnv+"="+path)
			cmd.Dir = dir
			cmd.Stderr = os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}},
			}
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close()
			before := currentUsage()
			allocBefore := allocated()
			fmt.Fprintln(stdin, "go")
			if tt.waits {
				time.Sleep(hostileRejectTimeout / 2)
				answered(t, path, other, "while a refused client stalls")
			}

			var m []string
			for sc := bufio.NewScanner(stdout); m == nil && sc.Scan(); {
				m = resultLine.FindStringSubmatch(sc.Text())
			}
			if m == nil {
				t.Fatal("the child printed no result")
			}
			allocs := allocated() - allocBefore
			end, replies, first := m[1], m[4], m[5]
			after, _ := strconv.Atoi(m[2])
			wrote, _ := strconv.ParseInt(m[3], 10, 64)
			t.Logf("child: %s", m[0][:min(len(m[0]), 200)])
			// The child is still connected: the server must have let go.
			if u, ok := settle(before, 200*time.Millisecond); !ok {
				t.Errorf("the server still holds %v after the refused client saw it hang up, %v before:\n%s", u, before, usageDump())
			}
			if end != "eof" && end != "reset" {
				t.Errorf("the child's connection ended with %s, want the server hanging up", end)
			}
			if max := (hostileRejectTimeout + time.Second).Milliseconds(); int64(after) > max {
				t.Errorf("the server hung up after %d ms, want at most %d", after, max)
			}
			if tt.waits && time.Duration(after)*time.Millisecond < hostileRejectTimeout/2 {
				t.Errorf("the server hung up on a silent client after %d ms, before the reject timeout (%v)", after, hostileRejectTimeout)
			}
			switch {
			case tt.replies == 1 && (replies != "1" || first != denied):
				t.Errorf("replies=%s %q, want %s", replies, first, denied)
			case tt.replies == 0 && replies != "0":
				t.Errorf("replies=%s %q, want none", replies, first)
			}
			if tt.mode == "huge" {
				if wrote > hugeBound || wrote < 0 {
					t.Errorf("the server read %d bytes of the refused client's message, want at most %d", wrote, hugeBound)
				}
				if allocs > 256<<10 {
					t.Errorf("the process allocated %d bytes while refusing the message, want at most 256 KiB", allocs)
				}
			}
			if n := h.refused.Swap(0); n != 0 {
				t.Errorf("the handler ran %d times for a refused client", n)
			}
			answered(t, path, other, "after a refused client")
		})
	}
}
