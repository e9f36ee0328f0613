// Package controltest runs a fake luod for tests: a real control.Server on
// a socket in a fresh temporary directory, answering each method of
// io.luo.Manager with a function the test provides. It needs no
// privileges.
//
// Only tests import it (luoctl's, and those of other luod clients).
package controltest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/liveupdate/luo/internal/control"
)

// New starts a fake luod and returns the path of its socket. handlers maps
// method names without the interface (such as control.MethodGetUnit) to
// the functions answering them; they run on the server's goroutines, one
// per connection, so they must be safe for concurrent use. A method
// without a handler gets org.varlink.service.MethodNotImplemented. The
// server is closed, and the socket removed, when the test ends.
func New(t testing.TB, handlers map[string]func(*control.Call)) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "luod") // short: socket paths are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "io.luo.Manager")
	h := func(ctx context.Context, call *control.Call) {
		if f := handlers[call.Method()]; f != nil {
			f(call)
		}
	}
	s, err := control.Listen(path, h, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close fake luod: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("fake luod: %v", err)
		}
	})
	return path
}

// Reply returns a handler that replies v, whatever the parameters.
func Reply(v any) func(*control.Call) {
	return func(c *control.Call) { _ = c.Reply(v) }
}

// Error returns a handler that replies the error name (see
// control.Call.ReplyError) with params.
func Error(name string, params any) func(*control.Call) {
	return func(c *control.Call) { _ = c.ReplyError(name, params) }
}
